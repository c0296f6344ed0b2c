"""The contract every ClickHouse engine implements behind ``pool.client()``.

Two engines exist: ``http`` (a ClickHouse server over HTTP, through
aiochclient and one shared aiohttp session) and ``embedded`` (chdb, in
process). Everything above the pool talks to this protocol only, so the
operations, the codecs and the servicer never know which engine serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Capabilities", "Client", "Query", "ServerInfo"]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement to run.

    ``settings`` are ClickHouse settings for this statement only.
    ``params`` are server-side query parameters (``{name:Type}`` in the SQL),
    already rendered as ClickHouse text; engines without server-side
    parameters never receive them (the operations check capabilities first).
    """

    sql: str
    query_id: str
    database: str
    settings: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    # The caller reads the result whole: the engine may hold it back until
    # the statement ends, so that an error can never follow partial output.
    whole: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a ClickHouse server can do, decided once from its version."""

    query_parameters: bool
    data_skipping_indices: bool
    # Servers 19.x/20.x accept skipping indices behind an experimental flag.
    skipping_indices_flag: bool
    datetime64: bool
    map_type: bool
    # 18.x and early 19.x need allow_experimental_low_cardinality_type=1.
    low_cardinality_flag: bool
    # date_time_output_format=unix_timestamp: lossless DateTime output.
    unix_timestamp_output: bool
    insert_deduplication_token: bool
    # Old servers' calendars end with 2105: later dates read back wrong.
    short_calendar: bool

    @classmethod
    def for_version(cls, version: tuple[int, ...]) -> Capabilities:
        major_minor = version[:2]
        return cls(
            query_parameters=major_minor >= (19, 11),
            data_skipping_indices=major_minor >= (19, 6),
            skipping_indices_flag=major_minor < (20, 3),
            datetime64=major_minor >= (20, 1),
            map_type=major_minor >= (21, 1),
            low_cardinality_flag=major_minor < (19, 9),
            unix_timestamp_output=major_minor >= (21, 1),
            insert_deduplication_token=major_minor >= (22, 2),
            short_calendar=major_minor < (21, 1),
        )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts read once when an engine opens."""

    engine: str  # "http" or "embedded"
    version: str  # e.g. "18.16.1"
    version_tuple: tuple[int, ...]
    timezone: str  # server time zone, used for DateTime columns without one
    address: str  # host:port for http, the data directory for embedded
    capabilities: Capabilities


class Client(Protocol):
    """What ``async with pool.client() as client`` yields.

    Errors: every method raises :class:`sidecar.errors.ClickHouseError`
    (a server exception, with its numeric code, including one that arrives
    in the middle of a result) or :class:`sidecar.errors.UnavailableError`
    (the engine cannot be reached). Nothing else escapes.
    """

    @property
    def info(self) -> ServerInfo: ...

    def stream(
        self, query: Query, fmt: str
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Run ``query`` with output format ``fmt``; yield raw result chunks.

        The iterator pulls from ClickHouse only as fast as it is consumed.
        Leaving the context early stops reading (and the query on the server
        is cancelled by the caller through :meth:`kill`).
        """
        ...

    async def execute(
        self, query: Query, body: bytes | AsyncIterable[bytes] | None = None
    ) -> bytes:
        """Run a statement; return its whole output (empty for DDL).

        With ``body``, the bytes follow the SQL as INSERT data (the SQL ends
        with ``FORMAT <name>``).
        """
        ...

    async def kill(self, query_id: str) -> None:
        """Stop a running query by id; no error if it already finished."""
        ...
