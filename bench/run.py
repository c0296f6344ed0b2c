"""Measure the sidecar against direct ClickHouse HTTP and a bare grpc.aio server.

``python -m bench.run [--quick] [--duration S] [--workloads a,b] ...``

One run starts a throwaway ClickHouse 18.16, the sidecar twice (tracing
off, and tracing on exporting to an OTLP receiver inside this process),
and a canned-reply grpc.aio server; then loads each target from separate
processes, interleaved, and prints ratios with the absolute figures.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.clickhouse_server import ClickHouseServer, running_clickhouse

from . import procs
from .loadgen import LoadSpec
from .otlp import SpanCounter
from .procs import PYTHON, REPO, Measurement, Server, free_port, percentile, show
from .workloads import INSERT_TABLE, WORKLOADS, Workload, grpc_frame, setup_statements

TARGETS = ("sidecar", "traced", "direct", "canned")
MB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    rounds: int
    workloads: list[str]
    concurrency: list[int]
    workers: int
    loadgen: str
    rss_duration: float
    overload_limit: int
    overload_concurrency: int
    profile_seconds: float
    check_calls: int
    results: Path


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 2 minutes")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, help="uncounted seconds first")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per cell")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated names"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="e.g. 1,16,64")
    parser.add_argument(
        "--workers", type=int, default=2, help="SIDECAR_WORKERS to compare with 1"
    )
    parser.add_argument(
        "--loadgen",
        choices=("h2load", "python"),
        default="h2load",
        help="throughput client (python: the multi-process grpc.aio fallback)",
    )
    parser.add_argument("--rss-duration", type=float, help="seconds at c=64")
    parser.add_argument("--overload-limit", type=int, default=16)
    parser.add_argument("--overload-concurrency", type=int, default=64)
    parser.add_argument("--profile-seconds", type=float, help="py-spy seconds")
    parser.add_argument(
        "--results", type=Path, default=REPO / "bench" / "results", help="output dir"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    names = [n for n in args.workloads.split(",") if n]
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {list(WORKLOADS)}")
    return Options(
        duration=args.duration or (1.0 if quick else 2.0),
        warmup=args.warmup if args.warmup is not None else (0.25 if quick else 0.5),
        rounds=args.rounds or (1 if quick else 2),
        workloads=names,
        concurrency=[int(c) for c in args.concurrency.split(",") if c],
        workers=args.workers,
        loadgen=args.loadgen,
        rss_duration=args.rss_duration or (10.0 if quick else 60.0),
        overload_limit=args.overload_limit,
        overload_concurrency=args.overload_concurrency,
        profile_seconds=args.profile_seconds or (5.0 if quick else 10.0),
        check_calls=40 if quick else 160,
        results=args.results,
    )


# ---------------------------------------------------------------- servers


def sidecar_env(url: str, **extra: str) -> dict[str, str]:
    return {"CLICKHOUSE_URL": url, "PYTHONPATH": str(REPO), **extra}


def start_sidecar(name: str, port: int, env: dict[str, str], logs: Path) -> Server:
    argv = [PYTHON, "-m", "sidecar", "serve"]
    return Server(name, argv, {**env, "SIDECAR_LISTEN": f"127.0.0.1:{port}"}, logs)


async def wait_serving(server: Server, port: int, *, health: bool) -> None:
    """Until the server answers (its health service says SERVING)."""
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited; see {server.log_path}")
            try:
                await asyncio.wait_for(channel.channel_ready(), 1)
                if not health:
                    return
                stub = health_pb2_grpc.HealthStub(channel)
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except (TimeoutError, grpc.aio.AioRpcError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start; see {server.log_path}")


async def capture_replies(port: int, workloads: list[Workload]) -> dict[str, Any]:
    """The sidecar's real replies, for the canned server to return."""
    canned: dict[str, dict[str, str]] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        for w in workloads:
            call = channel.unary_unary(w.path, None, None)  # raw bytes
            reply = await call(w.request.SerializeToString(), timeout=30)
            by_key = canned.setdefault(w.method, {})
            by_key[w.canned_key] = base64.b64encode(reply).decode()
    return canned


def machine() -> dict[str, str]:
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout
    return {
        "nproc": str(os.cpu_count()),
        "free -h": free.strip(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ----------------------------------------------------------- measurements


@dataclass
class Bench:
    opts: Options
    ch: ClickHouseServer
    ports: dict[str, int]
    work: Path

    def direct_url(self, w: Workload) -> str:
        return f"{self.ch.url.rstrip('/')}/?{w.http_query()}"

    async def measure(
        self,
        target: str,
        w: Workload,
        concurrency: int,
        *,
        duration: float | None = None,
        tool: str | None = None,
        warmup: float | None = None,
        connections: int = 0,
    ) -> Measurement:
        duration = duration or self.opts.duration
        warmup = self.opts.warmup if warmup is None else warmup
        tool = tool or self.opts.loadgen
        grpc_target = target != "direct"
        if tool == "h2load":
            url = (
                f"http://127.0.0.1:{self.ports[target]}{w.path}"
                if grpc_target
                else self.direct_url(w)
            )
            body = grpc_frame(w.request) if grpc_target else w.http_body
            return await procs.run_h2load(
                target,
                url,
                body,
                grpc=grpc_target,
                concurrency=concurrency,
                duration=duration,
                warmup=warmup,
                work_dir=self.work,
                connections=connections,
            )
        spec = self.spec(target, w, concurrency, duration=duration, warmup=warmup)
        return await procs.run_loadgen(target, spec, self.work)

    def spec(
        self,
        target: str,
        w: Workload,
        concurrency: int,
        *,
        duration: float,
        warmup: float,
        max_calls: int = 0,
    ) -> LoadSpec:
        if target == "direct":
            address = self.ch.url.split("//")[1].rstrip("/")
            path, body = f"/?{w.http_query()}", w.http_body
        else:
            address = f"127.0.0.1:{self.ports[target]}"
            path, body = w.path, w.request.SerializeToString()
        return LoadSpec(
            kind="http" if target == "direct" else "grpc",
            address=address,
            path=path,
            body_hex=body.hex(),
            concurrency=concurrency,
            processes=1 if concurrency < 8 else 2,
            duration=duration,
            warmup=warmup,
            max_calls=max_calls,
        )

    def after(self, w: Workload) -> None:
        # Keep 1000-row parts from piling up (merges would add noise).
        if w.method == "InsertData":
            self.ch.query(f"TRUNCATE TABLE {INSERT_TABLE}")


def line(m: Measurement) -> str:
    s = m.summary()
    return (
        f"{s['rps']:8.0f} rps  p50 {s['p50_ms']:7.2f}  p90 {s['p90_ms']:7.2f}  "
        f"p99 {s['p99_ms']:7.2f} ms  n={m.count} {m.statuses} "
        f"[{m.tool}: {m.connections} conn, {m.in_flight} in flight]"
    )


def merge(parts: list[Measurement]) -> Measurement:
    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return Measurement(
        target=parts[0].target,
        tool=parts[0].tool,
        count=sum(p.count for p in parts),
        seconds=sum(p.seconds for p in parts),
        statuses=statuses,
        latencies=[x for p in parts for x in p.latencies],
        connections=parts[0].connections,
        in_flight=parts[0].in_flight,
        note=parts[0].note,
    )


async def status_checks(
    bench: Bench, receiver: SpanCounter, workloads: list[Workload]
) -> dict[str, Any]:
    """Exact call counts per target, status codes, and spans per traced call."""
    print("\n== status checks (python loadgen, exact call counts)", flush=True)
    concurrency = 8
    per_worker = max(1, bench.opts.check_calls // concurrency)
    report: dict[str, Any] = {}
    for w in workloads:
        for target in TARGETS:
            before = (receiver.spans, receiver.server_spans)
            spec = bench.spec(
                target, w, concurrency, duration=120, warmup=0, max_calls=per_worker
            )
            m = await procs.run_loadgen(target, spec, bench.work)
            bench.after(w)
            calls = sum(m.statuses.values())
            entry: dict[str, Any] = {"calls": calls, "statuses": m.statuses}
            if target == "traced":
                entry.update(await settle_spans(receiver, before, calls))
            report[f"{w.name}/{target}"] = entry
            print(f"  {w.name:10} {target:8} {entry}", flush=True)
    return report


async def settle_spans(
    receiver: SpanCounter, before: tuple[int, int], calls: int
) -> dict[str, Any]:
    """Wait for the batch exporter (5 s schedule) to deliver the spans.

    Every call must bring exactly one SERVER span, and at least one CLIENT
    span per ClickHouse statement it always sends (InsertData's schema
    lookup is cached, so its count of statements varies).
    """
    await receiver.wait_for_server(before[1] + calls, 12.0)
    await asyncio.sleep(0.3)  # a surplus would show as more than expected
    return {
        "spans_expected": calls,
        "spans_received": receiver.server_spans - before[1],
        "client_spans_received": receiver.spans
        - before[0]
        - (receiver.server_spans - before[1]),
    }


async def matrix(
    bench: Bench, workloads: list[Workload]
) -> dict[str, dict[int, dict[str, Measurement]]]:
    results: dict[str, dict[int, dict[str, Measurement]]] = {}
    for w in workloads:
        for c in bench.opts.concurrency:
            print(f"\n== {w.name} ({w.method}) c={c}", flush=True)
            runs: dict[str, list[Measurement]] = {t: [] for t in TARGETS}
            for r in range(bench.opts.rounds):
                for target in TARGETS:
                    m = await bench.measure(target, w, c)
                    bench.after(w)
                    runs[target].append(m)
                    print(f"  round {r + 1} {target:8} {line(m)}", flush=True)
            results.setdefault(w.name, {})[c] = {t: merge(v) for t, v in runs.items()}
    return results


WORKER_CONNECTIONS = 8


async def workers_check(bench: Bench, ch_url: str, logs: Path) -> dict[str, Any]:
    """SIDECAR_WORKERS=N against the one-worker sidecar, SELECT 1 at c=16."""
    argv = [PYTHON, "-m", "sidecar", "serve", "--help"]
    _, helptext = await procs.run_command(argv, 30, {"PYTHONPATH": str(REPO)})
    if "SIDECAR_WORKERS" not in helptext:
        note = "SIDECAR_WORKERS is not a sidecar setting yet (not in --help)"
        print(f"\n== workers: skipped: {note}", flush=True)
        return {"skipped": note}
    port = free_port()
    env = sidecar_env(ch_url, SIDECAR_WORKERS=str(bench.opts.workers))
    server = start_sidecar("sidecar-workers", port, env, logs)
    try:
        await wait_serving(server, port, health=True)
        bench.ports["workers"] = port
        w = WORKLOADS["select1"]
        runs: dict[str, list[Measurement]] = {"sidecar": [], "workers": []}
        print(
            f"\n== workers: {bench.opts.workers} vs 1, select1 c=16 over "
            f"{WORKER_CONNECTIONS} connections",
            flush=True,
        )
        for _ in range(bench.opts.rounds):
            for target in runs:
                # SO_REUSEPORT spreads connections, not calls: give the
                # kernel several connections to hand to the workers.
                m = await bench.measure(target, w, 16, connections=WORKER_CONNECTIONS)
                runs[target].append(m)
                print(f"  {target:8} {line(m)}", flush=True)
        one, many = merge(runs["sidecar"]), merge(runs["workers"])
        return {
            "workers": bench.opts.workers,
            "one": one.summary(),
            "many": many.summary(),
            "ratio": many.rps / one.rps if one.rps else float("nan"),
        }
    finally:
        server.stop()


async def overload_check(bench: Bench, ch_url: str, logs: Path) -> dict[str, Any]:
    """A small SIDECAR_MAX_CONCURRENT_CALLS, driven at several times it."""
    limit, heavy = bench.opts.overload_limit, bench.opts.overload_concurrency
    port = free_port()
    env = sidecar_env(ch_url, SIDECAR_MAX_CONCURRENT_CALLS=str(limit))
    print(f"\n== overload: limit {limit}, c={limit} then c={heavy}", flush=True)
    server = start_sidecar("sidecar-limited", port, env, logs)
    try:
        await wait_serving(server, port, health=True)
        bench.ports["limited"] = port
        w = WORKLOADS["select1"]
        rss_before = procs.rss_bytes(server.pid)
        base = await bench.measure("limited", w, limit, tool="python")
        print(f"  c={limit:<3} {line(base)}", flush=True)
        over = await bench.measure("limited", w, heavy, tool="python")
        print(f"  c={heavy:<3} {line(over)}", flush=True)
        rss_after = procs.rss_bytes(server.pid)
    finally:
        server.stop()
    rejected = sorted(over.status_latency.get("RESOURCE_EXHAUSTED", []))
    total = sum(over.statuses.values())
    base_p99 = percentile(sorted(base.latencies), 99)
    over_p99 = percentile(sorted(over.latencies), 99)
    return {
        "limit": limit,
        "base": base.summary(),
        "over": over.summary(),
        "p99_ratio": over_p99 / base_p99 if base_p99 else float("nan"),
        "rejected_share": len(rejected) / total if total else 0.0,
        "rejected_p50_ms": percentile(rejected, 50) * 1000,
        "rejected_p99_ms": percentile(rejected, 99) * 1000,
        "rss_before_mb": rss_before / MB,
        "rss_after_mb": rss_after / MB,
    }


async def profile(bench: Bench, pid: int, out_dir: Path) -> dict[str, Any]:
    """py-spy on the sidecar under SELECT 1 at c=16; top frames as text."""
    pyspy = Path(PYTHON).parent / "py-spy"
    if not pyspy.exists():
        return {"skipped": f"{pyspy} not installed (pip install py-spy)"}
    raw = out_dir / "profile-select1-c16.raw.txt"
    seconds = bench.opts.profile_seconds
    argv = [
        str(pyspy), "record", "--pid", str(pid), "--duration", f"{seconds:g}",
        "--rate", "200", "--format", "raw", "--output", str(raw),
    ]  # fmt: skip
    print(f"\n== profile: py-spy for {seconds:g} s, select1 c=16", flush=True)
    # --native shows the C frames of grpc's Cython layer (it needs to pause
    # the process); when py-spy cannot unwind them, fall back to Python frames.
    for extra in (["--native"], ["--nonblocking"]):
        show(argv + extra)
        spy = await asyncio.create_subprocess_exec(
            *argv,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.sleep(1.0)
        load = await bench.measure(
            "sidecar", WORKLOADS["select1"], 16, duration=seconds + 1, warmup=0
        )
        output, _ = await spy.communicate()
        if spy.returncode == 0 and raw.exists():
            break
        print(f"  py-spy {extra} failed: {output.decode()[-300:]}", flush=True)
    else:
        return {"skipped": f"py-spy failed: {output.decode()[-500:]}"}
    top = summarize_profile(raw.read_text())
    text_path = out_dir / "profile-select1-c16.txt"
    text_path.write_text(top)
    print(top, flush=True)
    return {"raw": str(raw), "top": str(text_path), "load": load.summary()}


def summarize_profile(raw: str, limit: int = 30) -> str:
    """Self and inclusive sample shares per function from collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    own_line: dict[str, int] = {}
    samples = 0
    for row in raw.splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        seen = set()
        for frame in frames:
            name = _function(frame)
            if name not in seen:
                seen.add(name)
                total[name] = total.get(name, 0) + count
        if frames:
            leaf = frames[-1]
            own[_function(leaf)] = own.get(_function(leaf), 0) + count
            own_line[leaf] = own_line.get(leaf, 0) + count

    def table(title: str, data: dict[str, int]) -> list[str]:
        rows = sorted(data.items(), key=lambda kv: -kv[1])[:limit]
        out = [f"\n{title}"]
        out += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in rows]
        return out

    lines = [f"py-spy samples: {samples}"]
    lines += table("top self time (by function)", own)
    lines += table("top inclusive time (by function)", total)
    lines += table("top self time (by line)", own_line)
    return "\n".join(lines) + "\n"


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``, file shortened."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", f"{REPO}/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# ---------------------------------------------------------------- report


def summaries(
    results: dict[str, dict[int, dict[str, Measurement]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        w: {str(c): {t: m.summary() for t, m in by_t.items()} for c, by_t in cs.items()}
        for w, cs in results.items()
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


Row = tuple[str, str, str, str]


def _row(goal: str, measured: str, figures: str, ok: bool | None) -> Row:
    verdict = "NOT RUN" if ok is None else ("met" if ok else "MISSED")
    return goal, measured, figures, verdict


def _rps_goal(goal: str, a: dict[str, Any], b: dict[str, Any], floor: float) -> Row:
    r = ratio(a["rps"], b["rps"])
    return _row(goal, f"{r:.2f}", f"{a['rps']:.0f} / {b['rps']:.0f} rps", r >= floor)


def _latency_goals(name: str, one: dict[str, Any]) -> list[Row]:
    rows = []
    for q, limit in (("p50", 0.5), ("p99", 2.0)):
        mine, theirs = one["sidecar"][f"{q}_ms"], one["direct"][f"{q}_ms"]
        added = mine - theirs
        figures = f"{mine:.2f} vs {theirs:.2f} ms"
        goal = f"{name} c=1 added {q} <= {limit:g} ms"
        rows.append(_row(goal, f"{added:+.2f} ms", figures, added <= limit))
    return rows


def _span_goal(checks: dict[str, Any]) -> Row:
    traced = [v for v in checks.values() if "spans_expected" in v]
    short = [
        v
        for v in traced
        if v["spans_received"] < v["spans_expected"]
        or v["client_spans_received"] < v["spans_expected"]
    ]
    expected = sum(v["spans_expected"] for v in traced)
    received = sum(v["spans_received"] for v in traced)
    clients = sum(v["client_spans_received"] for v in traced)
    figures = f"{received} SERVER spans for {expected} calls, {clients} CLIENT spans"
    return _row("no span dropped", f"{len(short)} workloads short", figures, not short)


def _other_goals(report: dict[str, Any]) -> list[Row]:
    rows = []
    wk = report["workers"]
    goal = f"{wk.get('workers', 2)} workers / 1 worker SELECT 1 c=16 RPS >= 1.3"
    if "ratio" in wk:
        rows.append(_rps_goal(goal, wk["many"], wk["one"], 1.3))
    else:
        rows.append(_row(goal, "n/a", wk["skipped"], None))
    o = report["overload"]
    figures = f"{o['over']['p99_ms']:.1f} vs {o['base']['p99_ms']:.1f} ms"
    goal = f"overload p99 admitted (c={o['over']['in_flight']}) / at limit <= 2"
    rows.append(_row(goal, f"{o['p99_ratio']:.2f}", figures, o["p99_ratio"] <= 2))
    share = o["rejected_share"]
    figures = (
        f"{100 * share:.1f}% RESOURCE_EXHAUSTED, p50 {o['rejected_p50_ms']:.2f} ms"
    )
    fast = share > 0 and o["rejected_p99_ms"] < 5
    measured = f"p99 {o['rejected_p99_ms']:.2f} ms"
    rows.append(_row("overload excess answered < 5 ms", measured, figures, fast))
    rss = report["rss"]
    idle, after = rss["idle_mb"], rss["after_mb"]
    rows.append(_row("RSS idle < 80 MB", f"{idle:.0f} MB", "sidecar", idle < 80))
    goal = f"RSS after {rss['seconds']:g} s at c=64 < 150 MB"
    figures = f"point query, {rss['load']['rps']:.0f} rps"
    rows.append(_row(goal, f"{after:.0f} MB", figures, after < 150))
    return rows


def goals(report: dict[str, Any]) -> list[Row]:
    """(goal, measured, figures, verdict) rows, from the report's figures."""
    cells: dict[str, dict[str, dict[str, Any]]] = report["matrix"]
    rows: list[Row] = []
    if s := cells.get("select1", {}).get("16"):
        goal = "SELECT 1 c=16 sidecar / bare grpc.aio RPS >= 0.6"
        rows.append(_rps_goal(goal, s["sidecar"], s["canned"], 0.6))
    if p := cells.get("point", {}).get("16"):
        goal = "point query c=16 sidecar / direct HTTP RPS >= 0.7"
        rows.append(_rps_goal(goal, p["sidecar"], p["direct"], 0.7))
    for name in ("select1", "point"):
        if one := cells.get(name, {}).get("1"):
            rows.extend(_latency_goals(name, one))
    for name, by_c in cells.items():
        for c, t in by_c.items():
            goal = f"{name} c={c} tracing on / off RPS >= 0.9"
            rows.append(_rps_goal(goal, t["traced"], t["sidecar"], 0.9))
    rows.append(_span_goal(report["checks"]))
    return rows + _other_goals(report)


def render(report: dict[str, Any]) -> str:
    out = ["", "== results (ratios first, absolute figures beside)"]
    for name, by_c in report["matrix"].items():
        for c, t in by_c.items():
            s, tr, d, k = (t[x] for x in TARGETS)
            out.append(
                f"{name:10} c={c:<3} sidecar/canned {ratio(s['rps'], k['rps']):5.2f}  "
                f"sidecar/direct {ratio(s['rps'], d['rps']):5.2f}  "
                f"traced/off {ratio(tr['rps'], s['rps']):5.2f}"
            )
            for target in TARGETS:
                x = t[target]
                out.append(
                    f"    {target:8} {x['rps']:8.0f} rps  p50 {x['p50_ms']:7.2f}  "
                    f"p90 {x['p90_ms']:7.2f}  p99 {x['p99_ms']:7.2f} ms  "
                    f"n={x['count']} {x['statuses']} "
                    f"({x['connections']} conn, {x['in_flight']} in flight)"
                )
    out += [
        "",
        "== goals",
        "| goal | measured | figures | verdict |",
        "|---|---|---|---|",
    ]
    out += [f"| {g} | {m} | {f} | {v} |" for g, m, f, v in goals(report)]
    return "\n".join(out) + "\n"


async def run(opts: Options) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = opts.results
    logs = out_dir / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: nproc {info['nproc']}, python {info['python']}\n{info['free -h']}")
    print(f"options: {opts}", flush=True)
    workloads = [WORKLOADS[n] for n in opts.workloads]
    receiver = SpanCounter()
    servers: list[Server] = []
    report: dict[str, Any] = {"machine": info, "options": repr(opts)}
    with running_clickhouse() as ch:
        print(f"\n== ClickHouse at {ch.url}; creating tables", flush=True)
        for sql in setup_statements():
            print(f"  sql> {sql}", flush=True)
            ch.query(sql, timeout=300)
        otlp_port = await receiver.start()
        ports = {t: free_port() for t in ("sidecar", "traced", "canned")}
        try:
            plain = start_sidecar(
                "sidecar", ports["sidecar"], sidecar_env(ch.url), logs
            )
            servers.append(plain)
            traced_env = sidecar_env(
                ch.url,
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
                OTEL_EXPORTER_OTLP_INSECURE="true",
            )
            traced = start_sidecar("sidecar-traced", ports["traced"], traced_env, logs)
            servers.append(traced)
            await wait_serving(plain, ports["sidecar"], health=True)
            await wait_serving(traced, ports["traced"], health=True)
            await asyncio.sleep(1.0)
            idle = procs.rss_bytes(plain.pid)
            canned_path = logs / "canned-replies.json"
            canned_path.write_text(
                json.dumps(await capture_replies(ports["sidecar"], workloads))
            )
            argv = [
                PYTHON,
                "-m",
                "bench.canned",
                str(canned_path),
                str(ports["canned"]),
            ]
            canned = Server("canned", argv, {"PYTHONPATH": str(REPO)}, logs)
            servers.append(canned)
            await wait_serving(canned, ports["canned"], health=False)

            bench = Bench(opts, ch, ports, logs)
            report["checks"] = await status_checks(bench, receiver, workloads)
            results = await matrix(bench, workloads)
            report["matrix"] = summaries(results)
            report["workers"] = await workers_check(bench, ch.url, logs)
            report["overload"] = await overload_check(bench, ch.url, logs)
            report["profile"] = await profile(bench, plain.pid, out_dir)
            print(
                f"\n== RSS: {opts.rss_duration:g} s of point queries at c=64",
                flush=True,
            )
            load = await bench.measure(
                "sidecar", WORKLOADS["point"], 64, duration=opts.rss_duration, warmup=0
            )
            print(f"  {line(load)}", flush=True)
            report["rss"] = {
                "idle_mb": idle / MB,
                "after_mb": procs.rss_bytes(plain.pid) / MB,
                "seconds": opts.rss_duration,
                "load": load.summary(),
            }
            before_stop = receiver.spans
            traced.stop()
            await asyncio.sleep(1.0)
            report["spans_total"] = {
                "received": receiver.spans,
                "flushed_at_shutdown": receiver.spans - before_stop,
                "exports": receiver.exports,
            }
        finally:
            for server in reversed(servers):
                server.stop()
            await receiver.stop()
    report["commands"] = procs.COMMANDS
    text = render(report)
    print(text)
    (out_dir / f"report-{stamp}.txt").write_text(text)
    (out_dir / f"report-{stamp}.json").write_text(json.dumps(report, indent=1))
    print(f"saved {out_dir}/report-{stamp}.txt and .json; server logs in {logs}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    asyncio.run(run(opts))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        # `python bench/run.py`: make the repository importable.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        __package__ = "bench"
    sys.exit(main())
