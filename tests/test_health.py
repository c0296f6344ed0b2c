"""grpc.health.v1 and server reflection on the running sidecar."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from harness import Running

SERVICE = "clickhouse.sidecar.v1.ClickHouseSidecar"


@pytest.mark.parametrize("service", ["", SERVICE])
async def test_health_check_is_serving(sidecar: Running, service: str) -> None:
    health = health_pb2_grpc.HealthStub(sidecar.channel)

    response = await health.Check(health_pb2.HealthCheckRequest(service=service))

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_of_unknown_service_is_not_found(
    sidecar: Running,
) -> None:
    health = health_pb2_grpc.HealthStub(sidecar.channel)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def reflect(
    sidecar: Running, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(sidecar.channel)
    call = stub.ServerReflectionInfo(iter(requests))
    return [response async for response in call]


async def test_reflection_lists_the_service(sidecar: Running) -> None:
    (response,) = await reflect(
        sidecar, reflection_pb2.ServerReflectionRequest(list_services="")
    )

    names = {s.name for s in response.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_reflection_describes_the_service(sidecar: Running) -> None:
    (response,) = await reflect(
        sidecar,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    )

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    described = [f for f in files if f.package == "clickhouse.sidecar.v1"]
    assert described
    methods = {m.name for f in described for s in f.service for m in s.method}
    assert {"CreateDatabase", "QueryData", "OptimizeTable"} <= methods
