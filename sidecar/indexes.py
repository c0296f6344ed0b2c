"""Data-skipping indexes: CreateIndex and DropIndex.

Servers older than 19.6 have no data-skipping indexes at all: both RPCs
answer FAILED_PRECONDITION naming the server version. Servers before 20.3
need an experimental flag, which the sidecar sets for these statements.
"""

from __future__ import annotations

import re

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from .calls import Op
from .errors import AlreadyExistsError, NotFoundError, RequestError, UnsupportedError
from .sql import qualified, quote_identifier, quote_string, validate_identifier
from .tables import table_exists, table_name

__all__ = ["create_index", "drop_index"]

_NUM = r"\s*\d+(?:\.\d+)?\s*"
_INDEX_TYPE = re.compile(
    rf"(minmax|set\({_NUM}\)|bloom_filter(\({_NUM}\))?|"
    rf"ngrambf_v1\({_NUM}(,{_NUM}){{3}}\)|tokenbf_v1\({_NUM}(,{_NUM}){{2}}\))\Z"
)


def _require_indexes(op: Op, rpc: str) -> dict[str, str]:
    caps = op.info.capabilities
    if not caps.data_skipping_indices:
        raise UnsupportedError(
            f"{rpc}: ClickHouse {op.info.version} has no data-skipping indexes "
            "(they need ClickHouse 19.6 or later)"
        )
    if caps.skipping_indices_flag:
        return {"allow_experimental_data_skipping_indices": "1"}
    return {}


async def _index_exists(op: Op, database: str, table: str, name: str) -> bool:
    if not await table_exists(op, database, table):
        raise NotFoundError(f"table {database}.{table} does not exist")
    rows = await op.records(
        "SELECT count() AS n FROM system.data_skipping_indices WHERE "
        f"database = {quote_string(database)} AND table = {quote_string(table)} "
        f"AND name = {quote_string(name)}"
    )
    return int(rows[0]["n"]) > 0


async def create_index(
    op: Op, request: pb.CreateIndexRequest
) -> pb.CreateIndexResponse:
    settings = _require_indexes(op, "CreateIndex")
    database, table = table_name(op, request.database, request.table)
    name = validate_identifier(request.name, "name")
    index_type = request.type.strip()
    if not _INDEX_TYPE.match(index_type):
        raise RequestError(
            f"type {request.type!r} is not one of minmax, set(N), bloom_filter[(p)], "
            "ngrambf_v1(n, size, hashes, seed), tokenbf_v1(size, hashes, seed)"
        )
    if not request.expression.strip():
        raise RequestError("expression must not be empty")

    if await _index_exists(op, database, table, name):
        if request.strict:
            raise AlreadyExistsError(
                f"index {name!r} already exists on {database}.{table}"
            )
        return pb.CreateIndexResponse(query_id=op.call.reported_query_id, created=False)

    granularity = request.granularity or 1
    target = qualified(database, table)
    await op.run(
        f"ALTER TABLE {target} ADD INDEX {quote_identifier(name)} "
        f"{request.expression} TYPE {index_type} GRANULARITY {granularity}",
        settings=settings,
    )
    if request.materialize:
        await op.run(
            f"ALTER TABLE {target} MATERIALIZE INDEX {quote_identifier(name)}",
            settings={**settings, "mutations_sync": "1"},
        )
    return pb.CreateIndexResponse(query_id=op.call.reported_query_id, created=True)


async def drop_index(op: Op, request: pb.DropIndexRequest) -> pb.DropIndexResponse:
    settings = _require_indexes(op, "DropIndex")
    database, table = table_name(op, request.database, request.table)
    name = validate_identifier(request.name, "name")

    if not await _index_exists(op, database, table, name):
        if request.strict:
            raise NotFoundError(f"index {name!r} does not exist on {database}.{table}")
        return pb.DropIndexResponse(query_id=op.call.reported_query_id, dropped=False)

    await op.run(
        f"ALTER TABLE {qualified(database, table)} DROP INDEX {quote_identifier(name)}",
        settings=settings,
    )
    return pb.DropIndexResponse(query_id=op.call.reported_query_id, dropped=True)
