"""The servicer: decode the request, run its operation, encode the answer.

Each RPC method is one line: it names its operation. :meth:`_unary` does the
rest, once for all: the call's database and deadline, the pooled client
context, and the translation of every error into a gRPC status whose
details carry a ``google.rpc.ErrorInfo`` (ClickHouse code and name, query id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from . import data, indexes, streaming, tables
from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from ._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc
from .admission import Admission
from .calls import Call, Op, Statements
from .config import Settings
from .errors import ClickHouseError, ResourceExhaustedError, SidecarError
from .pool import Pool
from .results import Limits
from .sql import validate_identifier

__all__ = ["SidecarService", "error_status", "status_for"]

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
Operation = Callable[[Op, RequestT], Awaitable[ResponseT]]

ERROR_DOMAIN = "clickhouse.sidecar.v1"


def error_status(exc: SidecarError, query_id: str) -> grpc.Status:
    """The status (with ErrorInfo details) a sidecar error becomes."""
    metadata = {"query_id": query_id}
    reason = exc.reason
    if isinstance(exc, ClickHouseError):
        metadata["code"] = str(exc.code)
        metadata["name"] = exc.name
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=ERROR_DOMAIN, metadata=metadata
    )
    detail = status_pb2.Status(
        code=exc.status.value[0], message=str(exc) or exc.status.name
    )
    detail.details.add().Pack(info)
    status: grpc.Status = rpc_status.to_status(detail)
    return status


def _internal_status(query_id: str) -> grpc.Status:
    detail = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"internal error in the sidecar (query_id {query_id}); see its log",
    )
    status: grpc.Status = rpc_status.to_status(detail)
    return status


def status_for(exc: Exception, query_id: str) -> grpc.Status:
    """The status any error of a call becomes; our own bugs are logged here."""
    if isinstance(exc, SidecarError):
        return error_status(exc, query_id)
    log.error("internal error serving query_id %s", query_id, exc_info=exc)
    return _internal_status(query_id)


class SidecarService(pb_grpc.ClickHouseSidecarServicer):
    """The thirteen unary RPCs (streaming ones live in :mod:`sidecar.streaming`)."""

    def __init__(self, settings: Settings, pool: Pool, statements: Statements) -> None:
        self._settings = settings
        self._pool = pool
        self._statements = statements
        self._admission = Admission(settings.max_concurrent_calls)
        self._limits = Limits(
            rows=settings.max_result_rows,
            bytes=settings.max_result_bytes,
            message_bytes=settings.max_message_bytes,
        )
        self._streams = streaming.Streams(pool, statements, self.new_call, status_for)

    def new_call(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Call:
        database = self._settings.clickhouse_database
        remaining = context.time_remaining()
        deadline = None
        if remaining is not None:
            deadline = asyncio.get_running_loop().time() + remaining
        return Call(
            database=validate_identifier(database, "database"), deadline=deadline
        )

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Count a call in; past the limit, RESOURCE_EXHAUSTED at once."""
        self._admission.enter()
        try:
            yield
        finally:
            self._admission.leave()

    @asynccontextmanager
    async def admission(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """:meth:`admitted` for streams, which abort the call themselves."""
        try:
            self._admission.enter()
        except ResourceExhaustedError as exc:
            status = error_status(exc, "")
            await context.abort(status.code, status.details, status.trailing_metadata)
        try:
            yield
        finally:
            self._admission.leave()

    async def _unary(
        self,
        operation: Operation[RequestT, ResponseT],
        request: RequestT,
        context: grpc.aio.ServicerContext[RequestT, ResponseT],
    ) -> ResponseT:
        call: Call | None = None
        try:
            with self.admitted():
                call = self.new_call(request, context)
                async with self._pool.client() as client:
                    return await operation(Op(self._statements, client, call), request)
        except SidecarError as exc:
            status = error_status(exc, call.reported_query_id if call else "")
        except Exception:
            query_id = call.reported_query_id if call else ""
            log.exception("internal error serving query_id %s", query_id)
            status = _internal_status(query_id)
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort returned")  # pragma: no cover

    async def CreateDatabase(
        self, request: pb.CreateDatabaseRequest, context: Any
    ) -> pb.CreateDatabaseResponse:
        return await self._unary(tables.create_database, request, context)

    async def CreateTable(
        self, request: pb.CreateTableRequest, context: Any
    ) -> pb.CreateTableResponse:
        return await self._unary(tables.create_table, request, context)

    async def InsertData(
        self, request: pb.InsertDataRequest, context: Any
    ) -> pb.InsertDataResponse:
        return await self._unary(data.insert_data, request, context)

    async def QueryData(
        self, request: pb.QueryDataRequest, context: Any
    ) -> pb.QueryDataResponse:
        async def run(op: Op, req: pb.QueryDataRequest) -> pb.QueryDataResponse:
            return await data.query_data(op, req, self._limits)

        return await self._unary(run, request, context)

    async def ExecuteRawQuery(
        self, request: pb.ExecuteRawQueryRequest, context: Any
    ) -> pb.ExecuteRawQueryResponse:
        allow = self._settings.allow_raw_writes

        async def run(
            op: Op, req: pb.ExecuteRawQueryRequest
        ) -> pb.ExecuteRawQueryResponse:
            return await data.execute_raw_query(op, req, self._limits, allow)

        return await self._unary(run, request, context)

    async def GetTableSchema(
        self, request: pb.GetTableSchemaRequest, context: Any
    ) -> pb.GetTableSchemaResponse:
        return await self._unary(tables.get_table_schema, request, context)

    async def DropTable(
        self, request: pb.DropTableRequest, context: Any
    ) -> pb.DropTableResponse:
        return await self._unary(tables.drop_table, request, context)

    async def TruncateTable(
        self, request: pb.TruncateTableRequest, context: Any
    ) -> pb.TruncateTableResponse:
        return await self._unary(tables.truncate_table, request, context)

    async def CheckTableExists(
        self, request: pb.CheckTableExistsRequest, context: Any
    ) -> pb.CheckTableExistsResponse:
        return await self._unary(tables.check_table_exists, request, context)

    async def GetTableRowCount(
        self, request: pb.GetTableRowCountRequest, context: Any
    ) -> pb.GetTableRowCountResponse:
        return await self._unary(tables.get_table_row_count, request, context)

    async def CreateIndex(
        self, request: pb.CreateIndexRequest, context: Any
    ) -> pb.CreateIndexResponse:
        return await self._unary(indexes.create_index, request, context)

    async def DropIndex(
        self, request: pb.DropIndexRequest, context: Any
    ) -> pb.DropIndexResponse:
        return await self._unary(indexes.drop_index, request, context)

    async def OptimizeTable(
        self, request: pb.OptimizeTableRequest, context: Any
    ) -> pb.OptimizeTableResponse:
        return await self._unary(tables.optimize_table, request, context)

    # Async generator methods: grpc.aio only streams from those.
    async def QueryDataStream(
        self, request: pb.QueryDataStreamRequest, context: Any
    ) -> AsyncIterator[pb.QueryDataStreamResponse]:
        async with self.admission(context):
            async for message in self._streams.query_data(request, context):
                yield message

    async def InsertDataStream(
        self, request_iterator: AsyncIterator[pb.InsertDataStreamRequest], context: Any
    ) -> pb.InsertDataStreamResponse:
        async with self.admission(context):
            return await self._streams.insert_data(request_iterator, context)

    async def QueryRawStream(
        self, request: pb.QueryRawStreamRequest, context: Any
    ) -> AsyncIterator[pb.QueryRawStreamResponse]:
        async with self.admission(context):
            async for message in self._streams.query_raw(request, context):
                yield message

    async def InsertRawStream(
        self, request_iterator: AsyncIterator[pb.InsertRawStreamRequest], context: Any
    ) -> pb.InsertRawStreamResponse:
        async with self.admission(context):
            return await self._streams.insert_raw(request_iterator, context)
