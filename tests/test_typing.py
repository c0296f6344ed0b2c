"""The wrong way to use the pool fails in the type checker, not only at run time."""

from __future__ import annotations

from pathlib import Path

from mypy import api

WRONG = """
from sidecar.pool import Pool

async def handler(pool: Pool) -> None:
    client = await pool.client()
"""

RIGHT = """
from sidecar.pool import Pool

async def handler(pool: Pool) -> None:
    async with pool.client() as client:
        print(client.info.version)
"""

ROOT = Path(__file__).resolve().parent.parent


def _mypy(source: str, tmp_path: Path) -> tuple[str, int]:
    module = tmp_path / "snippet.py"
    module.write_text(source)
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--config-file", str(ROOT / "pyproject.toml"),
         str(module)]
    )  # fmt: skip
    return out + err, status


def test_awaiting_pool_client_is_a_type_error(tmp_path: Path) -> None:
    output, status = _mypy(WRONG, tmp_path)

    assert status == 1
    assert 'Incompatible types in "await"' in output


def test_entering_pool_client_type_checks(tmp_path: Path) -> None:
    output, status = _mypy(RIGHT, tmp_path)

    assert status == 0, output
