"""The streaming RPCs against ClickHouse 18.16 and the embedded engine."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import grpc
import pytest
from conftest import SidecarFactory
from harness import Running

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc
from sidecar.engine import ServerInfo

NUMBERS = "SELECT number, toString(number) FROM system.numbers LIMIT {n}"
CLASSIC_FORMATS = [
    "TabSeparated",
    "TabSeparatedWithNames",
    "TabSeparatedWithNamesAndTypes",
    "CSV",
    "CSVWithNames",
    "JSONEachRow",
    "RowBinary",
    "Native",
]
MODERN_FORMATS = ["JSONCompactEachRow", "Parquet", "Arrow", "ArrowStream"]


if TYPE_CHECKING:
    Stub = pb_grpc.ClickHouseSidecarAsyncStub


@dataclass
class Sidecar:
    """A sidecar for these tests: raw writes allowed, a small unary cap."""

    running: Running

    @property
    def stub(self) -> Stub:
        return self.running.stub

    @property
    def engine(self) -> str:
        return self.running.engine

    @property
    def info(self) -> ServerInfo:
        return self.running.server.pool.info

    @property
    def version(self) -> tuple[int, ...]:
        return self.info.version_tuple


@pytest.fixture
async def side(make_sidecar: SidecarFactory) -> AsyncIterator[Sidecar]:
    async with make_sidecar(allow_raw_writes=True, max_result_rows=1000) as running:
        yield Sidecar(running)


def without_tokens(side: Sidecar) -> bool:
    return not side.info.capabilities.insert_deduplication_token


async def clickhouse(url: str, sql: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=sql.encode()) as response,
    ):
        text: str = await response.text()
    assert response.status == 200, text
    return text


async def sidecar_sql(side: Sidecar, sql: str) -> list[list[str]]:
    response = await side.stub.QueryData(pb.QueryDataRequest(sql=sql))
    return [[_text(v) for v in row.values] for row in response.rows]


def _text(value: pb.Value) -> str:
    kind = value.WhichOneof("kind")
    return str(getattr(value, kind)) if kind else ""


async def create_table(side: Sidecar, columns: str, engine: str = "") -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await side.stub.ExecuteRawQuery(
        pb.ExecuteRawQueryRequest(
            sql=f"CREATE TABLE {name} ({columns}) "
            f"ENGINE = MergeTree ORDER BY tuple() {engine}"
        )
    )
    return name


async def row_count(side: Sidecar, table: str) -> int:
    return int((await sidecar_sql(side, f"SELECT count() FROM {table}"))[0][0])


async def processes(side: Sidecar, query_id: str) -> list[int]:
    """read_rows of the running statements of a call, seen through the sidecar."""
    # chdb has no query ids: the embedded engine tags statements in log_comment.
    where = (
        f"query_id = '{query_id}'"
        if side.engine == "http"
        else f"Settings['log_comment'] = 'sidecar:{query_id}'"
    )
    rows = await sidecar_sql(
        side, f"SELECT read_rows FROM system.processes WHERE {where}"
    )
    return [int(row[0]) for row in rows]


def uint_rows(values: Iterable[object]) -> list[pb.Row]:
    rows = []
    for value in values:
        cell = pb.Value(string_value=str(value))
        rows.append(pb.Row(values=[cell, pb.Value(string_value=f"s{value}")]))
    return rows


async def read_raw(side: Sidecar, sql: str, fmt: str) -> bytes:
    request = pb.QueryRawStreamRequest(sql=sql, format=fmt)
    chunks = [chunk async for chunk in side.stub.QueryRawStream(request)]
    assert chunks[0].query_id
    return b"".join(chunk.data for chunk in chunks)


async def insert_raw(side: Sidecar, table: str, fmt: str, data: bytes) -> None:
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    first = pb.InsertRawStreamRequest(table=table, format=fmt, data=pieces[0])
    rest = [pb.InsertRawStreamRequest(data=piece) for piece in pieces[1:]]
    await side.stub.InsertRawStream(iter([first, *rest]))


# --- QueryDataStream ---------------------------------------------------------


async def test_query_stream_returns_a_result_past_the_unary_cap_in_order(
    side: Sidecar,
) -> None:
    request = pb.QueryDataStreamRequest(sql=NUMBERS.format(n=25000), batch_rows=1000)
    messages = [m async for m in side.stub.QueryDataStream(request)]

    numbers = [row.values[0].uint64_value for m in messages for row in m.rows]
    assert numbers == list(range(25000))
    assert len(messages) == 25
    assert messages[0].query_id
    assert [c.type for c in messages[0].columns] == ["UInt64", "String"]
    assert not any(m.query_id or m.columns for m in messages[1:])


async def test_query_stream_bounds_a_message_by_bytes(side: Sidecar) -> None:
    wide = "arrayStringConcat(arrayMap(x -> 'xxxxxxxxxx', range(10000)))"
    request = pb.QueryDataStreamRequest(
        sql=f"SELECT {wide} FROM system.numbers LIMIT 60"
    )
    messages = [m async for m in side.stub.QueryDataStream(request)]

    assert sum(len(m.rows) for m in messages) == 60
    assert max(m.ByteSize() for m in messages) < 2 * 1024 * 1024


async def test_query_stream_of_an_empty_result_sends_the_columns(
    side: Sidecar,
) -> None:
    request = pb.QueryDataStreamRequest(sql="SELECT 1 AS one WHERE 0")
    messages = [m async for m in side.stub.QueryDataStream(request)]

    assert len(messages) == 1
    assert messages[0].query_id
    assert [c.name for c in messages[0].columns] == ["one"]


async def test_slow_reader_holds_the_query_back(side: Sidecar) -> None:
    request = pb.QueryDataStreamRequest(
        sql=NUMBERS.format(n=100_000_000), batch_rows=1000
    )
    call = side.stub.QueryDataStream(request)
    first = await call.read()
    assert isinstance(first, pb.QueryDataStreamResponse)
    samples = []
    for i in range(30):
        await call.read()
        await asyncio.sleep(0.1)
        if i in (19, 29):
            samples.extend(await processes(side, first.query_id))
    call.cancel()

    # Unthrottled, ClickHouse reads 100M numbers in a few seconds. Held back,
    # it stops once the buffers between it and the reader are full.
    assert len(samples) == 2
    assert samples[1] < 10_000_000
    assert samples[1] - samples[0] < 1_000_000


async def wait_gone(side: Sidecar, query_id: str, seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if not await processes(side, query_id):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_cancel_stops_the_query(side: Sidecar) -> None:
    request = pb.QueryDataStreamRequest(sql=NUMBERS.format(n=10**12), batch_rows=1000)
    call = side.stub.QueryDataStream(request)
    first = await call.read()
    assert isinstance(first, pb.QueryDataStreamResponse)
    assert await processes(side, first.query_id)

    call.cancel()

    assert await wait_gone(side, first.query_id, 2.0)


async def test_deadline_stops_the_query(side: Sidecar) -> None:
    request = pb.QueryDataStreamRequest(sql=NUMBERS.format(n=10**12), batch_rows=1000)
    call = side.stub.QueryDataStream(request, timeout=1.0)
    first = await call.read()
    assert isinstance(first, pb.QueryDataStreamResponse)

    async def read_slowly() -> None:
        while True:
            await call.read()
            await asyncio.sleep(0.1)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_slowly()

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await wait_gone(side, first.query_id, 2.0)


async def test_query_stream_reports_clickhouse_errors(side: Sidecar) -> None:
    request = pb.QueryDataStreamRequest(sql="SELECT * FROM no_such_table_here")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in side.stub.QueryDataStream(request)]

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_query_stream_sets_rows_on_the_server_span(side: Sidecar) -> None:
    request = pb.QueryDataStreamRequest(sql=NUMBERS.format(n=3000))
    messages = [m async for m in side.stub.QueryDataStream(request)]

    query_id = messages[0].query_id
    spans = [s for s in side.running.spans() if s.name.endswith("/QueryDataStream")]
    assert any(s.attributes and s.attributes.get("sidecar.rows") == 3000 for s in spans)
    assert query_id


# --- InsertDataStream --------------------------------------------------------


async def test_insert_stream_writes_every_batch(side: Sidecar) -> None:
    table = await create_table(side, "x UInt64, s String")
    first = pb.InsertDataStreamRequest(table=table, rows=uint_rows(range(1000)))
    rest = [
        pb.InsertDataStreamRequest(rows=uint_rows(range(i, i + 1000)))
        for i in range(1000, 5000, 1000)
    ]

    response = await side.stub.InsertDataStream(iter([first, *rest]))

    assert response.rows_written == 5000
    assert response.query_id
    assert await row_count(side, table) == 5000


async def test_insert_stream_bad_row_in_second_batch_names_the_row(
    side: Sidecar,
) -> None:
    table = await create_table(side, "x UInt64, s String")
    first = pb.InsertDataStreamRequest(table=table, rows=uint_rows(range(10)))
    second = pb.InsertDataStreamRequest(rows=uint_rows([10, 11, 12, "abc", 14]))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await side.stub.InsertDataStream(iter([first, second]))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "rows[13]" in details
    assert "'x'" in details
    assert "10 rows" in details
    # Less than one insert block was sent: ClickHouse rejected all of it.
    assert await row_count(side, table) == 0


async def test_insert_stream_refuses_a_table_change_midway(side: Sidecar) -> None:
    table = await create_table(side, "x UInt64, s String")
    first = pb.InsertDataStreamRequest(table=table, rows=uint_rows([1]))
    second = pb.InsertDataStreamRequest(table="other", rows=uint_rows([2]))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await side.stub.InsertDataStream(iter([first, second]))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message" in (caught.value.details() or "")


async def test_empty_insert_stream_is_invalid(side: Sidecar) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await side.stub.InsertDataStream(iter([]))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_retried_stream_with_token_does_not_duplicate(side: Sidecar) -> None:
    setting = (
        ""
        if without_tokens(side)
        else "SETTINGS non_replicated_deduplication_window = 100"
    )
    table = await create_table(side, "x UInt64, s String", setting)

    def stream() -> list[pb.InsertDataStreamRequest]:
        first = pb.InsertDataStreamRequest(
            table=table, deduplication_token="job-7", rows=uint_rows(range(100))
        )
        return [first, pb.InsertDataStreamRequest(rows=uint_rows(range(100, 300)))]

    if without_tokens(side):
        # No tokens on this server: refused up front, naming the version.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await side.stub.InsertDataStream(iter(stream()))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert side.info.version in (caught.value.details() or "")
        assert await row_count(side, table) == 0
        return

    await side.stub.InsertDataStream(iter(stream()))
    await side.stub.InsertDataStream(iter(stream()))

    assert await row_count(side, table) == 300


# --- QueryRawStream / InsertRawStream -----------------------------------------


async def test_raw_query_refuses_an_unvetted_format(side: Sidecar) -> None:
    request = pb.QueryRawStreamRequest(sql="SELECT 1", format="PrettyCompact")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in side.stub.QueryRawStream(request)]

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "JSONEachRow" in (caught.value.details() or "")


@pytest.mark.parametrize("fmt", ["Parquet", "JSONCompactEachRow"])
async def test_raw_query_in_a_missing_format_names_the_version(
    side: Sidecar, fmt: str
) -> None:
    request = pb.QueryRawStreamRequest(sql="SELECT 1", format=fmt)
    if side.version >= (19,):
        chunks = [m async for m in side.stub.QueryRawStream(request)]
        assert b"".join(c.data for c in chunks), f"{fmt} is served on this server"
        return

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in side.stub.QueryRawStream(request)]

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert side.info.version in (caught.value.details() or "")


async def test_raw_query_streams_a_large_result_whole(side: Sidecar) -> None:
    data = await read_raw(side, NUMBERS.format(n=300_000), "TabSeparated")

    lines = data.decode().splitlines()
    assert len(lines) == 300_000
    assert lines[-1] == "299999\t299999"


async def round_trip(side: Sidecar, fmt: str) -> None:
    columns = "x UInt64, s String, d Date"
    source = await create_table(side, columns)
    target = await create_table(side, columns)
    await side.stub.InsertDataStream(
        iter([pb.InsertDataStreamRequest(table=source, rows=dated_rows(2000))])
    )

    sent = await read_raw(side, f"SELECT * FROM {source} ORDER BY x", fmt)
    await insert_raw(side, target, fmt, sent)
    back = await read_raw(side, f"SELECT * FROM {target} ORDER BY x", fmt)

    assert back == sent
    assert await row_count(side, target) == 2000


def dated_rows(count: int) -> list[pb.Row]:
    day = pb.Value(date_value=pb.Date(year=2024, month=2, day=29))
    return [pb.Row(values=[*row.values, day]) for row in uint_rows(range(count))]


@pytest.mark.parametrize("fmt", CLASSIC_FORMATS + MODERN_FORMATS)
async def test_raw_format_round_trips(side: Sidecar, fmt: str) -> None:
    if fmt in MODERN_FORMATS and side.version < (19,):
        # Proven on the embedded engine; here the answer must name the version.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await round_trip(side, fmt)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        return
    await round_trip(side, fmt)


async def test_raw_insert_in_a_missing_format_names_the_version(
    side: Sidecar,
) -> None:
    table = await create_table(side, "x UInt64")
    first = pb.InsertRawStreamRequest(table=table, format="Parquet", data=b"PAR1")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await side.stub.InsertRawStream(iter([first]))

    if side.version >= (19,):
        # The format exists: the four bytes are a broken Parquet file.
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert side.info.version in (caught.value.details() or "")
    assert await row_count(side, table) == 0
