"""The pooled ClickHouse client context, and the HTTP engine.

Handlers always write::

    async with pool.client() as client:
        await client.execute(query)

``pool.client()`` is an async context manager, never an awaitable: awaiting
it fails in ``mypy --strict`` and, at run time, with a TypeError that says
how to use it. Leaving the context releases the pooled slot and never
closes the shared aiohttp session.

This is the only module (with :mod:`sidecar.embedded`) that imports aiohttp
or aiochclient; their exceptions are translated here.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiochclient import ChClient

from .engine import Capabilities, Client, Query, ServerInfo
from .errors import (
    ClickHouseError,
    SidecarError,
    UnavailableError,
    parse_exception_text,
)
from .sql import quote_string

__all__ = ["ClientContext", "HttpClient", "HttpPool", "Pool", "parse_version"]

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT", bound=Client)

CHUNK_BYTES = 256 * 1024
LARGE_BODY_BYTES = 1024 * 1024
# A ClickHouse exception written after HTTP 200 ends the body; it is short.
EXCEPTION_TAIL_BYTES = 64 * 1024
_TRAILING_EXCEPTION = re.compile(rb"(?:\A|\n)(Code: \d+[.,] [^\n]*)\n?\Z")


class Pool(Protocol):
    """What the server holds: an engine with an explicit lifecycle."""

    @property
    def info(self) -> ServerInfo: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def client(self) -> ClientContext[Client]: ...

    async def ping(self) -> bool: ...


class ClientContext(Generic[ClientT]):
    """``async with pool.client() as client``: one pooled client, released on exit."""

    __slots__ = ("_acquire", "_client", "_release")

    def __init__(
        self,
        acquire: Callable[[], Awaitable[ClientT]],
        release: Callable[[ClientT], None],
    ) -> None:
        self._acquire = acquire
        self._release = release
        self._client: ClientT | None = None

    async def __aenter__(self) -> ClientT:
        if self._client is not None:
            raise RuntimeError("a pool.client() context cannot be entered twice")
        self._client = await self._acquire()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Synchronous on purpose: release must survive cancellation.
            self._release(client)

    if TYPE_CHECKING:
        # Makes `await pool.client()` a type error under mypy --strict.
        __await__: None
    else:

        def __await__(self):
            raise TypeError(
                "pool.client() is an async context manager, not an awaitable: "
                "write `async with pool.client() as client:`"
            )


def parse_version(text: str) -> tuple[int, ...]:
    """``"18.16.1"`` -> ``(18, 16, 1)``; trailing non-numeric parts ignored."""
    numbers = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) or (0,)


class HttpClient(ChClient):  # type: ignore[misc]
    """An aiochclient client over the pool's shared session.

    aiochclient provides the connection parameters (URL, user, key headers,
    default database); the methods below add what the sidecar needs on top:
    per-query settings and parameters, raw output formats, streamed bodies,
    ClickHouse error codes, and exceptions that arrive after HTTP 200.
    """

    def __init__(self, pool: HttpPool) -> None:
        super().__init__(
            pool.session,
            url=pool.url,
            user=pool.user,
            password=pool.password,
            database=pool.database,
        )
        self._pool = pool

    @property
    def info(self) -> ServerInfo:
        return self._pool.info

    def _params(self, query: Query, fmt: str | None) -> dict[str, str]:
        params = {**self.params, **query.settings}
        params["query_id"] = query.query_id
        params["database"] = query.database
        if fmt:
            params["default_format"] = fmt
        if query.whole:
            # Errors then come as an HTTP status, never after partial output.
            params["wait_end_of_query"] = "1"
        for name, value in query.params.items():
            params[f"param_{name}"] = value
        return params

    async def _send(
        self,
        params: dict[str, str],
        data: bytes | io.BytesIO | AsyncIterable[bytes],
        replay: bool,
    ) -> aiohttp.ClientResponse:
        """POST, once more on a fresh connection if a pooled one was stale.

        A keep-alive connection the server closed while it sat in the pool
        fails at once with a disconnect; the request never reached ClickHouse,
        so a read may safely go again.
        """
        try:
            return await self._pool.session.post(
                self.url, params=params, headers=self.headers, data=data
            )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not replay:
                raise
            log.debug("stale pooled connection; retrying query %s", params["query_id"])
        if isinstance(data, io.BytesIO):
            data.seek(0)
        return await self._pool.session.post(
            self.url, params=params, headers=self.headers, data=data
        )

    @asynccontextmanager
    async def _post(
        self,
        query: Query,
        fmt: str | None,
        body: bytes | AsyncIterable[bytes] | None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        params = self._params(query, fmt)
        if body is None:
            data: bytes | io.BytesIO | AsyncIterable[bytes] = query.sql.encode()
        else:
            params["query"] = query.sql
            data = body
        if isinstance(data, bytes) and len(data) > LARGE_BODY_BYTES:
            # aiohttp sends a file-like body in pieces instead of all at once.
            data = io.BytesIO(data)
        try:
            response = await self._send(params, data, _replayable(query, body))
            async with response:
                if response.status != 200:
                    raise await _error_from_response(response)
                yield response
        except aiohttp.ClientPayloadError as exc:
            raise UnavailableError(
                f"ClickHouse closed the response early: {exc}"
            ) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientOSError) as exc:
            raise UnavailableError(
                f"ClickHouse at {self._pool.address} is unreachable: {exc}"
            ) from exc

    @asynccontextmanager
    async def stream(
        self, query: Query, fmt: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._post(query, fmt, None) as response:
            if query.whole:
                yield response.content.iter_chunked(CHUNK_BYTES)
            else:
                yield _checked_chunks(response.content)

    async def execute(
        self, query: Query, body: bytes | AsyncIterable[bytes] | None = None
    ) -> bytes:
        async with self._post(query, None, body) as response:
            output = await response.read()
        if not query.whole:
            _raise_trailing_exception(output)
        return output

    async def kill(self, query_id: str) -> None:
        sql = f"KILL QUERY WHERE query_id = {quote_string(query_id)} ASYNC"
        query = Query(sql, query_id=f"{query_id}-kill", database=self._pool.database)
        try:
            await self.execute(query)
        except (ClickHouseError, UnavailableError) as exc:
            log.info("could not kill query %s: %s", query_id, exc)


_READ_STATEMENT = re.compile(
    r"\s*\(*\s*(SELECT|WITH|SHOW|EXISTS|DESCRIBE|DESC)\b", re.I
)


def _replayable(query: Query, body: object) -> bool:
    """Whether sending ``query`` twice is harmless: reads only."""
    if body is not None:
        return False
    return query.settings.get("readonly") in ("1", "2") or bool(
        _READ_STATEMENT.match(query.sql)
    )


async def _error_from_response(response: aiohttp.ClientResponse) -> Exception:
    body = await response.read()
    parsed = parse_exception_text(body)
    header = response.headers.get("X-ClickHouse-Exception-Code", "")
    if parsed is not None:
        return ClickHouseError(parsed.code, parsed.message, parsed.name)
    if header.isdigit():
        return ClickHouseError(int(header), body.decode("utf-8", "replace").strip())
    text = body.decode("utf-8", "replace").strip()[:500]
    return UnavailableError(f"ClickHouse answered HTTP {response.status}: {text}")


def _raise_trailing_exception(tail: bytes) -> None:
    match = _TRAILING_EXCEPTION.search(tail[-EXCEPTION_TAIL_BYTES:])
    if match is None:
        return
    parsed = parse_exception_text(match.group(1))
    if parsed is not None:
        raise ClickHouseError(parsed.code, parsed.message, parsed.name)


async def _checked_chunks(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield body chunks, holding back the tail until the end is seen.

    ClickHouse reports an exception that happens after the 200 header by
    appending its text to the body. The last chunk (and the end of the one
    before it) is only released once the body is complete and checked, so a
    caller never takes that text for rows.
    """
    held = b""
    async for chunk in content.iter_chunked(CHUNK_BYTES):
        held += chunk
        if len(held) > 2 * EXCEPTION_TAIL_BYTES:
            cut = len(held) - EXCEPTION_TAIL_BYTES
            yield held[:cut]
            held = held[cut:]
    _raise_trailing_exception(held)
    if held:
        yield held


class HttpPool:
    """The HTTP engine: one aiohttp session, a bounded number of clients."""

    def __init__(
        self,
        url: str,
        *,
        user: str,
        password: str,
        database: str,
        size: int,
        keepalive_seconds: float,
    ) -> None:
        parts = urlsplit(url)
        self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.user = parts.username or user
        self.password = parts.password or password
        self.database = database
        self.address = f"{parts.hostname}:{parts.port or 8123}"
        self._size = size
        self._keepalive = keepalive_seconds
        self._slots = asyncio.Semaphore(size)
        self._session: aiohttp.ClientSession | None = None
        self._info: ServerInfo | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise UnavailableError("the ClickHouse pool is not open")
        return self._session

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            raise UnavailableError(
                f"ClickHouse at {self.address} has not answered since the "
                "sidecar started"
            )
        return self._info

    @property
    def ready(self) -> bool:
        """Whether the server's version is known (it answered once)."""
        return self._info is not None

    async def open(self) -> None:
        """Create the shared session and learn the server's version."""
        if self._session is not None:
            raise RuntimeError("HttpPool.open() called twice")
        connector = aiohttp.TCPConnector(
            limit=self._size, keepalive_timeout=self._keepalive
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        try:
            self._info = await self._read_info()
        except UnavailableError as exc:
            # Pods start in any order: serve NOT_SERVING until ClickHouse
            # answers, rather than crash-loop. Wrong credentials still fail.
            log.warning("ClickHouse is not answering yet: %s", exc)
        except BaseException:
            await self.close()
            raise

    async def _learn_info(self) -> ServerInfo:
        if self._info is None:
            self._info = await self._read_info()
        return self._info

    async def _read_info(self) -> ServerInfo:
        client = HttpClient(self)
        query = Query(
            "SELECT version(), timezone() FORMAT TabSeparated",
            query_id=f"sidecar-info-{id(self):x}",
            database="system",
        )
        version, _, timezone = (
            (await client.execute(query)).decode().strip().partition("\t")
        )
        numbers = parse_version(version)
        return ServerInfo(
            engine="http",
            version=version,
            version_tuple=numbers,
            timezone=timezone,
            address=self.address,
            capabilities=Capabilities.for_version(numbers),
        )

    async def ping(self) -> bool:
        """Whether ClickHouse answers now (for the health service)."""
        try:
            async with self.session.get(
                self.url.rstrip("/") + "/ping",
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                if response.status != 200:
                    return False
            await self._learn_info()
        except (aiohttp.ClientError, TimeoutError, SidecarError):
            return False
        return True

    async def _acquire(self) -> Client:
        await self._learn_info()
        await self._slots.acquire()
        return HttpClient(self)

    def _release(self, client: Client) -> None:
        self._slots.release()

    def client(self) -> ClientContext[Client]:
        return ClientContext(self._acquire, self._release)

    async def close(self) -> None:
        """Close the shared session; safe to call more than once."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
