"""Scanning ClickHouse ``TabSeparated`` text: escapes and quoted literals.

A top-level field arrives TSV-escaped; the items of an Array, Tuple or Map
arrive in quoted-literal syntax (``['a\\'b',NULL]``). These helpers read
one item at a position and return where the next one starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "DecodeError",
    "expect",
    "read_bare",
    "read_items",
    "read_quoted",
    "unescape",
]


class DecodeError(ValueError):
    """ClickHouse output that does not match the announced columns."""


_ESCAPE_RE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_UNESCAPED = {
    b"n": b"\n",
    b"t": b"\t",
    b"r": b"\r",
    b"0": b"\0",
    b"b": b"\b",
    b"f": b"\f",
    b"a": b"\a",
    b"v": b"\v",
    b"e": b"\x1b",
}
_QUOTED_RE = re.compile(rb"'([^'\\]*(?:\\.[^'\\]*)*)'", re.DOTALL)
_BARE_RE = re.compile(rb"[^,\])}:]+")


def _unescape_one(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if len(code) == 3:
        return bytes((int(code[1:], 16),))
    return _UNESCAPED.get(code, code)


def unescape(raw: bytes) -> bytes:
    """``raw`` with its backslash escapes resolved."""
    if b"\\" not in raw:
        return raw
    return _ESCAPE_RE.sub(_unescape_one, raw)


def read_quoted(buf: bytes, pos: int) -> tuple[bytes, int]:
    """The unescaped text of the ``'...'`` literal at ``pos``, and its end."""
    match = _QUOTED_RE.match(buf, pos)
    if match is None:
        raise DecodeError(f"expected a quoted value at {buf[pos : pos + 20]!r}")
    return unescape(match.group(1)), match.end()


def read_bare(buf: bytes, pos: int) -> tuple[bytes, int]:
    """The unquoted item (a number, ``NULL``) at ``pos``, and its end."""
    match = _BARE_RE.match(buf, pos)
    if match is None:
        raise DecodeError(f"expected a value at {buf[pos : pos + 20]!r}")
    return match.group(0), match.end()


def expect(buf: bytes, pos: int, char: bytes) -> int:
    """The position after ``char``, which must be at ``pos``."""
    if buf[pos : pos + 1] != char:
        raise DecodeError(f"expected {char!r} at {buf[pos : pos + 20]!r}")
    return pos + 1


def read_items(
    buf: bytes, pos: int, close: bytes, read: Callable[[bytes, int, int], int]
) -> int:
    """Calls ``read(buf, pos, index)`` per comma-separated item up to ``close``."""
    index = 0
    while buf[pos : pos + 1] != close:
        if index:
            pos = expect(buf, pos, b",")
            if buf[pos : pos + 1] == close:  # a 1-tuple may end in a comma
                break
        pos = read(buf, pos, index)
        index += 1
    return pos + 1
