"""Identifiers and literals: the only place SQL text is made from input.

Identifiers (databases, tables, columns, indexes) are validated and always
quoted; string values are escaped as ClickHouse string literals. Row values
never pass through here: they are encoded by :mod:`sidecar.codec` into the
INSERT body, or bound as server-side query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import RequestError

__all__ = [
    "check_setting_name",
    "qualified",
    "quote_identifier",
    "quote_string",
    "validate_identifier",
]

MAX_IDENTIFIER_BYTES = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Settings the sidecar owns: a caller's settings map may not set them.
RESERVED_SETTINGS = frozenset(
    {
        "readonly",
        "allow_ddl",
        "query_id",
        "database",
        "default_format",
        "query",
        "user",
        "password",
        "quota_key",
        "session_id",
        "session_timeout",
        "session_check",
        "wait_end_of_query",
        "date_time_output_format",
        "max_result_rows",
        "max_result_bytes",
        "result_overflow_mode",
        "log_comment",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "extremes",
        "max_insert_block_size",
        "insert_deduplication_token",
        "engine_file_truncate_on_insert",
    }
)
# Prefixes of settings that change how results are written or read: the
# sidecar decodes results itself and must get them in the form it asked for.
RESERVED_PREFIXES = ("param_", "format_", "output_format_", "input_format_", "http_")


def validate_identifier(name: str, field: str) -> str:
    """Return ``name`` if it is usable as a ClickHouse identifier.

    Anything printable works once quoted (dashes, dots, a leading digit,
    keywords, backticks, non-ASCII letters); empty names and control
    characters do not.
    """
    if not name:
        raise RequestError(f"{field} must not be empty")

    if _CONTROL.search(name):
        raise RequestError(f"{field} {name!r} contains a control character")

    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise RequestError(f"{field} is longer than {MAX_IDENTIFIER_BYTES} bytes")

    return name


def quote_identifier(name: str) -> str:
    """Backquote an identifier, escaping backslashes and backquotes."""
    escaped = name.replace("\\", "\\\\").replace("`", "\\`")
    return f"`{escaped}`"


def qualified(database: str, table: str) -> str:
    """``database.table``, both quoted."""
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def quote_string(value: str) -> str:
    """A ClickHouse string literal for ``value``."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def identifier_list(names: Iterable[str]) -> str:
    return ", ".join(quote_identifier(name) for name in names)


def check_setting_name(name: str, field: str) -> str:
    """A caller-supplied setting name: a plain word the sidecar does not own."""
    if not _SETTING_NAME.match(name):
        raise RequestError(f"{field}: {name!r} is not a setting name")

    if name in RESERVED_SETTINGS or name.startswith(RESERVED_PREFIXES):
        raise RequestError(f"{field}: setting {name!r} is managed by the sidecar")

    return name


def caller_settings(settings: Mapping[str, str], field: str) -> dict[str, str]:
    """Validate a request's settings map; values travel as parameters."""
    return {check_setting_name(name, field): value for name, value in settings.items()}
