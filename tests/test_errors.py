"""Error mapping: ClickHouse codes and sidecar checks to gRPC statuses.

Every error carries a ``google.rpc.ErrorInfo`` detail; ClickHouse errors
say ``CLICKHOUSE_ERROR`` with the numeric code, the name and the query id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import Running, unique

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import ClickHouseSidecarStub

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

SidecarFactory = Callable[..., AbstractAsyncContextManager[Running]]


def aio(running: Running) -> AsyncStub:
    return ClickHouseSidecarStub(running.channel)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The one ErrorInfo detail of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    assert status.code == error.code().value[0]
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    return infos[0]


async def fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cast("asyncio.Future[object]", call)
    return caught.value


async def query_fails(stub: AsyncStub, sql: str) -> grpc.aio.AioRpcError:
    return await fails(stub.QueryData(pb.QueryDataRequest(sql=sql)))


async def test_unknown_table_is_not_found_with_clickhouse_code(
    stub: AsyncStub,
) -> None:
    error = await query_fails(stub, f"SELECT * FROM default.{unique()}")

    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(error)
    assert info.reason == "CLICKHOUSE_ERROR"
    assert info.metadata["code"] == "60"
    assert info.metadata["name"] == "UNKNOWN_TABLE"
    uuid.UUID(info.metadata["query_id"])


async def test_unknown_database_is_not_found(stub: AsyncStub) -> None:
    error = await query_fails(stub, f"SELECT * FROM {unique('db')}.t")

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).metadata["code"] == "81"


async def test_strict_create_of_existing_database_is_already_exists(
    stub: AsyncStub,
) -> None:
    name = unique("db")
    await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    error = await fails(
        stub.CreateDatabase(pb.CreateDatabaseRequest(database=name, strict=True))
    )

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(error)
    assert info.metadata["code"] == "82"
    assert info.metadata["name"] == "DATABASE_ALREADY_EXISTS"


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELEC 1", "62"),
        ("SELECT 1 + 'a'", "43"),
        ("SELECT no_such_column", "47"),
        ("SELECT no_such_function(1)", "46"),
    ],
    ids=["syntax", "type", "identifier", "function"],
)
async def test_query_mistakes_are_invalid_argument(
    stub: AsyncStub, sql: str, code: str
) -> None:
    error = await query_fails(stub, sql)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["code"] == code


async def test_sidecar_validation_errors_carry_error_info(stub: AsyncStub) -> None:
    error = await fails(stub.CreateTable(pb.CreateTableRequest(table="", columns=[])))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.reason == "INVALID_REQUEST"
    assert "code" not in info.metadata
    assert "table" in (error.details() or "")


async def test_bad_insert_value_names_row_and_column(stub: AsyncStub) -> None:
    database, table = "default", unique()
    await stub.CreateTable(
        pb.CreateTableRequest(
            database=database,
            table=table,
            columns=[
                pb.ColumnDefinition(name="a", type="String"),
                pb.ColumnDefinition(name="small", type="UInt8"),
            ],
        )
    )
    rows = [
        pb.Row(values=[pb.Value(string_value="x"), pb.Value(uint64_value=n)])
        for n in (1, 300)
    ]

    error = await fails(
        stub.InsertData(pb.InsertDataRequest(database=database, table=table, rows=rows))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows[1]" in (error.details() or "")
    assert "'small'" in (error.details() or "")


async def test_raw_writes_are_permission_denied_by_default(stub: AsyncStub) -> None:
    table = unique()

    error = await fails(
        stub.ExecuteRawQuery(
            pb.ExecuteRawQueryRequest(
                sql=f"CREATE TABLE default.{table} (x UInt8) ENGINE = Memory"
            )
        )
    )

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error).reason == "PERMISSION_DENIED"
    assert "SIDECAR_ALLOW_RAW_WRITES" in (error.details() or "")
    exists = await stub.CheckTableExists(
        pb.CheckTableExistsRequest(database="default", table=table)
    )
    assert not exists.exists


async def test_raw_writes_are_allowed_when_enabled(
    stub: AsyncStub, make_sidecar: SidecarFactory
) -> None:
    table = unique()

    async with make_sidecar(allow_raw_writes=True) as writer:
        await aio(writer).ExecuteRawQuery(
            pb.ExecuteRawQueryRequest(
                sql=f"CREATE TABLE default.{table} (x UInt8) ENGINE = Memory"
            )
        )
        await aio(writer).ExecuteRawQuery(
            pb.ExecuteRawQueryRequest(sql=f"INSERT INTO default.{table} VALUES (7)")
        )

    count = await stub.GetTableRowCount(
        pb.GetTableRowCountRequest(database="default", table=table)
    )
    assert count.row_count == 1


async def test_caller_cannot_lift_readonly_through_settings(stub: AsyncStub) -> None:
    error = await fails(
        stub.ExecuteRawQuery(
            pb.ExecuteRawQueryRequest(
                sql=f"CREATE TABLE default.{unique()} (x UInt8) ENGINE = Memory",
                settings={"readonly": "0"},
            )
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "readonly" in (error.details() or "")


async def test_result_past_max_result_rows_is_resource_exhausted(
    make_sidecar: SidecarFactory,
) -> None:
    async with make_sidecar(max_result_rows=100) as capped:
        fits = await aio(capped).QueryData(
            pb.QueryDataRequest(sql="SELECT number FROM system.numbers LIMIT 100")
        )
        error = await fails(
            aio(capped).QueryData(
                pb.QueryDataRequest(sql="SELECT number FROM system.numbers LIMIT 101")
            )
        )

    assert len(fits.rows) == 100
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "100" in (error.details() or "")


async def running_count(stub: AsyncStub, marker: str) -> int:
    response = await stub.ExecuteRawQuery(
        pb.ExecuteRawQueryRequest(
            sql="SELECT count() FROM system.processes "
            f"WHERE query LIKE '%{marker}%' AND query NOT LIKE '%system.processes%'"
        )
    )
    return int(response.rows[0].values[0].uint64_value)


async def wait_gone(stub: AsyncStub, marker: str, seconds: float) -> float:
    """Seconds until no query with ``marker`` runs; fails after ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while await running_count(stub, marker):
        assert loop.time() - start < seconds, f"query {marker} still running"
        await asyncio.sleep(0.1)
    return loop.time() - start


def endless(marker: str) -> str:
    return f"SELECT count() FROM system.numbers WHERE toString(number) != '{marker}'"


async def wait_running(stub: AsyncStub, marker: str) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await running_count(stub, marker):
        assert loop.time() - start < 5, f"query {marker} never started"
        await asyncio.sleep(0.05)


async def test_deadline_bounds_the_query_and_kills_it(stub: AsyncStub) -> None:
    marker = unique("deadline")
    started = asyncio.get_running_loop().time()
    call = stub.QueryData(pb.QueryDataRequest(sql=endless(marker)), timeout=1)
    await wait_running(stub, marker)

    error = await fails(call)

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert asyncio.get_running_loop().time() - started < 3
    await wait_gone(stub, marker, seconds=2)


async def test_cancelled_call_kills_its_query(stub: AsyncStub) -> None:
    marker = unique("cancel")
    call = stub.QueryData(pb.QueryDataRequest(sql=endless(marker)))
    await wait_running(stub, marker)

    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_gone(stub, marker, seconds=2)


async def test_exception_in_the_middle_of_a_result_is_an_error(
    make_sidecar: SidecarFactory,
) -> None:
    request = pb.QueryDataRequest(
        sql="SELECT number, throwIf(number = 2000000) FROM system.numbers",
        settings={"max_block_size": "1000"},
    )

    async with make_sidecar(
        max_result_rows=10_000_000, max_result_bytes=512 * 1024 * 1024
    ) as roomy:
        error = await fails(aio(roomy).QueryData(request))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(error)
    assert info.metadata["code"] == "395"
    assert info.metadata["name"] == "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"
