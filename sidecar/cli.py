"""``clickhouse-sidecar serve``: the console entry point."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from .config import ConfigError, build_parser, parse_settings
from .errors import SidecarError
from .probe import check_health
from .server import serve
from .telemetry import make_tracer_provider
from .workers import run_loop, supervise

__all__ = ["main"]

USAGE = """usage: clickhouse-sidecar serve [--help] [options]
       clickhouse-sidecar health [host:port]   (default: SIDECAR_LISTEN)"""


def _exporter(environ: dict[str, str]) -> str:
    """The span exporter the standard OTEL_* variables ask for."""
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen:
        return chosen.split(",")[0]
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return "otlp" if any(environ.get(name) for name in endpoints) else "none"


def _health(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: clickhouse-sidecar health [host:port]\n\n"
            "Asks a running sidecar's grpc.health.v1 service; exits 0 only when it "
            "answers SERVING. The default address is SIDECAR_LISTEN."
        )
        return 0
    try:
        settings = parse_settings([], dict(os.environ))
    except ConfigError as exc:
        print(f"clickhouse-sidecar: {exc}", file=sys.stderr)
        return 2
    target = args[0] if args else settings.listen
    serving, status = check_health(target)
    print(f"{target}: {status}")
    return 0 if serving else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        build_parser().print_help()
        return 0 if args else 2
    if args[0] == "health":
        return _health(args[1:])
    if args[0] != "serve":
        print(USAGE, file=sys.stderr)
        return 2

    environ = dict(os.environ)
    try:
        settings = parse_settings(args[1:], environ)
    except ConfigError as exc:
        print(f"clickhouse-sidecar: {exc}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger(__name__).info("settings: %s", settings.public())
    if settings.workers > 1:
        return supervise(settings.workers, args[1:], environ)
    service_name = environ.get("OTEL_SERVICE_NAME") or "clickhouse-sidecar"
    provider = make_tracer_provider(_exporter(environ), service_name)
    try:
        run_loop(serve(settings, provider), settings.event_loop)
    except (SidecarError, OSError) as exc:
        logging.getLogger(__name__).error("cannot serve: %s", exc)
        return 1
    finally:
        if provider is not None:
            provider.shutdown()
    return 0
