r"""Values between ClickHouse text and the proto ``Value`` message.

Decoding reads ``TabSeparated`` output, one field at a time; encoding writes
``Values``-format literals for ``INSERT ... FORMAT Values`` and the text form
of server-side query parameters. Every converter is built once per column
type (:func:`decoder_for`, :func:`encoder_for`) and then applied per value.

What the engines print, as observed on ClickHouse 18.16.1 (HTTP) and on chdb
(ClickHouse 26.9), and what the decoders make of it:

- Escaping is identical. A top-level String, FixedString or Enum field is
  TSV-escaped: ``\\ \' \t \n \r \0 \b \f``, other bytes raw (non-UTF-8 too).
  Array, Tuple and Map fields are printed in quoted-literal syntax and are
  *not* escaped a second time: ``['a\'b','c\\d','e\tf']`` is exactly what
  arrives. Header type names are TSV-escaped: ``DateTime(\'UTC\')``.
- NULL is ``\N`` at the top level and bare ``NULL`` inside composites; the
  string ``'NULL'`` stays quoted, so the two never mix.
- 18.16 prints day 0 as ``0000-00-00`` and instant 0 as
  ``0000-00-00 00:00:00``; both decode to the epoch. Modern servers print
  ``1970-01-01``.
- 18.16's calendar ends in 2105: a later Date prints as ``0000-00-00`` and
  a later DateTime wraps (4294967295 prints as ``1970-01-01 06:28:15``).
  Such values cannot be read back from 18.16.
- 18.16 pads Decimal fractions to the scale (``-12.3400``); modern servers
  drop trailing zeros (``-12.34``). ``decimal_value`` keeps the printed text.
- 18.16 has no Bool (``1 = 1`` is UInt8 ``1``), no Map, no named tuples, no
  IPv4/IPv6, Date32, DateTime64, Int128/256, and no
  ``date_time_output_format``: DateTime arrives as local wall-clock text in
  the column's zone, read here with zoneinfo. At a daylight-saving fall-back
  the repeated hour is ambiguous in that text; it is read as the first
  occurrence.
- With ``date_time_output_format='unix_timestamp'`` (modern), DateTime is
  epoch seconds, and DateTime64 is ``seconds.fraction`` with exactly
  ``precision`` digits, quoted inside composites. For instants strictly
  between -1 s and 0, ClickHouse 26.9 prints a broken fraction whose digits
  are ``'0' + d`` for negative ``d`` (-0.5 s at precision 3 is ``0.+00``,
  -1 ns at precision 9 is ``0.00000000/``, and quotes can appear). The
  DateTime64 decoder reverses that.

Encoding writes DateTime as bare epoch seconds and DateTime64 as bare
``seconds.fraction``: both servers read those exactly in ``Values``, at the
top level and inside composites. Query parameters are different (modern
servers only): a short epoch number such as ``100`` is rejected and
``-0.5`` is read as ``+0.5``, so :func:`param_text` writes instants closer
than ``_PARAM_EPOCH_MIN`` seconds to 1970 as wall-clock text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.chtypes import ChType, parse_type
from sidecar.errors import RequestError

__all__ = [
    "DecodeError",
    "Decoder",
    "EncodeError",
    "Encoder",
    "decoder_for",
    "encode_row",
    "encoder_for",
    "header_decoders",
    "param_text",
    "row_decoder",
]

Decoder = Callable[[bytes], pb.Value]
Encoder = Callable[[pb.Value], str]
_Quoted = Callable[[bytes, int], tuple[pb.Value, int]]
_Convert = Callable[[bytes], pb.Value]
_Plain = Callable[[pb.Value], str]

_NS = 1_000_000_000
_POW10: tuple[int, ...] = tuple(10**k for k in range(10))
_EPOCH = dt.datetime(1970, 1, 1)
_PARAM_EPOCH_MIN = 100_000


class DecodeError(ValueError):
    """ClickHouse output that does not match the announced columns."""


class EncodeError(ValueError):
    """A value that does not fit its column type; ``column`` is its index."""

    def __init__(self, reason: str, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


# ------------------------------------------------------------- unescaping

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
_FRACTION_HEAD_RE = re.compile(rb"'(-?\d+)\.")


def _unescape_one(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if len(code) == 3:
        return bytes((int(code[1:], 16),))
    return _UNESCAPED.get(code, code)


def _unescape(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    return _ESCAPE_RE.sub(_unescape_one, raw)


def _read_quoted(buf: bytes, pos: int) -> tuple[bytes, int]:
    match = _QUOTED_RE.match(buf, pos)
    if match is None:
        raise DecodeError(f"expected a quoted value at {buf[pos : pos + 20]!r}")
    return _unescape(match.group(1)), match.end()


def _read_bare(buf: bytes, pos: int) -> tuple[bytes, int]:
    match = _BARE_RE.match(buf, pos)
    if match is None:
        raise DecodeError(f"expected a value at {buf[pos : pos + 20]!r}")
    return match.group(0), match.end()


def _expect(buf: bytes, pos: int, char: bytes) -> int:
    if buf[pos : pos + 1] != char:
        raise DecodeError(f"expected {char!r} at {buf[pos : pos + 20]!r}")
    return pos + 1


# ------------------------------------------------------- scalar decoding


def _to_int(raw: bytes) -> pb.Value:
    return pb.Value(int64_value=int(raw))


def _to_uint(raw: bytes) -> pb.Value:
    return pb.Value(uint64_value=int(raw))


def _to_big_int(raw: bytes) -> pb.Value:
    return pb.Value(big_int_value=str(int(raw)))


def _to_float(raw: bytes) -> pb.Value:
    return pb.Value(double_value=float(raw))


def _to_bool(raw: bytes) -> pb.Value:
    if raw in (b"true", b"1"):
        return pb.Value(bool_value=True)
    if raw in (b"false", b"0"):
        return pb.Value(bool_value=False)
    raise DecodeError(f"not a Bool: {raw!r}")


def _to_text(raw: bytes) -> pb.Value:
    try:
        return pb.Value(string_value=raw.decode())
    except UnicodeDecodeError:
        return pb.Value(bytes_value=raw)


def _to_decimal(raw: bytes) -> pb.Value:
    return pb.Value(decimal_value=raw.decode("ascii"))


def _to_uuid(raw: bytes) -> pb.Value:
    return pb.Value(uuid_value=raw.decode("ascii"))


def _to_ip(raw: bytes) -> pb.Value:
    return pb.Value(ip_value=raw.decode("ascii"))


def _to_date(raw: bytes) -> pb.Value:
    if raw == b"0000-00-00":  # 18.16 prints day 0 this way
        return pb.Value(date_value=pb.Date(year=1970, month=1, day=1))

    date = pb.Date(year=int(raw[0:4]), month=int(raw[5:7]), day=int(raw[8:10]))
    return pb.Value(date_value=date)


def _to_nothing(raw: bytes) -> pb.Value:
    raise DecodeError(f"no value fits type Nothing: {raw!r}")


def _datetime_value(nanos: int, timezone: str) -> pb.Value:
    seconds, fraction = divmod(nanos, _NS)
    instant = Timestamp(seconds=seconds, nanos=fraction)
    return pb.Value(datetime_value=pb.DateTime(instant=instant, timezone=timezone))


def _epoch_nanos(raw: bytes, precision: int) -> int:
    """``seconds[.fraction]`` as printed with unix_timestamp output."""
    whole, _, fraction = raw.partition(b".")
    if fraction and not fraction.isdigit():
        return _broken_fraction(fraction) * _POW10[9 - precision]

    nanos = int(whole) * _NS
    sub = int(fraction or b"0") * _POW10[9 - len(fraction)]
    return nanos - sub if whole.startswith(b"-") else nanos + sub


def _broken_fraction(fraction: bytes) -> int:
    """Undo 26.9's digits of a negative fraction, each printed as ``'0' + d``."""
    if not all(ord("0") - 9 <= char <= ord("0") for char in fraction):
        raise DecodeError(f"not a unix timestamp fraction: {fraction!r}")

    units = 0
    for char in fraction:
        units = units * 10 + char - ord("0")
    return units


def _local_nanos(raw: bytes, zone: ZoneInfo) -> int:
    """``YYYY-MM-DD hh:mm:ss[.f]`` in ``zone``; an ambiguous hour is the first."""
    if raw.startswith(b"0000-00-00"):  # 18.16 prints instant 0 this way
        return 0

    day = dt.date(int(raw[0:4]), int(raw[5:7]), int(raw[8:10]))
    clock = dt.time(int(raw[11:13]), int(raw[14:16]), int(raw[17:19]))
    local = dt.datetime.combine(day, clock, zone)  # fold=0: the first one
    offset = local.utcoffset() or dt.timedelta()
    since = local.replace(tzinfo=None) - _EPOCH
    seconds = since.days * 86400 + since.seconds

    fraction = raw[20:]
    sub = int(fraction.ljust(9, b"0")) if fraction else 0
    return (seconds - int(offset.total_seconds())) * _NS + sub


# ------------------------------------------------------------ decoders


@dataclass(frozen=True, slots=True)
class _Reader:
    """How one type is read: as a whole TSV field, and inside a composite."""

    field: Decoder
    quoted: _Quoted


@dataclass(frozen=True, slots=True)
class _DecodeContext:
    server_timezone: str
    unix_timestamps: bool


def _scalar(convert: _Convert, *, quoted: bool, escaped: bool = False) -> _Reader:
    read = _read_quoted if quoted else _read_bare

    def in_composite(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        raw, end = read(buf, pos)
        return convert(raw), end

    def escaped_field(raw: bytes) -> pb.Value:
        return convert(_unescape(raw))

    return _Reader(escaped_field if escaped else convert, in_composite)


def _whole(quoted: _Quoted) -> Decoder:
    def field(raw: bytes) -> pb.Value:
        value, end = quoted(raw, 0)
        if end != len(raw):
            raise DecodeError(f"unexpected text after a value: {raw[end:][:20]!r}")
        return value

    return field


_SCALARS: dict[str, _Reader] = {
    **{f"Int{bits}": _scalar(_to_int, quoted=False) for bits in (8, 16, 32, 64)},
    **{f"UInt{bits}": _scalar(_to_uint, quoted=False) for bits in (8, 16, 32, 64)},
    **{
        f"{sign}Int{bits}": _scalar(_to_big_int, quoted=False)
        for sign in ("", "U")
        for bits in (128, 256)
    },
    "Float32": _scalar(_to_float, quoted=False),
    "Float64": _scalar(_to_float, quoted=False),
    "Bool": _scalar(_to_bool, quoted=False),
    "Decimal": _scalar(_to_decimal, quoted=False),
    "String": _scalar(_to_text, quoted=True, escaped=True),
    "FixedString": _scalar(_to_text, quoted=True, escaped=True),
    "Enum8": _scalar(_to_text, quoted=True, escaped=True),
    "Enum16": _scalar(_to_text, quoted=True, escaped=True),
    "Enum": _scalar(_to_text, quoted=True, escaped=True),
    "UUID": _scalar(_to_uuid, quoted=True),
    "IPv4": _scalar(_to_ip, quoted=True),
    "IPv6": _scalar(_to_ip, quoted=True),
    "Date": _scalar(_to_date, quoted=True),
    "Date32": _scalar(_to_date, quoted=True),
    "Nothing": _scalar(_to_nothing, quoted=False),
}


def _datetime_reader(t: ChType, ctx: _DecodeContext) -> _Reader:
    timezone = t.timezone or ctx.server_timezone
    if not ctx.unix_timestamps:
        zone = ZoneInfo(timezone)
        return _scalar(
            lambda raw: _datetime_value(_local_nanos(raw, zone), timezone), quoted=True
        )

    precision = t.precision
    convert: _Convert = lambda raw: _datetime_value(  # noqa: E731
        _epoch_nanos(raw, precision), timezone
    )
    if precision == 0:
        return _scalar(convert, quoted=True)
    return _Reader(convert, _fraction_reader(convert, precision))


def _fraction_reader(convert: _Convert, precision: int) -> _Quoted:
    """Reads ``'seconds.fraction'`` by length: the broken fraction may hold quotes."""

    def quoted(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        match = _FRACTION_HEAD_RE.match(buf, pos)
        if match is None:
            raise DecodeError(f"expected a timestamp at {buf[pos : pos + 20]!r}")
        end = match.end() + precision
        _expect(buf, end, b"'")
        return convert(buf[pos + 1 : end]), end + 1

    return quoted


def _nullable(inner: _Reader) -> _Reader:
    def field(raw: bytes) -> pb.Value:
        if raw == b"\\N":
            return pb.Value(null_value=pb.NULL_VALUE)
        return inner.field(raw)

    def quoted(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        if buf.startswith(b"NULL", pos):
            return pb.Value(null_value=pb.NULL_VALUE), pos + 4
        return inner.quoted(buf, pos)

    return _Reader(field, quoted)


def _items(
    buf: bytes, pos: int, close: bytes, read: Callable[[bytes, int, int], int]
) -> int:
    """Calls ``read(buf, pos, index)`` per comma-separated item up to ``close``."""
    index = 0
    while buf[pos : pos + 1] != close:
        if index:
            pos = _expect(buf, pos, b",")
            if buf[pos : pos + 1] == close:  # a 1-tuple may end in a comma
                break
        pos = read(buf, pos, index)
        index += 1
    return pos + 1


def _array(element: _Reader) -> _Reader:
    read_element = element.quoted

    def quoted(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        values: list[pb.Value] = []

        def read(buf: bytes, pos: int, index: int) -> int:
            value, end = read_element(buf, pos)
            values.append(value)
            return end

        end = _items(buf, _expect(buf, pos, b"["), b"]", read)
        return pb.Value(array_value=pb.ValueList(values=values)), end

    return _Reader(_whole(quoted), quoted)


def _tuple(elements: Sequence[_Reader]) -> _Reader:
    readers = [element.quoted for element in elements]

    def quoted(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        values: list[pb.Value] = []

        def read(buf: bytes, pos: int, index: int) -> int:
            value, end = readers[index](buf, pos)
            values.append(value)
            return end

        end = _items(buf, _expect(buf, pos, b"("), b")", read)
        if len(values) != len(readers):
            raise DecodeError(f"expected {len(readers)} tuple elements")
        return pb.Value(tuple_value=pb.ValueList(values=values)), end

    return _Reader(_whole(quoted), quoted)


def _map(key: _Reader, value: _Reader) -> _Reader:
    read_key, read_value = key.quoted, value.quoted

    def quoted(buf: bytes, pos: int) -> tuple[pb.Value, int]:
        entries: list[pb.MapEntry] = []

        def read(buf: bytes, pos: int, index: int) -> int:
            k, pos = read_key(buf, pos)
            v, pos = read_value(buf, _expect(buf, pos, b":"))
            entries.append(pb.MapEntry(key=k, value=v))
            return pos

        end = _items(buf, _expect(buf, pos, b"{"), b"}", read)
        return pb.Value(map_value=pb.MapValue(entries=entries)), end

    return _Reader(_whole(quoted), quoted)


def _reader(t: ChType, ctx: _DecodeContext) -> _Reader:
    if t.name in _SCALARS:
        return _SCALARS[t.name]
    if t.name in ("DateTime", "DateTime64"):
        return _datetime_reader(t, ctx)
    if t.name == "LowCardinality":
        return _reader(t.args[0], ctx)
    if t.name == "Nullable":
        return _nullable(_reader(t.args[0], ctx))

    elements = [_reader(arg, ctx) for arg in t.args]
    if t.name == "Array":
        return _array(elements[0])
    if t.name == "Map":
        return _map(elements[0], elements[1])
    return _tuple(elements)


@functools.lru_cache(maxsize=1024)
def decoder_for(
    type_name: str, server_timezone: str, *, unix_timestamps: bool
) -> Decoder:
    """The decoder of one TSV field of ``type_name``.

    ``server_timezone`` is the zone of DateTime columns that name none.
    ``unix_timestamps`` says the query ran with
    ``date_time_output_format='unix_timestamp'``. Raises
    :class:`RequestError` for a type the codec does not carry.
    """
    ctx = _DecodeContext(server_timezone, unix_timestamps)
    return _reader(parse_type(type_name), ctx).field


def header_decoders(
    names: Sequence[bytes],
    types: Sequence[bytes],
    server_timezone: str,
    *,
    unix_timestamps: bool,
) -> tuple[list[pb.Column], list[Decoder]]:
    """Columns and decoders from the two header lines, split on tabs.

    The header fields are TSV-escaped (``DateTime(\\'UTC\\')``).
    """
    if len(names) != len(types):
        raise DecodeError(f"{len(names)} column names but {len(types)} types")

    columns = [
        pb.Column(
            name=_unescape(name).decode(errors="replace"),
            type=_unescape(type_).decode(),
        )
        for name, type_ in zip(names, types, strict=True)
    ]
    return columns, [
        _column_decoder(c, server_timezone, unix_timestamps) for c in columns
    ]


def _column_decoder(
    column: pb.Column, server_timezone: str, unix_timestamps: bool
) -> Decoder:
    try:
        return decoder_for(
            column.type, server_timezone, unix_timestamps=unix_timestamps
        )
    except RequestError as error:
        raise RequestError(f"column {column.name!r}: {error}") from error


def row_decoder(decoders: Sequence[Decoder]) -> Callable[[bytes], pb.Row]:
    """Decodes one TSV line (without its newline) into a ``Row``.

    Raises :class:`DecodeError` when the line has the wrong number of fields
    or a field does not parse as its type.
    """
    count = len(decoders)
    pairs = tuple(decoders)

    def decode(line: bytes) -> pb.Row:
        fields = line.split(b"\t")
        if len(fields) != count:
            raise DecodeError(f"expected {count} fields, got {len(fields)}")
        try:
            return pb.Row(values=[d(f) for d, f in zip(pairs, fields, strict=False)])
        except (ValueError, IndexError) as error:
            raise DecodeError(f"cannot decode row: {error}") from error

    return decode


# ------------------------------------------------------------ encoders

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
_EPOCH_RE = re.compile(r"-?\d+(?:\.\d{1,9})?")
_LOCAL_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")
_DECIMAL_CONTEXT = decimal.Context(prec=200)
_DATE_RANGES = {
    "Date": (dt.date(1970, 1, 1), dt.date(2149, 6, 6)),
    "Date32": (dt.date(1900, 1, 1), dt.date(2299, 12, 31)),
}


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _payload(value: pb.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind is None:
        return "no value"
    payload = getattr(value, kind)
    if isinstance(payload, str | bytes | int | float | bool):
        return f"{kind} {str(payload)[:40]!r}"
    return kind


def _mismatch(expected: str, t: ChType, value: pb.Value) -> EncodeError:
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
    raise _mismatch("an integer", t, value)


def _integer_plain(t: ChType) -> _Plain:
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


def _float_plain(t: ChType) -> _Plain:
    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "double_value":
            return _float_text(value.double_value)
        if kind in ("string_value", "decimal_value") and _FLOAT_RE.fullmatch(
            getattr(value, kind)
        ):
            return _float_text(float(getattr(value, kind)))
        if kind in ("int64_value", "uint64_value", "big_int_value"):
            return _exact_float(int(getattr(value, kind)), t)
        raise _mismatch("a number", t, value)

    return plain


def _exact_float(number: int, t: ChType) -> str:
    if abs(number) <= 2**53 or int(float(number)) == number:
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
    raise _mismatch("a decimal number", t, value)


def _decimal_plain(t: ChType) -> _Plain:
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


def _bool_plain(t: ChType) -> _Plain:
    words = {"true": "true", "false": "false", "1": "true", "0": "false"}

    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "bool_value":
            return "true" if value.bool_value else "false"
        if kind in ("int64_value", "uint64_value") and getattr(value, kind) in (0, 1):
            return "true" if getattr(value, kind) else "false"
        if kind == "string_value" and value.string_value in words:
            return words[value.string_value]
        raise _mismatch("a boolean", t, value)

    return plain


def _string_plain(t: ChType) -> _Plain:
    def plain(value: pb.Value) -> str:
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            text = value.string_value
        elif kind == "bytes_value":
            text = value.bytes_value.decode("utf-8", "surrogateescape")
        else:
            raise _mismatch("a string", t, value)
        if t.length and len(text.encode("utf-8", "surrogateescape")) > t.length:
            raise EncodeError(f"longer than {t.length} bytes for {t.text}")
        return text

    return plain


def _text_of(value: pb.Value, kinds: tuple[str, ...], what: str, t: ChType) -> str:
    kind = value.WhichOneof("kind")
    if kind not in kinds:
        raise _mismatch(what, t, value)
    text: str = getattr(value, kind)
    return text


def _date_plain(t: ChType) -> _Plain:
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

    text = _text_of(value, ("string_value",), "a date", t)
    if not _DATE_RE.fullmatch(text):
        raise _mismatch("a date", t, value)
    return dt.date.fromisoformat(text)


def _uuid_plain(t: ChType) -> _Plain:
    def plain(value: pb.Value) -> str:
        text = _text_of(value, ("uuid_value", "string_value"), "a UUID", t)
        try:
            return str(uuid.UUID(text))
        except ValueError as error:
            raise EncodeError(f"not a UUID for {t.text}: {text[:40]!r}") from error

    return plain


def _ip_plain(t: ChType) -> _Plain:
    def plain(value: pb.Value) -> str:
        text = _text_of(value, ("ip_value", "string_value"), "an IP address", t)
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


def _enum_plain(t: ChType) -> _Plain:
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
        raise _mismatch("one of the enum's names or values", t, value)

    return plain


def _nothing_plain(t: ChType) -> _Plain:
    def plain(value: pb.Value) -> str:
        raise _mismatch("NULL", t, value)

    return plain


def _as_nanos(value: pb.Value, t: ChType, zone: ZoneInfo) -> int:
    kind = value.WhichOneof("kind")
    if kind == "datetime_value":
        instant = value.datetime_value.instant
        return instant.seconds * _NS + instant.nanos
    if kind in ("int64_value", "uint64_value"):
        return int(getattr(value, kind)) * _NS

    text = _text_of(value, ("string_value",), "a date-time", t)
    if _EPOCH_RE.fullmatch(text):
        return _epoch_nanos(text.encode(), 9)
    if _LOCAL_RE.fullmatch(text):
        return _checked_local_nanos(text, zone, t)
    raise _mismatch("a date-time", t, value)


def _checked_local_nanos(text: str, zone: ZoneInfo, t: ChType) -> int:
    try:
        return _local_nanos(text.encode(), zone)
    except ValueError as error:
        raise EncodeError(f"not a valid date-time for {t.text}: {error}") from error


def _instant_nanos(t: ChType, zone: ZoneInfo) -> Callable[[pb.Value], int]:
    """The checked instant of a value: no precision beyond the column's."""
    unit = _POW10[9 - t.precision]
    low, high = (0, 2**32 - 1) if t.name == "DateTime" else (-(2**63), 2**63 - 1)

    def nanos(value: pb.Value) -> int:
        total = _as_nanos(value, t, zone)
        if total % unit:
            raise EncodeError(f"more sub-second precision than {t.text} keeps")
        if not low <= total // _NS <= high:
            raise EncodeError(f"instant out of range for {t.text}")
        return total

    return nanos


def _epoch_text(nanos: int, precision: int) -> str:
    units = nanos // _POW10[9 - precision]
    if precision == 0:
        return str(units)

    whole, fraction = divmod(abs(units), 10**precision)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{fraction:0{precision}d}"


def _local_text(nanos: int, zone: ZoneInfo, precision: int) -> str:
    seconds, fraction = divmod(nanos, _NS)
    local = dt.datetime.fromtimestamp(seconds, zone)
    text = f"{local:%Y-%m-%d %H:%M:%S}"
    if precision == 0:
        return text
    return f"{text}.{fraction // _POW10[9 - precision]:0{precision}d}"


@dataclass(frozen=True, slots=True)
class _Writer:
    """How one type is written: as a Values literal, and as a parameter."""

    literal: Encoder
    param: Encoder


@dataclass(frozen=True, slots=True)
class _EncodeContext:
    server_timezone: str
    unix_timestamps_input: bool


def _bare(plain: _Plain) -> _Writer:
    return _Writer(plain, plain)


def _quoted(plain: _Plain) -> _Writer:
    def literal(value: pb.Value) -> str:
        return "'" + _escape(plain(value)) + "'"

    def param(value: pb.Value) -> str:
        return _escape(plain(value))

    return _Writer(literal, param)


def _datetime_writer(t: ChType, ctx: _EncodeContext) -> _Writer:
    zone = ZoneInfo(t.timezone or ctx.server_timezone)
    nanos = _instant_nanos(t, zone)
    precision = t.precision

    def epoch(value: pb.Value) -> str:
        return _epoch_text(nanos(value), precision)

    def local(value: pb.Value) -> str:
        return "'" + _local_text(nanos(value), zone, precision) + "'"

    def param(value: pb.Value) -> str:
        total = nanos(value)
        if abs(total) >= _PARAM_EPOCH_MIN * _NS:
            return _epoch_text(total, precision)
        return _local_text(total, zone, precision)

    return _Writer(epoch if ctx.unix_timestamps_input else local, param)


_PLAIN_BUILDERS: dict[str, tuple[Callable[[ChType], _Plain], bool]] = {
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


def _nullable_writer(inner: _Writer) -> _Writer:
    def literal(value: pb.Value) -> str:
        if value.WhichOneof("kind") == "null_value":
            return "NULL"
        return inner.literal(value)

    def param(value: pb.Value) -> str:
        if value.WhichOneof("kind") == "null_value":
            return "\\N"
        return inner.param(value)

    return _Writer(literal, param)


def _list_of(value: pb.Value, kind: str, t: ChType) -> Sequence[pb.Value]:
    if value.WhichOneof("kind") != kind:
        raise _mismatch(kind.replace("_value", ""), t, value)
    values: Sequence[pb.Value] = getattr(value, kind).values
    return values


def _array_writer(t: ChType, element: Encoder) -> _Writer:
    def literal(value: pb.Value) -> str:
        return "[" + ",".join(map(element, _list_of(value, "array_value", t))) + "]"

    return _bare(literal)


def _tuple_writer(t: ChType, elements: Sequence[Encoder]) -> _Writer:
    def literal(value: pb.Value) -> str:
        values = _list_of(value, "tuple_value", t)
        if len(values) != len(elements):
            raise EncodeError(
                f"{len(values)} elements for {t.text}, expected {len(elements)}"
            )
        return "(" + ",".join(e(v) for e, v in zip(elements, values, strict=True)) + ")"

    return _bare(literal)


def _map_writer(t: ChType, key: Encoder, item: Encoder) -> _Writer:
    def literal(value: pb.Value) -> str:
        if value.WhichOneof("kind") != "map_value":
            raise _mismatch("a map", t, value)
        entries = value.map_value.entries
        return "{" + ",".join(f"{key(e.key)}:{item(e.value)}" for e in entries) + "}"

    return _bare(literal)


def _writer(t: ChType, ctx: _EncodeContext) -> _Writer:
    if t.name in _PLAIN_BUILDERS:
        build, quoted = _PLAIN_BUILDERS[t.name]
        return _quoted(build(t)) if quoted else _bare(build(t))
    if t.name in ("DateTime", "DateTime64"):
        return _datetime_writer(t, ctx)
    if t.name == "LowCardinality":
        return _writer(t.args[0], ctx)
    if t.name == "Nullable":
        return _nullable_writer(_writer(t.args[0], ctx))

    elements = [_writer(arg, ctx).literal for arg in t.args]
    if t.name == "Array":
        return _array_writer(t, elements[0])
    if t.name == "Map":
        return _map_writer(t, elements[0], elements[1])
    return _tuple_writer(t, elements)


@functools.lru_cache(maxsize=1024)
def _writer_for(
    type_name: str, server_timezone: str, unix_timestamps_input: bool
) -> _Writer:
    return _writer(
        parse_type(type_name), _EncodeContext(server_timezone, unix_timestamps_input)
    )


def encoder_for(
    type_name: str,
    *,
    unix_timestamps_input: bool = True,
    server_timezone: str = "UTC",
) -> Encoder:
    """The encoder of ``type_name`` values into ``Values``-format literals.

    With ``unix_timestamps_input`` (the default, right for 18.16 and modern
    servers) DateTime is written as epoch seconds; without it, as wall-clock
    text in the column's zone (``server_timezone`` when the type names none).
    The encoder raises :class:`EncodeError` with a short reason; the caller
    adds the row and the column. Raises :class:`RequestError` for a type the
    codec does not carry.
    """
    return _writer_for(type_name, server_timezone, unix_timestamps_input).literal


def encode_row(encoders: Sequence[Encoder], row: pb.Row) -> str:
    """One ``(a,b,c)`` tuple of a ``Values`` body.

    A bad value raises :class:`EncodeError` whose ``column`` is its index.
    """
    if len(row.values) != len(encoders):
        raise EncodeError(f"{len(row.values)} values, expected {len(encoders)}")

    texts: list[str] = []
    for index, (encode, value) in enumerate(zip(encoders, row.values, strict=True)):
        try:
            texts.append(encode(value))
        except EncodeError as error:
            raise EncodeError(error.reason, column=index) from error
    return "(" + ",".join(texts) + ")"


def param_text(type_name: str, value: pb.Value, *, server_timezone: str = "UTC") -> str:
    """``value`` as the text of a server-side query parameter of ``type_name``.

    ClickHouse reads a parameter in the type's escaped text form: strings
    raw with TSV escapes, dates and UUIDs unquoted, NULL as ``\\N``,
    composites in literal syntax. Instants near 1970 are written as
    wall-clock text in the column's zone (see the module notes).
    """
    return _writer_for(type_name, server_timezone, True).param(value)
