"""The pooled client context: entered, never awaited; never closes the engine."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
from harness import Running

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.engine import Query
from sidecar.pool import HttpPool

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

# tests/clickhouse_server.py sets keep_alive_timeout to 3 s.
SERVER_KEEPALIVE_SECONDS = 3


def select_one() -> Query:
    return Query("SELECT 1", query_id=str(uuid.uuid4()), database="default")


async def test_awaiting_pool_client_says_to_use_async_with(sidecar: Running) -> None:
    pool = sidecar.server.pool

    with pytest.raises(TypeError, match="async with"):
        await pool.client()  # type: ignore[misc]


async def test_leaving_the_context_keeps_the_shared_engine_open(
    sidecar: Running,
) -> None:
    pool = sidecar.server.pool

    async with pool.client() as client:
        assert await client.execute(select_one()) == b"1\n"

    async with pool.client() as client:
        assert await client.execute(select_one()) == b"1\n"
    if isinstance(pool, HttpPool):
        assert not pool.session.closed


async def test_leaving_by_exception_releases_the_slot(sidecar: Running) -> None:
    pool = sidecar.server.pool
    size = sidecar.server.settings.pool_size

    for _ in range(size + 5):
        with pytest.raises(LookupError):
            async with pool.client():
                raise LookupError

    async with asyncio.timeout(5), pool.client() as client:
        assert await client.execute(select_one()) == b"1\n"


async def test_leaving_by_cancellation_releases_the_slot(sidecar: Running) -> None:
    pool = sidecar.server.pool
    size = sidecar.server.settings.pool_size

    async def hold() -> None:
        async with pool.client():
            await asyncio.sleep(60)

    holders = [asyncio.create_task(hold()) for _ in range(size)]
    await asyncio.sleep(0.1)
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)

    async with asyncio.timeout(5), pool.client() as client:
        assert await client.execute(select_one()) == b"1\n"


async def test_calls_after_the_server_closed_idle_connections_succeed(
    stub: AsyncStub,
) -> None:
    request = pb.QueryDataRequest(sql="SELECT 1 AS one")

    first = await stub.QueryData(request)
    await asyncio.sleep(SERVER_KEEPALIVE_SECONDS + 1)
    second = await stub.QueryData(request)

    assert first.rows == second.rows
