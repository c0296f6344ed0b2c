"""The server's lifecycle: start, serve, drain, close.

:class:`SidecarServer` owns the pool, the gRPC server, the health service
and the tracer provider. ``stop()`` first marks the health service
NOT_SERVING, stops accepting calls, lets in-flight calls finish within the
grace period, then waits for pending KILL QUERY requests and closes the
pool. ``stop()`` is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from ._proto.clickhouse.sidecar.v1 import sidecar_pb2_grpc as pb_grpc
from .calls import Statements
from .config import Settings
from .errors import UnavailableError
from .pool import HttpPool, Pool
from .schema_cache import ColumnCache
from .service import SidecarService
from .telemetry import TRACER_NAME, server_interceptor

__all__ = ["SERVICE_NAME", "SidecarServer", "make_pool", "serve"]

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ClickHouseSidecar"].full_name
HEALTH_INTERVAL_SECONDS = 2.0


def make_pool(settings: Settings) -> Pool:
    """The engine the settings ask for: HTTP with a URL, embedded without."""
    if settings.clickhouse_url:
        return HttpPool(
            settings.clickhouse_url,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password,
            database=settings.clickhouse_database,
            size=settings.pool_size,
            keepalive_seconds=settings.keepalive_seconds,
        )
    try:
        from .embedded import EmbeddedPool
    except ImportError as exc:
        raise UnavailableError(
            "no CLICKHOUSE_URL is set and the embedded engine is not installed: "
            "pip install 'clickhouse-sidecar[embedded]'"
        ) from exc
    pool: Pool = EmbeddedPool(
        settings.data_dir,
        max_workers=settings.pool_size,
        default_database=settings.clickhouse_database,
    )
    return pool


class SidecarServer:
    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        pool: Pool | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool or make_pool(settings)
        self._provider = tracer_provider or trace.get_tracer_provider()
        # Without an SDK provider nothing would record spans: skip them all.
        self._tracing = isinstance(self._provider, TracerProvider)
        tracer = self._provider.get_tracer(TRACER_NAME) if self._tracing else None
        columns = ColumnCache(settings.schema_cache_seconds)
        self._statements = Statements(tracer, columns)
        self._health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopped = False
        self.port = 0

    async def start(self) -> int:
        """Open the pool, bind the port, start serving; return the port."""
        if self._server is not None:
            raise RuntimeError("SidecarServer.start() called twice")
        await self.pool.open()
        try:
            return await self._serve()
        except BaseException:
            await self.stop(grace=0)
            raise

    async def _serve(self) -> int:
        self._server = self._build_server()
        address = f"{self.settings.listen_host}:{self.settings.listen_port}"
        if ":" in self.settings.listen_host:
            address = f"[{self.settings.listen_host}]:{self.settings.listen_port}"
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.listen}")
        await self._server.start()
        await self._update_health()
        self._watch = asyncio.create_task(self._watch_health())
        where = address.rsplit(":", 1)[0] + f":{self.port}"
        try:
            info = self.pool.info
        except UnavailableError as exc:
            log.info("serving %s on %s, NOT_SERVING: %s", SERVICE_NAME, where, exc)
        else:
            log.info(
                "serving %s on %s: engine %s (%s, ClickHouse %s)",
                SERVICE_NAME, where, info.engine, info.address, info.version,
            )  # fmt: skip
        return self.port

    def _build_server(self) -> grpc.aio.Server:
        size = self.settings.max_message_bytes
        server = grpc.aio.server(
            interceptors=[server_interceptor(self._provider)] if self._tracing else [],
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                # gRPC shares ports by default; a busy port must fail instead.
                ("grpc.so_reuseport", int(self.settings.reuse_port)),
            ],
        )
        service = SidecarService(self.settings, self.pool, self._statements)
        pb_grpc.add_ClickHouseSidecarServicer_to_server(service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        return server

    async def _update_health(self) -> None:
        serving = await self.pool.ping()
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
            try:
                await self._update_health()
            except Exception:
                log.exception("health check failed")

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float | None = None) -> None:
        """Drain and close; calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self._health.enter_graceful_shutdown()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._server is not None:
            await self._server.stop(grace)
        await self._statements.drain()
        await self.pool.close()
        if isinstance(self._provider, TracerProvider):
            self._provider.force_flush()
        log.info("stopped")


async def serve(settings: Settings, provider: trace.TracerProvider | None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = SidecarServer(settings, tracer_provider=provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info(
            "signal received: draining for up to %.1f s",
            settings.shutdown_grace_seconds,
        )
    finally:
        await server.stop()
