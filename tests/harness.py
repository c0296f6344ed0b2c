"""Start the real sidecar on port 0 and talk to it over a real channel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc
from sidecar.config import Settings
from sidecar.pool import Pool
from sidecar.server import SidecarServer


@dataclass
class Running:
    """A started sidecar, a stub on a real channel, and its finished spans."""

    server: SidecarServer
    channel: grpc.aio.Channel
    stub: pb_grpc.ClickHouseSidecarAsyncStub
    exporter: InMemorySpanExporter
    engine: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    @property
    def version(self) -> tuple[int, ...]:
        return self.server.pool.info.version_tuple


def make_settings(
    clickhouse_url: str, data_dir: Path | None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {"listen": "127.0.0.1:0", "clickhouse_url": clickhouse_url}
    if data_dir is not None:
        values["data_dir"] = data_dir
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_sidecar(
    settings: Settings, pool: Pool | None = None
) -> AsyncIterator[Running]:
    """Start a sidecar for ``settings``; stop it and close the channel after.

    ``pool``, when given, is used instead of one made from the settings.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = SidecarServer(settings, tracer_provider=provider, pool=pool)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.ClickHouseSidecarStub(channel)
        yield Running(server, channel, stub, exporter, settings.engine)
    finally:
        await channel.close(None)
        await server.stop(grace=5)
        provider.shutdown()


def unique(prefix: str = "t") -> str:
    """A fresh name, so tests sharing one server never collide."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def fresh_table(
    stub: pb_grpc.ClickHouseSidecarAsyncStub,
    *columns: pb.ColumnDefinition,
    **fields: Any,
) -> tuple[str, str]:
    """A new table in a new database; ``fields`` go into CreateTableRequest."""
    database, table = unique("db"), unique()
    await stub.CreateDatabase(pb.CreateDatabaseRequest(database=database))
    request = pb.CreateTableRequest(
        database=database, table=table, columns=columns, **fields
    )
    await stub.CreateTable(request)
    return database, table
