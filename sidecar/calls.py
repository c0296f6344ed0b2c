"""Running one statement on behalf of one RPC call.

Every statement the sidecar sends goes through :class:`Statements`: it gets
the call's query id, a ``max_execution_time`` from the caller's deadline, a
CLIENT span, and a KILL QUERY when the call is cancelled or its deadline
passes while the statement runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from .engine import Client, Query, ServerInfo
from .schema_cache import ColumnCache
from .telemetry import clickhouse_span

__all__ = ["Call", "Op", "Statements"]

log = logging.getLogger(__name__)

# How long a KILL QUERY sent for a cancelled call may take.
KILL_TIMEOUT_SECONDS = 5.0


@dataclass(slots=True)
class Call:
    """What one RPC call knows while it runs."""

    database: str
    deadline: float | None = None  # loop.time() at which the caller gives up
    query_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    statements: int = 0
    last_query_id: str = ""

    def next_query_id(self) -> str:
        """The call's query id for its first statement, suffixed after."""
        self.statements += 1
        suffix = f"-{self.statements}" if self.statements > 1 else ""
        self.last_query_id = f"{self.query_id}{suffix}"
        return self.last_query_id

    @property
    def reported_query_id(self) -> str:
        """What responses and errors report: the last statement's id."""
        return self.last_query_id or self.query_id

    def time_settings(self) -> dict[str, str]:
        if self.deadline is None:
            return {}
        remaining = self.deadline - asyncio.get_running_loop().time()
        return {"max_execution_time": str(max(1, math.ceil(remaining)))}


class Statements:
    """Runs statements for calls: spans, deadlines and kill-on-cancel."""

    def __init__(self, tracer: trace.Tracer | None, columns: ColumnCache) -> None:
        self._tracer = tracer
        # Table columns for inserts (see sidecar.schema_cache).
        self.columns = columns
        self._kills: set[asyncio.Task[None]] = set()

    def query(
        self,
        call: Call,
        sql: str,
        *,
        database: str | None = None,
        settings: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        whole: bool = False,
    ) -> Query:
        merged = {**(settings or {}), **call.time_settings()}
        return Query(
            sql,
            query_id=call.next_query_id(),
            database=database or call.database,
            settings=merged,
            params=params or {},
            whole=whole,
        )

    async def execute(
        self,
        client: Client,
        query: Query,
        body: bytes | AsyncIterable[bytes] | None = None,
    ) -> bytes:
        with self._span(client, query):
            try:
                return await client.execute(query, body)
            except asyncio.CancelledError:
                self._kill_soon(client, query.query_id)
                raise

    @asynccontextmanager
    async def stream(
        self, client: Client, query: Query, fmt: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a result; leaving early (or a cancel) kills the query."""
        with self._span(client, query) as span:
            counter = _Counter()
            finished = False
            try:
                async with client.stream(query, fmt) as chunks:
                    yield counter.count(chunks)
                finished = True
            finally:
                span.set_attribute("db.response.bytes", counter.total)
                # Not finished: the caller left early, failed or was
                # cancelled; ClickHouse may still be running the query.
                if not finished:
                    self._kill_soon(client, query.query_id)

    def _span(self, client: Client, query: Query) -> AbstractContextManager[trace.Span]:
        if self._tracer is None:
            return nullcontext(trace.INVALID_SPAN)
        return clickhouse_span(self._tracer, client.info, query)

    def _kill_soon(self, client: Client, query_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._kill(client, query_id))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    async def _kill(self, client: Client, query_id: str) -> None:
        try:
            async with asyncio.timeout(KILL_TIMEOUT_SECONDS):
                await client.kill(query_id)
        except TimeoutError:
            log.info("KILL QUERY for %s timed out", query_id)

    async def drain(self) -> None:
        """Wait for outstanding KILL QUERY requests (at shutdown)."""
        if self._kills:
            await asyncio.gather(*self._kills, return_exceptions=True)


class _Counter:
    """Counts the bytes that pass through a stream of chunks."""

    def __init__(self) -> None:
        self.total = 0

    async def count(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.total += len(chunk)
            yield chunk


@dataclass(frozen=True, slots=True)
class Op:
    """One operation's view of its call: a pooled client and the statements."""

    statements: Statements
    client: Client
    call: Call

    @property
    def info(self) -> ServerInfo:
        return self.client.info

    def query(self, sql: str, **kwargs: Any) -> Query:
        return self.statements.query(self.call, sql, **kwargs)

    async def run(
        self,
        sql: str,
        *,
        settings: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
    ) -> bytes:
        query = self.query(sql, settings=settings, params=params, whole=True)
        return await self.statements.execute(self.client, query, body)

    async def records(self, sql: str) -> list[dict[str, Any]]:
        """Rows of an internal metadata query, as JSON objects."""
        output = await self.run(f"{sql} FORMAT JSON")
        data: list[dict[str, Any]] = json.loads(output)["data"]
        return data
