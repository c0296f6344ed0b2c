"""The embedded engine's client: results out and insert bodies in.

Each call runs one statement (see :mod:`sidecar.embedded.statement`),
checked out of the pool and stepped through its worker threads. A result
whose format can be spliced (see :mod:`sidecar.embedded.splicing`) is
pulled block by block; any other is produced whole and yielded in slices.
An insert body arriving as a stream goes to chdb's streaming insert, or,
for ``FORMAT Values``, one INSERT per block of whole rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sidecar.engine import Query, ServerInfo
from sidecar.errors import ClickHouseError
from sidecar.sql import quote_string

from .splicing import Splicer, splicer_for
from .statement import (
    EXECUTE_FORMAT,
    TRAILING_FORMAT,
    Statement,
    is_not_streamable,
)

if TYPE_CHECKING:
    from .pool import EmbeddedPool

__all__ = ["EmbeddedClient"]

SLICE_BYTES = 1 << 20
INSERT_BLOCK_BYTES = 16 << 20


class EmbeddedClient:
    """The :class:`sidecar.engine.Client` of the embedded engine."""

    def __init__(self, pool: EmbeddedPool) -> None:
        self._pool = pool

    @property
    def info(self) -> ServerInfo:
        return self._pool.info

    @asynccontextmanager
    async def stream(
        self, query: Query, fmt: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._pool.statement(query) as statement:
            splicer = splicer_for(fmt)
            chunks = await self._start_stream(statement, fmt, splicer)
            yield chunks

    async def execute(
        self, query: Query, body: bytes | AsyncIterable[bytes] | None = None
    ) -> bytes:
        async with self._pool.statement(query) as statement:
            if body is None:
                return await self._pool.call(statement, statement.run, EXECUTE_FORMAT)
            if isinstance(body, bytes):
                return await self._pool.call(statement, statement.run_with_body, body)
            return await self._insert_chunks(statement, body)

    async def kill(self, query_id: str) -> None:
        await self._pool.kill(query_id)

    # Insert bodies -----------------------------------------------------------

    async def _insert_chunks(
        self, statement: Statement, body: AsyncIterable[bytes]
    ) -> bytes:
        call = self._pool.call
        match = TRAILING_FORMAT.match(statement.query.sql)
        if match is None:
            data = b"".join([chunk async for chunk in body])
            return await call(statement, statement.run_with_body, data)

        head, fmt = match["head"], match["fmt"]
        if fmt == "Values":
            return await self._insert_pieces(statement, head, body)
        await call(statement, statement.begin_insert, head, fmt)
        async for chunk in body:
            await call(statement, statement.append, chunk)
        return await call(statement, statement.finish_insert)

    async def _insert_pieces(
        self, statement: Statement, head: str, body: AsyncIterable[bytes]
    ) -> bytes:
        """A typed insert stream, one INSERT per block of whole rows.

        Pieces are gathered into blocks of about ``INSERT_BLOCK_BYTES``; each
        block commits on its own, as a server commits an INSERT block by
        block, and a block in progress when the stream fails is dropped. A
        deduplication token becomes one token per block, so a retried stream
        skips exactly the blocks already written.
        """
        token = statement.query.settings.get("insert_deduplication_token", "")
        pieces = aiter(body)
        block: list[bytes] = []
        size = number = 0
        # One piece ahead: a body that fails raises before its last piece
        # (a line meant to make a server reject its block) is used.
        ahead = await anext(pieces, None)
        while ahead is not None:
            piece, ahead = ahead, await anext(pieces, None)
            block.append(piece)
            size += len(piece)
            if size < INSERT_BLOCK_BYTES and ahead is not None:
                continue
            number += 1
            sql = f"{head}{_token_clause(token, number)} FORMAT Values"
            await self._pool.call(statement, statement.run_piece, sql, b"".join(block))
            block, size = [], 0
        return b""

    # Results -----------------------------------------------------------------

    async def _start_stream(
        self, statement: Statement, fmt: str, splicer: Splicer | None
    ) -> AsyncIterator[bytes]:
        call = self._pool.call
        if splicer is None:
            data = await call(statement, statement.run, fmt)
            return _slices(statement, data)

        try:
            await call(statement, statement.begin_stream, fmt)
        except ClickHouseError as exc:
            if not is_not_streamable(exc):
                raise
            data = await call(statement, statement.run, fmt)
            return _slices(statement, data)

        # Fetch the first block now: like a server, fail before any output.
        first = await call(statement, statement.fetch)
        return self._pull(statement, splicer, first)

    async def _pull(
        self,
        statement: Statement,
        splicer: Splicer,
        first: tuple[bytes, int] | None,
    ) -> AsyncIterator[bytes]:
        block = first
        while block is not None:
            if chunk := splicer.feed(*block):
                yield chunk
            block = await self._pool.call(statement, statement.fetch)
        if tail := splicer.end():
            yield tail


def _token_clause(token: str, block: int) -> str:
    if not token:
        return ""
    return f" SETTINGS insert_deduplication_token = {quote_string(f'{token}:{block}')}"


async def _slices(statement: Statement, data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), SLICE_BYTES):
        if statement.killed:
            raise ClickHouseError(394, "Query was cancelled.", "QUERY_WAS_CANCELLED")
        yield data[start : start + SLICE_BYTES]
