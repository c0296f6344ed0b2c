"""GetTableSchema: columns, defaults, comments, engine and keys as created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import fresh_table, unique

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )


async def create_schema_table(stub: AsyncStub) -> tuple[str, str]:
    return await fresh_table(
        stub,
        pb.ColumnDefinition(name="day", type="Date"),
        pb.ColumnDefinition(name="id", type="UInt64", comment="the key"),
        pb.ColumnDefinition(name="name", type="Nullable(String)"),
        pb.ColumnDefinition(
            name="score",
            type="Float64",
            default_kind=pb.DEFAULT_KIND_DEFAULT,
            default_expression="1.5",
        ),
        pb.ColumnDefinition(
            name="doubled",
            type="UInt64",
            default_kind=pb.DEFAULT_KIND_MATERIALIZED,
            default_expression="id * 2",
        ),
        engine="MergeTree",
        order_by=["id"],
        partition_by="toYYYYMM(day)",
    )


async def test_schema_lists_columns_in_order_with_types(stub: AsyncStub) -> None:
    database, table = await create_schema_table(stub)

    schema = await stub.GetTableSchema(
        pb.GetTableSchemaRequest(database=database, table=table)
    )

    assert schema.query_id
    assert (schema.database, schema.table) == (database, table)
    assert [(c.name, c.type) for c in schema.columns] == [
        ("day", "Date"),
        ("id", "UInt64"),
        ("name", "Nullable(String)"),
        ("score", "Float64"),
        ("doubled", "UInt64"),
    ]


async def test_schema_reports_defaults_and_comments(stub: AsyncStub) -> None:
    database, table = await create_schema_table(stub)

    schema = await stub.GetTableSchema(
        pb.GetTableSchemaRequest(database=database, table=table)
    )

    by_name = {c.name: c for c in schema.columns}
    assert by_name["score"].default_kind == pb.DEFAULT_KIND_DEFAULT
    assert by_name["score"].default_expression == "1.5"
    assert by_name["doubled"].default_kind == pb.DEFAULT_KIND_MATERIALIZED
    assert by_name["doubled"].default_expression.replace(" ", "") == "id*2"
    assert by_name["id"].comment == "the key"
    assert by_name["name"].default_kind == pb.DEFAULT_KIND_UNSPECIFIED


async def test_schema_reports_engine_and_keys(stub: AsyncStub) -> None:
    database, table = await create_schema_table(stub)

    schema = await stub.GetTableSchema(
        pb.GetTableSchemaRequest(database=database, table=table)
    )

    assert schema.engine == "MergeTree"
    assert schema.engine_full.startswith("MergeTree")
    assert schema.sorting_key == "id"
    assert schema.partition_key == "toYYYYMM(day)"
    by_name = {c.name: c for c in schema.columns}
    assert by_name["id"].is_in_sorting_key
    assert by_name["day"].is_in_partition_key
    assert not by_name["name"].is_in_sorting_key


async def test_schema_of_the_default_database(stub: AsyncStub) -> None:
    table = unique()
    await stub.CreateTable(
        pb.CreateTableRequest(
            table=table, columns=[pb.ColumnDefinition(name="x", type="Int8")]
        )
    )

    schema = await stub.GetTableSchema(pb.GetTableSchemaRequest(table=table))

    assert schema.database == "default"
    assert [c.name for c in schema.columns] == ["x"]
