"""What a caller's own SQL may do: one statement, and reads stay reads.

QueryData, and ExecuteRawQuery unless the operator allows writes, run with
ClickHouse's ``readonly=2``. That alone is not enough: table functions and
``INTO OUTFILE`` reach files and hosts, ``KILL`` and ``SYSTEM`` touch other
callers, and the embedded engine enforces less than a server does. So a
read-only statement must start like a read and must not name a table
function that leaves ClickHouse.

The checks work on the statement's code with string literals and comments
blanked out, so text inside quotes never matches.
"""

from __future__ import annotations

import re

from .errors import PermissionDeniedError, RequestError

__all__ = ["check_read_only", "check_single_statement", "code_of"]

_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")
# Statements that are not reads. A word that starts no statement at all is
# left to ClickHouse, which answers with a syntax error.
_NOT_READS = frozenset(
    {
        "INSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME", "EXCHANGE",
        "DETACH", "ATTACH", "UNDROP", "OPTIMIZE", "KILL", "SYSTEM", "SET", "USE",
        "GRANT", "REVOKE", "DELETE", "UPDATE", "BACKUP", "RESTORE", "MOVE",
        "CHECK", "WATCH", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE", "UNDO",
    }
)  # fmt: skip
# Table functions (and clauses) that read or write outside ClickHouse.
_OUTSIDE = re.compile(
    r"\b(file|fileCluster|url|urlCluster|s3|s3Cluster|gcs|oss|cosn|hdfs|hdfsCluster"
    r"|azureBlobStorage|azureBlobStorageCluster|iceberg\w*|deltaLake\w*|hudi\w*"
    r"|remote|remoteSecure|cluster|clusterAllReplicas|mysql|postgresql|sqlite"
    r"|mongodb|redis|jdbc|odbc|executable|input)\s*\(",
    re.I,
)
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_QUOTES = {"'": "'", '"': '"', "`": "`"}


def code_of(sql: str) -> str:
    """``sql`` with string literals and comments blanked out.

    Quoted identifiers keep their text (a backquoted name can still name a
    function); the positions of everything else are unchanged.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in _QUOTES:
            end = _closing(sql, i, char)
            inner = sql[i + 1 : end - 1] if char != "'" else " " * (end - i - 2)
            out.append(f" {inner} ")
            i = end
        elif sql.startswith("--", i) or char == "#":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(" " * (end - i))
            i = end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _closing(sql: str, start: int, quote: str) -> int:
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            return i + 1
        else:
            i += 1
    return len(sql)


def check_single_statement(sql: str) -> str:
    """Refuse ``a; b``: one request runs one statement, on every engine.

    ClickHouse's HTTP interface refuses multi-statements itself; the embedded
    engine would run them, so the sidecar checks. A trailing ``;`` is fine.
    """
    code = code_of(sql)
    cut = code.find(";")
    if cut >= 0 and code[cut + 1 :].strip(" \t\r\n;"):
        raise RequestError("sql must hold one statement (found ';')")
    return sql


def check_read_only(sql: str, field: str = "sql") -> str:
    """Refuse what a read-only statement must not do, naming it."""
    code = code_of(check_single_statement(sql))
    first = _FIRST_WORD.match(code)
    if first and first.group(1).upper() in _NOT_READS:
        raise PermissionDeniedError(
            f"{field}: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN run "
            "read-only (writes through ExecuteRawQuery need SIDECAR_ALLOW_RAW_WRITES)"
        )

    outside = _OUTSIDE.search(code)
    if outside:
        raise PermissionDeniedError(
            f"{field}: the table function {outside.group(1)}() reaches outside "
            "ClickHouse and is not allowed read-only"
        )

    if _OUTFILE.search(code):
        raise PermissionDeniedError(f"{field}: INTO OUTFILE is not allowed read-only")
    return sql
