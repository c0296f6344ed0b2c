"""Errors, in three branches, and the one table that maps them to gRPC.

::

    SidecarError
    ├── RequestError            the caller's mistake (bad field, bad value)
    │   ├── NotFoundError, AlreadyExistsError
    │   ├── UnsupportedError    this ClickHouse server cannot do it
    │   ├── PermissionError_    writes through ExecuteRawQuery are disabled
    │   └── ResourceExhaustedError
    ├── ClickHouseError         ClickHouse answered with an exception (code, name)
    └── UnavailableError        ClickHouse could not be reached

Anything else raised below the servicer is our bug: INTERNAL with a generic
message, details to the log and the span. Foreign exceptions (aiohttp,
chdb) are translated into these in the engines, never above them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

__all__ = [
    "AlreadyExistsError",
    "ClickHouseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestError",
    "ResourceExhaustedError",
    "SidecarError",
    "UnavailableError",
    "UnsupportedError",
    "parse_exception_text",
    "status_for_clickhouse_code",
]


class SidecarError(Exception):
    """Base of every error the sidecar turns into a gRPC status itself."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # ErrorInfo.reason: stable, for clients to switch on.
    reason = "INTERNAL"


class RequestError(SidecarError):
    """The caller's request is wrong; the message names the field."""

    status = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_REQUEST"


class NotFoundError(RequestError):
    status = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExistsError(RequestError):
    status = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class UnsupportedError(RequestError):
    """The connected ClickHouse server lacks the feature (names the version)."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "UNSUPPORTED_BY_SERVER"


class PermissionDeniedError(RequestError):
    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class ResourceExhaustedError(RequestError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class UnavailableError(SidecarError):
    """ClickHouse cannot be reached (refused, reset, DNS, engine closed)."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "CLICKHOUSE_UNAVAILABLE"


class ClickHouseError(SidecarError):
    """An exception reported by ClickHouse, with its numeric code and name."""

    reason = "CLICKHOUSE_ERROR"

    def __init__(self, code: int, message: str, name: str = "") -> None:
        self.code = code
        self.name = name or CODE_NAMES.get(code, "")
        self.status = status_for_clickhouse_code(code)
        super().__init__(message or f"ClickHouse error {code}")

    def __str__(self) -> str:
        label = f"{self.code} {self.name}".strip()
        return f"ClickHouse error {label}: {self.args[0]}"


# The names of the codes the sidecar treats specially; any other code still
# travels as a number (older servers send no names at all).
CODE_NAMES: dict[int, str] = {
    16: "NO_SUCH_COLUMN_IN_TABLE",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    36: "BAD_ARGUMENTS",
    41: "CANNOT_PARSE_DATETIME",
    43: "ILLEGAL_TYPE_OF_ARGUMENT",
    44: "ILLEGAL_COLUMN",
    46: "UNKNOWN_FUNCTION",
    47: "UNKNOWN_IDENTIFIER",
    48: "NOT_IMPLEMENTED",
    50: "UNKNOWN_TYPE",
    53: "TYPE_MISMATCH",
    57: "TABLE_ALREADY_EXISTS",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    69: "ARGUMENT_OUT_OF_BOUND",
    72: "CANNOT_PARSE_NUMBER",
    73: "UNKNOWN_FORMAT",
    81: "UNKNOWN_DATABASE",
    82: "DATABASE_ALREADY_EXISTS",
    107: "FILE_DOESNT_EXIST",
    115: "UNKNOWN_SETTING",
    117: "INCORRECT_DATA",
    159: "TIMEOUT_EXCEEDED",
    160: "TOO_SLOW",
    164: "READONLY",
    158: "TOO_MANY_ROWS",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    216: "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
    241: "MEMORY_LIMIT_EXCEEDED",
    344: "SUPPORT_IS_DISABLED",
    394: "QUERY_WAS_CANCELLED",
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    396: "TOO_MANY_ROWS_OR_BYTES",
    432: "UNKNOWN_CODEC",
    456: "UNKNOWN_QUERY_PARAMETER",
    457: "BAD_QUERY_PARAMETER",
    497: "ACCESS_DENIED",
    192: "UNKNOWN_USER",
    193: "WRONG_PASSWORD",
    194: "REQUIRED_PASSWORD",
    516: "AUTHENTICATION_FAILED",
}

# ClickHouse error code -> gRPC status. Codes not listed are INTERNAL only
# when ClickHouse itself failed; a plain query error is INVALID_ARGUMENT.
_STATUS_BY_CODE: dict[int, grpc.StatusCode] = {
    # Unknown objects.
    60: grpc.StatusCode.NOT_FOUND,  # UNKNOWN_TABLE
    81: grpc.StatusCode.NOT_FOUND,  # UNKNOWN_DATABASE
    16: grpc.StatusCode.NOT_FOUND,  # NO_SUCH_COLUMN_IN_TABLE
    # Already there.
    57: grpc.StatusCode.ALREADY_EXISTS,  # TABLE_ALREADY_EXISTS
    82: grpc.StatusCode.ALREADY_EXISTS,  # DATABASE_ALREADY_EXISTS
    # Time.
    159: grpc.StatusCode.DEADLINE_EXCEEDED,  # TIMEOUT_EXCEEDED
    160: grpc.StatusCode.DEADLINE_EXCEEDED,  # TOO_SLOW
    209: grpc.StatusCode.UNAVAILABLE,  # SOCKET_TIMEOUT
    210: grpc.StatusCode.UNAVAILABLE,  # NETWORK_ERROR
    394: grpc.StatusCode.CANCELLED,  # QUERY_WAS_CANCELLED
    # Permissions.
    164: grpc.StatusCode.PERMISSION_DENIED,  # READONLY
    497: grpc.StatusCode.PERMISSION_DENIED,  # ACCESS_DENIED
    192: grpc.StatusCode.UNAUTHENTICATED,  # UNKNOWN_USER (before 20.x)
    193: grpc.StatusCode.UNAUTHENTICATED,  # WRONG_PASSWORD (before 20.x)
    194: grpc.StatusCode.UNAUTHENTICATED,  # REQUIRED_PASSWORD
    516: grpc.StatusCode.UNAUTHENTICATED,  # AUTHENTICATION_FAILED
    # Limits.
    158: grpc.StatusCode.RESOURCE_EXHAUSTED,  # TOO_MANY_ROWS
    241: grpc.StatusCode.RESOURCE_EXHAUSTED,  # MEMORY_LIMIT_EXCEEDED
    396: grpc.StatusCode.RESOURCE_EXHAUSTED,  # TOO_MANY_ROWS_OR_BYTES
    # The server cannot do it.
    48: grpc.StatusCode.UNIMPLEMENTED,  # NOT_IMPLEMENTED
    344: grpc.StatusCode.FAILED_PRECONDITION,  # SUPPORT_IS_DISABLED
    216: grpc.StatusCode.ABORTED,  # QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING
}


def status_for_clickhouse_code(code: int) -> grpc.StatusCode:
    """The gRPC status for a ClickHouse error code.

    Syntax, type, parse and unknown-identifier errors, and every other code a
    query can provoke, are the caller's: INVALID_ARGUMENT.
    """
    return _STATUS_BY_CODE.get(code, grpc.StatusCode.INVALID_ARGUMENT)


# "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE) (version ...)"
# "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist, e.what() = ..."
_EXCEPTION_RE = re.compile(
    rb"Code: (?P<code>\d+)[.,] (?:e\.displayText\(\) = )?(?P<message>.*?)"
    rb"(?:, e\.what\(\) = [\w:]+)?(?: \((?P<name>[A-Z_]+)\))?"
    rb"(?: \(version [^)]*\))?\s*$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class ParsedException:
    code: int
    name: str
    message: str


def parse_exception_text(text: bytes) -> ParsedException | None:
    """Read ClickHouse's exception text (HTTP error body or trailing output)."""
    match = _EXCEPTION_RE.search(text.strip())
    if match is None:
        return None
    message = match.group("message").decode("utf-8", "replace").strip()
    name = (match.group("name") or b"").decode()
    return ParsedException(int(match.group("code")), name, message)
