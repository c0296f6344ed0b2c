"""A real OTLP/gRPC trace receiver on loopback that only counts spans."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2 as trace_pb,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2_grpc as trace_grpc,
)

__all__ = ["SpanCounter"]


class SpanCounter(trace_grpc.TraceServiceServicer):
    """Accepts every export and counts its spans (and export requests)."""

    def __init__(self) -> None:
        self.spans = 0
        self.server_spans = 0
        self.exports = 0
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Event()
        self.port = 0

    async def Export(
        self, request: trace_pb.ExportTraceServiceRequest, context: Any
    ) -> trace_pb.ExportTraceServiceResponse:
        self.exports += 1
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans += len(scope.spans)
                self.server_spans += sum(
                    span.kind == span.SPAN_KIND_SERVER for span in scope.spans
                )
        self._changed.set()
        return trace_pb.ExportTraceServiceResponse()

    async def wait_for(self, total: int, seconds: float) -> None:
        """Until ``total`` spans have arrived, or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self.spans < total:
                    self._changed.clear()
                    await self._changed.wait()

    async def wait_for_server(self, total: int, seconds: float) -> None:
        """Until ``total`` SERVER spans have arrived, or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self.server_spans < total:
                    self._changed.clear()
                    await self._changed.wait()

    async def start(self) -> int:
        self._server = grpc.aio.server()
        add = trace_grpc.add_TraceServiceServicer_to_server
        add(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1)
