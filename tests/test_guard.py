"""Read-only calls stay reads: no files, no hosts, no other callers' queries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import grpc
import pytest
from harness import Running

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.errors import RequestError
from sidecar.guard import check_read_only, check_single_statement, code_of

if TYPE_CHECKING:
    from sidecar._proto.clickhouse.sidecar.v1.sidecar_pb2_grpc import (
        ClickHouseSidecarAsyncStub as AsyncStub,
    )

REFUSED = [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
    "select * from FILE ('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'TSV', 'line String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'TSV')",
    "SELECT 1 INTO OUTFILE '/tmp/sidecar-guard-test.txt'",
    "INSERT INTO FUNCTION file('/tmp/sidecar-guard-test.txt', 'TSV', 'a String') "
    "VALUES ('x')",
    "KILL QUERY WHERE 1 SYNC",
    "SYSTEM STOP MERGES",
    "SET readonly = 0",
    "SELECT 1; DROP TABLE t",
]

ALLOWED = [
    "SELECT 'file(' AS a, 'url(x)' AS b",
    "SELECT 1 -- url('x')",
    "/* file('x') */ SELECT 1",
    "WITH 1 AS x SELECT x",
    "(SELECT 1)",
    "SELECT 1;",
    "SHOW DATABASES",
    "EXISTS TABLE system.one",
    "DESCRIBE TABLE system.one",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_read_only_guard_refuses(sql: str) -> None:
    with pytest.raises(RequestError):
        check_read_only(sql)


@pytest.mark.parametrize("sql", ALLOWED)
def test_read_only_guard_allows_reads(sql: str) -> None:
    assert check_read_only(sql) == sql


def test_code_of_blanks_strings_and_comments_but_keeps_positions() -> None:
    sql = "SELECT 'a;b' -- c;d\n/* e;f */ FROM t"

    code = code_of(sql)

    assert len(code) == len(sql)
    assert ";" not in code
    assert code.split() == ["SELECT", "FROM", "t"]


def test_single_statement_allows_a_trailing_semicolon() -> None:
    assert check_single_statement("SELECT ';' ;  ") == "SELECT ';' ;  "
    with pytest.raises(RequestError, match="one statement"):
        check_single_statement("SELECT 1; SELECT 2")


@pytest.mark.parametrize("sql", REFUSED)
async def test_query_data_refuses_what_is_not_a_read(stub: AsyncStub, sql: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.QueryData(pb.QueryDataRequest(sql=sql))

    code = caught.value.code()
    assert code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    assert "sql" in (caught.value.details() or "")


@pytest.mark.parametrize("sql", REFUSED[:4])
async def test_raw_query_and_streams_refuse_files_and_urls(
    stub: AsyncStub, sql: str
) -> None:
    calls: list[Awaitable[object]] = [
        stub.ExecuteRawQuery(pb.ExecuteRawQueryRequest(sql=sql)),
        stub.QueryDataStream(pb.QueryDataStreamRequest(sql=sql)).read(),
        stub.QueryRawStream(
            pb.QueryRawStreamRequest(sql=sql, format="TabSeparated")
        ).read(),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_text_that_mentions_a_table_function_is_just_text(
    stub: AsyncStub,
) -> None:
    response = await stub.QueryData(pb.QueryDataRequest(sql=ALLOWED[0]))

    assert [v.string_value for v in response.rows[0].values] == ["file(", "url(x)"]


async def test_result_row_that_looks_like_an_error_is_a_row(stub: AsyncStub) -> None:
    text = "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE)"
    sql = "SELECT 'Code: 60. DB::Exception: Table x doesn''t exist. (UNKNOWN_TABLE)'"

    response = await stub.QueryData(pb.QueryDataRequest(sql=sql))

    assert response.rows[0].values[0].string_value == text


@pytest.mark.parametrize(
    "setting",
    ["compress", "extremes", "format_tsv_null_representation", "log_comment",
     "output_format_tsv_crlf_end_of_line", "max_insert_block_size"],
)  # fmt: skip
async def test_settings_that_change_the_output_are_refused(
    stub: AsyncStub, setting: str
) -> None:
    request = pb.QueryDataRequest(sql="SELECT 1", settings={setting: "1"})

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.QueryData(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert setting in (caught.value.details() or "")


async def test_create_table_setting_names_are_plain_words(
    stub: AsyncStub, sidecar: Running
) -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    request = pb.CreateTableRequest(
        table=table,
        columns=[pb.ColumnDefinition(name="x", type="UInt8")],
        settings={"index_granularity = 1 -- ": "x"},
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    exists = await stub.CheckTableExists(pb.CheckTableExistsRequest(table=table))
    assert not exists.exists


async def test_unknown_default_kind_is_invalid_argument(stub: AsyncStub) -> None:
    column = pb.ColumnDefinition(name="x", type="UInt8", default_expression="1")
    column.default_kind = 7  # type: ignore[assignment]
    request = pb.CreateTableRequest(table="never", columns=[column])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTable(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "columns[0].default_kind" in (caught.value.details() or "")


async def test_engine_with_a_comment_is_refused(stub: AsyncStub) -> None:
    request = pb.CreateDatabaseRequest(database="never_db", engine="Memory() -- (x)")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateDatabase(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
