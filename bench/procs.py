"""Processes the runner starts: servers, load generators, and their figures.

Every command is printed before it runs. Servers are stopped by their own
process id (SIGTERM, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .loadgen import LoadSpec

__all__ = [
    "Measurement",
    "Server",
    "free_port",
    "percentile",
    "rss_bytes",
    "run_command",
    "run_h2load",
    "run_loadgen",
    "show",
]

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
COMMANDS: list[str] = []


def show(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Print (and remember) a command exactly as it is run."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    line = (prefix + " " if prefix else "") + shlex.join(argv)
    COMMANDS.append(line)
    print(f"  $ {line}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Measurement:
    """What ghz would report for one load run."""

    target: str
    tool: str
    count: int
    seconds: float
    statuses: dict[str, int]
    latencies: list[float] = field(repr=False)
    connections: int = 1
    in_flight: int = 1
    note: str = ""
    # Latencies of calls that did not succeed, by status (loadgen only).
    status_latency: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        data = asdict(self)
        del data["latencies"]
        del data["status_latency"]
        data.update(
            rps=self.rps,
            p50_ms=percentile(ordered, 50) * 1000,
            p90_ms=percentile(ordered, 90) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
        )
        return data


class Server:
    """A long-running child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        show(argv, env)
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 15.0) -> int | None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
        pending.extend(_children(current))
    return total


async def run_command(
    argv: Sequence[str], limit_seconds: float, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Run a command to its end (killed after ``limit_seconds``)."""
    show(argv, env)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode("utf-8", "replace")


def _read_h2load_log(log: Path, body: Path) -> tuple[dict[str, int], list[float]]:
    """Statuses and successful latencies from ``start<TAB>status<TAB>us`` lines."""
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        name = f"HTTP {parts[1]}" if parts[1] != "-1" else "error"
        statuses[name] = statuses.get(name, 0) + 1
        if parts[1] == "200":
            latencies.append(int(parts[2]) / 1e6)
    log.unlink()
    body.unlink()
    return statuses, latencies


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _grpc_shape(concurrency: int) -> tuple[int, int]:
    """(connections, streams per connection) for a gRPC concurrency."""
    connections = max(1, concurrency // 16)
    return connections, max(1, concurrency // connections)


async def run_h2load(
    target: str,
    url: str,
    body: bytes,
    *,
    grpc: bool,
    concurrency: int,
    duration: float,
    warmup: float,
    work_dir: Path,
    connections: int = 0,
) -> Measurement:
    """One h2load run; latencies come from its per-request log.

    ``connections`` (gRPC only) spreads the calls over that many connections;
    0 keeps the default shape (one connection per 16 calls in flight).
    """
    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=".body", delete=False) as f:
        f.write(body)
    log = Path(f.name).with_suffix(".log")
    argv = ["h2load", "-t", "1", "-D", _ms(duration), "-d", f.name]
    if warmup > 0:
        argv += [f"--warm-up-time={_ms(warmup)}"]
    if grpc and connections:
        streams = max(1, concurrency // connections)
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    elif grpc:
        connections, streams = _grpc_shape(concurrency)
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        connections, streams = concurrency, 1
        argv += ["--h1"]
    argv += ["-c", str(connections), "-m", str(streams), f"--log-file={log}", url]
    code, output = await run_command(argv, duration + warmup + 60)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", output)
    if code != 0 or done is None:
        raise RuntimeError(f"h2load failed ({code}):\n{output[-2000:]}")
    statuses, latencies = _read_h2load_log(log, Path(f.name))
    return Measurement(
        target=target,
        tool="h2load",
        count=len(latencies),
        seconds=duration,
        statuses=statuses,
        latencies=latencies,
        connections=connections,
        in_flight=connections * streams,
        note="gRPC status not visible to h2load" if grpc else "",
    )


async def run_loadgen(target: str, spec: LoadSpec, work_dir: Path) -> Measurement:
    """One run of the Python multi-process client (sees gRPC statuses)."""
    spec_path = work_dir / f"loadgen-{target}.json"
    out_path = work_dir / f"loadgen-{target}.out.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    argv = [PYTHON, "-m", "bench.loadgen", str(spec_path), str(out_path)]
    code, output = await run_command(argv, spec.warmup + spec.duration + 120)
    if code != 0:
        raise RuntimeError(f"loadgen failed ({code}):\n{output[-2000:]}")
    result = json.loads(out_path.read_text())
    statuses: dict[str, int] = result["statuses"]
    ok = statuses.get("OK", 0) + statuses.get("HTTP 200", 0)
    return Measurement(
        target=target,
        tool="python-loadgen",
        count=ok,
        seconds=spec.duration,
        statuses=statuses,
        latencies=result["latencies"],
        connections=min(spec.processes, spec.concurrency),
        in_flight=spec.concurrency,
        status_latency=result["status_latency"],
    )
