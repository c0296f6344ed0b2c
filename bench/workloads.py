"""The measured workloads: one RPC each, and the same SQL sent directly.

A workload names the gRPC method, the request message (serialized once),
and the HTTP request that asks ClickHouse for the same thing the sidecar
asks it for, so the two can be compared call for call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from google.protobuf.message import Message

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

__all__ = [
    "INSERT_TABLE",
    "POINT_TABLE",
    "SERVICE",
    "WORKLOADS",
    "Workload",
    "grpc_frame",
    "insert_request",
    "setup_statements",
]

SERVICE = "clickhouse.sidecar.v1.ClickHouseSidecar"
DATABASE = "default"
POINT_TABLE = "bench_points"
INSERT_TABLE = "bench_inserts"
POINT_ROWS = 1_000_000
POINT_KEYS = 10_000  # 100 rows per key
POINT_SQL = f"SELECT id, name, value, ts FROM {POINT_TABLE} WHERE k = 4242"
TYPED_FORMAT = "TabSeparatedWithNamesAndTypes"
INSERT_COLUMNS = ("id", "name", "value", "ts")


@dataclass(frozen=True)
class Workload:
    name: str
    method: str
    request: Message
    # What ClickHouse is sent directly: URL parameters and the POST body.
    http_params: dict[str, str]
    http_body: bytes
    # SERVER span + one CLIENT span per statement the sidecar sends.
    spans_per_call: int
    # Statements the sidecar sends per call (the direct target sends one).
    statements: int = 1
    canned_key: str = field(default="")

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.method}"

    def http_query(self) -> str:
        return urlencode(self.http_params)


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: flag byte, 4-byte length, bytes."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def insert_request(rows: int = 1000) -> pb.InsertDataRequest:
    request = pb.InsertDataRequest(
        database=DATABASE, table=INSERT_TABLE, columns=INSERT_COLUMNS
    )
    for i in range(rows):
        row = request.rows.add()
        row.values.add().uint64_value = i
        row.values.add().string_value = f"row-{i}"
        row.values.add().double_value = i / 3
        row.values.add().datetime_value.instant.seconds = 1_700_000_000 + i
    return request


def insert_values(rows: int = 1000) -> bytes:
    """The Values body the sidecar renders for :func:`insert_request`."""
    parts = []
    for i in range(rows):
        parts.append(f"({i},'row-{i}',{i / 3!r},{1_700_000_000 + i})")
    return "\n".join(parts).encode()


def _select(sql: str) -> dict[str, str]:
    return {
        "database": DATABASE,
        "default_format": TYPED_FORMAT,
        "readonly": "2",
    }


def _json_query(sql: str) -> bytes:
    return f"{sql} FORMAT JSON".encode()


def setup_statements() -> list[str]:
    """Tables the workloads read and write (ClickHouse 18.16 syntax)."""
    return [
        f"DROP TABLE IF EXISTS {POINT_TABLE}",
        f"CREATE TABLE {POINT_TABLE} (k UInt32, id UInt64, name String, "
        "value Float64, ts DateTime) ENGINE = MergeTree ORDER BY (k, id)",
        f"INSERT INTO {POINT_TABLE} SELECT number % {POINT_KEYS}, number, "
        "concat('name-', toString(number)), number / 7, "
        f"toDateTime(1500000000 + number) FROM system.numbers LIMIT {POINT_ROWS}",
        f"OPTIMIZE TABLE {POINT_TABLE} FINAL",
        f"DROP TABLE IF EXISTS {INSERT_TABLE}",
        # Many 1000-row parts arrive per second: keep ClickHouse from
        # delaying or refusing inserts (it would measure its merges instead).
        f"CREATE TABLE {INSERT_TABLE} (id UInt64, name String, value Float64, "
        "ts DateTime) ENGINE = MergeTree ORDER BY id SETTINGS "
        "parts_to_delay_insert = 100000, parts_to_throw_insert = 100000",
    ]


_EXISTS_SQL = (
    "SELECT count() AS n FROM system.tables "
    f"WHERE database = '{DATABASE}' AND name = '{POINT_TABLE}'"
)
_COUNT_SQL = f"SELECT count() AS n FROM {DATABASE}.{POINT_TABLE}"
_INSERT_SQL = f"INSERT INTO {DATABASE}.{INSERT_TABLE} (id,name,value,ts) FORMAT Values"

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            name="select1",
            method="QueryData",
            request=pb.QueryDataRequest(sql="SELECT 1"),
            http_params=_select("SELECT 1"),
            http_body=b"SELECT 1",
            spans_per_call=2,
            canned_key="SELECT 1",
        ),
        Workload(
            name="point",
            method="QueryData",
            request=pb.QueryDataRequest(sql=POINT_SQL),
            http_params=_select(POINT_SQL),
            http_body=POINT_SQL.encode(),
            spans_per_call=2,
            canned_key=POINT_SQL,
        ),
        Workload(
            name="insert1000",
            method="InsertData",
            request=insert_request(),
            http_params={"database": DATABASE, "query": _INSERT_SQL},
            http_body=insert_values(),
            spans_per_call=3,
            statements=2,
        ),
        Workload(
            name="exists",
            method="CheckTableExists",
            request=pb.CheckTableExistsRequest(table=POINT_TABLE),
            http_params={"database": DATABASE},
            http_body=_json_query(_EXISTS_SQL),
            spans_per_call=2,
        ),
        Workload(
            name="rowcount",
            method="GetTableRowCount",
            request=pb.GetTableRowCountRequest(table=POINT_TABLE),
            http_params={"database": DATABASE},
            http_body=_json_query(_COUNT_SQL),
            spans_per_call=2,
        ),
    )
}
