"""Typed results: ClickHouse TabSeparatedWithNamesAndTypes -> proto rows.

The engines hand over raw chunks; this module cuts them into lines, reads
the two header lines (names, types), builds one decoder per column once
(:mod:`sidecar.codec`), and turns each line into a ``Row``. Nothing here
knows which engine served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .codec import DecodeError, header_decoders, row_decoder
from .engine import ServerInfo
from .errors import RequestError, ResourceExhaustedError

__all__ = ["TYPED_FORMAT", "Limits", "ResultReader", "collect"]

TYPED_FORMAT = "TabSeparatedWithNamesAndTypes"


@dataclass(frozen=True, slots=True)
class Limits:
    """A unary result's caps; past either, RESOURCE_EXHAUSTED."""

    rows: int
    bytes: int


class ResultReader:
    """Decodes one result, chunk by chunk."""

    def __init__(self, info: ServerInfo) -> None:
        self._info = info
        self.columns: list[pb.Column] = []
        self._header: list[bytes] = []
        self._decode: Callable[[bytes], pb.Row] | None = None

    def _read_header(self, line: bytes) -> None:
        self._header.append(line)
        if len(self._header) < 2:
            return
        names, types = (h.split(b"\t") for h in self._header)
        try:
            self.columns, decoders = header_decoders(
                names,
                types,
                self._info.timezone,
                unix_timestamps=self._info.capabilities.unix_timestamp_output,
            )
        except DecodeError as exc:
            raise RequestError(
                f"the statement's output is not a typed row set ({exc}); "
                "remove its FORMAT clause or use QueryRawStream"
            ) from exc
        self._decode = row_decoder(decoders)

    def decode_lines(self, lines: list[bytes]) -> list[pb.Row]:
        rows: list[pb.Row] = []
        for i, line in enumerate(lines):
            if self._decode is None:
                self._read_header(line)
                continue
            try:
                rows.extend(map(self._decode, lines[i:]))
            except DecodeError as exc:
                raise RequestError(f"cannot decode the result: {exc}") from exc
            break
        return rows

    async def batches(
        self, chunks: AsyncIterator[bytes], batch_rows: int
    ) -> AsyncIterator[list[pb.Row]]:
        """Yield rows in batches of about ``batch_rows`` as chunks arrive."""
        pending = b""
        batch: list[pb.Row] = []
        async for chunk in chunks:
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            batch.extend(self.decode_lines(lines))
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if pending:
            batch.extend(self.decode_lines([pending]))
        if batch:
            yield batch


async def collect(
    reader: ResultReader, chunks: AsyncIterator[bytes], limits: Limits
) -> list[pb.Row]:
    """All rows of a result, within ``limits``."""
    rows: list[pb.Row] = []
    size = 0

    async def measured() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in chunks:
            size += len(chunk)
            if size > limits.bytes:
                raise ResourceExhaustedError(
                    f"result exceeds {limits.bytes} bytes (SIDECAR_MAX_RESULT_BYTES); "
                    "use QueryDataStream or add a LIMIT"
                )
            yield chunk

    async for batch in reader.batches(measured(), batch_rows=4096):
        rows.extend(batch)
        if len(rows) > limits.rows:
            raise ResourceExhaustedError(
                f"result exceeds {limits.rows} rows (SIDECAR_MAX_RESULT_ROWS); "
                "use QueryDataStream or add a LIMIT"
            )
    return rows
