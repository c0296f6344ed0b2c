"""The throwaway ClickHouse server and the clickhouse_url fixture."""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import clickhouse_server
import pytest
from clickhouse_server import (
    KEEP_ALIVE_TIMEOUT,
    ClickHouseServer,
    running_clickhouse,
)

# Loopback only: keep an http_proxy variable from rerouting the requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, sql: str, **params: str) -> str:
    full = url + "?" + urllib.parse.urlencode(params) if params else url
    with _opener.open(full, data=sql.encode(), timeout=30) as response:
        body: bytes = response.read()

    return body.decode()


@pytest.fixture(scope="module")
def server() -> Iterator[ClickHouseServer]:
    with running_clickhouse() as started:
        yield started


def test_clickhouse_url_answers_queries(clickhouse_url: str) -> None:
    assert clickhouse_url.startswith("http://")
    assert clickhouse_url.endswith("/")

    assert _post(clickhouse_url, "SELECT 1 + 1") == "2\n"


def test_clickhouse_url_is_the_throwaway_18_16_unless_given(
    clickhouse_url: str,
) -> None:
    version = _post(clickhouse_url, "SELECT version()")

    if os.environ.get("CLICKHOUSE_URL"):
        assert version[0].isdigit()  # an external server: any version
    else:
        assert version.startswith("18.16.")


def test_server_reports_version_and_utc(server: ClickHouseServer) -> None:
    assert server.version.startswith("18.16.")
    assert server.url == f"http://127.0.0.1:{server.http_port}/"

    assert server.query("SELECT timezone()") == "Etc/UTC\n"


def test_sidecar_user_needs_its_password(server: ClickHouseServer) -> None:
    assert server.query("SELECT 1", user="sidecar") == "1\n"

    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(server.url, "SELECT 1", user="sidecar", password="wrong")
    with caught.value as error:
        assert error.code == 401
        assert error.read().startswith(b"Code: 193,")


def test_readonly_user_cannot_write(server: ClickHouseServer) -> None:
    sql = "SELECT value FROM system.settings WHERE name = 'readonly'"
    assert server.query(sql, user="sidecar_ro") == "1\n"

    with pytest.raises(urllib.error.HTTPError) as caught:
        server.query("CREATE TABLE t (x UInt8) ENGINE = Memory", user="sidecar_ro")
    with caught.value as error:
        assert error.read().startswith(b"Code: 164,")


def test_keep_alive_timeout_is_set(server: ClickHouseServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        connection.request("GET", "/?query=SELECT%201")
        response = connection.getresponse()
        assert response.read() == b"1\n"
    finally:
        connection.close()

    assert response.getheader("Keep-Alive") == f"timeout={KEEP_ALIVE_TIMEOUT}"


def test_listens_only_on_loopback(server: ClickHouseServer) -> None:
    config = (server.workdir / "config.xml").read_text()

    assert "<listen_host>127.0.0.1</listen_host>" in config
    assert "interserver_http_port" not in config


def test_retries_when_a_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = clickhouse_server._free_ports
    offered: list[list[int]] = []

    def first_taken_then_free(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not offered:
            ports[0] = taken.getsockname()[1]
        offered.append(ports)
        return ports

    monkeypatch.setattr(clickhouse_server, "_free_ports", first_taken_then_free)
    with taken, running_clickhouse() as started:
        assert len(offered) == 2
        assert started.http_port == offered[1][0]
        assert started.query("SELECT 1") == "1\n"


def test_stop_ends_process_and_removes_directory() -> None:
    with running_clickhouse() as started:
        workdir = started.workdir
        assert started.is_running()

    assert not started.is_running()
    assert not workdir.exists()
    started.stop()  # idempotent
