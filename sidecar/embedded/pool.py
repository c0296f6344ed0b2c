"""The embedded engine's pool: the data directory, the engine, the threads.

One process hosts one chdb engine bound to one data path; any number of
connections may share it. One long-lived "anchor" connection keeps the
engine up and runs ``version()``, ``timezone()`` and ``KILL QUERY``. chdb
releases the GIL while a query runs, so statements on separate connections
run in parallel in a bounded thread pool (``max_workers``). Kills use their
own single thread, so they never queue behind queries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import filelock

from sidecar.engine import Capabilities, Client, Query, ServerInfo
from sidecar.errors import ClickHouseError, RequestError, UnavailableError
from sidecar.guard import check_single_statement
from sidecar.pool import ClientContext
from sidecar.sql import quote_identifier

from .client import EmbeddedClient
from .statement import Registry, Statement, connect, translate

__all__ = ["DataDirectoryInUseError", "EmbeddedPool"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_FILE = ".sidecar.lock"
_KILL_ATTEMPTS = 50
_KILL_RETRY_SECONDS = 0.02


class DataDirectoryInUseError(UnavailableError):
    """Another sidecar (in this or another process) owns the data directory."""


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
        self._registry = Registry()
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
        self._anchor = connect(self._path)
        database = quote_identifier(self._default_database)
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
    async def statement(self, query: Query) -> AsyncIterator[Statement]:
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

    async def _finish(self, query_id: str, statement: Statement) -> None:
        try:
            if statement.executing:
                await self.kill(query_id)
            await self._submit(statement.locked, statement.close)
        except RuntimeError:
            logger.warning("closing chdb connection failed", exc_info=True)
        finally:
            self._registry.remove(query_id)

    async def call(self, statement: Statement, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking step of ``statement`` in a worker thread."""
        try:
            return await self._submit(statement.locked, fn, *args)
        except RuntimeError as exc:
            raise translate(exc) from exc

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
            raise translate(exc) from exc

    async def kill(self, query_id: str) -> None:
        statement = self._registry.get(query_id)
        if statement is None:
            return

        statement.killed = True
        sql = statement.kill_sql

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
