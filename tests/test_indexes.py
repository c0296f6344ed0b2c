"""CreateIndex and DropIndex: real indexes where the server has them.

Servers without data-skipping indexes (18.16) answer FAILED_PRECONDITION
naming their version; the others create, report and drop the index, with
idempotent and strict modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from harness import Running, fresh_table, unique

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )


def has_indexes(running: Running) -> bool:
    return running.server.pool.info.capabilities.data_skipping_indices


async def table_with_rows(stub: AsyncStub) -> tuple[str, str]:
    database, table = await fresh_table(
        stub,
        pb.ColumnDefinition(name="id", type="UInt64"),
        pb.ColumnDefinition(name="message", type="String"),
        order_by=["id"],
        settings={"index_granularity": "64"},
    )
    rows = [
        pb.Row(values=[pb.Value(uint64_value=n), pb.Value(string_value=f"Message {n}")])
        for n in range(1000)
    ]
    await stub.InsertData(
        pb.InsertDataRequest(database=database, table=table, rows=rows)
    )
    return database, table


def create_request(
    database: str, table: str, name: str, *, strict: bool = False
) -> pb.CreateIndexRequest:
    return pb.CreateIndexRequest(
        database=database,
        table=table,
        name=name,
        expression="lower(message)",
        type="bloom_filter(0.01)",
        granularity=2,
        strict=strict,
        materialize=True,
    )


async def listed_indexes(stub: AsyncStub, database: str, table: str) -> list[str]:
    response = await stub.ExecuteRawQuery(
        pb.ExecuteRawQueryRequest(
            sql="SELECT name FROM system.data_skipping_indices "
            f"WHERE database = '{database}' AND table = '{table}' ORDER BY name"
        )
    )
    return [row.values[0].string_value for row in response.rows]


async def test_servers_without_indexes_name_their_version(
    sidecar: Running, stub: AsyncStub
) -> None:
    database, table = await table_with_rows(stub)
    if has_indexes(sidecar):
        created = await stub.CreateIndex(create_request(database, table, "idx"))
        assert created.created
        return

    for call in (
        stub.CreateIndex(create_request(database, table, "idx")),
        stub.DropIndex(pb.DropIndexRequest(database=database, table=table, name="idx")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "18.16" in (caught.value.details() or "")


async def test_create_index_is_listed_and_queries_stay_right(
    sidecar: Running, stub: AsyncStub
) -> None:
    database, table = await table_with_rows(stub)
    if not has_indexes(sidecar):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateIndex(create_request(database, table, "by_message"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        return

    response = await stub.CreateIndex(create_request(database, table, "by_message"))

    assert response.created
    assert response.query_id
    assert await listed_indexes(stub, database, table) == ["by_message"]
    found = await stub.QueryData(
        pb.QueryDataRequest(
            sql=f"SELECT id FROM `{database}`.`{table}` "
            "WHERE lower(message) = 'message 417' ORDER BY id"
        )
    )
    assert [row.values[0].uint64_value for row in found.rows] == [417]
    schema = await stub.GetTableSchema(
        pb.GetTableSchemaRequest(database=database, table=table)
    )
    assert [(i.name, i.expression, i.granularity) for i in schema.indexes] == [
        ("by_message", "lower(message)", 2)
    ]


async def test_create_index_twice_is_idempotent_unless_strict(
    sidecar: Running, stub: AsyncStub
) -> None:
    database, table = await table_with_rows(stub)
    if not has_indexes(sidecar):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateIndex(create_request(database, table, "idx", strict=True))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        return
    await stub.CreateIndex(create_request(database, table, "idx"))

    again = await stub.CreateIndex(create_request(database, table, "idx"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateIndex(create_request(database, table, "idx", strict=True))

    assert not again.created
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await listed_indexes(stub, database, table) == ["idx"]


async def test_drop_index_removes_it_and_is_idempotent_unless_strict(
    sidecar: Running, stub: AsyncStub
) -> None:
    database, table = await table_with_rows(stub)
    drop = pb.DropIndexRequest(database=database, table=table, name="idx")
    if not has_indexes(sidecar):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DropIndex(drop)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        return
    await stub.CreateIndex(create_request(database, table, "idx"))

    dropped = await stub.DropIndex(drop)
    again = await stub.DropIndex(drop)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DropIndex(
            pb.DropIndexRequest(database=database, table=table, name="idx", strict=True)
        )

    assert dropped.dropped
    assert not again.dropped
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await listed_indexes(stub, database, table) == []
    count = await stub.GetTableRowCount(
        pb.GetTableRowCountRequest(database=database, table=table)
    )
    assert count.row_count == 1000


@pytest.mark.parametrize("index_type", ["", "hash", "minmax; DROP TABLE x", "set(abc)"])
async def test_bad_index_types_are_invalid_argument(
    sidecar: Running, stub: AsyncStub, index_type: str
) -> None:
    database, table = await table_with_rows(stub)
    request = create_request(database, table, "idx")
    request.type = index_type

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateIndex(request)

    expected = (
        grpc.StatusCode.INVALID_ARGUMENT
        if has_indexes(sidecar)
        else grpc.StatusCode.FAILED_PRECONDITION
    )
    assert caught.value.code() == expected


async def test_index_on_missing_table_is_not_found(
    sidecar: Running, stub: AsyncStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateIndex(create_request("default", unique(), "idx"))

    expected = (
        grpc.StatusCode.NOT_FOUND
        if has_indexes(sidecar)
        else grpc.StatusCode.FAILED_PRECONDITION
    )
    assert caught.value.code() == expected
