"""Past SIDECAR_MAX_CONCURRENT_CALLS, calls are refused at once, not queued."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from harness import make_settings, running_sidecar

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

LIMIT = 2

T = TypeVar("T")


def _task(awaitable: Awaitable[T]) -> asyncio.Future[T]:
    return asyncio.ensure_future(awaitable)


async def test_calls_past_the_limit_get_resource_exhausted_at_once(
    clickhouse_url: str,
) -> None:
    settings = make_settings(clickhouse_url, None, max_concurrent_calls=LIMIT)
    async with running_sidecar(settings) as sidecar:
        slow = pb.QueryDataRequest(sql="SELECT sleep(1) AS s")
        admitted = [_task(sidecar.stub.QueryData(slow)) for _ in range(LIMIT)]
        await asyncio.sleep(0.3)

        started = time.monotonic()
        try:
            await sidecar.stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"))
        except grpc.aio.AioRpcError as exc:
            refused = exc
        refused_after = time.monotonic() - started
        results = await asyncio.gather(*admitted)
        after = await sidecar.stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"))

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "SIDECAR_MAX_CONCURRENT_CALLS" in (refused.details() or "")
    assert refused_after < 0.5, "refused without waiting for a slot"
    assert all(len(r.rows) == 1 for r in results)
    assert after.rows[0].values[0].uint64_value == 1


async def test_streams_count_against_the_limit(clickhouse_url: str) -> None:
    settings = make_settings(clickhouse_url, None, max_concurrent_calls=1)
    async with running_sidecar(settings) as sidecar:
        request = pb.QueryDataStreamRequest(sql="SELECT sleep(1) AS s")
        stream = sidecar.stub.QueryDataStream(request)
        first = _task(anext(aiter(stream)))
        await asyncio.sleep(0.3)
        try:
            await sidecar.stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"))
        except grpc.aio.AioRpcError as exc:
            refused = exc
        await first
        stream.cancel()

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
