"""Settings: read once, from flags and environment, at start-up.

Every setting has a flag and an environment variable; a flag wins over the
environment, the environment over the default. Nothing else in the package
reads ``os.environ`` (OpenTelemetry reads its own ``OTEL_*`` variables).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ConfigError", "Settings", "parse_settings"]


class ConfigError(ValueError):
    """A setting has a value the sidecar cannot start with."""


@dataclass(frozen=True, slots=True)
class Settings:
    clickhouse_url: str = field(
        default="",
        metadata={
            "env": "CLICKHOUSE_URL",
            "help": "ClickHouse HTTP URL, e.g. http://127.0.0.1:8123/. "
            "Empty: serve from the embedded engine (chdb) in --data-dir.",
        },
    )
    clickhouse_user: str = field(
        default="default",
        metadata={"env": "CLICKHOUSE_USER", "help": "ClickHouse user."},
    )
    clickhouse_password: str = field(
        default="",
        repr=False,
        metadata={
            "env": "CLICKHOUSE_PASSWORD",
            "help": "ClickHouse password (never logged; prefer the variable).",
        },
    )
    clickhouse_database: str = field(
        default="default",
        metadata={
            "env": "CLICKHOUSE_DATABASE",
            "help": "Database used when a request leaves `database` empty.",
        },
    )
    listen: str = field(
        default="127.0.0.1:50051",
        metadata={"env": "SIDECAR_LISTEN", "help": "gRPC address, host:port."},
    )
    data_dir: Path = field(
        default=Path("data"),
        metadata={
            "env": "SIDECAR_DATA_DIR",
            "help": "Embedded engine data directory (one sidecar per directory).",
        },
    )
    pool_size: int = field(
        default=32,
        metadata={
            "env": "SIDECAR_POOL_SIZE",
            "help": "Pooled ClickHouse clients: HTTP connections, or embedded "
            "worker threads.",
        },
    )
    keepalive_seconds: float = field(
        default=2.0,
        metadata={
            "env": "SIDECAR_KEEPALIVE_SECONDS",
            "help": "Idle seconds before a pooled HTTP connection is closed; keep "
            "it below the server's keep_alive_timeout (3 s by default).",
        },
    )
    max_concurrent_calls: int = field(
        default=256,
        metadata={
            "env": "SIDECAR_MAX_CONCURRENT_CALLS",
            "help": "Calls served at once; more are answered RESOURCE_EXHAUSTED.",
        },
    )
    max_message_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata={
            "env": "SIDECAR_MAX_MESSAGE_BYTES",
            "help": "Largest gRPC message received or sent.",
        },
    )
    max_result_rows: int = field(
        default=1_000_000,
        metadata={
            "env": "SIDECAR_MAX_RESULT_ROWS",
            "help": "Rows a unary QueryData/ExecuteRawQuery may return.",
        },
    )
    max_result_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata={
            "env": "SIDECAR_MAX_RESULT_BYTES",
            "help": "Result bytes a unary QueryData/ExecuteRawQuery may return.",
        },
    )
    schema_cache_seconds: float = field(
        default=2.0,
        metadata={
            "env": "SIDECAR_SCHEMA_CACHE_SECONDS",
            "help": "How long InsertData reuses a table's column types (0: never).",
        },
    )
    shutdown_grace_seconds: float = field(
        default=10.0,
        metadata={
            "env": "SIDECAR_SHUTDOWN_GRACE_SECONDS",
            "help": "On SIGTERM/SIGINT, how long in-flight calls may finish.",
        },
    )
    allow_raw_writes: bool = field(
        default=False,
        metadata={
            "env": "SIDECAR_ALLOW_RAW_WRITES",
            "help": "Let ExecuteRawQuery write (otherwise it runs readonly).",
        },
    )
    workers: int = field(
        default=1,
        metadata={
            "env": "SIDECAR_WORKERS",
            "help": "Server processes sharing the port (SO_REUSEPORT); more than "
            "one needs CLICKHOUSE_URL and a fixed port.",
        },
    )
    reuse_port: bool = field(
        default=False,
        metadata={
            "env": "SIDECAR_REUSE_PORT",
            "help": "Share the port with other processes (SO_REUSEPORT). Set by "
            "--workers for its children; off, a busy port is an error.",
        },
    )
    event_loop: str = field(
        default="auto",
        metadata={
            "env": "SIDECAR_EVENT_LOOP",
            "help": "asyncio, uvloop, or auto (uvloop when installed).",
        },
    )
    log_level: str = field(
        default="INFO",
        metadata={"env": "SIDECAR_LOG_LEVEL", "help": "Log level."},
    )

    def __post_init__(self) -> None:
        _check_url(self.clickhouse_url)
        _split_listen(self.listen)
        for name in ("pool_size", "max_concurrent_calls", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.max_result_rows < 1 or self.max_result_bytes < 1:
            raise ConfigError("max_result_rows and max_result_bytes must be >= 1")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.workers > 1 and (not self.clickhouse_url or self.listen_port == 0):
            raise ConfigError(
                "workers > 1 needs CLICKHOUSE_URL (one embedded engine per data "
                "directory) and a fixed listen port"
            )
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError("event_loop must be auto, asyncio or uvloop")
        if self.shutdown_grace_seconds < 0 or self.keepalive_seconds < 0:
            raise ConfigError("durations must not be negative")

    @property
    def engine(self) -> str:
        return "http" if self.clickhouse_url else "embedded"

    @property
    def listen_host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return _split_listen(self.listen)[1]

    def public(self) -> dict[str, Any]:
        """Settings safe to log: no password, no credentials in the URL."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["clickhouse_url"] = _without_credentials(self.clickhouse_url)
        return shown


def _check_url(url: str) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("CLICKHOUSE_URL must look like http://host:8123/")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen address {listen!r} must be host:port")
    return host.strip("[]"), int(port)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _convert(raw: str, kind: Any) -> Any:
    if kind in (bool, "bool"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickhouse-sidecar serve",
        description="Serve ClickHouse over gRPC. Each flag has an environment "
        "variable; flags win.",
    )
    for f in fields(Settings):
        env = f.metadata["env"]
        default = "(empty)" if f.default in ("", None) else f.default
        help_text = f"{f.metadata['help']} [env {env}; default {default}]"
        if f.type in (bool, "bool"):
            parser.add_argument(
                _flag(f.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(_flag(f.name), default=None, help=help_text)
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Build the settings from command-line flags and an environment."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name)
        if raw is None:
            raw = environ.get(f.metadata["env"])
        if raw is None:
            continue
        try:
            values[f.name] = raw if isinstance(raw, bool) else _convert(raw, f.type)
        except ValueError as exc:
            raise ConfigError(f"{f.metadata['env']}: {exc}") from exc
    return Settings(**values)
