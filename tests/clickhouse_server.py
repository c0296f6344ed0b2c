"""A throwaway ClickHouse 18.16 server for the test session.

`running_clickhouse()` writes a config.xml and users.xml into a fresh temporary
directory, starts ``clickhouse-server`` on two free loopback ports, waits for
it to answer, and on exit stops it and removes the directory::

    with running_clickhouse() as server:
        assert server.query("SELECT 1") == "1\\n"

Everything lives in the temporary directory: data, tmp, user_files,
format_schemas, logs (``log/server.log`` at ``information``,
``log/server.err.log``) and the server's own stdout/stderr (``stdout.log``).
Only ``listen_host`` 127.0.0.1 is used; the interserver port is left out of the
config, so 18.16 does not open it. 18.16 runs as root without complaint.

Users (see `USERS`): ``default`` without a password, ``sidecar`` with a
password (stored as SHA-256), and ``sidecar_ro`` with a password and the
``readonly`` profile (``readonly=1``). All are limited to 127.0.0.1 and ::1 and
share the ``default`` quota, which only counts (every limit 0).

Facts about ClickHouse 18.16.1 over HTTP, observed on Debian's package
(18.16.1+ds-7.3+b2) with this config:

- ``SELECT version()`` returns ``18.16.1``. With ``<timezone>UTC</timezone>``,
  ``SELECT timezone()`` returns ``Etc/UTC`` (not ``UTC``), and
  ``toTypeName(now())`` is plain ``DateTime``.
- Keep-alive: ``keep_alive_timeout`` is 10 s when the config omits it; this
  config sets it to `KEEP_ALIVE_TIMEOUT` (3 s). Responses carry
  ``Keep-Alive: timeout=3``; an idle connection is still usable after 2.8 s
  and the server has closed it (clean EOF) at 3.3 s. A pooled client must keep
  its idle timeout below this, or retry once on a closed connection.
- ``default_format=JSONCompact`` (URL parameter) works; ``FORMAT`` in the
  query overrides it. There is no JSONCompactEachRow and no
  RowBinaryWithNamesAndTypes; TabSeparatedWithNamesAndTypes, JSON,
  JSONCompact, JSONEachRow, RowBinary and Native exist.
- No ``X-ClickHouse-Exception-Code``, ``X-ClickHouse-Query-Id`` or
  ``X-ClickHouse-Summary`` headers. ``send_progress_in_http_headers=1`` is an
  accepted setting, but no ``X-ClickHouse-Progress`` header was seen even for a
  0.8 s query. The only ClickHouse header is
  ``X-ClickHouse-Server-Display-Name`` (not sent on ``/ping``).
- An error before the first byte is sent comes as a non-200 status with the
  body ``Code: <n>, e.displayText() = DB::Exception: <message>, e.what() =
  DB::Exception`` plus a newline. The status depends on the code: 400 for a
  syntax error (62); 404 for unknown identifier (47), function (46), table (60)
  or setting (115); 401 with ``WWW-Authenticate`` for unknown user (192) and
  wrong password (193); 500 for the rest, such as readonly (164), timeout
  (159), cancelled (394), throwIf (395), duplicate query_id (216). Parse the
  code from the body, never from the status.
- Errors after HTTP 200: the server holds back about the first 1 MB of
  output before sending the status line (``buffer_size=10`` does not lower
  this). The suggested ``SELECT throwIf(number = 200000) FROM system.numbers
  LIMIT 300000 SETTINGS max_block_size=1000`` has written only 400 KB
  (``0`` and a newline per row) when it fails, so it returns 500 with just
  the error text, with or without TabSeparatedWithNamesAndTypes. In
  ``SELECT number, throwIf(number = N) FROM system.numbers`` the switch is
  between N = 120000 (500) and N = 130000 (200). A query that has written
  more than that (N = 2000000) returns 200 and the body
  is the complete rows of the blocks before the failing one, then directly,
  at the start of a line, ``Code: 395, e.displayText() = DB::Exception: Value
  passed to 'throwIf' function is non zero, e.what() = DB::Exception\\n``.
  The chunked body ends cleanly, so nothing at the transport level shows the
  failure. TabSeparatedWithNamesAndTypes behaves the same: the names line,
  the types line, rows, then the ``Code: ...`` line. The same happens with
  ``send_progress_in_http_headers=0`` (the default). A reader must check
  every line it cannot parse as a row for this pattern.
- ``wait_end_of_query=1`` works: the whole result is buffered, so the same
  failure returns 500 with only the error text, and a 22 MB success streams
  with 200.
- ``query_id=...`` works and shows in ``system.processes``; a second query
  with a running id fails with code 216; ``replace_running_query=1`` cancels
  the old one instead.
- ``KILL QUERY WHERE query_id = '...'`` works with ``SYNC`` (returns the row
  ``finished<TAB>id<TAB>user<TAB>query``) and ``ASYNC`` (``waiting...``); no
  match gives 200 with an empty body. The killed query's client gets 500 and
  ``Code: 394 ... Query was cancelled``.
- Closing the HTTP connection does NOT cancel a running query: a
  ``SELECT count() FROM system.numbers`` kept running after its client left
  (there is no ``cancel_http_readonly_queries_on_client_close`` in 18.16). A
  query still writing output stops when the write fails. The sidecar must
  send ``query_id`` and ``KILL QUERY`` on cancel.
- ``max_execution_time=1`` as a URL parameter works: 500, ``Code: 159 ...
  Timeout exceeded: elapsed 1.003999952 seconds, maximum: 1``.
- ``readonly=2`` as a URL parameter works: reads and setting changes are
  allowed, CREATE and INSERT fail with 164. ``readonly=1`` in the URL forbids
  writes, but URL parameters are applied in order, so ``readonly=1&readonly=0``
  allows writes: the sidecar must never pass caller parameters through. For a
  user whose profile has ``readonly=1`` the server itself rejects any
  ``readonly`` URL parameter (164, "Cannot override setting (readonly)") but
  accepts other settings such as ``max_threads``.
- Sessions: ``session_id`` and ``session_timeout`` work (``SET`` and temporary
  tables persist); a timeout above ``max_session_timeout`` (3600) fails with
  374, ``session_check=1`` on an unknown id with 372, a concurrent query in a
  locked session with 373, and ``SET`` without a session with 113.
- Authentication: ``user``/``password`` URL parameters, the
  ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers and HTTP basic auth all
  work (a wrong password in each gives 401). There is no ``currentUser()``,
  ``queryID()`` or ``getSetting()``: read settings from ``system.settings``;
  ``system.processes`` lists each running query with its ``user``.
- ``max_server_memory_usage`` does not exist in 18.16; ``max_memory_usage`` is
  a per-query setting in the profile.
- SIGTERM stops the server in about 2 s. When a port is taken the server logs
  ``Net Exception: Address already in use: 127.0.0.1:<port>`` about 1 s after
  start and exits; `start_clickhouse` then retries on new ports.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final
from xml.sax.saxutils import escape

__all__ = [
    "KEEP_ALIVE_TIMEOUT",
    "USERS",
    "ClickHouseServer",
    "ClickHouseStartError",
    "User",
    "find_server_command",
    "running_clickhouse",
    "start_clickhouse",
]

KEEP_ALIVE_TIMEOUT: Final = 3
STARTUP_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 15.0
PORT_CLASH: Final = "Address already in use"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    profile: str


USERS: Final = {
    "default": User("default", "", "default"),
    "sidecar": User("sidecar", "sidecar-test-password", "default"),
    "sidecar_ro": User("sidecar_ro", "sidecar-ro-test-password", "readonly"),
}


class ClickHouseStartError(RuntimeError):
    """The server did not come up; the message ends with its log tail."""


class _PortTaken(Exception):
    """The server exited because one of its ports was taken meanwhile."""


# No proxies: an http_proxy variable must not reroute loopback requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClickHouseServer:
    """A running server process and the directory it owns."""

    def __init__(
        self,
        workdir: Path,
        process: subprocess.Popen[bytes],
        output: IO[bytes],
        http_port: int,
        tcp_port: int,
        display_name: str,
    ) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.tcp_port = tcp_port
        self.display_name = display_name
        self.version = ""
        self._process = process
        self._output = output

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def pid(self) -> int:
        return self._process.pid

    def is_running(self) -> bool:
        return self._process.poll() is None

    def query(self, sql: str, user: str = "default", timeout: float = 30.0) -> str:
        """Run one query over HTTP and return the body; raise on non-200."""
        params = {"user": user, "password": USERS[user].password}
        request = urllib.request.Request(
            self.url + "?" + urllib.parse.urlencode(params), data=sql.encode()
        )
        with _opener.open(request, timeout=timeout) as response:
            body: bytes = response.read()

        return body.decode()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's stdout and error log, for messages."""
        parts = []
        for name in ("stdout.log", "log/server.err.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}\n" + "\n".join(text))

        return "\n".join(parts) or "(no server output)"

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL; then remove the directory. Idempotent."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

        self._output.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def find_server_command() -> list[str]:
    """The command that starts a server: clickhouse-server, or clickhouse server."""
    for directory in ("", "/usr/sbin/", "/usr/bin/"):
        found = shutil.which(directory + "clickhouse-server")
        if found:
            return [found]

    found = shutil.which("clickhouse") or shutil.which("/usr/bin/clickhouse")
    if found:
        return [found, "server"]

    raise ClickHouseStartError(
        "clickhouse-server not found: install it "
        "(apt-get install clickhouse-server) or set CLICKHOUSE_URL"
    )


def start_clickhouse(
    startup_timeout: float = STARTUP_TIMEOUT, attempts: int = 3
) -> ClickHouseServer:
    """Start a server, retrying on fresh ports if one was taken meanwhile."""
    command = find_server_command()
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(command, startup_timeout)
        except _PortTaken:
            if attempt == attempts:
                raise ClickHouseStartError(
                    f"ports taken on all {attempts} attempts"
                ) from None

    raise AssertionError("unreachable")


@contextmanager
def running_clickhouse(
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[ClickHouseServer]:
    server = start_clickhouse(startup_timeout)
    try:
        yield server
    finally:
        server.stop()


def _start_once(command: list[str], startup_timeout: float) -> ClickHouseServer:
    workdir = Path(tempfile.mkdtemp(prefix="clickhouse-sidecar-test-"))
    http_port, tcp_port = _free_ports(2)
    display_name = "sidecar-test-" + secrets.token_hex(6)
    _write_config(workdir, http_port, tcp_port, display_name)

    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        output = cleanup.enter_context((workdir / "stdout.log").open("wb"))
        process = subprocess.Popen(
            [*command, f"--config-file={workdir / 'config.xml'}"],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = ClickHouseServer(
            workdir, process, output, http_port, tcp_port, display_name
        )
        cleanup.callback(server.stop)

        _wait_until_ready(server, startup_timeout)
        server.version = server.query("SELECT version()").strip()
        cleanup.pop_all()

    return server


def _wait_until_ready(server: ClickHouseServer, timeout: float) -> None:
    """Poll until our server (not another one on the port) answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.is_running():
            tail = server.log_tail()
            if PORT_CLASH in tail:
                raise _PortTaken(tail)
            raise ClickHouseStartError(f"clickhouse-server exited early:\n{tail}")

        if _answers_as(server):
            return
        time.sleep(0.1)

    raise ClickHouseStartError(
        f"clickhouse-server did not answer within {timeout:.0f} s "
        f"on {server.url}:\n{server.log_tail()}"
    )


def _answers_as(server: ClickHouseServer) -> bool:
    """True once SELECT 1 answers and the display name is ours."""
    try:
        with _opener.open(server.url + "?query=SELECT%201", timeout=1) as response:
            name = response.headers.get("X-ClickHouse-Server-Display-Name")
            return bool(response.read() == b"1\n" and name == server.display_name)
    except (urllib.error.URLError, OSError):
        return False


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; the server may still lose a race for one."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _write_config(
    workdir: Path, http_port: int, tcp_port: int, display_name: str
) -> None:
    for folder in ("data", "tmp", "user_files", "format_schemas", "log"):
        (workdir / folder).mkdir()

    root = escape(str(workdir))
    config = _CONFIG.format(
        root=root,
        http_port=http_port,
        tcp_port=tcp_port,
        display_name=display_name,
        keep_alive=KEEP_ALIVE_TIMEOUT,
    )
    (workdir / "config.xml").write_text(config)
    (workdir / "users.xml").write_text(_users_xml())


def _users_xml() -> str:
    users = []
    for user in USERS.values():
        digest = hashlib.sha256(user.password.encode()).hexdigest()
        password = (
            f"<password_sha256_hex>{digest}</password_sha256_hex>"
            if user.password
            else "<password></password>"
        )
        users.append(
            _USER.format(name=user.name, password=password, profile=user.profile)
        )

    return _USERS.format(users="".join(users))


_CONFIG: Final = """\
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{root}/log/server.log</log>
        <errorlog>{root}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <display_name>{display_name}</display_name>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <keep_alive_timeout>{keep_alive}</keep_alive_timeout>
    <max_connections>1024</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <umask>027</umask>
</yandex>
"""

_USERS: Final = """\
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>{users}
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""

_USER: Final = """
        <{name}>
            {password}
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>{profile}</profile>
            <quota>default</quota>
        </{name}>"""
