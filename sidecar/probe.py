"""``clickhouse-sidecar health``: ask a running sidecar's health service.

Used by the Docker HEALTHCHECK and by operators; exits 0 only when the
sidecar answers SERVING.
"""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check_health"]


async def _check(target: str, service: str, seconds: float) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        response = await stub.Check(request, timeout=seconds)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def check_health(
    target: str, service: str = "", timeout: float = 3.0
) -> tuple[bool, str]:
    """(serving, status name or error) for the sidecar at ``target``."""
    try:
        status = asyncio.run(_check(target, service, timeout))
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"
    return status == "SERVING", status
