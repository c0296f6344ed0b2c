"""The data formats a streaming call may name, and how an unknown one fails.

A raw stream names its format, and only the formats listed here are
accepted. A server that does not know a listed format fails the call with
FAILED_PRECONDITION, naming its version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .calls import Op
from .errors import ClickHouseError, RequestError, UnsupportedError

__all__ = ["INPUT_FORMATS", "OUTPUT_FORMATS", "known_format", "vetted"]

UNKNOWN_FORMAT = 73

OUTPUT_FORMATS = (
    "TabSeparated", "TabSeparatedWithNames", "TabSeparatedWithNamesAndTypes",
    "CSV", "CSVWithNames", "JSONEachRow", "JSONCompactEachRow",
    "RowBinary", "RowBinaryWithNamesAndTypes", "Native",
    "Parquet", "Arrow", "ArrowStream",
)  # fmt: skip
INPUT_FORMATS = (*OUTPUT_FORMATS, "Values")


def vetted(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise RequestError(
            f"format {fmt!r} is not one of the allowed formats: {', '.join(allowed)}"
        )
    return fmt


@contextmanager
def known_format(op: Op, fmt: str) -> Iterator[None]:
    """Turns ClickHouse's UNKNOWN_FORMAT for ``fmt`` into UnsupportedError."""
    try:
        yield
    except ClickHouseError as exc:
        if exc.code != UNKNOWN_FORMAT:
            raise
        raise UnsupportedError(
            f"format {fmt} is not available on ClickHouse {op.info.version}"
        ) from exc
