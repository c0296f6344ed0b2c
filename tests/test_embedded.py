"""The embedded engine against real chdb, one temporary data directory each."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from sidecar.embedded import DataDirectoryInUseError, EmbeddedPool
from sidecar.engine import Query
from sidecar.errors import ClickHouseError, UnavailableError

LONG_SQL = "SELECT count() FROM numbers(10000000000) WHERE cityHash64(number) % 7 = 1"


def make_query(
    sql: str,
    *,
    query_id: str = "",
    database: str = "",
    settings: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Query:
    return Query(
        sql=sql,
        query_id=query_id or uuid.uuid4().hex,
        database=database,
        settings=settings or {},
        params=params or {},
    )


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[EmbeddedPool]:
    opened = EmbeddedPool(tmp_path / "data", max_workers=4)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def run(pool: EmbeddedPool, sql: str, body: bytes | None = None) -> bytes:
    async with pool.client() as client:
        return await client.execute(make_query(sql), body)


async def read(pool: EmbeddedPool, query: Query, fmt: str) -> bytes:
    async with pool.client() as client, client.stream(query, fmt) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def wait_until_running(pool: EmbeddedPool) -> None:
    sql = (
        "SELECT count() FROM system.processes "
        "WHERE query LIKE 'SELECT count() FROM numbers(1%'"
    )
    for _ in range(200):
        if await run(pool, sql) != b"0\n":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the long query never showed up in system.processes")


async def test_info_describes_the_embedded_engine(pool: EmbeddedPool) -> None:
    info = pool.info

    assert info.engine == "embedded"
    assert info.version_tuple[:1] >= (25,)
    assert info.timezone
    assert info.address.endswith("data")
    assert info.capabilities.query_parameters


async def test_insert_and_select_round_trip(pool: EmbeddedPool) -> None:
    create = "CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"
    assert await run(pool, create) == b""

    body = b"(1, 'x'), (2, 'it''s')"
    assert await run(pool, "INSERT INTO t FORMAT Values", body) == b""

    query = make_query("SELECT a, s FROM t ORDER BY a")
    result = await read(pool, query, "TabSeparatedWithNamesAndTypes")
    assert result == b"a\ts\nUInt32\tString\n1\tx\n2\tit\\'s\n"


async def test_insert_body_streams_in_chunks(pool: EmbeddedPool) -> None:
    await run(pool, "CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a")

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, 3000, 1000):
            yield b"".join(b"%d\n" % n for n in range(start, start + 1000))

    async with pool.client() as client:
        insert = make_query("INSERT INTO t FORMAT TabSeparated")
        await client.execute(insert, body())

    assert await run(pool, "SELECT count(), sum(a) FROM t") == b"3000\t4498500\n"


async def test_unknown_table_is_clickhouse_error(pool: EmbeddedPool) -> None:
    with pytest.raises(ClickHouseError) as caught:
        await run(pool, "SELECT * FROM missing")

    assert caught.value.code == 60
    assert caught.value.name == "UNKNOWN_TABLE"


async def test_syntax_error_is_clickhouse_error(pool: EmbeddedPool) -> None:
    with pytest.raises(ClickHouseError) as caught:
        await read(pool, make_query("SELEC 1"), "TabSeparated")

    assert caught.value.code == 62
    assert caught.value.name == "SYNTAX_ERROR"


async def test_error_in_the_middle_of_a_stream(pool: EmbeddedPool) -> None:
    sql = "SELECT throwIf(number = 200000) FROM numbers(300000)"

    with pytest.raises(ClickHouseError) as caught:
        await read(pool, make_query(sql), "TabSeparated")

    assert caught.value.code == 395


async def test_failed_query_leaves_nothing_for_the_next(pool: EmbeddedPool) -> None:
    sql = "SELECT throwIf(number = 3) FROM numbers(10) SETTINGS max_block_size = 1"
    with pytest.raises(ClickHouseError):
        await run(pool, sql)

    assert await run(pool, "SELECT 2") == b"2\n"


async def test_concurrent_queries_keep_their_own_settings(pool: EmbeddedPool) -> None:
    await run(pool, "CREATE DATABASE one")
    await run(pool, "CREATE DATABASE two")
    sql = "SELECT getSetting('max_threads'), currentDatabase(), sleep(0.2)"

    async def one(threads: int, database: str) -> bytes:
        settings = {"max_threads": str(threads)}
        query = make_query(sql, database=database, settings=settings)
        return await read(pool, query, "TabSeparated")

    cases = [(n, ("one", "two", "default")[n % 3]) for n in range(1, 9)]
    results = await asyncio.gather(*(one(n, db) for n, db in cases))

    assert results == [f"{n}\t{db}\t0\n".encode() for n, db in cases]


async def test_query_parameters(pool: EmbeddedPool) -> None:
    params = {"n": "41", "s": "a\\tb", "xs": "['x\\'y']"}
    query = make_query(
        "SELECT {n:UInt8} + 1, {s:String}, {xs:Array(String)}", params=params
    )

    assert await read(pool, query, "TabSeparated") == b"42\ta\\tb\t['x\\'y']\n"


async def test_stream_concatenates_blocks_like_one_result(pool: EmbeddedPool) -> None:
    sql = (
        "SELECT number % 3 AS k, sum(number) AS s FROM numbers(100000) "
        "GROUP BY k WITH TOTALS ORDER BY k"
    )
    many = {"max_block_size": "1", "max_threads": "1"}
    formats = [
        "TabSeparatedWithNamesAndTypes",
        "TSVWithNames",
        "JSONCompactEachRowWithNamesAndTypes",
        "CSV",
        "JSONEachRow",
        "Parquet",
    ]
    for fmt in formats:
        whole = await run(pool, f"{sql} FORMAT {fmt}")
        streamed = await read(pool, make_query(sql, settings=many), fmt)
        assert streamed == whole, fmt

    # chdb fails streaming ArrowStream WITH TOTALS (LOGICAL_ERROR 49).
    rows = "SELECT number, toString(number) AS s FROM numbers(200000)"
    blocks = {"max_block_size": "1000"}
    for fmt in ["TabSeparatedWithNamesAndTypes", "ArrowStream", "Native"]:
        whole = await run(pool, f"{rows} SETTINGS max_block_size = 1000 FORMAT {fmt}")
        streamed = await read(pool, make_query(rows, settings=blocks), fmt)
        assert streamed == whole, fmt


async def test_stream_of_ddl_is_empty(pool: EmbeddedPool) -> None:
    query = make_query("CREATE TABLE t (a UInt8) ENGINE = Memory")

    assert await read(pool, query, "TabSeparatedWithNamesAndTypes") == b""
    assert await run(pool, "EXISTS TABLE t") == b"1\n"


async def test_event_loop_runs_during_slow_query(pool: EmbeddedPool) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await run(pool, "SELECT sleep(1)")
    finally:
        ticker.cancel()

    assert ticks >= 50


async def test_lock_rejects_second_pool(pool: EmbeddedPool, tmp_path: Path) -> None:
    second = EmbeddedPool(tmp_path / "data")

    with pytest.raises(DataDirectoryInUseError, match="in use by another"):
        await second.open()
    await second.close()


async def test_lock_rejects_pool_in_subprocess(
    pool: EmbeddedPool, tmp_path: Path
) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from sidecar.embedded import DataDirectoryInUseError, EmbeddedPool\n"
        "try:\n"
        "    asyncio.run(EmbeddedPool(Path(sys.argv[1])).open())\n"
        "except DataDirectoryInUseError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await child.communicate()

    assert child.returncode == 3
    assert b".sidecar.lock" in output


async def test_kill_stops_long_query(pool: EmbeddedPool) -> None:
    async with pool.client() as client:
        query = make_query(LONG_SQL, query_id="long-1")
        running = asyncio.create_task(client.execute(query))
        await wait_until_running(pool)

        started = time.monotonic()
        await client.kill("long-1")
        with pytest.raises(ClickHouseError) as caught:
            await running

    assert caught.value.code == 394
    assert time.monotonic() - started < 2


async def test_kill_of_finished_query_is_quiet(pool: EmbeddedPool) -> None:
    async with pool.client() as client:
        await client.kill("never-ran")


async def test_duplicate_running_query_id_is_rejected(pool: EmbeddedPool) -> None:
    async with pool.client() as client:
        running = asyncio.create_task(
            client.execute(make_query(LONG_SQL, query_id="same"))
        )
        await wait_until_running(pool)

        with pytest.raises(ClickHouseError) as caught:
            await client.execute(make_query("SELECT 1", query_id="same"))
        await client.kill("same")
        with pytest.raises(ClickHouseError):
            await running

    assert caught.value.code == 216


async def test_leaving_a_stream_early_stops_the_query(pool: EmbeddedPool) -> None:
    rows = make_query("SELECT number FROM numbers(10000000000)")
    async with pool.client() as client, client.stream(rows, "TabSeparated") as chunks:
        async for _ in chunks:
            break

    await asyncio.sleep(0.1)
    assert await run(pool, "SELECT count() FROM system.processes") == b"1\n"


async def test_max_execution_time_is_timeout_exceeded(pool: EmbeddedPool) -> None:
    query = make_query(LONG_SQL, settings={"max_execution_time": "0.5"})

    started = time.monotonic()
    with pytest.raises(ClickHouseError) as caught:
        await read(pool, query, "TabSeparated")

    assert caught.value.code == 159
    assert time.monotonic() - started < 2


async def test_close_is_idempotent(tmp_path: Path) -> None:
    pool = EmbeddedPool(tmp_path / "data")
    await pool.open()

    await asyncio.gather(pool.close(), pool.close())
    await pool.close()

    with pytest.raises(UnavailableError):
        async with pool.client():
            pass


async def test_close_waits_for_running_calls(tmp_path: Path) -> None:
    pool = EmbeddedPool(tmp_path / "data")
    await pool.open()
    running = asyncio.create_task(run(pool, "SELECT sleep(0.5)"))
    await asyncio.sleep(0.1)

    await pool.close()

    assert running.done()
    assert await running == b"0\n"


async def test_data_persists_across_reopen(tmp_path: Path) -> None:
    first = EmbeddedPool(tmp_path / "data")
    await first.open()
    await run(first, "CREATE TABLE kept (a UInt8) ENGINE = MergeTree ORDER BY a")
    await run(first, "INSERT INTO kept FORMAT Values", b"(7)")
    await first.close()

    second = EmbeddedPool(tmp_path / "data")
    await second.open()
    try:
        assert await run(second, "SELECT a FROM kept") == b"7\n"
    finally:
        await second.close()


async def test_data_skipping_indices_are_listed(pool: EmbeddedPool) -> None:
    await run(
        pool,
        "CREATE TABLE t (a UInt32, s String, "
        "INDEX s_idx s TYPE bloom_filter GRANULARITY 1) ENGINE = MergeTree ORDER BY a",
    )

    sql = "SELECT name, type FROM system.data_skipping_indices WHERE table = 't'"
    assert await run(pool, sql) == b"s_idx\tbloom_filter\n"
