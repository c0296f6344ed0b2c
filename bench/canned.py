"""The ceiling of the gRPC layer: a bare grpc.aio server with canned replies.

``python -m bench.canned REPLIES.json PORT`` serves the sidecar's methods
on 127.0.0.1:PORT. Each handler decodes the request like the sidecar does
and returns a reply captured from the real sidecar (same size, same
encoding cost), without any other work. QueryData replies are chosen by
the request's SQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb

__all__ = ["MESSAGES", "serve"]

SERVICE = "clickhouse.sidecar.v1.ClickHouseSidecar"

# method -> (request class, response class)
MESSAGES: dict[str, tuple[type[Message], type[Message]]] = {
    "QueryData": (pb.QueryDataRequest, pb.QueryDataResponse),
    "InsertData": (pb.InsertDataRequest, pb.InsertDataResponse),
    "CheckTableExists": (pb.CheckTableExistsRequest, pb.CheckTableExistsResponse),
    "GetTableRowCount": (pb.GetTableRowCountRequest, pb.GetTableRowCountResponse),
}


def _handler(
    replies: dict[str, Message],
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        key = request.sql if isinstance(request, pb.QueryDataRequest) else ""
        reply = replies.get(key)
        if reply is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no canned reply")
        return reply

    return handle


def _generic_handler(
    canned: dict[str, dict[str, str]],
) -> grpc.GenericRpcHandler[Any, Any]:
    handlers = {}
    for method, by_key in canned.items():
        request_class, response_class = MESSAGES[method]
        replies = {
            key: response_class.FromString(base64.b64decode(value))
            for key, value in by_key.items()
        }
        handlers[method] = grpc.unary_unary_rpc_method_handler(
            _handler(replies),
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def serve(canned: dict[str, dict[str, str]], port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_generic_handler(canned),))
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise OSError(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str]) -> int:
    canned = json.loads(Path(argv[0]).read_text())
    asyncio.run(serve(canned, int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
