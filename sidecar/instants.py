"""Instants as ClickHouse prints and reads them, in integer nanoseconds.

Epoch text (``date_time_output_format='unix_timestamp'``) and local
wall-clock text in a column's zone, both ways. See :mod:`sidecar.codec`
for what each server prints.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sidecar.tsv import DecodeError

__all__ = [
    "NS",
    "POW10",
    "epoch_nanos",
    "epoch_text",
    "local_nanos",
    "local_text",
]

NS = 1_000_000_000
POW10: tuple[int, ...] = tuple(10**k for k in range(10))
_EPOCH = dt.datetime(1970, 1, 1)


def epoch_nanos(raw: bytes, precision: int) -> int:
    """``seconds[.fraction]`` as printed with unix_timestamp output."""
    whole, _, fraction = raw.partition(b".")
    if fraction and not fraction.isdigit():
        return _broken_fraction(fraction) * POW10[9 - precision]

    nanos = int(whole) * NS
    sub = int(fraction or b"0") * POW10[9 - len(fraction)]
    return nanos - sub if whole.startswith(b"-") else nanos + sub


def _broken_fraction(fraction: bytes) -> int:
    """Undo 26.9's digits of a negative fraction, each printed as ``'0' + d``."""
    if not all(ord("0") - 9 <= char <= ord("0") for char in fraction):
        raise DecodeError(f"not a unix timestamp fraction: {fraction!r}")

    units = 0
    for char in fraction:
        units = units * 10 + char - ord("0")
    return units


UTC_KEYS = frozenset(
    {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Universal", "Etc/Universal", "Zulu",
     "Etc/Zulu", "UCT", "Etc/UCT", "Greenwich", "Etc/Greenwich"}
)  # fmt: skip


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no tz, no objects)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def local_nanos(raw: bytes, zone: ZoneInfo) -> int:
    """``YYYY-MM-DD hh:mm:ss[.f]`` in ``zone``; an ambiguous hour is the first."""
    if raw.startswith(b"0000-00-00"):  # 18.16 prints instant 0 this way
        return 0
    if zone.key in UTC_KEYS and len(raw) >= 19:
        return _utc_nanos(raw)

    day = dt.date(int(raw[0:4]), int(raw[5:7]), int(raw[8:10]))
    clock = dt.time(int(raw[11:13]), int(raw[14:16]), int(raw[17:19]))
    local = dt.datetime.combine(day, clock, zone)  # fold=0: the first one
    offset = local.utcoffset() or dt.timedelta()
    since = local.replace(tzinfo=None) - _EPOCH
    seconds = since.days * 86400 + since.seconds

    fraction = raw[20:]
    sub = int(fraction.ljust(9, b"0")) if fraction else 0
    return (seconds - int(offset.total_seconds())) * NS + sub


def _utc_nanos(raw: bytes) -> int:
    """:func:`local_nanos` for UTC, by arithmetic: no offsets to look up."""
    month, day = int(raw[5:7]), int(raw[8:10])
    hour, minute, second = int(raw[11:13]), int(raw[14:16]), int(raw[17:19])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
        raise ValueError(f"not a date-time: {raw!r}")
    if second > 59 or day > _month_days(int(raw[0:4]), month):
        raise ValueError(f"not a date-time: {raw!r}")
    days = _days_from_civil(int(raw[0:4]), month, day)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    fraction = raw[20:]
    sub = int(fraction.ljust(9, b"0")) if fraction else 0
    return seconds * NS + sub


def _month_days(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def epoch_text(nanos: int, precision: int) -> str:
    """``seconds[.fraction]`` with exactly ``precision`` fraction digits."""
    units = nanos // POW10[9 - precision]
    if precision == 0:
        return str(units)

    whole, fraction = divmod(abs(units), 10**precision)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{fraction:0{precision}d}"


def local_text(nanos: int, zone: ZoneInfo, precision: int) -> str:
    """Wall-clock text in ``zone`` with ``precision`` fraction digits."""
    seconds, fraction = divmod(nanos, NS)
    local = dt.datetime.fromtimestamp(seconds, zone)
    text = f"{local:%Y-%m-%d %H:%M:%S}"
    if precision == 0:
        return text
    return f"{text}.{fraction // POW10[9 - precision]:0{precision}d}"
