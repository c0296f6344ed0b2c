"""The embedded engine: ClickHouse in process, through chdb.

What chdb (chdb-core 26.9) does, and what this module does about it:

* One process hosts one chdb engine bound to one data path; any number of
  connections may share it. A connection serialises its own queries, and a
  failed query can leave partial output that leaks into the next result on
  the same connection. So every statement gets a fresh connection (about
  0.7 ms), which also keeps ``USE``/``SET`` from leaking between queries.
  One long-lived "anchor" connection keeps the engine up and runs
  ``version()``, ``timezone()`` and ``KILL QUERY``.
* chdb releases the GIL while a query runs, so queries on separate
  connections run in parallel in a bounded thread pool (``max_workers``).
  Kills use their own single thread, so they never queue behind queries.
* chdb has no per-query ``query_id``. The query is tagged with the
  ``log_comment`` setting instead (the caller's ``log_comment`` wins, and is
  then the tag) and :meth:`EmbeddedClient.kill` runs
  ``KILL QUERY WHERE Settings['log_comment'] = ... ASYNC``. ``queryID()``
  inside the query is chdb's own UUID, not ``Query.query_id``. A second
  query with an id that is still running fails with code 216, as on a
  server.
* Streaming (``send_query``) is pulled block by block: an idle consumer
  pauses the query. But chdb renders every block as a complete document of
  the format, with its header, prefix and suffix. Formats without those are
  passed through; the TSV and JSONCompact ``WithNames[AndTypes]`` formats
  lose their repeated header lines, and ``ArrowStream`` its repeated schema
  and end-of-stream markers. Every other format (Parquet, JSON, Arrow,
  CSVWithNames, Pretty, ...) is produced whole in memory first and then
  yielded in slices: memory grows with the result size for those formats.
* Errors arrive as ``RuntimeError`` with ClickHouse's own text
  (``Code: 60. DB::Exception: ... (UNKNOWN_TABLE)``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, Protocol, TypeVar

import filelock
from chdb import _chdb

from sidecar.engine import Capabilities, Client, Query, ServerInfo
from sidecar.errors import (
    ClickHouseError,
    RequestError,
    UnavailableError,
    parse_exception_text,
)
from sidecar.guard import check_single_statement
from sidecar.pool import ClientContext

__all__ = ["DataDirectoryInUseError", "EmbeddedClient", "EmbeddedPool"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_FILE = ".sidecar.lock"
EXECUTE_FORMAT = "TabSeparated"
SLICE_BYTES = 1 << 20
INSERT_BLOCK_BYTES = 16 << 20
_KILL_ATTEMPTS = 50
_KILL_RETRY_SECONDS = 0.02

_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRAILING_FORMAT = re.compile(
    r"^(?P<head>.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.S | re.I
)
_ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"

# Formats whose blocks concatenate into one valid document as they are.
_PLAIN_FORMATS = frozenset(
    {
        "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV",
        "JSONEachRow", "JSONLines", "NDJSON", "JSONCompactEachRow",
        "JSONStringsEachRow", "JSONCompactStringsEachRow",
        "RowBinary", "Native", "LineAsString", "Raw",
    }
)  # fmt: skip
# Formats whose only per-block extra is N header lines without raw newlines.
_HEADER_LINES = {
    "TabSeparatedWithNames": 1,
    "TSVWithNames": 1,
    "TabSeparatedWithNamesAndTypes": 2,
    "TSVWithNamesAndTypes": 2,
    "JSONCompactEachRowWithNames": 1,
    "JSONCompactEachRowWithNamesAndTypes": 2,
    "JSONCompactStringsEachRowWithNames": 1,
    "JSONCompactStringsEachRowWithNamesAndTypes": 2,
}


# The stub (_chdb/__init__.pyi) omits the pybind connection class.
_connect: Callable[[str], Any] = _chdb.connect  # type: ignore[attr-defined]


class DataDirectoryInUseError(UnavailableError):
    """Another sidecar (in this or another process) owns the data directory."""


# Splicing per-block documents into one -------------------------------------


class _Splicer(Protocol):
    def feed(self, chunk: bytes, rows_read: int) -> bytes: ...

    def end(self) -> bytes: ...


class _Plain:
    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        return chunk

    def end(self) -> bytes:
        return b""


@dataclass
class _HeaderLines:
    """Keeps the first block's header lines, drops their repeats."""

    lines: int
    header: bytes | None = None

    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        if self.header is None:
            self.header = _first_lines(chunk, self.lines)
            return chunk

        if chunk.startswith(self.header):
            chunk = chunk[len(self.header) :]

        # A totals/extremes block (no rows read) ends with a dangling header.
        if rows_read == 0 and chunk.endswith(self.header):
            chunk = chunk[: -len(self.header)]
        return chunk

    def end(self) -> bytes:
        return b""


@dataclass
class _ArrowStream:
    """Keeps one schema message and one end-of-stream marker."""

    schema: bytes | None = None

    def feed(self, chunk: bytes, rows_read: int) -> bytes:
        chunk = chunk.removesuffix(_ARROW_EOS)
        if self.schema is None:
            self.schema = _arrow_first_message(chunk)
            return chunk

        chunk = chunk.removeprefix(self.schema)
        return chunk.removesuffix(self.schema)

    def end(self) -> bytes:
        return b"" if self.schema is None else _ARROW_EOS


def _first_lines(chunk: bytes, count: int) -> bytes:
    end = 0
    for _ in range(count):
        end = chunk.index(b"\n", end) + 1
    return chunk[:end]


def _arrow_first_message(chunk: bytes) -> bytes:
    # Encapsulated IPC message: 0xFFFFFFFF, int32 metadata size, metadata;
    # a schema message has no body.
    size = int.from_bytes(chunk[4:8], "little")
    return chunk[: 8 + size]


def _splicer_for(fmt: str) -> _Splicer | None:
    if fmt in _PLAIN_FORMATS:
        return _Plain()
    if fmt in _HEADER_LINES:
        return _HeaderLines(_HEADER_LINES[fmt])
    if fmt == "ArrowStream":
        return _ArrowStream()
    return None


# One statement on its own chdb connection (blocking; worker threads) --------


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_text(body: bytes) -> bool:
    """Whether an INSERT body can travel inside a query string (UTF-8)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _token_clause(token: str, block: int) -> str:
    if not token:
        return ""
    return f" SETTINGS insert_deduplication_token = {_quote_string(f'{token}:{block}')}"


def _set_statement(settings: Mapping[str, str]) -> str:
    for name in settings:
        if not _SETTING_NAME.fullmatch(name):
            raise RequestError(f"invalid setting name {name!r}")
    pairs = (f"{name} = {_quote_string(v)}" for name, v in settings.items())
    return "SET " + ", ".join(pairs)


@dataclass
class _Statement:
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

    def locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self.guard:
            try:
                return fn(*args)
            except BaseException:
                # A failed step ends the query: nothing is left to kill.
                self.executing = False
                raise

    def open(self, path: str, database: str) -> None:
        self.conn = _connect(path)
        self.conn.query(f"USE {_quote_identifier(database)}", "TSV")

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
        match = _TRAILING_FORMAT.match(self.query.sql)
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


# Errors ---------------------------------------------------------------------


def _translate(exc: RuntimeError) -> ClickHouseError | UnavailableError:
    text = str(exc)
    parsed = parse_exception_text(text.encode())
    if parsed is None:
        return UnavailableError(f"chdb failed: {text}")
    return ClickHouseError(parsed.code, parsed.message, parsed.name)


def _is_not_streamable(exc: ClickHouseError | UnavailableError) -> bool:
    # DDL and other statements without rows cannot go through send_query.
    return isinstance(
        exc, ClickHouseError
    ) and "Streaming query is not supported" in str(exc)


# The registry of running statements -----------------------------------------


@dataclass
class _Registry:
    running: dict[str, _Statement] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)

    def add(self, query: Query) -> tuple[str, _Statement]:
        query_id = query.query_id or uuid.uuid4().hex
        tag = query.settings.get("log_comment", f"sidecar:{query_id}")
        statement = _Statement(query, tag)
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

    def get(self, query_id: str) -> _Statement | None:
        with self.lock:
            return self.running.get(query_id)


# The client -----------------------------------------------------------------


class EmbeddedClient:
    """The :class:`sidecar.engine.Client` of the embedded engine."""

    def __init__(self, pool: EmbeddedPool) -> None:
        self._pool = pool

    @property
    def info(self) -> ServerInfo:
        return self._pool.info

    @asynccontextmanager
    async def stream(
        self, query: Query, fmt: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._pool.statement(query) as statement:
            splicer = _splicer_for(fmt)
            chunks = await self._pool.start_stream(statement, fmt, splicer)
            yield chunks

    async def execute(
        self, query: Query, body: bytes | AsyncIterable[bytes] | None = None
    ) -> bytes:
        async with self._pool.statement(query) as statement:
            if body is None:
                return await self._pool.call(statement, statement.run, EXECUTE_FORMAT)
            if isinstance(body, bytes):
                return await self._pool.call(statement, statement.run_with_body, body)
            return await self._pool.insert_chunks(statement, body)

    async def kill(self, query_id: str) -> None:
        await self._pool.kill(query_id)


# The pool -------------------------------------------------------------------


class EmbeddedPool:
    """Owns the data directory, the chdb engine and the worker threads.

    ``async with pool.client() as client`` yields an :class:`EmbeddedClient`.
    Only one pool, in any process, may use a data directory at a time; and
    chdb allows one data directory per process.
    """

    def __init__(
        self,
        data_dir: Path = Path("data"),
        max_workers: int = 4,
        default_database: str = "default",
    ) -> None:
        self._data_dir = data_dir
        self._path = str(data_dir.resolve())
        self._default_database = default_database
        self._max_workers = max_workers
        self._lock = filelock.FileLock(data_dir / LOCK_FILE, timeout=0)
        self._registry = _Registry()
        self._workers: ThreadPoolExecutor | None = None
        self._control: ThreadPoolExecutor | None = None
        self._anchor: Any = None
        self._info: ServerInfo | None = None
        self._active = 0
        self._idle = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None

    # Lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._workers is not None or self._closing is not None:
            raise RuntimeError("EmbeddedPool.open() may be called once")
        if "?" in self._path:
            raise RequestError(f"data directory {self._data_dir} contains '?'")

        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()

        self._control = ThreadPoolExecutor(1, thread_name_prefix="chdb-control")
        self._workers = ThreadPoolExecutor(self._max_workers, thread_name_prefix="chdb")
        try:
            self._info = await self._control_call(self._start_engine)
        except ClickHouseError as exc:
            await self._shutdown()
            raise UnavailableError(
                f"cannot start chdb on {self._data_dir}: {exc}"
            ) from exc
        except BaseException:
            await self._shutdown()
            raise
        self._idle.set()

    def _acquire_lock(self) -> None:
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise DataDirectoryInUseError(
                f"data directory {self._data_dir} is in use by another "
                f"clickhouse-sidecar (lock file {self._lock.lock_file})"
            ) from exc

    def _start_engine(self) -> ServerInfo:
        self._anchor = _connect(self._path)
        database = _quote_identifier(self._default_database)
        self._anchor.query(f"CREATE DATABASE IF NOT EXISTS {database}", "TSV")

        row = self._anchor.query("SELECT version(), timezone()", "TSV").bytes()
        version, timezone = bytes(row).decode().strip().split("\t")
        version_tuple = tuple(
            int(part) for part in version.split(".") if part.isdigit()
        )
        return ServerInfo(
            engine="embedded",
            version=version,
            version_tuple=version_tuple,
            timezone=timezone,
            address=str(self._data_dir),
            capabilities=Capabilities.for_version(version_tuple),
        )

    async def close(self) -> None:
        """Wait for running calls, stop the threads and the engine, unlock."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self._workers is None:
            return
        await self._idle.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        for executor in (self._workers, self._control):
            if executor is not None:
                await asyncio.to_thread(executor.shutdown, True)
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            await asyncio.to_thread(anchor.close)
        self._lock.release()

    # Checkout ----------------------------------------------------------------

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            raise UnavailableError("the embedded engine is not open")
        return self._info

    def client(self) -> ClientContext[Client]:
        return ClientContext(self._acquire, self._release)

    async def _acquire(self) -> Client:
        if self._workers is None or self._closing is not None:
            raise UnavailableError("the embedded engine is closed")
        self._active += 1
        self._idle.clear()
        return EmbeddedClient(self)

    def _release(self, client: Client) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    async def ping(self) -> bool:
        """Whether the engine answers (for the health service)."""
        if self._anchor is None or self._closing is not None:
            return False
        try:
            await self._control_call(self._anchor.query, "SELECT 1", "TSV")
        except Exception:
            return False
        return True

    # Running statements --------------------------------------------------------

    @asynccontextmanager
    async def statement(self, query: Query) -> AsyncIterator[_Statement]:
        check_single_statement(query.sql)
        query_id, statement = self._registry.add(query)
        try:
            database = query.database or self._default_database
            await self.call(statement, statement.open, self._path, database)
            yield statement
        finally:
            # Shielded, and unregistered last: a caller that leaves early
            # (cancelled, or done reading) must not leave the query running.
            await asyncio.shield(self._finish(query_id, statement))

    async def _finish(self, query_id: str, statement: _Statement) -> None:
        try:
            if statement.executing:
                await self.kill(query_id)
            await self._submit(statement.locked, statement.close)
        except RuntimeError:
            logger.warning("closing chdb connection failed", exc_info=True)
        finally:
            self._registry.remove(query_id)

    async def call(self, statement: _Statement, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking step of ``statement`` in a worker thread."""
        try:
            return await self._submit(statement.locked, fn, *args)
        except RuntimeError as exc:
            raise _translate(exc) from exc

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._workers is None:
            raise UnavailableError("the embedded engine is closed")
        future: Future[T] = self._workers.submit(fn, *args)
        return asyncio.wrap_future(future)

    async def _control_call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._control is None:
            raise UnavailableError("the embedded engine is closed")
        future: Future[T] = self._control.submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except RuntimeError as exc:
            raise _translate(exc) from exc

    async def insert_chunks(
        self, statement: _Statement, body: AsyncIterable[bytes]
    ) -> bytes:
        match = _TRAILING_FORMAT.match(statement.query.sql)
        if match is None:
            data = b"".join([chunk async for chunk in body])
            return await self.call(statement, statement.run_with_body, data)

        head, fmt = match["head"], match["fmt"]
        if fmt == "Values":
            return await self._insert_pieces(statement, head, body)
        await self.call(statement, statement.begin_insert, head, fmt)
        async for chunk in body:
            await self.call(statement, statement.append, chunk)
        return await self.call(statement, statement.finish_insert)

    async def _insert_pieces(
        self, statement: _Statement, head: str, body: AsyncIterable[bytes]
    ) -> bytes:
        """A typed insert stream, one INSERT per block of whole rows.

        Pieces are gathered into blocks of about ``INSERT_BLOCK_BYTES``; each
        block commits on its own, as a server commits an INSERT block by
        block, and a block in progress when the stream fails is dropped. A
        deduplication token becomes one token per block, so a retried stream
        skips exactly the blocks already written.
        """
        token = statement.query.settings.get("insert_deduplication_token", "")
        pieces = aiter(body)
        block: list[bytes] = []
        size = number = 0
        # One piece ahead: a body that fails raises before its last piece
        # (a line meant to make a server reject its block) is used.
        ahead = await anext(pieces, None)
        while ahead is not None:
            piece, ahead = ahead, await anext(pieces, None)
            block.append(piece)
            size += len(piece)
            if size < INSERT_BLOCK_BYTES and ahead is not None:
                continue
            number += 1
            sql = f"{head}{_token_clause(token, number)} FORMAT Values"
            await self.call(statement, statement.run_piece, sql, b"".join(block))
            block, size = [], 0
        return b""

    async def start_stream(
        self, statement: _Statement, fmt: str, splicer: _Splicer | None
    ) -> AsyncIterator[bytes]:
        if splicer is None:
            data = await self.call(statement, statement.run, fmt)
            return _slices(statement, data)

        try:
            await self.call(statement, statement.begin_stream, fmt)
        except ClickHouseError as exc:
            if not _is_not_streamable(exc):
                raise
            data = await self.call(statement, statement.run, fmt)
            return _slices(statement, data)

        # Fetch the first block now: like a server, fail before any output.
        first = await self.call(statement, statement.fetch)
        return self._pull(statement, splicer, first)

    async def _pull(
        self,
        statement: _Statement,
        splicer: _Splicer,
        first: tuple[bytes, int] | None,
    ) -> AsyncIterator[bytes]:
        block = first
        while block is not None:
            if chunk := splicer.feed(*block):
                yield chunk
            block = await self.call(statement, statement.fetch)
        if tail := splicer.end():
            yield tail

    async def kill(self, query_id: str) -> None:
        statement = self._registry.get(query_id)
        if statement is None:
            return

        statement.killed = True
        tag = _quote_string(statement.tag)
        sql = f"KILL QUERY WHERE Settings['log_comment'] = {tag} ASYNC"

        # A query that has not reached chdb yet sees `killed` and stops; one
        # that is just starting may not be in system.processes yet: retry.
        for _ in range(_KILL_ATTEMPTS):
            if await self._control_call(self._anchor_query, sql):
                return
            if not statement.executing:
                return
            await asyncio.sleep(_KILL_RETRY_SECONDS)
        logger.info("query %s was not found to kill", query_id)

    def _anchor_query(self, sql: str) -> bytes:
        return bytes(self._anchor.query(sql, "TSV").bytes())


async def _slices(statement: _Statement, data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), SLICE_BYTES):
        if statement.killed:
            raise ClickHouseError(394, "Query was cancelled.", "QUERY_WAS_CANCELLED")
        yield data[start : start + SLICE_BYTES]
