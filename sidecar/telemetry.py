"""OpenTelemetry: a SERVER span per RPC, a CLIENT span per ClickHouse request.

SERVER spans come from opentelemetry-instrumentation-grpc's aio interceptor,
which continues the caller's W3C ``traceparent``. CLIENT spans are made here,
around each statement the sidecar sends. Exporters follow the standard
``OTEL_*`` variables: OTLP when an endpoint is set, none by default, always
behind a batch processor so a slow collector never blocks the event loop.
A streaming call keeps its running rows and bytes on its SERVER span
(:class:`Tally`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .engine import Query, ServerInfo
from .errors import ClickHouseError, SidecarError

__all__ = [
    "Tally",
    "clickhouse_span",
    "make_tracer_provider",
    "server_interceptor",
    "statement_summary",
]

TRACER_NAME = "clickhouse_sidecar"

# Services whose calls are not worth a span: probes and tooling.
_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")

_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")
_NUMBER_LITERAL = re.compile(r"(?<![\w.`])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_FIRST_WORD = re.compile(r"\s*(?:\(\s*)*([A-Za-z]+)")


def make_tracer_provider(exporter: str, service_name: str) -> TracerProvider | None:
    """A provider for ``exporter`` ("otlp" or "console"); None for "none"."""
    if exporter not in ("otlp", "console"):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def _traced(details: grpc.HandlerCallDetails) -> bool:
    method: str = details.method
    return not method.lstrip("/").startswith(_UNTRACED_SERVICES)


def server_interceptor(
    provider: trace.TracerProvider,
) -> grpc.aio.ServerInterceptor[Any, Any]:
    """The SERVER-span interceptor, skipping health checks and reflection."""
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=_traced
    )
    return interceptor


def statement_summary(sql: str) -> str:
    """The statement with literal values replaced by ``?``."""
    return _NUMBER_LITERAL.sub("?", _STRING_LITERAL.sub("?", sql)).strip()


def operation_name(sql: str) -> str:
    match = _FIRST_WORD.match(sql)
    return match.group(1).upper() if match else ""


class Tally:
    """Rows and bytes of one call, kept on its SERVER span as they grow."""

    def __init__(self) -> None:
        self._span = trace.get_current_span()
        self.rows = 0
        self.bytes = 0

    def add(self, rows: int, size: int) -> None:
        self.rows += rows
        self.bytes += size
        self._span.set_attribute("sidecar.rows", self.rows)
        self._span.set_attribute("sidecar.bytes", self.bytes)


@contextmanager
def clickhouse_span(
    tracer: trace.Tracer, info: ServerInfo, query: Query
) -> Iterator[trace.Span]:
    """A CLIENT span around one ClickHouse request."""
    host, _, port = info.address.rpartition(":")
    attributes: dict[str, str | int] = {
        "db.system": "clickhouse",
        "db.namespace": query.database,
        "db.name": query.database,
        "db.operation.name": operation_name(query.sql),
        "db.query.text": statement_summary(query.sql),
        "db.clickhouse.query_id": query.query_id,
        "db.clickhouse.engine": info.engine,
        "db.clickhouse.server_version": info.version,
    }
    if info.engine == "http":
        attributes["server.address"] = host
        attributes["server.port"] = int(port) if port.isdigit() else 0
    else:
        attributes["server.address"] = info.address
    name = f"{attributes['db.operation.name'] or 'QUERY'} {query.database}"
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except ClickHouseError as exc:
            span.set_attribute("db.response.status_code", str(exc.code))
            span.set_attribute("error.type", exc.name or str(exc.code))
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        except SidecarError as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR))
            raise
