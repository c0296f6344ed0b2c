"""Table lifecycle RPCs over a real channel, on every engine."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from harness import unique

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )


def column(name: str, type_: str) -> pb.ColumnDefinition:
    return pb.ColumnDefinition(name=name, type=type_)


async def new_database(stub: AsyncStub) -> str:
    name = unique("db")
    await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))
    return name


async def new_table(stub: AsyncStub, database: str, table: str = "") -> str:
    table = table or unique()
    await stub.CreateTable(
        pb.CreateTableRequest(
            database=database,
            table=table,
            columns=[column("id", "UInt64"), column("name", "String")],
            order_by=["id"],
        )
    )
    return table


def uint_row(number: int, name: str) -> pb.Row:
    return pb.Row(values=[pb.Value(uint64_value=number), pb.Value(string_value=name)])


async def insert(stub: AsyncStub, database: str, table: str, count: int) -> None:
    rows = [uint_row(i, f"n{i}") for i in range(count)]
    await stub.InsertData(
        pb.InsertDataRequest(database=database, table=table, rows=rows)
    )


async def row_count(stub: AsyncStub, database: str, table: str) -> int:
    response = await stub.GetTableRowCount(
        pb.GetTableRowCountRequest(database=database, table=table)
    )
    return response.row_count


async def exists(stub: AsyncStub, database: str, table: str) -> bool:
    response = await stub.CheckTableExists(
        pb.CheckTableExistsRequest(database=database, table=table)
    )
    return response.exists


async def test_create_table_then_it_exists(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = unique()
    assert not await exists(stub, database, table)

    response = await stub.CreateTable(
        pb.CreateTableRequest(
            database=database, table=table, columns=[column("id", "UInt64")]
        )
    )

    assert response.created
    assert response.query_id
    assert await exists(stub, database, table)


async def test_create_table_twice_is_idempotent(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)

    again = await stub.CreateTable(
        pb.CreateTableRequest(
            database=database, table=table, columns=[column("id", "UInt64")]
        )
    )

    assert not again.created


async def test_create_table_strict_answers_already_exists(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(
            pb.CreateTableRequest(
                database=database,
                table=table,
                columns=[column("id", "UInt64")],
                strict=True,
            )
        )

    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_create_table_in_the_default_database(stub: AsyncStub) -> None:
    table = unique()

    await stub.CreateTable(
        pb.CreateTableRequest(table=table, columns=[column("id", "UInt64")])
    )

    assert await exists(stub, "default", table)
    assert await exists(stub, "", table)


async def test_drop_table_removes_it(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)

    response = await stub.DropTable(pb.DropTableRequest(database=database, table=table))

    assert response.dropped
    assert response.query_id
    assert not await exists(stub, database, table)


async def test_drop_missing_table_is_idempotent(stub: AsyncStub) -> None:
    database = await new_database(stub)

    response = await stub.DropTable(
        pb.DropTableRequest(database=database, table=unique())
    )

    assert not response.dropped


async def test_drop_missing_table_strict_answers_not_found(stub: AsyncStub) -> None:
    database = await new_database(stub)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DropTable(
            pb.DropTableRequest(database=database, table=unique(), strict=True)
        )

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_truncate_table_removes_all_rows(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)
    await insert(stub, database, table, 5)
    assert await row_count(stub, database, table) == 5

    response = await stub.TruncateTable(
        pb.TruncateTableRequest(database=database, table=table)
    )

    assert response.query_id
    assert await row_count(stub, database, table) == 0
    assert await exists(stub, database, table)


async def test_get_table_row_count_is_exact(stub: AsyncStub) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)
    await insert(stub, database, table, 3)
    await insert(stub, database, table, 4)

    response = await stub.GetTableRowCount(
        pb.GetTableRowCountRequest(database=database, table=table)
    )

    assert response.row_count == 7
    assert response.query_id


async def test_optimize_table_final_deduplicates_replacing_merge_tree(
    stub: AsyncStub,
) -> None:
    database = await new_database(stub)
    table = unique()
    await stub.CreateTable(
        pb.CreateTableRequest(
            database=database,
            table=table,
            columns=[column("id", "UInt64"), column("name", "String")],
            engine="ReplacingMergeTree",
            order_by=["id"],
        )
    )
    await insert(stub, database, table, 3)
    await insert(stub, database, table, 3)
    assert await row_count(stub, database, table) == 6

    response = await stub.OptimizeTable(
        pb.OptimizeTableRequest(database=database, table=table, final=True)
    )

    assert response.query_id
    assert await row_count(stub, database, table) == 3


async def test_optimize_table_with_nothing_to_merge_succeeds(
    stub: AsyncStub,
) -> None:
    database = await new_database(stub)
    table = await new_table(stub, database)

    response = await stub.OptimizeTable(
        pb.OptimizeTableRequest(database=database, table=table)
    )

    assert response.query_id


@pytest.mark.parametrize(
    "name",
    [
        "with-dash",
        "with.dot",
        "1leading",
        "select",
        "from",
        "back`tick",
        "quote'd",
        "back\\slash",
        "Straße_日本",
    ],
)
async def test_table_and_column_names_that_need_quoting_round_trip(
    stub: AsyncStub, name: str
) -> None:
    database = await new_database(stub)
    table = f"{name}_{uuid.uuid4().hex[:6]}"
    await stub.CreateTable(
        pb.CreateTableRequest(
            database=database,
            table=table,
            columns=[column(name, "UInt64"), column(f"{name}2", "String")],
            order_by=[],
        )
    )

    await stub.InsertData(
        pb.InsertDataRequest(
            database=database,
            table=table,
            columns=[name, f"{name}2"],
            rows=[uint_row(7, "seven")],
        )
    )
    schema = await stub.GetTableSchema(
        pb.GetTableSchemaRequest(database=database, table=table)
    )

    assert await exists(stub, database, table)
    assert await row_count(stub, database, table) == 1
    assert [c.name for c in schema.columns] == [name, f"{name}2"]
    dropped = await stub.DropTable(pb.DropTableRequest(database=database, table=table))
    assert dropped.dropped


@pytest.mark.parametrize("name", ["", "tab\there", "cr\r", "del\x7f"])
async def test_bad_table_names_are_invalid_argument(stub: AsyncStub, name: str) -> None:
    database = await new_database(stub)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(
            pb.CreateTableRequest(
                database=database, table=name, columns=[column("id", "UInt64")]
            )
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "table" in (caught.value.details() or "")


@pytest.mark.parametrize("name", ["", "new\nline"])
async def test_bad_column_names_are_invalid_argument(
    stub: AsyncStub, name: str
) -> None:
    database = await new_database(stub)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(
            pb.CreateTableRequest(
                database=database, table=unique(), columns=[column(name, "UInt64")]
            )
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "columns[0].name" in (caught.value.details() or "")


async def test_create_table_without_columns_is_invalid_argument(
    stub: AsyncStub,
) -> None:
    database = await new_database(stub)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(pb.CreateTableRequest(database=database, table=unique()))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_table_rpcs_on_a_missing_table_answer_not_found(
    stub: AsyncStub,
) -> None:
    database = await new_database(stub)
    table = unique()

    for call in (
        stub.TruncateTable(pb.TruncateTableRequest(database=database, table=table)),
        stub.GetTableRowCount(
            pb.GetTableRowCountRequest(database=database, table=table)
        ),
        stub.GetTableSchema(pb.GetTableSchemaRequest(database=database, table=table)),
        stub.OptimizeTable(pb.OptimizeTableRequest(database=database, table=table)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, caught.value
