"""A Node.js client built from proto/ talks to the sidecar.

Proves the contract is usable outside Python: tests/clients/node_client.js
loads the .proto at run time with @grpc/proto-loader and checks the answers
itself. Its packages come from ``npm ci`` in tests/clients (scripts/test runs
it); without node or those packages this test fails, it never skips.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from harness import Running

CLIENTS = Path(__file__).parent / "clients"
SCRIPT = CLIENTS / "node_client.js"
TIMEOUT = 60.0


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 18 or newer")
    if not (CLIENTS / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(
            "tests/clients/node_modules is missing: run "
            "`npm ci --ignore-scripts --prefix tests/clients` (scripts/test does)"
        )
    return node


async def test_node_client_queries_and_checks_tables(sidecar: Running) -> None:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        sidecar.target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    report = (out + err).decode(errors="replace")
    assert process.returncode == 0, report
    assert "CheckTableExists: ok" in report, report
