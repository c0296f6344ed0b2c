"""One statement on its own chdb connection: the blocking half of the engine.

What chdb (chdb-core 26.9) does, and what this module does about it:

* A connection serialises its own queries, and a failed query can leave
  partial output that leaks into the next result on the same connection.
  So every statement gets a fresh connection (about 0.7 ms), which also
  keeps ``USE``/``SET`` from leaking between queries.
* chdb has no per-query ``query_id``. The query is tagged with the
  ``log_comment`` setting instead (the caller's ``log_comment`` wins, and is
  then the tag), and a kill runs :attr:`Statement.kill_sql`:
  ``KILL QUERY WHERE Settings['log_comment'] = ... ASYNC``. ``queryID()``
  inside the query is chdb's own UUID, not ``Query.query_id``. The
  :class:`Registry` fails a second query with an id that is still running
  with code 216, as on a server.
* Errors arrive as ``RuntimeError`` with ClickHouse's own text
  (``Code: 60. DB::Exception: ... (UNKNOWN_TABLE)``); :func:`translate`
  turns them into the sidecar's errors.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, TypeVar

from chdb import _chdb

from sidecar.engine import Query
from sidecar.errors import (
    ClickHouseError,
    RequestError,
    UnavailableError,
    parse_exception_text,
)
from sidecar.sql import quote_identifier, quote_string

__all__ = [
    "EXECUTE_FORMAT",
    "TRAILING_FORMAT",
    "Registry",
    "Statement",
    "connect",
    "is_not_streamable",
    "translate",
]

T = TypeVar("T")

EXECUTE_FORMAT = "TabSeparated"

TRAILING_FORMAT = re.compile(
    r"^(?P<head>.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.S | re.I
)
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The stub (_chdb/__init__.pyi) omits the pybind connection class.
connect: Callable[[str], Any] = _chdb.connect  # type: ignore[attr-defined]


def _is_text(body: bytes) -> bool:
    """Whether an INSERT body can travel inside a query string (UTF-8)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _set_statement(settings: Mapping[str, str]) -> str:
    for name in settings:
        if not _SETTING_NAME.fullmatch(name):
            raise RequestError(f"invalid setting name {name!r}")
    pairs = (f"{name} = {quote_string(v)}" for name, v in settings.items())
    return "SET " + ", ".join(pairs)


@dataclass
class Statement:
    """A query's connection, stream or insert handle, and kill state.

    Blocking methods run in worker threads, one at a time per statement;
    the flags are plain attributes read across threads (atomic under the
    GIL).
    """

    query: Query
    tag: str
    killed: bool = False
    executing: bool = False
    conn: Any = None
    stream: Any = None
    insert: Any = None
    guard: Lock = field(default_factory=Lock)

    @property
    def kill_sql(self) -> str:
        tag = quote_string(self.tag)
        return f"KILL QUERY WHERE Settings['log_comment'] = {tag} ASYNC"

    def locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self.guard:
            try:
                return fn(*args)
            except BaseException:
                # A failed step ends the query: nothing is left to kill.
                self.executing = False
                raise

    def open(self, path: str, database: str) -> None:
        self.conn = connect(path)
        self.conn.query(f"USE {quote_identifier(database)}", "TSV")

        settings = {"log_comment": self.tag, **self.query.settings}
        self.conn.query(_set_statement(settings), "TSV")

    def _start(self) -> None:
        if self.killed:
            raise RuntimeError(
                "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
            )
        self.executing = True

    def run(self, fmt: str) -> bytes:
        self._start()
        try:
            params = dict(self.query.params)
            result = self.conn.query(self.query.sql, fmt, params=params)
        finally:
            self.executing = False
        return bytes(result.bytes())

    def run_with_body(self, body: bytes) -> bytes:
        match = TRAILING_FORMAT.match(self.query.sql)
        if match is None or _is_text(body):
            # chdb's streaming insert drops errors raised after parsing (a
            # MATERIALIZED expression that throws): the rows vanish and the
            # insert reports success. A plain query raises them.
            return self._run_concatenated(body)

        # TODO(#4): binary formats have no other way in; chdb may lose an
        # error raised after parsing here (see above).
        self.begin_insert(match["head"], match["fmt"])
        self.append(body)
        return self.finish_insert()

    def run_piece(self, sql: str, body: bytes) -> bytes:
        """One INSERT of a stream's piece, under its own statement text."""
        return self._run_concatenated(body, sql)

    def _run_concatenated(self, body: bytes, sql: str | None = None) -> bytes:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(
                "binary INSERT data needs the SQL to end with FORMAT <name>"
            ) from exc
        self._start()
        try:
            sql = f"{sql or self.query.sql}\n{text}"
            params = dict(self.query.params)
            result = self.conn.query(sql, EXECUTE_FORMAT, params=params)
        finally:
            self.executing = False
        return bytes(result.bytes())

    def begin_insert(self, head: str, fmt: str) -> None:
        self._start()
        self.insert = self.conn.send_insert(head, fmt)

    def append(self, data: bytes) -> None:
        self.conn.insert_append(self.insert, data)

    def finish_insert(self) -> bytes:
        insert, self.insert = self.insert, None
        try:
            self.conn.insert_done(insert)
        finally:
            self.executing = False
        return b""

    def begin_stream(self, fmt: str) -> None:
        self._start()
        params = dict(self.query.params)
        self.stream = self.conn.send_query(self.query.sql, fmt, params=params)

    def fetch(self) -> tuple[bytes, int] | None:
        result = self.conn.streaming_fetch_result(self.stream)
        if result is None or (result.size() == 0 and result.rows_read() == 0):
            self.stream = None
            self.executing = False
            return None
        return bytes(result.bytes()), int(result.rows_read())

    def close(self) -> None:
        conn, self.conn = self.conn, None
        self.executing = False
        if conn is None:
            return
        try:
            self._abandon(conn)
        finally:
            conn.close()

    def _abandon(self, conn: Any) -> None:
        if self.stream is not None:
            conn.streaming_cancel_query(self.stream)
        if self.insert is not None:
            conn.insert_cancel(self.insert)


@dataclass
class Registry:
    """The running statements by query id (shared by threads and the loop)."""

    running: dict[str, Statement] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)

    def add(self, query: Query) -> tuple[str, Statement]:
        query_id = query.query_id or uuid.uuid4().hex
        tag = query.settings.get("log_comment", f"sidecar:{query_id}")
        statement = Statement(query, tag)
        with self.lock:
            if query_id in self.running:
                raise ClickHouseError(
                    216, f"Query with id = {query_id} is already running."
                )
            self.running[query_id] = statement
        return query_id, statement

    def remove(self, query_id: str) -> None:
        with self.lock:
            self.running.pop(query_id, None)

    def get(self, query_id: str) -> Statement | None:
        with self.lock:
            return self.running.get(query_id)


def translate(exc: RuntimeError) -> ClickHouseError | UnavailableError:
    """The sidecar's error for a chdb ``RuntimeError``."""
    text = str(exc)
    parsed = parse_exception_text(text.encode())
    if parsed is None:
        return UnavailableError(f"chdb failed: {text}")
    return ClickHouseError(parsed.code, parsed.message, parsed.name)


def is_not_streamable(exc: ClickHouseError | UnavailableError) -> bool:
    # DDL and other statements without rows cannot go through send_query.
    return isinstance(
        exc, ClickHouseError
    ) and "Streaming query is not supported" in str(exc)
