"""Per-block output from chdb, spliced into one document of the format.

chdb's streaming query (``send_query``) is pulled block by block, so an
idle consumer pauses the query. But chdb renders every block as a complete
document of the format, with its header, prefix and suffix. Formats without
those are passed through; the TSV and JSONCompact ``WithNames[AndTypes]``
formats lose their repeated header lines, and ``ArrowStream`` its repeated
schema and end-of-stream markers. Every other format (Parquet, JSON, Arrow,
CSVWithNames, Pretty, ...) has no splicer: the client produces it whole in
memory first and then yields it in slices, so memory grows with the result
size for those formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Splicer", "splicer_for"]

_ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"

# Formats whose blocks concatenate into one valid document as they are.
_PLAIN_FORMATS = frozenset(
    {
        "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
        "JSONEachRow", "JSONLines", "NDJSON", "JSONCompactEachRow",
        "JSONStringsEachRow", "JSONCompactStringsEachRow",
        "RowBinary", "Native", "LineAsString", "Raw",
    }
)  # fmt: skip
# Formats whose only per-block extra is N header lines without raw newlines.
_HEADER_LINES = {
    "TabSeparatedWithNames": 1,
    "TSVWithNames": 1,
    "TabSeparatedWithNamesAndTypes": 2,
    "TSVWithNamesAndTypes": 2,
    "JSONCompactEachRowWithNames": 1,
    "JSONCompactEachRowWithNamesAndTypes": 2,
    "JSONCompactStringsEachRowWithNames": 1,
    "JSONCompactStringsEachRowWithNamesAndTypes": 2,
}


class Splicer(Protocol):
    def feed(self, chunk: bytes, rows_read: int) -> bytes: ...

    def end(self) -> bytes: ...


def splicer_for(fmt: str) -> Splicer | None:
    """The splicer of ``fmt``, or None when its blocks cannot be spliced."""
    if fmt in _PLAIN_FORMATS:
        return _Plain()
    if fmt in _HEADER_LINES:
        return _HeaderLines(_HEADER_LINES[fmt])
    if fmt == "ArrowStream":
        return _ArrowStream()
    return None


class _Plain:
    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        return chunk

    def end(self) -> bytes:
        return b""


@dataclass
class _HeaderLines:
    """Keeps the first block's header lines, drops their repeats."""

    lines: int
    header: bytes | None = None

    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        if self.header is None:
            self.header = _first_lines(chunk, self.lines)
            return chunk

        if chunk.startswith(self.header):
            chunk = chunk[len(self.header) :]

        # A totals/extremes block (no rows read) ends with a dangling header.
        if rows_read == 0 and chunk.endswith(self.header):
            chunk = chunk[: -len(self.header)]
        return chunk

    def end(self) -> bytes:
        return b""


@dataclass
class _ArrowStream:
    """Keeps one schema message and one end-of-stream marker."""

    schema: bytes | None = None

    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        chunk = chunk.removesuffix(_ARROW_EOS)
        if self.schema is None:
            self.schema = _arrow_first_message(chunk)
            return chunk

        chunk = chunk.removeprefix(self.schema)
        return chunk.removesuffix(self.schema)

    def end(self) -> bytes:
        return b"" if self.schema is None else _ARROW_EOS


def _first_lines(chunk: bytes, count: int) -> bytes:
    end = 0
    for _ in range(count):
        end = chunk.index(b"\n", end) + 1
    return chunk[:end]


def _arrow_first_message(chunk: bytes) -> bytes:
    # Encapsulated IPC message: 0xFFFFFFFF, int32 metadata size, metadata;
    # a schema message has no body.
    size = int.from_bytes(chunk[4:8], "little")
    return chunk[: 8 + size]
