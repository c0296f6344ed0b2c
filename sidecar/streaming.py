"""The four streaming RPCs: results out and rows in, as fast as both ends go.

:class:`Streams` is the streaming half of the servicer: it opens the call,
checks out a pooled client, and turns errors into statuses as the unary
RPCs do. Results out (QueryDataStream, QueryRawStream) are produced in
:mod:`sidecar.streams_out`; rows in (InsertDataStream, InsertRawStream) are
fed to ClickHouse in :mod:`sidecar.streams_in`; the formats a raw stream
may name are in :mod:`sidecar.formats`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import grpc
from google.protobuf.message import Message

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Call, Op, Statements
from .errors import RequestError
from .formats import INPUT_FORMATS, OUTPUT_FORMATS
from .pool import Pool
from .streams_in import Requests, insert_bytes, insert_rows
from .streams_out import Context, raw_messages, relay, typed_messages

__all__ = ["INPUT_FORMATS", "OUTPUT_FORMATS", "Streams"]

RequestT = TypeVar("RequestT", bound=Message)
ItemT = TypeVar("ItemT")
ResponseT = TypeVar("ResponseT", bound=Message)


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
        return self._respond(request, context, typed_messages)

    def query_raw(
        self, request: pb.QueryRawStreamRequest, context: Context
    ) -> AsyncIterator[pb.QueryRawStreamResponse]:
        return self._respond(request, context, raw_messages)

    async def insert_data(
        self, requests: AsyncIterator[pb.InsertDataStreamRequest], context: Context
    ) -> pb.InsertDataStreamResponse:
        return await self._consume(requests, context, insert_rows)

    async def insert_raw(
        self, requests: AsyncIterator[pb.InsertRawStreamRequest], context: Context
    ) -> pb.InsertRawStreamResponse:
        return await self._consume(requests, context, insert_bytes)

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
            async for item in relay(source, context):
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
        consume: Callable[[Op, RequestT, Requests[RequestT]], Awaitable[ResponseT]],
    ) -> ResponseT:
        call: Call | None = None
        try:
            first = await anext(aiter(requests), None)
            if first is None:
                raise RequestError("the stream is empty: send the table first")
            call = self.new_call(first, context)
            rest = Requests(requests, asyncio.current_task())
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
