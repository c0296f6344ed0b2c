"""Streaming through the sidecar vs. straight to ClickHouse, side by side.

Run by hand (not a test)::

    PYTHONPATH=. /tmp/venv/bin/python bench/streaming.py --rows 10000000

It starts a throwaway ClickHouse (tests/clickhouse_server.py) and the
sidecar as its own process (``python -m sidecar serve``), then runs each
pair of cases interleaved, ``--repeat`` times, alternating which side goes
first:

* raw:    QueryRawStream (``--format``) vs. aiohttp reading the HTTP body
* typed:  QueryDataStream rows vs. aiochclient ``ChClient.iterate`` reading
          every field of every row
* insert: InsertRawStream (TabSeparated) vs. one HTTP POST of the same bytes

While a sidecar case runs, the sidecar's VmRSS is sampled from /proc; the
table shows its growth over the value before the case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiochclient import ChClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from clickhouse_server import running_clickhouse  # noqa: E402  (tests/)

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb  # noqa: E402
from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc  # noqa: E402

QUERY = "SELECT number, toString(number) FROM system.numbers LIMIT {rows}"
TABLE = "bench_insert"
CHUNK = 1 << 20
MB = 1 << 20

Case = Callable[[], Awaitable[int]]


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    amount: int = 0
    rss_growth_mb: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)


class RssWatch:
    """Samples a process's VmRSS every few milliseconds while a case runs."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak_kb = 0

    def read_kb(self, key: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self._pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    @asynccontextmanager
    async def growth(self, sample: Sample) -> AsyncIterator[None]:
        base = self.read_kb()
        self.peak_kb = base
        task = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            task.cancel()
            self.peak_kb = max(self.peak_kb, self.read_kb())
            sample.rss_growth_mb.append((self.peak_kb - base) / 1024)

    async def _watch(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, self.read_kb())
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def sidecar_process(url: str) -> AsyncIterator[tuple[int, grpc.aio.Channel]]:
    port = free_port()
    env = {
        **os.environ,
        "CLICKHOUSE_URL": url,
        "SIDECAR_LISTEN": f"127.0.0.1:{port}",
        "SIDECAR_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "sidecar", "serve", "--workers", "1"]
    print("$", " ".join(command), f"(CLICKHOUSE_URL={url}, port {port})")
    process = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_receive_message_length", 64 * MB)],
    )
    try:
        await asyncio.wait_for(channel.channel_ready(), 30)
        yield process.pid, channel
    finally:
        await channel.close(None)
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


class Bench:
    def __init__(self, url: str, stub: Any, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.stub = stub
        self.session = session

    async def raw_sidecar(self, sql: str, fmt: str) -> int:
        size = 0
        async for chunk in self.stub.QueryRawStream(
            pb.QueryRawStreamRequest(sql=sql, format=fmt)
        ):
            size += len(chunk.data)
        return size

    async def raw_direct(self, sql: str, fmt: str) -> int:
        size = 0
        params = {"default_format": fmt}
        async with self.session.post(self.url, params=params, data=sql) as response:
            async for chunk in response.content.iter_chunked(256 * 1024):
                size += len(chunk)
        return size

    async def typed_sidecar(self, sql: str) -> int:
        rows = 0
        request = pb.QueryDataStreamRequest(sql=sql, batch_rows=4096)
        async for message in self.stub.QueryDataStream(request):
            rows += len(message.rows)
        return rows

    async def typed_direct(self, sql: str) -> int:
        client = ChClient(self.session, url=self.url)
        rows = 0
        async for record in client.iterate(sql):
            # aiochclient converts fields only when read: read them all, as
            # the sidecar decodes every field into its typed values.
            record[:]
            rows += 1
        return rows

    async def insert_sidecar(self, body: bytes) -> int:
        def requests() -> Any:
            yield pb.InsertRawStreamRequest(
                table=TABLE, format="TabSeparated", data=body[:CHUNK]
            )
            for start in range(CHUNK, len(body), CHUNK):
                yield pb.InsertRawStreamRequest(data=body[start : start + CHUNK])

        await self.stub.InsertRawStream(requests())
        return len(body)

    async def insert_direct(self, body: bytes) -> int:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), CHUNK):
                yield body[start : start + CHUNK]

        params = {"query": f"INSERT INTO {TABLE} FORMAT TabSeparated"}
        async with self.session.post(self.url, params=params, data=chunks()) as r:
            assert r.status == 200, await r.text()
        return len(body)

    async def sql(self, statement: str) -> None:
        async with self.session.post(self.url, data=statement) as response:
            assert response.status == 200, await response.text()


async def timed(case: Case, sample: Sample) -> None:
    start = time.perf_counter()
    sample.amount = await case()
    sample.seconds.append(time.perf_counter() - start)


async def pair(
    name: str, watch: RssWatch, via: Case, direct: Case, repeat: int
) -> tuple[str, Sample, Sample]:
    ours, theirs = Sample(), Sample()
    for i in range(repeat):
        order = [(via, ours, True), (direct, theirs, False)]
        for case, sample, is_sidecar in order if i % 2 == 0 else order[::-1]:
            if is_sidecar:
                async with watch.growth(sample):
                    await timed(case, sample)
            else:
                await timed(case, sample)
    return name, ours, theirs


def tsv_body(rows: int) -> bytes:
    return b"".join(b"%d\t%d\n" % (i, i) for i in range(rows))


def report(results: list[tuple[str, Sample, Sample, str]]) -> None:
    head = (
        f"{'case':<8}{'amount':>16}{'sidecar s':>11}{'direct s':>10}"
        f"{'ratio':>8}{'sidecar/s':>14}{'RSS +MB':>9}"
    )
    print()
    print(head)
    print("-" * len(head))
    for name, ours, theirs, unit in results:
        ratio = theirs.best / ours.best
        rate = ours.amount / ours.best
        rate_text = f"{rate / MB:.1f} MB/s" if unit == "B" else f"{rate:,.0f} r/s"
        amount = f"{ours.amount / MB:.0f} MB" if unit == "B" else f"{ours.amount:,} r"
        print(
            f"{name:<8}{amount:>16}{ours.best:>11.2f}{theirs.best:>10.2f}"
            f"{ratio:>8.2f}{rate_text:>14}{max(ours.rss_growth_mb):>9.1f}"
        )
    print("ratio = direct time / sidecar time (1.0 = as fast as direct)")


async def run(args: argparse.Namespace, url: str) -> None:
    raw_sql = QUERY.format(rows=args.rows)
    typed_sql = QUERY.format(rows=args.typed_rows)
    body = tsv_body(args.insert_rows)
    print(f"raw query:    {raw_sql} FORMAT {args.format}")
    print(f"typed query:  {typed_sql}")
    print(f"insert:       {args.insert_rows:,} rows, {len(body) / MB:.0f} MB TSV")

    async with (
        sidecar_process(url) as (pid, channel),
        aiohttp.ClientSession() as session,
    ):
        bench = Bench(url, pb_grpc.ClickHouseSidecarStub(channel), session)
        watch = RssWatch(pid)
        await bench.sql(
            f"CREATE TABLE {TABLE} (x UInt64, s String) ENGINE = MergeTree ORDER BY x"
        )
        results = []
        name, ours, theirs = await pair(
            "raw",
            watch,
            lambda: bench.raw_sidecar(raw_sql, args.format),
            lambda: bench.raw_direct(raw_sql, args.format),
            args.repeat,
        )
        results.append((name, ours, theirs, "B"))
        name, ours, theirs = await pair(
            "typed",
            watch,
            lambda: bench.typed_sidecar(typed_sql),
            lambda: bench.typed_direct(typed_sql),
            args.repeat,
        )
        results.append((name, ours, theirs, "r"))
        name, ours, theirs = await pair(
            "insert",
            watch,
            lambda: bench.insert_sidecar(body),
            lambda: bench.insert_direct(body),
            args.repeat,
        )
        results.append((name, ours, theirs, "B"))
        print(f"sidecar VmHWM at the end: {watch.read_kb('VmHWM') / 1024:.0f} MB")
    report(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="raw query rows")
    parser.add_argument("--typed-rows", type=int, default=1_000_000)
    parser.add_argument("--insert-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--format", default="RowBinary", choices=["RowBinary", "TabSeparated"]
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with running_clickhouse() as server:
        print(f"ClickHouse at {server.url}")
        asyncio.run(run(args, server.url))


if __name__ == "__main__":
    main()
