"""CreateDatabase over a real channel: idempotent by default, strict on request."""

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


async def database_names(stub: AsyncStub) -> set[str]:
    response = await stub.ExecuteRawQuery(
        pb.ExecuteRawQueryRequest(sql="SELECT name FROM system.databases")
    )
    return {row.values[0].string_value for row in response.rows}


async def test_create_database_creates_it_and_reports_query_id(
    stub: AsyncStub,
) -> None:
    name = unique("db")

    response = await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    assert response.created
    uuid.UUID(response.query_id)
    assert name in await database_names(stub)


async def test_create_database_twice_is_idempotent(stub: AsyncStub) -> None:
    name = unique("db")
    await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    again = await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    assert not again.created
    assert again.query_id


async def test_create_database_strict_answers_already_exists(
    stub: AsyncStub,
) -> None:
    name = unique("db")
    await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name, strict=True))

    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    "name",
    ["with-dash", "with.dot", "1leading_digit", "select", "back`tick", "bäckerei_ü"],
)
async def test_create_database_accepts_names_that_need_quoting(
    stub: AsyncStub, name: str
) -> None:
    database = f"{name}_{uuid.uuid4().hex[:6]}"

    response = await stub.CreateDatabase(pb.CreateDatabaseRequest(database=database))

    assert response.created
    assert database in await database_names(stub)


@pytest.mark.parametrize("name", ["", "tab\there", "new\nline", "nul\x00"])
async def test_create_database_rejects_empty_and_control_characters(
    stub: AsyncStub, name: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateDatabase(pb.CreateDatabaseRequest(database=name))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "database" in (caught.value.details() or "")
