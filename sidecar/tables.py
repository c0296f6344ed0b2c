"""Database and table operations: create, drop, truncate, inspect, optimize.

Create and drop run the strict statement and, in idempotent mode, turn
ClickHouse's "already exists" / "unknown" answer into ``created=False`` /
``dropped=False``: race-free, and the response says what happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Op
from .errors import ClickHouseError, NotFoundError, RequestError, UnsupportedError
from .guard import code_of
from .sql import qualified, quote_identifier, quote_string, validate_identifier

__all__ = [
    "check_table_exists",
    "create_database",
    "create_table",
    "drop_table",
    "get_table_row_count",
    "get_table_schema",
    "optimize_table",
    "table_name",
    "truncate_table",
]

DATABASE_EXISTS, TABLE_EXISTS = 82, 57
UNKNOWN_DATABASE, UNKNOWN_TABLE = 81, 60

_DEFAULT_KINDS = {
    pb.DEFAULT_KIND_DEFAULT: "DEFAULT",
    pb.DEFAULT_KIND_MATERIALIZED: "MATERIALIZED",
    pb.DEFAULT_KIND_ALIAS: "ALIAS",
    pb.DEFAULT_KIND_EPHEMERAL: "EPHEMERAL",
}
_KIND_BY_NAME = {name: kind for kind, name in _DEFAULT_KINDS.items()}
_NUMBER = re.compile(r"-?\d+(\.\d+)?\Z")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENGINE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\(.*\))?\Z", re.DOTALL)


def table_name(op: Op, database: str, table: str) -> tuple[str, str]:
    """Validated (database, table); an empty database is the default one."""
    return (
        validate_identifier(database or op.call.database, "database"),
        validate_identifier(table, "table"),
    )


def _not_found(database: str, table: str) -> NotFoundError:
    return NotFoundError(f"table {database}.{table} does not exist")


async def create_database(
    op: Op, request: pb.CreateDatabaseRequest
) -> pb.CreateDatabaseResponse:
    database = validate_identifier(request.database, "database")
    sql = f"CREATE DATABASE {quote_identifier(database)}"
    if request.engine:
        sql += f" ENGINE = {_engine(request.engine)}"

    try:
        await op.run(sql)
    except ClickHouseError as exc:
        if exc.code != DATABASE_EXISTS or request.strict:
            raise
        return pb.CreateDatabaseResponse(
            query_id=op.call.reported_query_id, created=False
        )
    return pb.CreateDatabaseResponse(query_id=op.call.reported_query_id, created=True)


def _engine(engine: str) -> str:
    code = code_of(engine).strip()
    if not _ENGINE.match(code) or any(m in engine for m in (";", "--", "/*", "#")):
        raise RequestError(f"engine {engine!r} is not an engine name with arguments")
    return engine.strip()


def _table_setting(name: str) -> str:
    if not _SETTING_NAME.match(name):
        raise RequestError(f"settings: {name!r} is not a table setting name")
    return name


def _column(column: pb.ColumnDefinition, index: int) -> str:
    field = f"columns[{index}]"
    name = validate_identifier(column.name, f"{field}.name")
    if not column.type.strip():
        raise RequestError(f"{field}.type must not be empty (column {name!r})")

    parts = [quote_identifier(name), column.type.strip()]
    if column.default_kind not in (pb.DEFAULT_KIND_UNSPECIFIED, *_DEFAULT_KINDS):
        raise RequestError(f"{field}.default_kind {column.default_kind} is not known")
    if column.default_kind != pb.DEFAULT_KIND_UNSPECIFIED:
        if (
            not column.default_expression.strip()
            and column.default_kind != pb.DEFAULT_KIND_EPHEMERAL
        ):
            raise RequestError(
                f"{field}.default_expression is required with default_kind"
            )
        parts += [_DEFAULT_KINDS[column.default_kind], column.default_expression]
    if column.comment:
        parts.append(f"COMMENT {quote_string(column.comment)}")
    if column.codec:
        parts.append(f"CODEC({column.codec})")
    return " ".join(p for p in parts if p)


def _check_types(op: Op, columns: Iterable[pb.ColumnDefinition]) -> dict[str, str]:
    """Refuse types this server lacks; return settings the types need."""
    caps = op.info.capabilities
    needs = {"DateTime64": caps.datetime64, "Map(": caps.map_type}
    settings: dict[str, str] = {}
    for column in columns:
        for marker, supported in needs.items():
            if marker in column.type and not supported:
                raise UnsupportedError(
                    f"column {column.name!r}: type {marker.rstrip('(')} is not "
                    f"supported by ClickHouse {op.info.version}"
                )
        if "LowCardinality" in column.type and caps.low_cardinality_flag:
            settings["allow_experimental_low_cardinality_type"] = "1"
    return settings


def _setting_value(value: str) -> str:
    return value if _NUMBER.match(value) else quote_string(value)


def _sorting_key(order_by: Sequence[str]) -> str:
    if not order_by:
        return "tuple()"
    if len(order_by) == 1:
        return order_by[0]
    return f"({', '.join(order_by)})"


def create_table_sql(request: pb.CreateTableRequest, database: str, table: str) -> str:
    if not request.columns:
        raise RequestError("columns must not be empty")
    columns = ", ".join(_column(c, i) for i, c in enumerate(request.columns))
    engine = _engine(request.engine or "MergeTree")
    sql = f"CREATE TABLE {qualified(database, table)} ({columns}) ENGINE = {engine}"

    if request.partition_by:
        sql += f" PARTITION BY {request.partition_by}"
    if request.order_by or "MergeTree" in engine:
        sql += f" ORDER BY {_sorting_key(request.order_by)}"
    if request.primary_key:
        sql += f" PRIMARY KEY {request.primary_key}"
    if request.ttl:
        sql += f" TTL {request.ttl}"
    if request.settings:
        pairs = (
            f"{_table_setting(k)} = {_setting_value(v)}"
            for k, v in sorted(request.settings.items())
        )
        sql += " SETTINGS " + ", ".join(pairs)
    if request.comment:
        sql += f" COMMENT {quote_string(request.comment)}"
    return sql


async def create_table(
    op: Op, request: pb.CreateTableRequest
) -> pb.CreateTableResponse:
    database, table = table_name(op, request.database, request.table)
    sql = create_table_sql(request, database, table)
    op.statements.columns.forget(database, table)
    settings = _check_types(op, request.columns)

    try:
        await op.run(sql, settings=settings)
    except ClickHouseError as exc:
        if exc.code != TABLE_EXISTS or request.strict:
            raise
        return pb.CreateTableResponse(query_id=op.call.reported_query_id, created=False)
    return pb.CreateTableResponse(query_id=op.call.reported_query_id, created=True)


async def drop_table(op: Op, request: pb.DropTableRequest) -> pb.DropTableResponse:
    database, table = table_name(op, request.database, request.table)
    op.statements.columns.forget(database, table)

    try:
        await op.run(f"DROP TABLE {qualified(database, table)}")
    except ClickHouseError as exc:
        if exc.code not in (UNKNOWN_TABLE, UNKNOWN_DATABASE) or request.strict:
            raise
        return pb.DropTableResponse(query_id=op.call.reported_query_id, dropped=False)
    return pb.DropTableResponse(query_id=op.call.reported_query_id, dropped=True)


async def truncate_table(
    op: Op, request: pb.TruncateTableRequest
) -> pb.TruncateTableResponse:
    database, table = table_name(op, request.database, request.table)
    await op.run(f"TRUNCATE TABLE {qualified(database, table)}")
    return pb.TruncateTableResponse(query_id=op.call.reported_query_id)


async def table_exists(op: Op, database: str, table: str) -> bool:
    sql = (
        "SELECT count() AS n FROM system.tables "
        f"WHERE database = {quote_string(database)} AND name = {quote_string(table)}"
    )
    rows = await op.records(sql)
    return int(rows[0]["n"]) > 0


async def check_table_exists(
    op: Op, request: pb.CheckTableExistsRequest
) -> pb.CheckTableExistsResponse:
    database, table = table_name(op, request.database, request.table)
    exists = await table_exists(op, database, table)
    return pb.CheckTableExistsResponse(
        query_id=op.call.reported_query_id, exists=exists
    )


async def get_table_row_count(
    op: Op, request: pb.GetTableRowCountRequest
) -> pb.GetTableRowCountResponse:
    database, table = table_name(op, request.database, request.table)
    rows = await op.records(f"SELECT count() AS n FROM {qualified(database, table)}")
    return pb.GetTableRowCountResponse(
        query_id=op.call.reported_query_id, row_count=int(rows[0]["n"])
    )


async def get_table_schema(
    op: Op, request: pb.GetTableSchemaRequest
) -> pb.GetTableSchemaResponse:
    database, table = table_name(op, request.database, request.table)
    where = f"database = {quote_string(database)} AND {{}} = {quote_string(table)}"
    tables = await op.records(
        f"SELECT * FROM system.tables WHERE {where.format('name')}"
    )
    if not tables:
        raise _not_found(database, table)
    columns = await op.records(
        f"SELECT * FROM system.columns WHERE {where.format('table')} ORDER BY position"
        if op.info.version_tuple >= (19, 1)
        else f"SELECT * FROM system.columns WHERE {where.format('table')}"
    )
    indexes = []
    if op.info.capabilities.data_skipping_indices and op.info.version_tuple >= (20, 10):
        indexes = await op.records(
            f"SELECT * FROM system.data_skipping_indices WHERE {where.format('table')}"
        )

    info = tables[0]
    return pb.GetTableSchemaResponse(
        query_id=op.call.reported_query_id,
        database=database,
        table=table,
        columns=[_column_schema(c) for c in columns],
        engine=str(info.get("engine", "")),
        engine_full=str(info.get("engine_full", "")),
        sorting_key=str(info.get("sorting_key", "")),
        partition_key=str(info.get("partition_key", "")),
        primary_key=str(info.get("primary_key", "")),
        indexes=[_index_schema(i) for i in indexes],
    )


def _column_schema(row: dict[str, object]) -> pb.ColumnSchema:
    return pb.ColumnSchema(
        name=str(row["name"]),
        type=str(row["type"]),
        default_kind=_KIND_BY_NAME.get(
            str(row.get("default_kind", "")), pb.DEFAULT_KIND_UNSPECIFIED
        ),
        default_expression=str(row.get("default_expression", "")),
        comment=str(row.get("comment", "")),
        codec=str(row.get("compression_codec", "")),
        is_in_sorting_key=bool(int(str(row.get("is_in_sorting_key", 0)))),
        is_in_partition_key=bool(int(str(row.get("is_in_partition_key", 0)))),
        is_in_primary_key=bool(int(str(row.get("is_in_primary_key", 0)))),
    )


def _index_schema(row: dict[str, object]) -> pb.IndexSchema:
    return pb.IndexSchema(
        name=str(row["name"]),
        expression=str(row.get("expr", "")),
        type=str(row.get("type_full", row.get("type", ""))),
        granularity=int(str(row.get("granularity", 0))),
    )


async def optimize_table(
    op: Op, request: pb.OptimizeTableRequest
) -> pb.OptimizeTableResponse:
    database, table = table_name(op, request.database, request.table)
    sql = f"OPTIMIZE TABLE {qualified(database, table)}"
    if request.partition:
        sql += f" PARTITION {request.partition}"
    if request.final:
        sql += " FINAL"
    if request.deduplicate:
        sql += " DEDUPLICATE"

    await op.run(sql, settings={"optimize_throw_if_noop": "0"})
    return pb.OptimizeTableResponse(query_id=op.call.reported_query_id)
