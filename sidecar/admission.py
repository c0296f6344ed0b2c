"""Load shedding: past the limit of calls in flight, refuse at once.

A call that would exceed ``SIDECAR_MAX_CONCURRENT_CALLS`` gets
RESOURCE_EXHAUSTED naming the setting, instead of waiting in a queue: the
calls admitted keep their latency, and the caller can back off or go to
another replica. (grpc.aio's own ``maximum_concurrent_rpcs`` queues.)
"""

from __future__ import annotations

from .errors import ResourceExhaustedError

__all__ = ["Admission"]


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> None:
        if self.in_flight >= self.limit:
            raise ResourceExhaustedError(
                f"the sidecar is serving its maximum of {self.limit} calls "
                "(SIDECAR_MAX_CONCURRENT_CALLS); retry with backoff"
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
