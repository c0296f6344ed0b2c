"""An insert writes everything or nothing, and nothing the server misreads."""

from __future__ import annotations

import socket
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from harness import Running, make_settings, running_sidecar

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.codec import EncodeError, encoder_for

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

# More rows than one default insert block (1,048,576).
BIG = 1_100_000


async def new_table(stub: AsyncStub, *columns: pb.ColumnDefinition) -> str:
    table = f"t_{uuid.uuid4().hex[:12]}"
    await stub.CreateTable(pb.CreateTableRequest(table=table, columns=columns))
    return table


async def count(stub: AsyncStub, table: str) -> int:
    response = await stub.GetTableRowCount(pb.GetTableRowCountRequest(table=table))
    return response.row_count


async def test_server_side_failure_in_a_late_block_writes_nothing(
    stub: AsyncStub,
) -> None:
    table = await new_table(
        stub,
        pb.ColumnDefinition(name="x", type="UInt64"),
        pb.ColumnDefinition(
            name="check",
            type="UInt8",
            default_kind=pb.DEFAULT_KIND_MATERIALIZED,
            default_expression=f"throwIf(x = {BIG - 1})",
        ),
    )
    rows = [pb.Row(values=[pb.Value(uint64_value=n)]) for n in range(BIG)]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.InsertData(pb.InsertDataRequest(table=table, rows=rows))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "395" in (caught.value.details() or "")
    assert await count(stub, table) == 0


async def test_dates_an_old_server_cannot_read_back_are_refused(
    stub: AsyncStub, sidecar: Running
) -> None:
    table = await new_table(
        stub,
        pb.ColumnDefinition(name="d", type="Date"),
        pb.ColumnDefinition(name="t", type="DateTime('UTC')"),
    )
    late = pb.Row(
        values=[
            pb.Value(date_value=pb.Date(year=2120, month=1, day=1)),
            pb.Value(int64_value=4_294_967_295),
        ]
    )
    request = pb.InsertDataRequest(table=table, rows=[late])

    if not sidecar.server.pool.info.capabilities.short_calendar:
        await stub.InsertData(request)
        back = await stub.QueryData(
            pb.QueryDataRequest(sql=f"SELECT d, t FROM {table}")
        )
        assert back.rows[0].values[0].date_value.year == 2120
        assert back.rows[0].values[1].datetime_value.instant.seconds == 4_294_967_295
        return

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.InsertData(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2105" in (caught.value.details() or "")
    assert await count(stub, table) == 0


@pytest.mark.parametrize("number", [1e39, -1e39, 1e-50])
def test_float32_refuses_values_it_would_turn_into_inf_or_zero(number: float) -> None:
    encode = encoder_for("Float32")

    with pytest.raises(EncodeError, match="out of range"):
        encode(pb.Value(double_value=number))


def test_float32_refuses_integers_it_cannot_hold_exactly() -> None:
    encode = encoder_for("Float32")

    assert encode(pb.Value(uint64_value=2**24)) == "16777216.0"
    with pytest.raises(EncodeError, match="not exactly representable"):
        encode(pb.Value(uint64_value=2**24 + 1))


def test_float32_keeps_ordinary_values() -> None:
    encode = encoder_for("Float32")

    assert encode(pb.Value(double_value=0.1)) == "0.1"
    assert encode(pb.Value(double_value=-0.0)) == "-0.0"


async def test_result_too_large_for_one_message_is_resource_exhausted(
    clickhouse_url: str,
) -> None:
    settings = make_settings(clickhouse_url, None, max_message_bytes=64 * 1024)
    sql = "SELECT toString(number) AS s FROM system.numbers LIMIT 20000"
    async with running_sidecar(settings) as small:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await small.stub.QueryData(pb.QueryDataRequest(sql=sql))
        healthy = await small.stub.QueryData(pb.QueryDataRequest(sql="SELECT 1"))

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "SIDECAR_MAX_MESSAGE_BYTES" in (caught.value.details() or "")
    assert healthy.rows


async def test_a_busy_port_is_an_error(clickhouse_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(clickhouse_url, None, listen=f"127.0.0.1:{port}")

        with pytest.raises((OSError, RuntimeError)):
            async with running_sidecar(settings):
                pass
