"""Rows in and out: InsertData, QueryData and ExecuteRawQuery.

Inserts are validated whole before anything is sent: every value is encoded
against the table's column types first, so one bad value fails the call
with INVALID_ARGUMENT (row index and column named) and writes nothing.
Queries bind parameters server-side; their values never enter the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Op
from .codec import EncodeError, encoder_for, param_text
from .errors import (
    ClickHouseError,
    NotFoundError,
    RequestError,
    ResourceExhaustedError,
    UnsupportedError,
)
from .guard import check_read_only, check_single_statement
from .results import TYPED_FORMAT, Limits, ResultReader, collect
from .schema_cache import TableColumn
from .sql import (
    caller_settings,
    identifier_list,
    qualified,
    quote_string,
    validate_identifier,
)
from .tables import table_name

__all__ = [
    "execute_raw_query",
    "insert_data",
    "insert_statement",
    "output_settings",
    "query_data",
    "query_params",
]

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Encoder = Callable[[pb.Value], str]


async def _column_types(op: Op, database: str, table: str) -> list[TableColumn]:
    cached = op.statements.columns.get(database, table)
    if cached is not None:
        return cached
    rows = await op.records(
        "SELECT name, type, default_kind FROM system.columns WHERE "
        f"database = {quote_string(database)} AND table = {quote_string(table)}"
    )
    if not rows:
        raise NotFoundError(f"table {database}.{table} does not exist")
    columns = [
        TableColumn(str(r["name"]), str(r["type"]), str(r["default_kind"]))
        for r in rows
    ]
    op.statements.columns.put(database, table, columns)
    return columns


async def insert_statement(
    op: Op, database: str, table: str, columns: Sequence[str]
) -> tuple[str, list[str], list[Encoder]]:
    """``INSERT ... FORMAT Values`` for the named columns, and their encoders."""
    known = await _column_types(op, database, table)
    types = {c.name: c.type for c in known}
    if not columns:
        insertable = (
            c for c in known if c.default_kind not in ("MATERIALIZED", "ALIAS")
        )
        columns = [c.name for c in insertable]
    for i, name in enumerate(columns):
        if name not in types:
            raise RequestError(
                f"columns[{i}]: {name!r} is not a column of {database}.{table}"
            )
    if len(set(columns)) != len(columns):
        raise RequestError("columns must not repeat a column")

    encoders: list[Encoder] = []
    for name in columns:
        try:
            encoders.append(
                encoder_for(
                    types[name],
                    server_timezone=op.info.timezone,
                    short_calendar=op.info.capabilities.short_calendar,
                )
            )
        except RequestError as exc:
            raise RequestError(f"column {name!r}: {exc}") from exc
    target = qualified(database, table)
    sql = f"INSERT INTO {target} ({identifier_list(columns)}) FORMAT Values"
    return sql, list(columns), encoders


def encode_rows(
    rows: Sequence[pb.Row],
    columns: Sequence[str],
    encoders: Sequence[Encoder],
    first: int = 0,
) -> bytes:
    """The Values body for ``rows``; the first bad value raises, naming it."""
    width = len(encoders)
    parts: list[str] = []
    for index, row in enumerate(rows, start=first):
        values = row.values
        if len(values) != width:
            raise RequestError(
                f"rows[{index}] has {len(values)} values, expected {width}"
            )
        encoded = []
        for column, encode, value in zip(columns, encoders, values, strict=True):
            try:
                encoded.append(encode(value))
            except EncodeError as exc:
                raise RequestError(f"rows[{index}] column {column!r}: {exc}") from exc
        parts.append("(" + ",".join(encoded) + ")")
    return "\n".join(parts).encode()


def dedup_settings(op: Op, token: str) -> dict[str, str]:
    if not token:
        return {}
    if not op.info.capabilities.insert_deduplication_token:
        raise UnsupportedError(
            "deduplication_token needs ClickHouse 22.2 or later; "
            f"the server is {op.info.version}"
        )
    return {"insert_deduplication_token": token}


async def insert_data(op: Op, request: pb.InsertDataRequest) -> pb.InsertDataResponse:
    database, table = table_name(op, request.database, request.table)
    sql, columns, encoders = await insert_statement(
        op, database, table, request.columns
    )
    body = encode_rows(request.rows, columns, encoders)
    settings = dedup_settings(op, request.deduplication_token)
    # One block: ClickHouse commits an insert block by block, so a server-side
    # error in a later block would leave the earlier ones written.
    settings["max_insert_block_size"] = str(max(len(request.rows), 1_048_576))

    if request.rows:
        try:
            await op.run(sql, settings=settings, body=body)
        except ClickHouseError:
            # Perhaps the table changed under a cached schema: read it anew.
            op.statements.columns.forget(database, table)
            raise
    return pb.InsertDataResponse(
        query_id=op.call.reported_query_id, rows_written=len(request.rows)
    )


def query_params(op: Op, parameters: Sequence[pb.QueryParameter]) -> dict[str, str]:
    """Server-side parameters rendered as ClickHouse text."""
    if parameters and not op.info.capabilities.query_parameters:
        raise UnsupportedError(
            f"query parameters need server-side binding (ClickHouse 19.11 or later); "
            f"the server is {op.info.version}"
        )
    rendered: dict[str, str] = {}
    for i, parameter in enumerate(parameters):
        field = f"parameters[{i}]"
        if not _PARAM_NAME.match(parameter.name):
            raise RequestError(
                f"{field}.name {parameter.name!r} is not a parameter name"
            )
        if parameter.name in rendered:
            raise RequestError(f"{field}.name {parameter.name!r} is given twice")
        if not parameter.type.strip():
            raise RequestError(f"{field}.type must not be empty")
        try:
            rendered[parameter.name] = param_text(parameter.type, parameter.value)
        except (EncodeError, RequestError) as exc:
            raise RequestError(f"{field} ({parameter.name}): {exc}") from exc
    return rendered


def output_settings(op: Op) -> dict[str, str]:
    """Settings that make typed output exact on this server."""
    if op.info.capabilities.unix_timestamp_output:
        return {"date_time_output_format": "unix_timestamp"}
    return {}


async def _typed_rows(
    op: Op,
    request: pb.QueryDataRequest | pb.ExecuteRawQueryRequest,
    settings: dict[str, str],
    params: dict[str, str],
    limits: Limits,
    response: pb.QueryDataResponse | pb.ExecuteRawQueryResponse,
) -> None:
    database = validate_identifier(request.database or op.call.database, "database")
    settings = {**settings, **output_settings(op)}
    query = op.query(
        request.sql, database=database, settings=settings, params=params, whole=True
    )
    reader = ResultReader(op.info)
    async with op.statements.stream(op.client, query, TYPED_FORMAT) as chunks:
        await collect(reader, chunks, response.rows, limits)
    if response.ByteSize() > limits.message_bytes:
        raise ResourceExhaustedError(
            f"the decoded result exceeds {limits.message_bytes} bytes "
            "(SIDECAR_MAX_MESSAGE_BYTES); use QueryDataStream or add a LIMIT"
        )
    response.query_id = op.call.reported_query_id
    response.columns.extend(reader.columns)


def _require_sql(sql: str) -> str:
    if not sql.strip():
        raise RequestError("sql must not be empty")
    return sql


async def query_data(
    op: Op, request: pb.QueryDataRequest, limits: Limits
) -> pb.QueryDataResponse:
    check_read_only(_require_sql(request.sql))
    settings = caller_settings(request.settings, "settings")
    settings["readonly"] = "2"
    params = query_params(op, request.parameters)

    response = pb.QueryDataResponse()
    await _typed_rows(op, request, settings, params, limits, response)
    return response


async def execute_raw_query(
    op: Op, request: pb.ExecuteRawQueryRequest, limits: Limits, allow_writes: bool
) -> pb.ExecuteRawQueryResponse:
    sql = check_single_statement(_require_sql(request.sql))
    settings = caller_settings(request.settings, "settings")
    if allow_writes:
        # The statement may change any table's columns.
        op.statements.columns.clear()
    else:
        check_read_only(sql)
        settings["readonly"] = "2"

    response = pb.ExecuteRawQueryResponse()
    await _typed_rows(op, request, settings, {}, limits, response)
    return response
