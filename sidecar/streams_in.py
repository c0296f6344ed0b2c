"""Rows in: InsertDataStream and InsertRawStream.

An insert runs ONE INSERT whose HTTP body is fed from the request stream as
messages arrive. Typed rows are encoded batch by batch; a bad value fails
the call with INVALID_ARGUMENT naming the row's index in the whole stream
and the column.

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
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Op
from .data import dedup_settings, encode_rows
from .data import insert_statement as typed_insert_statement
from .errors import ClickHouseError, RequestError, SidecarError
from .formats import INPUT_FORMATS, known_format, vetted
from .sql import identifier_list, qualified, validate_identifier
from .tables import table_name
from .telemetry import Tally

__all__ = ["Requests", "insert_bytes", "insert_rows"]

RequestT = TypeVar("RequestT", bound=Message)

END_GRACE_SECONDS = 0.05

# No input format accepts this line where a row should start.
_ABORT_LINE = b"\n#sidecar: insert abandoned\n"

_ROW_FIELDS = ("database", "table", "columns", "deduplication_token")
_RAW_FIELDS = (*_ROW_FIELDS, "format")


class Requests(Generic[RequestT]):
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
        self.tally = Tally()
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


async def _chain(first: RequestT, rest: Requests[RequestT]) -> AsyncIterator[RequestT]:
    yield first
    async for request in rest:
        yield request


async def insert_rows(
    op: Op,
    first: pb.InsertDataStreamRequest,
    rest: Requests[pb.InsertDataStreamRequest],
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


async def insert_bytes(
    op: Op,
    first: pb.InsertRawStreamRequest,
    rest: Requests[pb.InsertRawStreamRequest],
) -> pb.InsertRawStreamResponse:
    database, table = table_name(op, first.database, first.table)
    fmt = vetted(first.format, INPUT_FORMATS)
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

    with known_format(op, fmt):
        await feed.send(op, sql, first.deduplication_token, body())
    # TODO(#4): ClickHouse does not say how many rows a raw body held (18.16
    # sends no X-ClickHouse-Summary); rows_written stays 0 for raw inserts.
    return pb.InsertRawStreamResponse(query_id=op.call.reported_query_id)
