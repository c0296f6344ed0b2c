"""The four streaming RPCs: results out and rows in, as fast as both ends go.

Results (QueryDataStream, QueryRawStream) are produced in a task of their
own and handed to the gRPC response through a one-slot queue. gRPC awaits
each write, so a slow reader stops the queue, the queue stops the reads
from ClickHouse's HTTP response, and a full socket stops ClickHouse. The
sidecar holds about one message and the transport buffers, never the
result. When the caller cancels or its deadline passes, the task is
cancelled and :meth:`Statements.stream` sends KILL QUERY.

Inserts (InsertDataStream, InsertRawStream) run ONE INSERT whose HTTP body
is fed from the request stream as messages arrive. Typed rows are encoded
batch by batch; a bad value fails the call with INVALID_ARGUMENT naming the
row's index in the whole stream and the column.

An insert that fails midway is not atomic. ClickHouse commits an INSERT
block by block (``max_insert_block_size``, 1048576 rows by default), so
the rows of blocks it completed before the failure stay written. Before
abandoning a typed INSERT the sidecar sends a line no parser accepts, so
ClickHouse rejects the block in progress rather than committing it (18.16
takes a body cut short as a complete one). The error says how many rows
were sent. Retrying the whole stream with the same ``deduplication_token``
is safe on servers that support tokens (22.2 and later) for tables that
deduplicate (Replicated*MergeTree, or MergeTree with
``non_replicated_deduplication_window``). Raw bytes cannot be poisoned that
way: on 18.16 a raw insert cut short may commit what was sent.

gRPC (grpc.aio) ends a client stream the same way whether the caller
half-closed or cancelled; the cancel reaches the handler a moment later.
So an insert body waits ``END_GRACE_SECONDS`` before it ends cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
)
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry import trace

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Call, Op, Statements
from .data import _output_settings, dedup_settings, encode_rows, query_params
from .data import insert_statement as typed_insert_statement
from .engine import Query
from .errors import ClickHouseError, RequestError, SidecarError, UnsupportedError
from .guard import check_read_only
from .pool import Pool
from .results import TYPED_FORMAT, ResultReader
from .sql import (
    caller_settings,
    identifier_list,
    qualified,
    validate_identifier,
)
from .tables import table_name

__all__ = ["INPUT_FORMATS", "OUTPUT_FORMATS", "Streams"]

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
RequestT = TypeVar("RequestT", bound=Message)
ItemT = TypeVar("ItemT")
ResponseT = TypeVar("ResponseT", bound=Message)

DEFAULT_BATCH_ROWS = 4096
BATCH_BYTES = 1 << 20
RAW_CHUNK_BYTES = 1 << 20
END_GRACE_SECONDS = 0.05
UNKNOWN_FORMAT = 73

OUTPUT_FORMATS = (
    "TabSeparated", "TabSeparatedWithNames", "TabSeparatedWithNamesAndTypes",
    "CSV", "CSVWithNames", "JSONEachRow", "JSONCompactEachRow",
    "RowBinary", "RowBinaryWithNamesAndTypes", "Native",
    "Parquet", "Arrow", "ArrowStream",
)  # fmt: skip
INPUT_FORMATS = (*OUTPUT_FORMATS, "Values")

# No input format accepts this line where a row should start.
_ABORT_LINE = b"\n#sidecar: insert abandoned\n"


@dataclass(frozen=True, slots=True)
class Streams:
    """The streaming half of the servicer; errors become statuses as in unary."""

    pool: Pool
    statements: Statements
    new_call: Callable[[Message, Context], Call]
    status_for: Callable[[Exception, str], grpc.Status]

    def query_data(
        self, request: pb.QueryDataStreamRequest, context: Context
    ) -> AsyncIterator[pb.QueryDataStreamResponse]:
        return self._respond(request, context, _typed_messages)

    def query_raw(
        self, request: pb.QueryRawStreamRequest, context: Context
    ) -> AsyncIterator[pb.QueryRawStreamResponse]:
        return self._respond(request, context, _raw_messages)

    async def insert_data(
        self, requests: AsyncIterator[pb.InsertDataStreamRequest], context: Context
    ) -> pb.InsertDataStreamResponse:
        return await self._consume(requests, context, _insert_rows)

    async def insert_raw(
        self, requests: AsyncIterator[pb.InsertRawStreamRequest], context: Context
    ) -> pb.InsertRawStreamResponse:
        return await self._consume(requests, context, _insert_bytes)

    async def _respond(
        self,
        request: RequestT,
        context: Context,
        produce: Callable[[Op, RequestT], AsyncGenerator[ItemT, None]],
    ) -> AsyncIterator[ItemT]:
        call: Call | None = None
        try:
            call = self.new_call(request, context)
            source = self._produce(call, request, produce)
            async for item in _relay(source, context):
                yield item
        except Exception as exc:
            await self._abort(context, exc, call)

    async def _produce(
        self,
        call: Call,
        request: RequestT,
        produce: Callable[[Op, RequestT], AsyncGenerator[ItemT, None]],
    ) -> AsyncGenerator[ItemT, None]:
        async with self.pool.client() as client:
            op = Op(self.statements, client, call)
            # Closed here, in the producing task, where its spans began.
            async with aclosing(produce(op, request)) as items:
                async for item in items:
                    yield item

    async def _consume(
        self,
        requests: AsyncIterator[RequestT],
        context: Context,
        consume: Callable[[Op, RequestT, _Requests[RequestT]], Awaitable[ResponseT]],
    ) -> ResponseT:
        call: Call | None = None
        try:
            first = await anext(aiter(requests), None)
            if first is None:
                raise RequestError("the stream is empty: send the table first")
            call = self.new_call(first, context)
            rest = _Requests(requests, asyncio.current_task())
            async with self.pool.client() as client:
                op = Op(self.statements, client, call)
                return await consume(op, first, rest)
        except Exception as exc:
            await self._abort(context, exc, call)

    async def _abort(
        self, context: Context, exc: Exception, call: Call | None
    ) -> NoReturn:
        status = self.status_for(exc, call.reported_query_id if call else "")
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort returned")  # pragma: no cover


# Results ---------------------------------------------------------------------


_pumps: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class _Stop:
    """The end of a relayed source, and its error if it failed."""

    error: Exception | None = None


async def _relay(
    source: AsyncGenerator[ItemT, None], context: Context
) -> AsyncIterator[ItemT]:
    """Yield ``source``'s items, produced in a task of its own.

    The task owns the pooled client and the statement, so their cleanup
    runs there, in order, whenever the call ends: grpc.aio does not close a
    handler's generator when the caller cancels.
    """
    queue: asyncio.Queue[ItemT | _Stop] = asyncio.Queue(maxsize=1)
    pump = asyncio.get_running_loop().create_task(_pump(source, queue))
    _pumps.add(pump)
    pump.add_done_callback(_pumps.discard)

    def on_done(_: Context) -> None:
        pump.cancel()

    # grpc-stubs declares DoneCallback as a class, not a callable protocol.
    context.add_done_callback(on_done)  # type: ignore[arg-type]
    try:
        while not isinstance(item := await queue.get(), _Stop):
            yield item
        if item.error is not None:
            raise item.error
    finally:
        pump.cancel()


async def _pump(
    source: AsyncGenerator[ItemT, None], queue: asyncio.Queue[ItemT | _Stop]
) -> None:
    try:
        async with aclosing(source):
            async for item in source:
                await queue.put(item)
    except Exception as exc:
        await queue.put(_Stop(exc))
    else:
        await queue.put(_Stop())


class _Tally:
    """Rows and bytes of one call, kept on its SERVER span as they grow."""

    def __init__(self) -> None:
        self._span = trace.get_current_span()
        self.rows = 0
        self.bytes = 0

    def add(self, rows: int, size: int) -> None:
        self.rows += rows
        self.bytes += size
        self._span.set_attribute("sidecar.rows", self.rows)
        self._span.set_attribute("sidecar.bytes", self.bytes)


def _select(
    op: Op,
    request: pb.QueryDataStreamRequest | pb.QueryRawStreamRequest,
    extra: Mapping[str, str],
) -> Query:
    if not request.sql.strip():
        raise RequestError("sql must not be empty")
    check_read_only(request.sql)
    database = validate_identifier(request.database or op.call.database, "database")
    settings = caller_settings(request.settings, "settings")
    settings.update(extra, readonly="2")
    params = query_params(op, request.parameters)
    return op.query(request.sql, database=database, settings=settings, params=params)


async def _typed_messages(
    op: Op, request: pb.QueryDataStreamRequest
) -> AsyncGenerator[pb.QueryDataStreamResponse, None]:
    query = _select(op, request, _output_settings(op))
    reader = ResultReader(op.info)
    tally = _Tally()
    limit = request.batch_rows or DEFAULT_BATCH_ROWS
    first = True
    async with op.statements.stream(op.client, query, TYPED_FORMAT) as chunks:
        async for message in _row_batches(reader, _counted(chunks, tally), limit):
            tally.add(len(message.rows), 0)
            yield _headed(op, reader, message) if first else message
            first = False
    if first:
        yield _headed(op, reader, pb.QueryDataStreamResponse())


def _headed(
    op: Op, reader: ResultReader, message: pb.QueryDataStreamResponse
) -> pb.QueryDataStreamResponse:
    message.query_id = op.call.reported_query_id
    message.columns.extend(reader.columns)
    return message


async def _row_batches(
    reader: ResultReader, chunks: AsyncIterator[bytes], limit: int
) -> AsyncIterator[pb.QueryDataStreamResponse]:
    """Messages of at most ``limit`` rows and about BATCH_BYTES, filled in place."""
    pending, message = b"", pb.QueryDataStreamResponse()
    seen_lines = seen_bytes = 0
    async for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        seen_lines, seen_bytes = seen_lines + len(lines), seen_bytes + len(chunk)

        cap, start = _batch_cap(limit, seen_lines, seen_bytes), 0
        while start < len(lines):
            room = max(0, cap - len(message.rows))
            reader.decode_lines(message.rows, lines[start : start + room])
            start += room
            if len(message.rows) >= cap:
                yield message
                message = pb.QueryDataStreamResponse()
    reader.decode_lines(message.rows, [pending] if pending else [])
    if message.rows:
        yield message


def _batch_cap(limit: int, rows: int, size: int) -> int:
    """Rows per message: ``limit``, fewer when rows are large."""
    row_bytes = max(1, size // max(1, rows))
    return max(1, min(limit, BATCH_BYTES // row_bytes))


async def _counted(chunks: AsyncIterator[bytes], tally: _Tally) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        tally.add(0, len(chunk))
        yield chunk


async def _raw_messages(
    op: Op, request: pb.QueryRawStreamRequest
) -> AsyncGenerator[pb.QueryRawStreamResponse, None]:
    fmt = _vetted(request.format, OUTPUT_FORMATS)
    query = _select(op, request, {})
    tally = _Tally()
    query_id = op.call.reported_query_id
    with _known_format(op, fmt):
        async with op.statements.stream(op.client, query, fmt) as chunks:
            async for chunk in chunks:
                for start in range(0, len(chunk), RAW_CHUNK_BYTES):
                    piece = chunk[start : start + RAW_CHUNK_BYTES]
                    tally.add(0, len(piece))
                    yield pb.QueryRawStreamResponse(query_id=query_id, data=piece)
                    query_id = ""
    if query_id:
        yield pb.QueryRawStreamResponse(query_id=query_id)


def _vetted(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise RequestError(
            f"format {fmt!r} is not one of the allowed formats: {', '.join(allowed)}"
        )
    return fmt


@contextmanager
def _known_format(op: Op, fmt: str) -> Iterator[None]:
    try:
        yield
    except ClickHouseError as exc:
        if exc.code != UNKNOWN_FORMAT:
            raise
        raise UnsupportedError(
            f"format {fmt} is not available on ClickHouse {op.info.version}"
        ) from exc


# Inserts ---------------------------------------------------------------------


class _Requests(Generic[RequestT]):
    """The messages after the first, read as the INSERT body needs them."""

    def __init__(
        self, requests: AsyncIterator[RequestT], handler: asyncio.Task[Any] | None
    ) -> None:
        self._requests = requests
        self._handler = handler

    async def __aiter__(self) -> AsyncIterator[RequestT]:
        async for request in self._requests:
            yield request
        # A cancel looks like the end of the stream at first (see above);
        # ending the body now would commit the INSERT.
        await asyncio.sleep(END_GRACE_SECONDS)
        if self._handler is not None and self._handler.cancelling():
            raise RequestError("the request stream was cancelled")


class _Feed:
    """Counts what an INSERT body has sent, and remembers why it stopped."""

    def __init__(self) -> None:
        self.tally = _Tally()
        self.failure: SidecarError | None = None

    async def send(
        self, op: Op, sql: str, token: str, body: AsyncIterator[bytes]
    ) -> None:
        settings = dedup_settings(op, token)
        try:
            await op.run(sql, settings=settings, body=body)
        except SidecarError as exc:
            raise self.explain(self.failure or exc) from exc

    def explain(self, exc: SidecarError) -> SidecarError:
        if not self.tally.bytes:
            return exc
        note = (
            f" [the INSERT stopped after {self.tally.rows} rows "
            f"({self.tally.bytes} bytes) were sent; rows of insert blocks "
            "ClickHouse had completed stay committed; retrying the whole "
            "stream with the same deduplication_token is safe on ClickHouse "
            "22.2 and later]"
        )
        if isinstance(exc, ClickHouseError):
            return ClickHouseError(exc.code, f"{exc.args[0]}{note}", exc.name)
        return type(exc)(f"{exc}{note}")


def _same_target(first: Any, later: Any, fields: tuple[str, ...]) -> None:
    for name in fields:
        value = getattr(later, name)
        if value and value != getattr(first, name):
            raise RequestError(f"{name} may only be set in the first message")


_ROW_FIELDS = ("database", "table", "columns", "deduplication_token")
_RAW_FIELDS = (*_ROW_FIELDS, "format")


async def _chain(first: RequestT, rest: _Requests[RequestT]) -> AsyncIterator[RequestT]:
    yield first
    async for request in rest:
        yield request


async def _insert_rows(
    op: Op,
    first: pb.InsertDataStreamRequest,
    rest: _Requests[pb.InsertDataStreamRequest],
) -> pb.InsertDataStreamResponse:
    database, table = table_name(op, first.database, first.table)
    sql, columns, encoders = await typed_insert_statement(
        op, database, table, first.columns
    )
    feed = _Feed()

    async def body() -> AsyncIterator[bytes]:
        try:
            async for request in _chain(first, rest):
                _same_target(first, request, _ROW_FIELDS)
                if not request.rows:
                    continue
                start = feed.tally.rows
                chunk = encode_rows(request.rows, columns, encoders, start) + b"\n"
                feed.tally.add(len(request.rows), len(chunk))
                yield chunk
        except SidecarError as exc:
            feed.failure = exc
            # Makes ClickHouse reject the block in progress (see above).
            yield _ABORT_LINE
            raise

    await feed.send(op, sql, first.deduplication_token, body())
    return pb.InsertDataStreamResponse(
        query_id=op.call.reported_query_id, rows_written=feed.tally.rows
    )


async def _insert_bytes(
    op: Op,
    first: pb.InsertRawStreamRequest,
    rest: _Requests[pb.InsertRawStreamRequest],
) -> pb.InsertRawStreamResponse:
    database, table = table_name(op, first.database, first.table)
    fmt = _vetted(first.format, INPUT_FORMATS)
    columns = [
        validate_identifier(c, f"columns[{i}]") for i, c in enumerate(first.columns)
    ]
    listed = f" ({identifier_list(columns)})" if columns else ""
    sql = f"INSERT INTO {qualified(database, table)}{listed} FORMAT {fmt}"
    feed = _Feed()

    async def body() -> AsyncIterator[bytes]:
        try:
            async for request in _chain(first, rest):
                _same_target(first, request, _RAW_FIELDS)
                if request.data:
                    feed.tally.add(0, len(request.data))
                    yield request.data
        except SidecarError as exc:
            feed.failure = exc
            raise

    with _known_format(op, fmt):
        await feed.send(op, sql, first.deduplication_token, body())
    # TODO(#4): ClickHouse does not say how many rows a raw body held (18.16
    # sends no X-ClickHouse-Summary); rows_written stays 0 for raw inserts.
    return pb.InsertRawStreamResponse(query_id=op.call.reported_query_id)
