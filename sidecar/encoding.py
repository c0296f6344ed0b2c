"""Encoders of proto ``Value``\\s into ClickHouse text.

:func:`encoder_for` writes ``Values``-format literals for
``INSERT ... FORMAT Values``; :func:`param_text` writes the text of a
server-side query parameter. Scalars go through the checked converters of
:mod:`sidecar.plain_text`; this module adds quoting, NULL, instants and
the composite syntax. See :mod:`sidecar.codec` for what each server reads.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.chtypes import ChType, parse_type
from sidecar.instants import (
    NS,
    POW10,
    epoch_nanos,
    epoch_text,
    local_nanos,
    local_text,
)
from sidecar.plain_text import (
    PLAIN_TEXTS,
    EncodeError,
    Plain,
    escape,
    mismatch,
    text_of,
)

__all__ = ["Encoder", "encode_row", "encoder_for", "param_text"]

Encoder = Callable[[pb.Value], str]

_PARAM_EPOCH_MIN = 100_000
_EPOCH_RE = re.compile(r"-?\d+(?:\.\d{1,9})?")
_LOCAL_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")


def _as_nanos(value: pb.Value, t: ChType, zone: ZoneInfo) -> int:
    kind = value.WhichOneof("kind")
    if kind == "datetime_value":
        instant = value.datetime_value.instant
        return instant.seconds * NS + instant.nanos
    if kind in ("int64_value", "uint64_value"):
        return int(getattr(value, kind)) * NS

    text = text_of(value, ("string_value",), "a date-time", t)
    if _EPOCH_RE.fullmatch(text):
        return epoch_nanos(text.encode(), 9)
    if _LOCAL_RE.fullmatch(text):
        return _checked_local_nanos(text, zone, t)
    raise mismatch("a date-time", t, value)


def _checked_local_nanos(text: str, zone: ZoneInfo, t: ChType) -> int:
    try:
        return local_nanos(text.encode(), zone)
    except ValueError as error:
        raise EncodeError(f"not a valid date-time for {t.text}: {error}") from error


def _instant_nanos(t: ChType, zone: ZoneInfo) -> Callable[[pb.Value], int]:
    """The checked instant of a value: no precision beyond the column's."""
    unit = POW10[9 - t.precision]
    low, high = (0, 2**32 - 1) if t.name == "DateTime" else (-(2**63), 2**63 - 1)

    def nanos(value: pb.Value) -> int:
        total = _as_nanos(value, t, zone)
        if total % unit:
            raise EncodeError(f"more sub-second precision than {t.text} keeps")
        if not low <= total // NS <= high:
            raise EncodeError(f"instant out of range for {t.text}")
        return total

    return nanos


@dataclass(frozen=True, slots=True)
class _Writer:
    """How one type is written: as a Values literal, and as a parameter."""

    literal: Encoder
    param: Encoder


# The last day and second servers with a short calendar read back right.
SHORT_CALENDAR_LAST_DAY = "2105-12-31"
SHORT_CALENDAR_LAST_SECOND = 4_291_747_199  # 2105-12-31 23:59:59 UTC


@dataclass(frozen=True, slots=True)
class _EncodeContext:
    server_timezone: str
    unix_timestamps_input: bool
    short_calendar: bool = False


def _bare(plain: Plain) -> _Writer:
    return _Writer(plain, plain)


def _quoted(plain: Plain) -> _Writer:
    def literal(value: pb.Value) -> str:
        return "'" + escape(plain(value)) + "'"

    def param(value: pb.Value) -> str:
        return escape(plain(value))

    return _Writer(literal, param)


def _datetime_writer(t: ChType, ctx: _EncodeContext) -> _Writer:
    zone = ZoneInfo(t.timezone or ctx.server_timezone)
    checked = _instant_nanos(t, zone)
    precision = t.precision

    def nanos(value: pb.Value) -> int:
        total = checked(value)
        if ctx.short_calendar and total // NS > SHORT_CALENDAR_LAST_SECOND:
            raise EncodeError(f"instant after 2105 is out of range for {t.text} here")
        return total

    def epoch(value: pb.Value) -> str:
        return epoch_text(nanos(value), precision)

    def local(value: pb.Value) -> str:
        return "'" + local_text(nanos(value), zone, precision) + "'"

    def param(value: pb.Value) -> str:
        total = nanos(value)
        if abs(total) >= _PARAM_EPOCH_MIN * NS:
            return epoch_text(total, precision)
        return local_text(total, zone, precision)

    return _Writer(epoch if ctx.unix_timestamps_input else local, param)


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
        raise mismatch(kind.replace("_value", ""), t, value)
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
            raise mismatch("a map", t, value)
        entries = value.map_value.entries
        return "{" + ",".join(f"{key(e.key)}:{item(e.value)}" for e in entries) + "}"

    return _bare(literal)


def _until_2105(plain: Plain, t: ChType) -> Plain:
    def capped(value: pb.Value) -> str:
        text = plain(value)
        if text > SHORT_CALENDAR_LAST_DAY:
            raise EncodeError(f"{text} is after 2105, out of range for {t.text} here")
        return text

    return capped


def _writer(t: ChType, ctx: _EncodeContext) -> _Writer:
    if t.name in PLAIN_TEXTS:
        build, quoted = PLAIN_TEXTS[t.name]
        plain = build(t)
        if t.name == "Date" and ctx.short_calendar:
            plain = _until_2105(plain, t)
        return _quoted(plain) if quoted else _bare(plain)
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
    type_name: str,
    server_timezone: str,
    unix_timestamps_input: bool,
    short_calendar: bool = False,
) -> _Writer:
    context = _EncodeContext(server_timezone, unix_timestamps_input, short_calendar)
    return _writer(parse_type(type_name), context)


def encoder_for(
    type_name: str,
    *,
    unix_timestamps_input: bool = True,
    server_timezone: str = "UTC",
    short_calendar: bool = False,
) -> Encoder:
    """The encoder of ``type_name`` values into ``Values``-format literals.

    With ``unix_timestamps_input`` (the default, right for 18.16 and modern
    servers) DateTime is written as epoch seconds; without it, as wall-clock
    text in the column's zone (``server_timezone`` when the type names none).
    The encoder raises :class:`EncodeError` with a short reason; the caller
    adds the row and the column. Raises :class:`RequestError` for a type the
    codec does not carry. With ``short_calendar`` (servers before 21.1),
    dates and instants after 2105 are refused: such servers read them back
    wrong.
    """
    writer = _writer_for(
        type_name, server_timezone, unix_timestamps_input, short_calendar
    )
    return writer.literal


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
