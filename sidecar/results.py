"""Typed results: ClickHouse TabSeparatedWithNamesAndTypes -> proto rows.

The engines hand over raw chunks; this module cuts them into lines, reads
the two header lines (names, types), builds one decoder per column once,
and turns each line into a ``Row``. Nothing here knows which engine served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .codec import decoder_for
from .engine import ServerInfo
from .errors import RequestError, ResourceExhaustedError

__all__ = ["TYPED_FORMAT", "Limits", "ResultReader", "collect", "unescape"]

TYPED_FORMAT = "TabSeparatedWithNamesAndTypes"

_UNESCAPES = {
    ord("t"): b"\t",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("0"): b"\0",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("\\"): b"\\",
    ord("'"): b"'",
}


def unescape(field: bytes) -> bytes:
    """Undo TabSeparated escaping of one field."""
    if b"\\" not in field:
        return field
    out = bytearray()
    i = 0
    while i < len(field):
        byte = field[i]
        if byte == 0x5C and i + 1 < len(field):
            out += _UNESCAPES.get(field[i + 1], field[i + 1 : i + 2])
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


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
        self._decoders: list[Callable[[bytes], pb.Value]] = []
        self._header: list[list[bytes]] = []

    @property
    def ready(self) -> bool:
        return bool(self._decoders) or len(self._header) == 2

    def _read_header(self, line: bytes) -> None:
        self._header.append([unescape(f) for f in line.split(b"\t")])
        if len(self._header) < 2:
            return
        names, types = self._header
        if len(names) != len(types):
            raise RequestError("the statement's output is not a typed row set")
        unix = self._info.capabilities.unix_timestamp_output
        for name, kind in zip(names, types, strict=True):
            type_name = kind.decode()
            column = name.decode("utf-8", "replace")
            try:
                decoder = decoder_for(
                    type_name, self._info.timezone, unix_timestamps=unix
                )
            except RequestError as exc:
                raise RequestError(f"column {column!r}: {exc}") from exc
            self.columns.append(pb.Column(name=column, type=type_name))
            self._decoders.append(decoder)

    def decode_lines(self, lines: list[bytes]) -> list[pb.Row]:
        rows: list[pb.Row] = []
        decoders = self._decoders
        width = len(decoders)
        for line in lines:
            if not self.ready:
                self._read_header(line)
                continue
            fields = line.split(b"\t")
            if len(fields) != width:
                raise RequestError(
                    f"result row has {len(fields)} fields, expected {width}"
                )
            rows.append(
                pb.Row(values=[d(f) for d, f in zip(decoders, fields, strict=True)])
            )
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
