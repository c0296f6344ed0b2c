"""A pooled connection that ClickHouse closed while idle does not fail a call."""

from __future__ import annotations

import asyncio

from harness import make_settings, running_sidecar

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

# The throwaway server closes idle connections after 3 s (tests/clickhouse_server.py).
SERVER_KEEPALIVE_SECONDS = 3


async def test_stale_pooled_connection_is_retried_for_reads(
    clickhouse_url: str,
) -> None:
    # The pool keeps its connection well past the time the server closes it.
    settings = make_settings(clickhouse_url, None, keepalive_seconds=60, pool_size=1)
    async with running_sidecar(settings) as sidecar:
        request = pb.QueryDataRequest(sql="SELECT 1 AS one")
        first = await sidecar.stub.QueryData(request)
        await asyncio.sleep(SERVER_KEEPALIVE_SECONDS + 1.5)
        second = await sidecar.stub.QueryData(request)

    assert first.rows == second.rows
    assert second.rows[0].values[0].uint64_value == 1
