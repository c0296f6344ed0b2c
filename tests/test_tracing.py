"""Spans: one SERVER span per RPC, one CLIENT span per ClickHouse request.

The session sidecar's exporter collects every finished span; each test sends
its own W3C ``traceparent`` and looks only at spans of that trace.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
import pytest
from harness import Running
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

SERVICE = "clickhouse.sidecar.v1.ClickHouseSidecar"


class Trace:
    """A caller's trace context: the ids sent in ``traceparent``."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.parent_id = secrets.token_hex(8)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("traceparent", f"00-{self.trace_id}-{self.parent_id}-01"),)

    async def spans(
        self, running: Running, rpc: str, clients: int = 1
    ) -> tuple[ReadableSpan, list[ReadableSpan]]:
        """The RPC's SERVER span and at least ``clients`` CLIENT spans."""
        for _ in range(50):
            mine = [
                s
                for s in running.spans()
                if s.context is not None
                and s.context.trace_id == int(self.trace_id, 16)
            ]
            servers = [s for s in mine if s.kind == SpanKind.SERVER]
            found = [s for s in mine if s.kind == SpanKind.CLIENT]
            if servers and len(found) >= clients:
                assert len(servers) == 1, servers
                assert servers[0].name.endswith(f"/{rpc}")
                return servers[0], found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no SERVER span with {clients} CLIENT spans for {rpc}")


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def parent_id(span: ReadableSpan) -> int | None:
    return int(span.parent.span_id) if span.parent is not None else None


def by_operation(spans: Sequence[ReadableSpan], operation: str) -> ReadableSpan:
    found = [
        s for s in spans if (s.attributes or {}).get("db.operation.name") == operation
    ]
    assert len(found) == 1, [s.attributes for s in spans]
    return found[0]


async def test_server_span_continues_the_callers_traceparent(
    sidecar: Running, stub: AsyncStub
) -> None:
    trace = Trace()

    await stub.CheckTableExists(
        pb.CheckTableExistsRequest(table="whatever"), metadata=trace.metadata
    )

    server, _ = await trace.spans(sidecar, "CheckTableExists")
    assert server.context is not None
    assert server.context.trace_id == int(trace.trace_id, 16)
    assert parent_id(server) == int(trace.parent_id, 16)
    assert server.parent is not None
    assert server.parent.is_remote


async def test_server_span_names_the_rpc_and_its_status(
    sidecar: Running, stub: AsyncStub
) -> None:
    trace = Trace()

    await stub.CheckTableExists(
        pb.CheckTableExistsRequest(table="whatever"), metadata=trace.metadata
    )

    server, _ = await trace.spans(sidecar, "CheckTableExists")
    attributes = server.attributes or {}
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == SERVICE
    assert attributes["rpc.method"] == "CheckTableExists"
    assert attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]


async def test_failed_rpc_records_its_status_code(
    sidecar: Running, stub: AsyncStub
) -> None:
    trace = Trace()

    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetTableRowCount(
            pb.GetTableRowCountRequest(table=f"missing_{uuid.uuid4().hex}"),
            metadata=trace.metadata,
        )

    server, clients = await trace.spans(sidecar, "GetTableRowCount")
    attributes = server.attributes or {}
    assert attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    client = clients[0].attributes or {}
    assert client["db.response.status_code"] == "60"


async def test_client_span_per_statement_is_a_child_of_the_server_span(
    sidecar: Running, stub: AsyncStub
) -> None:
    trace = Trace()

    response = await stub.QueryData(
        pb.QueryDataRequest(sql="SELECT 1 AS one"), metadata=trace.metadata
    )

    server, clients = await trace.spans(sidecar, "QueryData")
    assert len(clients) == 1
    client = clients[0]
    assert parent_id(client) == span_id(server)
    attributes = client.attributes or {}
    assert attributes["db.system"] == "clickhouse"
    assert attributes["db.clickhouse.query_id"] == response.query_id
    assert attributes["db.clickhouse.engine"] == sidecar.engine


async def test_client_span_statement_carries_no_values(
    sidecar: Running, stub: AsyncStub
) -> None:
    trace = Trace()

    await stub.QueryData(
        pb.QueryDataRequest(sql="SELECT 'secret-token' AS s, 987654321 AS n"),
        metadata=trace.metadata,
    )

    _, clients = await trace.spans(sidecar, "QueryData")
    text = str((clients[0].attributes or {})["db.query.text"])
    assert "secret-token" not in text
    assert "987654321" not in text
    assert text.startswith("SELECT")


async def test_insert_response_query_id_is_the_insert_statement(
    sidecar: Running, stub: AsyncStub
) -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    await stub.CreateTable(
        pb.CreateTableRequest(
            table=table, columns=[pb.ColumnDefinition(name="x", type="String")]
        )
    )
    trace = Trace()

    response = await stub.InsertData(
        pb.InsertDataRequest(
            table=table,
            rows=[pb.Row(values=[pb.Value(string_value="private-value")])],
        ),
        metadata=trace.metadata,
    )

    server, clients = await trace.spans(sidecar, "InsertData", clients=2)
    insert = by_operation(clients, "INSERT")
    attributes = insert.attributes or {}
    assert parent_id(insert) == span_id(server)
    assert "private-value" not in str(attributes["db.query.text"])
    # The contract: the query id of the last statement of the call.
    assert attributes["db.clickhouse.query_id"] == response.query_id


async def test_every_client_span_has_a_distinct_query_id(
    sidecar: Running, stub: AsyncStub
) -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    await stub.CreateTable(
        pb.CreateTableRequest(
            table=table, columns=[pb.ColumnDefinition(name="x", type="UInt8")]
        )
    )
    trace = Trace()

    await stub.GetTableSchema(
        pb.GetTableSchemaRequest(table=table), metadata=trace.metadata
    )

    server, clients = await trace.spans(sidecar, "GetTableSchema", clients=2)
    ids = [(c.attributes or {})["db.clickhouse.query_id"] for c in clients]
    assert len(set(ids)) == len(ids)
    assert all(parent_id(c) == span_id(server) for c in clients)
