"""Typed results: ClickHouse TabSeparatedWithNamesAndTypes -> proto rows.

The engines hand over raw chunks; this module cuts them into lines, reads
the two header lines (names, types), builds one decoder per column once
(:mod:`sidecar.codec`), and appends each line as a ``Row`` to the caller's
repeated ``rows`` field, the one that will be sent. Nothing here knows
which engine served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .codec import DecodeError, Rows, RowsDecoder, header_decoders, rows_decoder
from .engine import ServerInfo
from .errors import RequestError, ResourceExhaustedError

__all__ = ["TYPED_FORMAT", "Limits", "ResultReader", "collect"]

TYPED_FORMAT = "TabSeparatedWithNamesAndTypes"


@dataclass(frozen=True, slots=True)
class Limits:
    """A unary result's caps; past either, RESOURCE_EXHAUSTED."""

    rows: int
    bytes: int
    # The largest response message the server may send.
    message_bytes: int = 64 * 1024 * 1024


class ResultReader:
    """Decodes one result, chunk by chunk, into a caller's ``rows`` field."""

    def __init__(self, info: ServerInfo) -> None:
        self._info = info
        self.columns: list[pb.Column] = []
        self._header: list[bytes] = []
        self._decode: RowsDecoder | None = None

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
        self._decode = rows_decoder(decoders)

    def decode_lines(self, rows: Rows, lines: list[bytes]) -> int:
        """Appends the rows of ``lines`` to ``rows``; returns how many."""
        start = 0
        while self._decode is None and start < len(lines):
            self._read_header(lines[start])
            start += 1
        if self._decode is None:
            return 0

        before = len(rows)
        try:
            self._decode(rows, lines[start:] if start else lines)
        except DecodeError as exc:
            raise RequestError(f"cannot decode the result: {exc}") from exc
        return len(rows) - before

    async def into(
        self, rows: Rows, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[int]:
        """Appends rows as chunks arrive; yields the count added per chunk."""
        pending = b""
        async for chunk in chunks:
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            yield self.decode_lines(rows, lines)
        if pending:
            yield self.decode_lines(rows, [pending])


async def collect(
    reader: ResultReader, chunks: AsyncIterator[bytes], rows: Rows, limits: Limits
) -> None:
    """Appends all rows of a result to ``rows``, within ``limits``."""
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

    async for _ in reader.into(rows, measured()):
        if len(rows) > limits.rows:
            raise ResourceExhaustedError(
                f"result exceeds {limits.rows} rows (SIDECAR_MAX_RESULT_ROWS); "
                "use QueryDataStream or add a LIMIT"
            )
