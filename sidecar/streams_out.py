"""Results out: QueryDataStream and QueryRawStream.

Results are produced in a task of their own and handed to the gRPC
response through a one-slot queue (:func:`relay`). gRPC awaits each write,
so a slow reader stops the queue, the queue stops the reads from
ClickHouse's HTTP response, and a full socket stops ClickHouse. The sidecar
holds about one message and the transport buffers, never the result. When
the caller cancels or its deadline passes, the task is cancelled and
:meth:`Statements.stream` sends KILL QUERY.

Typed results are decoded into messages of at most ``batch_rows`` rows and
about ``BATCH_BYTES``; raw results are cut into messages of at most
``RAW_CHUNK_BYTES``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Op
from .data import output_settings, query_params
from .engine import Query
from .errors import RequestError
from .formats import OUTPUT_FORMATS, known_format, vetted
from .guard import check_read_only
from .results import TYPED_FORMAT, ResultReader
from .sql import caller_settings, validate_identifier
from .telemetry import Tally

__all__ = ["Context", "raw_messages", "relay", "typed_messages"]

Context = grpc.aio.ServicerContext[Any, Any]
ItemT = TypeVar("ItemT")

DEFAULT_BATCH_ROWS = 4096
BATCH_BYTES = 1 << 20
RAW_CHUNK_BYTES = 1 << 20


# The relay -------------------------------------------------------------------


_pumps: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class _Stop:
    """The end of a relayed source, and its error if it failed."""

    error: Exception | None = None


async def relay(
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


# The producers -----------------------------------------------------------------


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


async def typed_messages(
    op: Op, request: pb.QueryDataStreamRequest
) -> AsyncGenerator[pb.QueryDataStreamResponse, None]:
    query = _select(op, request, output_settings(op))
    reader = ResultReader(op.info)
    tally = Tally()
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


async def _counted(chunks: AsyncIterator[bytes], tally: Tally) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        tally.add(0, len(chunk))
        yield chunk


async def raw_messages(
    op: Op, request: pb.QueryRawStreamRequest
) -> AsyncGenerator[pb.QueryRawStreamResponse, None]:
    fmt = vetted(request.format, OUTPUT_FORMATS)
    query = _select(op, request, {})
    tally = Tally()
    query_id = op.call.reported_query_id
    with known_format(op, fmt):
        async with op.statements.stream(op.client, query, fmt) as chunks:
            async for chunk in chunks:
                for start in range(0, len(chunk), RAW_CHUNK_BYTES):
                    piece = chunk[start : start + RAW_CHUNK_BYTES]
                    tally.add(0, len(piece))
                    yield pb.QueryRawStreamResponse(query_id=query_id, data=piece)
                    query_id = ""
    if query_id:
        yield pb.QueryRawStreamResponse(query_id=query_id)
