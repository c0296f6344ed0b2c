"""A multi-process load client that sees every gRPC status code.

``python -m bench.loadgen SPEC.json OUT.json`` runs ``processes`` worker
processes; each opens its own connection(s) and keeps its share of
``concurrency`` calls in flight for ``warmup + duration`` seconds. Calls
started during the warm-up are not counted. Each call's latency and status
(a gRPC status name, or ``HTTP <n>``) go to OUT.json.

It is the fallback to h2load for throughput (a Python client costs CPU
the server under test would otherwise get) and the only way here to count
status codes, so the status checks and the overload check use it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

__all__ = ["LoadSpec", "run_load"]

MAX_SECONDS = 600.0  # a hard cap on any one run, whatever the spec says


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # "grpc" or "http"
    address: str  # host:port
    path: str  # gRPC method path, or the HTTP path with its query
    body_hex: str  # serialized request (gRPC) or POST body (HTTP)
    concurrency: int
    processes: int
    duration: float
    warmup: float
    max_calls: int = 0  # 0: no cap besides the duration
    timeout: float = 30.0


@dataclass
class Sample:
    latencies: list[float]
    statuses: dict[str, int]
    status_latency: dict[str, list[float]]


async def _grpc_worker(
    spec: LoadSpec, call: Any, body: bytes, stop: float, counted: float, out: Sample
) -> None:
    calls = 0
    while time.monotonic() < stop and (not spec.max_calls or calls < spec.max_calls):
        start = time.monotonic()
        try:
            await call(body, timeout=spec.timeout)
            status = "OK"
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        end = time.monotonic()
        calls += 1
        if start >= counted:
            _record(out, status, end - start)


async def _http_worker(
    spec: LoadSpec,
    session: aiohttp.ClientSession,
    body: bytes,
    stop: float,
    counted: float,
    out: Sample,
) -> None:
    url = f"http://{spec.address}{spec.path}"
    calls = 0
    while time.monotonic() < stop and (not spec.max_calls or calls < spec.max_calls):
        start = time.monotonic()
        try:
            async with session.post(url, data=body) as response:
                await response.read()
                status = f"HTTP {response.status}"
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        end = time.monotonic()
        calls += 1
        if start >= counted:
            _record(out, status, end - start)


def _record(out: Sample, status: str, seconds: float) -> None:
    out.statuses[status] = out.statuses.get(status, 0) + 1
    if status in ("OK", "HTTP 200"):
        out.latencies.append(seconds)
    else:
        out.status_latency.setdefault(status, []).append(seconds)


async def _process_main(spec: LoadSpec, share: int) -> Sample:
    out = Sample([], {}, {})
    body = bytes.fromhex(spec.body_hex)
    begin = time.monotonic()
    counted = begin + spec.warmup
    stop = counted + min(spec.duration, MAX_SECONDS)
    if spec.kind == "grpc":
        async with grpc.aio.insecure_channel(spec.address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
            call = channel.unary_unary(spec.path, None, None)  # raw bytes in and out
            await asyncio.gather(
                *(
                    _grpc_worker(spec, call, body, stop, counted, out)
                    for _ in range(share)
                )
            )
        return out
    connector = aiohttp.TCPConnector(limit=share)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(
                _http_worker(spec, session, body, stop, counted, out)
                for _ in range(share)
            )
        )
    return out


def _child(spec: LoadSpec, share: int, queue: Any) -> None:
    sample = asyncio.run(_process_main(spec, share))
    queue.put(asdict(sample))


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Run the spec in worker processes; merge what they measured."""
    processes = max(1, min(spec.processes, spec.concurrency))
    shares = [spec.concurrency // processes] * processes
    for i in range(spec.concurrency % processes):
        shares[i] += 1
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_child, args=(spec, s, queue)) for s in shares]
    for worker in workers:
        worker.start()
    merged: dict[str, Any] = {"latencies": [], "statuses": {}, "status_latency": {}}
    for _ in workers:
        part = queue.get(timeout=spec.warmup + spec.duration + 60)
        merged["latencies"].extend(part["latencies"])
        for name, count in part["statuses"].items():
            merged["statuses"][name] = merged["statuses"].get(name, 0) + count
        for name, values in part["status_latency"].items():
            merged["status_latency"].setdefault(name, []).extend(values)
    for worker in workers:
        worker.join(10)
    merged["seconds"] = spec.duration
    return merged


def main(argv: list[str]) -> int:
    spec = LoadSpec(**json.loads(Path(argv[0]).read_text()))
    Path(argv[1]).write_text(json.dumps(run_load(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
