"""Graceful shutdown: in-flight calls finish, new ones are refused.

Each test stops a server of its own: on the HTTP engine one with its own
pool (so closing the aiohttp session is part of the test), on the embedded
engine one that borrows the session's engine (one engine per process).
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from harness import Running, make_settings, running_sidecar

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import ClickHouseSidecarStub

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

SidecarFactory = Callable[..., AbstractAsyncContextManager[Running]]
SLOW = pb.QueryDataRequest(sql="SELECT sleep(1.5) AS slept")


@pytest.fixture
def own_sidecar(
    sidecar: Running, make_sidecar: SidecarFactory
) -> Callable[[], AbstractAsyncContextManager[Running]]:
    @asynccontextmanager
    async def start() -> AsyncIterator[Running]:
        if sidecar.engine == "http":
            settings = make_settings(sidecar.server.settings.clickhouse_url, None)
            async with running_sidecar(settings) as running:
                yield running
        else:
            async with make_sidecar() as running:
                yield running

    return start


def aio(running: Running) -> AsyncStub:
    return ClickHouseSidecarStub(running.channel)


async def test_in_flight_call_completes_during_shutdown(
    own_sidecar: Callable[[], AbstractAsyncContextManager[Running]],
) -> None:
    async with own_sidecar() as running:
        call = aio(running).QueryData(SLOW)
        await asyncio.sleep(0.5)

        stopping = asyncio.create_task(running.server.stop(grace=10))
        response = await call
        await stopping

    assert [c.name for c in response.columns] == ["slept"]
    assert len(response.rows) == 1


async def test_new_calls_are_refused_once_shutdown_starts(
    own_sidecar: Callable[[], AbstractAsyncContextManager[Running]],
) -> None:
    async with own_sidecar() as running:
        stub = aio(running)
        in_flight = stub.QueryData(SLOW)
        await asyncio.sleep(0.5)
        stopping = asyncio.create_task(running.server.stop(grace=10))
        await asyncio.sleep(0.2)

        with pytest.raises(grpc.aio.AioRpcError) as during:
            await stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"), timeout=5)
        await in_flight
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as after:
            await stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"), timeout=5)

    assert during.value.code() == grpc.StatusCode.UNAVAILABLE
    assert after.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_stop_twice_is_harmless(
    own_sidecar: Callable[[], AbstractAsyncContextManager[Running]],
) -> None:
    async with own_sidecar() as running:
        await aio(running).QueryData(pb.QueryDataRequest(sql="SELECT 1"))

        await running.server.stop(grace=1)
        await running.server.stop(grace=1)


async def test_stop_closes_the_pool_without_unclosed_session_warnings(
    own_sidecar: Callable[[], AbstractAsyncContextManager[Running]],
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with own_sidecar() as running:
                await aio(running).QueryData(pb.QueryDataRequest(sql="SELECT 1"))
                await running.server.stop(grace=1)
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)

    messages = [str(w.message) for w in caught] + [
        str(c.get("message")) for c in reported
    ]
    assert not [m for m in messages if "Unclosed" in m], messages
