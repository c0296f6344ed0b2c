"""Values round trips: InsertData, then QueryData and ExecuteRawQuery.

Each case creates a table ``(id UInt32, v <type>)``, inserts its values in
one call and reads them back in order. Types a server lacks are checked to
fail the way the contract says instead (FAILED_PRECONDITION for the types
the sidecar knows the server lacks, INVALID_ARGUMENT from ClickHouse for
the rest).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from harness import Running, fresh_table, unique

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.engine import ServerInfo

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

NULL = pb.Value(null_value=pb.NULL_VALUE)


def s(text: str) -> pb.Value:
    return pb.Value(string_value=text)


def u(number: int) -> pb.Value:
    return pb.Value(uint64_value=number)


def i(number: int) -> pb.Value:
    return pb.Value(int64_value=number)


def instant(seconds: int, nanos: int, zone: str) -> pb.Value:
    return pb.Value(
        datetime_value=pb.DateTime(
            instant=Timestamp(seconds=seconds, nanos=nanos), timezone=zone
        )
    )


def array(*values: pb.Value) -> pb.Value:
    return pb.Value(array_value=pb.ValueList(values=values))


def tuple_(*values: pb.Value) -> pb.Value:
    return pb.Value(tuple_value=pb.ValueList(values=values))


def always(info: ServerInfo) -> bool:
    return True


@dataclass(frozen=True)
class Case:
    type: str
    values: Sequence[pb.Value]
    # What comes back, when it differs from what went in.
    expected: Sequence[pb.Value] | None = None
    supported: Callable[[ServerInfo], bool] = field(default=always)


CASES: dict[str, Case] = {
    "uint64_max": Case("UInt64", [u(0), u(18446744073709551615)]),
    "int64_min": Case("Int64", [i(-9223372036854775808), i(9223372036854775807)]),
    "uint8": Case("UInt8", [u(0), u(255)]),
    "float64": Case(
        "Float64", [pb.Value(double_value=0.1), pb.Value(double_value=-1e300)]
    ),
    "string_escapes": Case(
        "String",
        [s("tab\there"), s("new\nline"), s("quote'\\back"), s("日本語"), s("")],
    ),
    "string_not_utf8": Case("String", [pb.Value(bytes_value=b"\xff\xfe\x00a")]),
    "date": Case(
        "Date",
        [
            pb.Value(date_value=pb.Date(year=2024, month=2, day=29)),
            pb.Value(date_value=pb.Date(year=1970, month=1, day=2)),
        ],
    ),
    "datetime_with_zone": Case(
        "DateTime('Europe/Berlin')",
        [instant(1700000000, 0, "Europe/Berlin"), instant(1, 0, "Europe/Berlin")],
    ),
    "uuid": Case("UUID", [pb.Value(uuid_value="61f0c404-5cb3-11e7-907b-a6006ad3dba0")]),
    "nullable_string": Case("Nullable(String)", [NULL, s("NULL"), s(""), s("\\N")]),
    "array_nullable_string": Case(
        "Array(Nullable(String))",
        [array(s("a"), NULL, s("NULL"), s(""), s("it's")), array()],
    ),
    "tuple": Case(
        "Tuple(UInt8, String, Nullable(Int32))",
        [tuple_(u(1), s("x,y"), NULL), tuple_(u(2), s(""), i(-5))],
    ),
    "low_cardinality": Case("LowCardinality(String)", [s("a"), s("b"), s("a")]),
    "enum8": Case("Enum8('red' = 1, 'green' = -2)", [s("red"), s("green")]),
    "datetime64_nanoseconds": Case(
        "DateTime64(9, 'UTC')",
        [
            instant(1700000000, 123456789, "UTC"),
            instant(-1, 999999999, "UTC"),
            instant(0, 1, "UTC"),
        ],
        supported=lambda info: info.capabilities.datetime64,
    ),
    "map": Case(
        "Map(String, UInt64)",
        [
            pb.Value(
                map_value=pb.MapValue(
                    entries=[
                        pb.MapEntry(key=s("a"), value=u(1)),
                        pb.MapEntry(key=s("b'c"), value=u(18446744073709551615)),
                    ]
                )
            ),
            pb.Value(map_value=pb.MapValue()),
        ],
        supported=lambda info: info.capabilities.map_type,
    ),
    "ipv4": Case(
        "IPv4",
        [pb.Value(ip_value="1.2.3.4"), pb.Value(ip_value="255.255.255.255")],
        supported=lambda info: info.version_tuple >= (19, 3),
    ),
    "ipv6": Case(
        "IPv6",
        [pb.Value(ip_value="2001:db8::1"), pb.Value(ip_value="::ffff:1.2.3.4")],
        supported=lambda info: info.version_tuple >= (19, 3),
    ),
    "bool": Case(
        "Bool",
        [pb.Value(bool_value=True), pb.Value(bool_value=False)],
        supported=lambda info: info.version_tuple >= (21, 12),
    ),
}


async def create(stub: AsyncStub, column_type: str) -> tuple[str, str]:
    return await fresh_table(
        stub,
        pb.ColumnDefinition(name="id", type="UInt32"),
        pb.ColumnDefinition(name="v", type=column_type),
        order_by=["id"],
    )


def numbered(values: Sequence[pb.Value]) -> list[pb.Row]:
    return [pb.Row(values=[u(n), value]) for n, value in enumerate(values)]


async def read_back(stub: AsyncStub, database: str, table: str) -> list[pb.Value]:
    sql = f"SELECT v FROM `{database}`.`{table}` ORDER BY id"
    queried = await stub.QueryData(pb.QueryDataRequest(sql=sql))
    raw = await stub.ExecuteRawQuery(pb.ExecuteRawQueryRequest(sql=sql))

    assert list(queried.rows) == list(raw.rows)
    assert list(queried.columns) == list(raw.columns)
    return [row.values[0] for row in queried.rows]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_values_round_trip(sidecar: Running, stub: AsyncStub, case: Case) -> None:
    if not case.supported(sidecar.server.pool.info):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(stub, case.type)
        assert caught.value.code() in (
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        return
    database, table = await create(stub, case.type)

    inserted = await stub.InsertData(
        pb.InsertDataRequest(database=database, table=table, rows=numbered(case.values))
    )

    assert inserted.rows_written == len(case.values)
    assert await read_back(stub, database, table) == list(case.expected or case.values)


async def test_decimal_is_exact(stub: AsyncStub) -> None:
    database, table = await create(stub, "Decimal(38, 10)")
    texts = ["-12.34", "1234567890123456789012345678.0123456789", "0"]

    await stub.InsertData(
        pb.InsertDataRequest(
            database=database,
            table=table,
            rows=numbered([pb.Value(decimal_value=t) for t in texts]),
        )
    )
    values = await read_back(stub, database, table)

    assert [v.WhichOneof("kind") for v in values] == ["decimal_value"] * 3
    assert [Decimal(v.decimal_value) for v in values] == [Decimal(t) for t in texts]


async def test_query_results_name_their_columns_and_types(stub: AsyncStub) -> None:
    response = await stub.QueryData(
        pb.QueryDataRequest(
            sql="SELECT toUInt64(1) AS a, 'x' AS b, CAST(NULL AS Nullable(Int8)) AS c"
        )
    )

    assert [(c.name, c.type) for c in response.columns] == [
        ("a", "UInt64"),
        ("b", "String"),
        ("c", "Nullable(Int8)"),
    ]
    assert list(response.rows[0].values) == [u(1), s("x"), NULL]
    uuid.UUID(response.query_id)


async def test_insert_accepts_lossless_conversions(stub: AsyncStub) -> None:
    database, table = await create(stub, "UInt64")

    await stub.InsertData(
        pb.InsertDataRequest(
            database=database,
            table=table,
            rows=numbered([s("42"), i(7), pb.Value(double_value=3.0)]),
        )
    )

    assert await read_back(stub, database, table) == [u(42), u(7), u(3)]


async def test_insert_named_columns_leaves_defaults(stub: AsyncStub) -> None:
    database, table = await fresh_table(
        stub,
        pb.ColumnDefinition(name="id", type="UInt32"),
        pb.ColumnDefinition(
            name="v",
            type="String",
            default_kind=pb.DEFAULT_KIND_DEFAULT,
            default_expression="'fallback'",
        ),
    )

    await stub.InsertData(
        pb.InsertDataRequest(
            database=database, table=table, columns=["id"], rows=[pb.Row(values=[u(1)])]
        )
    )

    assert await read_back(stub, database, table) == [s("fallback")]


async def test_insert_reports_query_id_and_rows(stub: AsyncStub) -> None:
    database, table = await create(stub, "String")

    response = await stub.InsertData(
        pb.InsertDataRequest(
            database=database, table=table, rows=numbered([s("a"), s("b")])
        )
    )

    # The call's UUID; statements after a call's first carry a -N suffix.
    uuid.UUID(response.query_id[:36])
    assert response.rows_written == 2


@pytest.mark.parametrize(
    ("column_type", "bad"),
    [
        ("UInt8", i(-1)),
        ("UInt8", u(300)),
        ("Date", s("not a date")),
        ("UInt64", s("4.5")),
        ("String", NULL),
    ],
    ids=["negative_uint8", "uint8_overflow", "string_into_date", "fraction", "null"],
)
async def test_bad_value_fails_the_whole_insert_naming_row_and_column(
    stub: AsyncStub, column_type: str, bad: pb.Value
) -> None:
    database, table = await create(stub, column_type)
    good = {"UInt8": u(1), "Date": s("2024-01-01"), "UInt64": u(1), "String": s("")}
    rows = numbered([good[column_type], good[column_type], bad, good[column_type]])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.InsertData(
            pb.InsertDataRequest(database=database, table=table, rows=rows)
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "rows[2]" in details
    assert "'v'" in details
    count = await stub.GetTableRowCount(
        pb.GetTableRowCountRequest(database=database, table=table)
    )
    assert count.row_count == 0


async def test_insert_with_wrong_row_width_is_invalid_argument(
    stub: AsyncStub,
) -> None:
    database, table = await create(stub, "String")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.InsertData(
            pb.InsertDataRequest(
                database=database, table=table, rows=[pb.Row(values=[u(1)])]
            )
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows[0]" in (caught.value.details() or "")


async def test_insert_into_unknown_column_is_invalid_argument(
    stub: AsyncStub,
) -> None:
    database, table = await create(stub, "String")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.InsertData(
            pb.InsertDataRequest(
                database=database,
                table=table,
                columns=["id", "nope"],
                rows=numbered([s("x")]),
            )
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nope" in (caught.value.details() or "")


async def test_query_parameters_bind_server_side(
    sidecar: Running, stub: AsyncStub
) -> None:
    request = pb.QueryDataRequest(
        sql="SELECT {id:UInt64} + 1 AS next, {name:String} AS name",
        parameters=[
            pb.QueryParameter(name="id", type="UInt64", value=u(41)),
            pb.QueryParameter(name="name", type="String", value=s("x'; DROP")),
        ],
    )

    if not sidecar.server.pool.info.capabilities.query_parameters:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.QueryData(request)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert sidecar.server.pool.info.version in (caught.value.details() or "")
        return
    response = await stub.QueryData(request)

    assert list(response.rows[0].values) == [u(42), s("x'; DROP")]


async def test_low_cardinality_table_is_created_on_every_server(
    stub: AsyncStub,
) -> None:
    database, table = await create(stub, "LowCardinality(Nullable(String))")

    await stub.InsertData(
        pb.InsertDataRequest(
            database=database, table=table, rows=numbered([s("a"), NULL])
        )
    )

    assert await read_back(stub, database, table) == [s("a"), NULL]


async def test_datetime64_column_on_an_old_server_names_the_column(
    sidecar: Running, stub: AsyncStub
) -> None:
    request = pb.CreateTableRequest(
        database="default",
        table=unique(),
        columns=[
            pb.ColumnDefinition(name="id", type="UInt32"),
            pb.ColumnDefinition(name="created_at", type="DateTime64(3)"),
        ],
    )

    if sidecar.server.pool.info.capabilities.datetime64:
        assert (await stub.CreateTable(request)).created
        return
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(request)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "created_at" in (caught.value.details() or "")
    assert sidecar.server.pool.info.version in (caught.value.details() or "")
