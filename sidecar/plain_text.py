"""Scalar ``Value``\\s as the plain text of their ClickHouse column type.

Each builder takes a column type and returns a checked converter: it accepts
every lossless spelling of a value (an integer as ``int64_value`` or as
decimal text, a date as ``date_value`` or ISO text, ...) and raises
:class:`EncodeError` for anything that does not fit the column. Quoting is
left to :mod:`sidecar.encoding`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import re
import struct
import uuid
from collections.abc import Callable

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.chtypes import ChType

__all__ = ["PLAIN_TEXTS", "EncodeError", "Plain", "escape", "mismatch", "text_of"]

Plain = Callable[[pb.Value], str]


class EncodeError(ValueError):
    """A value that does not fit its column type; ``column`` is its index."""

    def __init__(self, reason: str, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


_ESCAPES = {
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
    ord("\0"): "\\0",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
    # Bytes that are not UTF-8 travel as surrogates (surrogateescape).
    **{0xDC00 + byte: f"\\x{byte:02X}" for byte in range(0x80, 0x100)},
}
_INTEGER_RE = re.compile(r"[+-]?\d+")
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf)")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL_CONTEXT = decimal.Context(prec=200)
_DATE_RANGES = {
    "Date": (dt.date(1970, 1, 1), dt.date(2149, 6, 6)),
    "Date32": (dt.date(1900, 1, 1), dt.date(2299, 12, 31)),
}


def escape(text: str) -> str:
    """``text`` with the escapes of a quoted literal or a parameter."""
    return text.translate(_ESCAPES)


def _payload(value: pb.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind is None:
        return "no value"
    payload = getattr(value, kind)
    if isinstance(payload, str | bytes | int | float | bool):
        return f"{kind} {str(payload)[:40]!r}"
    return kind


def mismatch(expected: str, t: ChType, value: pb.Value) -> EncodeError:
    if value.WhichOneof("kind") == "null_value":
        return EncodeError(f"NULL into non-Nullable {t.text}")
    return EncodeError(f"expected {expected} for {t.text}, got {_payload(value)}")


def _as_integer(value: pb.Value, t: ChType) -> int:
    kind = value.WhichOneof("kind")
    if kind in ("int64_value", "uint64_value", "bool_value"):
        return int(getattr(value, kind))
    if kind in ("string_value", "big_int_value", "decimal_value"):
        text: str = getattr(value, kind)
        if _INTEGER_RE.fullmatch(text):
            return int(text)
    if kind == "double_value" and value.double_value.is_integer():
        return int(value.double_value)
    raise mismatch("an integer", t, value)


def _integer_plain(t: ChType) -> Plain:
    bits = int(t.name.removeprefix("U").removeprefix("Int"))
    low, high = (
        (0, 2**bits - 1)
        if t.name[0] == "U"
        else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )

    def plain(value: pb.Value) -> str:
        number = _as_integer(value, t)
        if not low <= number <= high:
            raise EncodeError(f"{number} out of range for {t.text}")
        return str(number)

    return plain


def _float_text(number: float) -> str:
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return repr(number)


def _float_plain(t: ChType) -> Plain:
    single = t.name == "Float32"

    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "double_value":
            return _float_text(_fitting(value.double_value, single, t))
        if kind in ("string_value", "decimal_value") and _FLOAT_RE.fullmatch(
            getattr(value, kind)
        ):
            return _float_text(_fitting(float(getattr(value, kind)), single, t))
        if kind in ("int64_value", "uint64_value", "big_int_value"):
            return _exact_float(int(getattr(value, kind)), single, t)
        raise mismatch("a number", t, value)

    return plain


def _as_single(number: float) -> float:
    try:
        single: float = struct.unpack("f", struct.pack("f", number))[0]
    except OverflowError:
        return math.inf
    return single


def _fitting(number: float, single: bool, t: ChType) -> float:
    """``number``, refused where Float32 would turn it into inf or 0."""
    if not single or not math.isfinite(number) or number == 0:
        return number
    stored = _as_single(number)
    if math.isinf(stored) or stored == 0:
        raise EncodeError(f"{number!r} is out of range for {t.text}")
    return number


def _exact_float(number: int, single: bool, t: ChType) -> str:
    exact = float(number) == number and (not single or _as_single(number) == number)
    if exact:
        return _float_text(float(number))
    raise EncodeError(f"{number} is not exactly representable in {t.text}")


def _as_decimal(value: pb.Value, t: ChType) -> decimal.Decimal:
    kind = value.WhichOneof("kind")
    if kind in ("decimal_value", "string_value", "big_int_value"):
        text: str = getattr(value, kind)
        if _DECIMAL_RE.fullmatch(text):
            return decimal.Decimal(text)
    if kind in ("int64_value", "uint64_value"):
        return decimal.Decimal(getattr(value, kind))
    if kind == "double_value" and math.isfinite(value.double_value):
        return decimal.Decimal(repr(value.double_value))
    raise mismatch("a decimal number", t, value)


def _decimal_plain(t: ChType) -> Plain:
    step = decimal.Decimal(1).scaleb(-t.scale)
    limit = 10 ** (t.precision - t.scale)

    def plain(value: pb.Value) -> str:
        number = _as_decimal(value, t)
        exact = number.quantize(step, context=_DECIMAL_CONTEXT)
        if exact != number:
            raise EncodeError(
                f"{number} has more than {t.scale} fraction digits for {t.text}"
            )
        if abs(int(exact)) >= limit:
            raise EncodeError(f"{number} out of range for {t.text}")
        return format(exact, "f")

    return plain


def _bool_plain(t: ChType) -> Plain:
    words = {"true": "true", "false": "false", "1": "true", "0": "false"}

    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "bool_value":
            return "true" if value.bool_value else "false"
        if kind in ("int64_value", "uint64_value") and getattr(value, kind) in (0, 1):
            return "true" if getattr(value, kind) else "false"
        if kind == "string_value" and value.string_value in words:
            return words[value.string_value]
        raise mismatch("a boolean", t, value)

    return plain


def _string_plain(t: ChType) -> Plain:
    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            text = value.string_value
        elif kind == "bytes_value":
            text = value.bytes_value.decode("utf-8", "surrogateescape")
        else:
            raise mismatch("a string", t, value)
        if t.length and len(text.encode("utf-8", "surrogateescape")) > t.length:
            raise EncodeError(f"longer than {t.length} bytes for {t.text}")
        return text

    return plain


def text_of(value: pb.Value, kinds: tuple[str, ...], what: str, t: ChType) -> str:
    kind = value.WhichOneof("kind")
    if kind not in kinds:
        raise mismatch(what, t, value)
    text: str = getattr(value, kind)
    return text


def _date_plain(t: ChType) -> Plain:
    low, high = _DATE_RANGES[t.name]

    def plain(value: pb.Value) -> str:
        try:
            date = _as_date(value, t)
        except ValueError as error:
            raise EncodeError(f"not a valid date for {t.text}: {error}") from error
        if not low <= date <= high:
            raise EncodeError(f"{date} out of range for {t.text}")
        return date.isoformat()

    return plain


def _as_date(value: pb.Value, t: ChType) -> dt.date:
    if value.WhichOneof("kind") == "date_value":
        date = value.date_value
        return dt.date(date.year, date.month, date.day)

    text = text_of(value, ("string_value",), "a date", t)
    if not _DATE_RE.fullmatch(text):
        raise mismatch("a date", t, value)
    return dt.date.fromisoformat(text)


def _uuid_plain(t: ChType) -> Plain:
    def plain(value: pb.Value) -> str:
        text = text_of(value, ("uuid_value", "string_value"), "a UUID", t)
        try:
            return str(uuid.UUID(text))
        except ValueError as error:
            raise EncodeError(f"not a UUID for {t.text}: {text[:40]!r}") from error

    return plain


def _ip_plain(t: ChType) -> Plain:
    def plain(value: pb.Value) -> str:
        text = text_of(value, ("ip_value", "string_value"), "an IP address", t)
        try:
            address = ipaddress.ip_address(text) if "%" not in text else None
        except ValueError:
            address = None
        if address is None or (t.name == "IPv4" and address.version != 4):
            raise EncodeError(f"not an address for {t.text}: {text[:40]!r}")
        if t.name == "IPv6" and address.version == 4:
            return f"::ffff:{address}"
        return str(address)

    return plain


def _enum_plain(t: ChType) -> Plain:
    names = {name for name, _ in t.enum}
    by_number = {number: name for name, number in t.enum}

    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "string_value" and value.string_value in names:
            return value.string_value
        if (
            kind in ("int64_value", "uint64_value")
            and getattr(value, kind) in by_number
        ):
            return by_number[getattr(value, kind)]
        raise mismatch("one of the enum's names or values", t, value)

    return plain


def _nothing_plain(t: ChType) -> Plain:
    def plain(value: pb.Value) -> str:
        raise mismatch("NULL", t, value)

    return plain


PLAIN_TEXTS: dict[str, tuple[Callable[[ChType], Plain], bool]] = {
    **{
        f"{sign}Int{bits}": (_integer_plain, False)
        for sign in ("", "U")
        for bits in (8, 16, 32, 64, 128, 256)
    },
    "Float32": (_float_plain, False),
    "Float64": (_float_plain, False),
    "Decimal": (_decimal_plain, False),
    "Bool": (_bool_plain, False),
    "Nothing": (_nothing_plain, False),
    "String": (_string_plain, True),
    "FixedString": (_string_plain, True),
    "Date": (_date_plain, True),
    "Date32": (_date_plain, True),
    "UUID": (_uuid_plain, True),
    "IPv4": (_ip_plain, True),
    "IPv6": (_ip_plain, True),
    "Enum8": (_enum_plain, True),
    "Enum16": (_enum_plain, True),
    "Enum": (_enum_plain, True),
}
