"""Session fixtures shared by the whole test suite.

Each server the tests need gets its own section below. A fixture that starts
something also stops it, so nothing outlives the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from clickhouse_server import running_clickhouse

# --- ClickHouse --------------------------------------------------------------


@pytest.fixture(scope="session")
def clickhouse_url() -> Iterator[str]:
    """Base URL of a ClickHouse HTTP endpoint, e.g. ``http://127.0.0.1:8123/``.

    CLICKHOUSE_URL selects an external server. Without it, a throwaway 18.16
    server (see tests/clickhouse_server.py) runs for the session.
    """
    external = os.environ.get("CLICKHOUSE_URL")
    if external:
        yield external
        return

    with running_clickhouse() as server:
        yield server.url


# --- gRPC server -------------------------------------------------------------

# --- Embedded engine ---------------------------------------------------------
