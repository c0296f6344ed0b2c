"""Decoders of ClickHouse ``TabSeparated`` fields into proto ``Value``\\s.

A decoder *fills* a ``Value`` that the caller has just appended to a
repeated field (``row.values.add()``), so every message is built in place:
with the upb runtime, building a standalone ``Value`` and handing it to a
container copies it. Decoders are built once per column type
(:func:`decoder_for`) and then applied per field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.chtypes import ChType, parse_type
from sidecar.instants import NS, epoch_nanos, local_nanos
from sidecar.tsv import (
    DecodeError,
    expect,
    read_bare,
    read_items,
    read_quoted,
    unescape,
)

__all__ = ["Decoder", "decoder_for"]

Decoder = Callable[[pb.Value, bytes], None]
"""Fills a fresh ``Value`` from one whole TSV field."""

_Quoted = Callable[[pb.Value, bytes, int], int]
"""Fills a fresh ``Value`` from the item at a position inside a composite;
returns the position after the item."""

_FRACTION_HEAD_RE = re.compile(rb"'(-?\d+)\.")
_BOOLS = {b"true": True, b"1": True, b"false": False, b"0": False}


# ------------------------------------------------------------- scalars


def _fill_int(value: pb.Value, raw: bytes) -> None:
    value.int64_value = int(raw)


def _fill_uint(value: pb.Value, raw: bytes) -> None:
    value.uint64_value = int(raw)


def _fill_big_int(value: pb.Value, raw: bytes) -> None:
    value.big_int_value = str(int(raw))


def _fill_float(value: pb.Value, raw: bytes) -> None:
    value.double_value = float(raw)


def _fill_bool(value: pb.Value, raw: bytes) -> None:
    flag = _BOOLS.get(raw)
    if flag is None:
        raise DecodeError(f"not a Bool: {raw!r}")
    value.bool_value = flag


def _fill_text(value: pb.Value, raw: bytes) -> None:
    try:
        value.string_value = raw.decode()
    except UnicodeDecodeError:
        value.bytes_value = raw


def _fill_escaped_text(value: pb.Value, raw: bytes) -> None:
    if b"\\" in raw:
        raw = unescape(raw)
    try:
        value.string_value = raw.decode()
    except UnicodeDecodeError:
        value.bytes_value = raw


def _fill_decimal(value: pb.Value, raw: bytes) -> None:
    value.decimal_value = raw.decode("ascii")


def _fill_uuid(value: pb.Value, raw: bytes) -> None:
    value.uuid_value = raw.decode("ascii")


def _fill_ip(value: pb.Value, raw: bytes) -> None:
    value.ip_value = raw.decode("ascii")


def _fill_date(value: pb.Value, raw: bytes) -> None:
    date = value.date_value
    if raw == b"0000-00-00":  # 18.16 prints day 0 this way
        date.year, date.month, date.day = 1970, 1, 1
        return

    date.year, date.month, date.day = int(raw[0:4]), int(raw[5:7]), int(raw[8:10])


def _fill_nothing(value: pb.Value, raw: bytes) -> None:
    raise DecodeError(f"no value fits type Nothing: {raw!r}")


def _fill_instant(value: pb.Value, nanos: int, timezone: str) -> None:
    datetime = value.datetime_value
    datetime.timezone = timezone
    instant = datetime.instant
    instant.seconds, instant.nanos = divmod(nanos, NS)


# ------------------------------------------------------------- readers


@dataclass(frozen=True, slots=True)
class _Reader:
    """How one type is read: as a whole TSV field, and inside a composite."""

    field: Decoder
    quoted: _Quoted
    bare: Decoder | None = None
    """For items printed bare inside a composite (numbers, NULL): the fill of
    one such item, so that an Array of them can be split on commas."""


@dataclass(frozen=True, slots=True)
class _Context:
    server_timezone: str
    unix_timestamps: bool


def _scalar(fill: Decoder, *, quoted: bool, field: Decoder | None = None) -> _Reader:
    read = read_quoted if quoted else read_bare

    def in_composite(value: pb.Value, buf: bytes, pos: int) -> int:
        raw, end = read(buf, pos)
        fill(value, raw)
        return end

    return _Reader(field or fill, in_composite, None if quoted else fill)


def _whole(quoted: _Quoted) -> Decoder:
    def field(value: pb.Value, raw: bytes) -> None:
        end = quoted(value, raw, 0)
        if end != len(raw):
            raise DecodeError(f"unexpected text after a value: {raw[end:][:20]!r}")

    return field


_TEXT = _scalar(_fill_text, quoted=True, field=_fill_escaped_text)
_SCALARS: dict[str, _Reader] = {
    **{f"Int{bits}": _scalar(_fill_int, quoted=False) for bits in (8, 16, 32, 64)},
    **{f"UInt{bits}": _scalar(_fill_uint, quoted=False) for bits in (8, 16, 32, 64)},
    **{
        f"{sign}Int{bits}": _scalar(_fill_big_int, quoted=False)
        for sign in ("", "U")
        for bits in (128, 256)
    },
    "Float32": _scalar(_fill_float, quoted=False),
    "Float64": _scalar(_fill_float, quoted=False),
    "Bool": _scalar(_fill_bool, quoted=False),
    "Decimal": _scalar(_fill_decimal, quoted=False),
    **dict.fromkeys(("String", "FixedString", "Enum8", "Enum16", "Enum"), _TEXT),
    "UUID": _scalar(_fill_uuid, quoted=True),
    "IPv4": _scalar(_fill_ip, quoted=True),
    "IPv6": _scalar(_fill_ip, quoted=True),
    "Date": _scalar(_fill_date, quoted=True),
    "Date32": _scalar(_fill_date, quoted=True),
    "Nothing": _scalar(_fill_nothing, quoted=False),
}


def _datetime_reader(t: ChType, ctx: _Context) -> _Reader:
    timezone = t.timezone or ctx.server_timezone
    if not ctx.unix_timestamps:
        zone = ZoneInfo(timezone)

        def local(value: pb.Value, raw: bytes) -> None:
            _fill_instant(value, local_nanos(raw, zone), timezone)

        return _scalar(local, quoted=True)

    precision = t.precision

    def epoch(value: pb.Value, raw: bytes) -> None:
        _fill_instant(value, epoch_nanos(raw, precision), timezone)

    def seconds(value: pb.Value, raw: bytes) -> None:
        datetime = value.datetime_value
        datetime.timezone = timezone
        datetime.instant.seconds = int(raw)

    if precision == 0:
        return _scalar(seconds, quoted=True)
    return _Reader(epoch, _fraction_reader(epoch, precision))


def _fraction_reader(fill: Decoder, precision: int) -> _Quoted:
    """Reads ``'seconds.fraction'`` by length: the broken fraction may hold quotes."""

    def quoted(value: pb.Value, buf: bytes, pos: int) -> int:
        match = _FRACTION_HEAD_RE.match(buf, pos)
        if match is None:
            raise DecodeError(f"expected a timestamp at {buf[pos : pos + 20]!r}")
        end = match.end() + precision
        expect(buf, end, b"'")
        fill(value, buf[pos + 1 : end])
        return end + 1

    return quoted


def _nullable(inner: _Reader) -> _Reader:
    inner_field, inner_quoted = inner.field, inner.quoted

    def field(value: pb.Value, raw: bytes) -> None:
        if raw == b"\\N":
            value.null_value = pb.NULL_VALUE
        else:
            inner_field(value, raw)

    def quoted(value: pb.Value, buf: bytes, pos: int) -> int:
        if buf.startswith(b"NULL", pos):
            value.null_value = pb.NULL_VALUE
            return pos + 4
        return inner_quoted(value, buf, pos)

    bare = inner.bare
    if bare is None:
        return _Reader(field, quoted)

    def bare_item(value: pb.Value, raw: bytes) -> None:
        if raw == b"NULL":
            value.null_value = pb.NULL_VALUE
        else:
            bare(value, raw)

    return _Reader(field, quoted, bare_item)


def _array(element: _Reader) -> _Reader:
    read_element = element.quoted

    def quoted(value: pb.Value, buf: bytes, pos: int) -> int:
        array = value.array_value
        array.SetInParent()  # an empty array is still an array
        add = array.values.add

        def read(buf: bytes, pos: int, index: int) -> int:
            return read_element(add(), buf, pos)

        return read_items(buf, expect(buf, pos, b"["), b"]", read)

    if element.bare is None:
        return _Reader(_whole(quoted), quoted)
    return _Reader(_split_array(element.bare), quoted)


def _split_array(fill: Decoder) -> Decoder:
    """An Array field of bare items: no quotes, so commas only separate."""

    def field(value: pb.Value, raw: bytes) -> None:
        if raw[:1] != b"[" or raw[-1:] != b"]":
            raise DecodeError(f"expected an array at {raw[:20]!r}")

        array = value.array_value
        array.SetInParent()  # an empty array is still an array
        if len(raw) > 2:
            add = array.values.add
            for item in raw[1:-1].split(b","):
                fill(add(), item)

    return field


def _tuple(elements: Sequence[_Reader]) -> _Reader:
    readers = [element.quoted for element in elements]

    def quoted(value: pb.Value, buf: bytes, pos: int) -> int:
        items = value.tuple_value.values
        add = items.add

        def read(buf: bytes, pos: int, index: int) -> int:
            return readers[index](add(), buf, pos)

        end = read_items(buf, expect(buf, pos, b"("), b")", read)
        if len(items) != len(readers):
            raise DecodeError(f"expected {len(readers)} tuple elements")
        return end

    return _Reader(_whole(quoted), quoted)


def _map(key: _Reader, item: _Reader) -> _Reader:
    read_key, read_item = key.quoted, item.quoted

    def quoted(value: pb.Value, buf: bytes, pos: int) -> int:
        mapping = value.map_value
        mapping.SetInParent()  # an empty map is still a map
        add = mapping.entries.add

        def read(buf: bytes, pos: int, index: int) -> int:
            entry = add()
            pos = read_key(entry.key, buf, pos)
            return read_item(entry.value, buf, expect(buf, pos, b":"))

        return read_items(buf, expect(buf, pos, b"{"), b"}", read)

    return _Reader(_whole(quoted), quoted)


def _reader(t: ChType, ctx: _Context) -> _Reader:
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
    ctx = _Context(server_timezone, unix_timestamps)
    return _reader(parse_type(type_name), ctx).field
