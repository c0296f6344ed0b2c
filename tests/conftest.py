"""Session fixtures shared by the whole test suite.

Each server the tests need gets its own section below. A fixture that starts
something also stops it, so nothing outlives the session.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from clickhouse_server import running_clickhouse
from harness import Running, make_settings, running_sidecar

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc
from sidecar.engine import Client, ServerInfo
from sidecar.pool import ClientContext, Pool

# --- ClickHouse --------------------------------------------------------------


@pytest.fixture(scope="session")
def clickhouse_url() -> Iterator[str]:
    """Base URL of a ClickHouse HTTP endpoint, e.g. ``http://127.0.0.1:8123/``.

    CLICKHOUSE_URL selects an external server. Without it, a throwaway 18.16
    server (see tests/clickhouse_server.py) runs for the session.
    """
    external = os.environ.get("CLICKHOUSE_URL")
    if external:
        yield external
        return

    with running_clickhouse() as server:
        yield server.url


# --- gRPC server -------------------------------------------------------------

ENGINES = ["http", "embedded"]

# A factory: ``async with make_sidecar(allow_raw_writes=True) as other:``.
SidecarFactory = Callable[..., AbstractAsyncContextManager[Running]]


# Module scope: chdb hosts one data directory per process, so the embedded
# sidecar must be gone before a module that opens engines of its own runs.
@pytest.fixture(scope="module", params=ENGINES)
async def sidecar(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """The sidecar with default settings, once per engine for the session.

    ``http`` serves from ``clickhouse_url``; ``embedded`` from chdb in a
    temporary data directory.
    """
    if request.param == "http":
        url: str = request.getfixturevalue("clickhouse_url")
        settings = make_settings(url, None)
    else:
        settings = make_settings("", data_dir=tmp_path_factory.mktemp("embedded"))
    async with running_sidecar(settings) as running:
        yield running


@pytest.fixture
def stub(sidecar: Running) -> pb_grpc.ClickHouseSidecarAsyncStub:
    """The session sidecar's stub, typed for the aio channel it runs on."""
    return pb_grpc.ClickHouseSidecarStub(sidecar.channel)


class SharedPool:
    """Another server's pool, lent: opening and closing it does nothing.

    One data directory hosts one embedded engine, so a second sidecar with
    other settings borrows the session sidecar's pool instead of its own.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def info(self) -> ServerInfo:
        return self._pool.info

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def client(self) -> ClientContext[Client]:
        return self._pool.client()

    async def ping(self) -> bool:
        return await self._pool.ping()


@pytest.fixture
def make_sidecar(sidecar: Running) -> SidecarFactory:
    """Start another sidecar on the same engine with settings overridden."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        base = sidecar.server.settings
        values: dict[str, Any] = {"data_dir": base.data_dir, **overrides}
        settings = make_settings(base.clickhouse_url, **values)
        async with running_sidecar(settings, SharedPool(sidecar.server.pool)) as other:
            yield other

    return start


# --- Embedded engine ---------------------------------------------------------
