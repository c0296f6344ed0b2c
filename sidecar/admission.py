"""Load shedding: refuse what cannot be served soon, at once.

Two signals, checked when a call starts:

- calls in flight, against ``SIDECAR_MAX_CONCURRENT_CALLS``;
- the event loop's lag, against ``SIDECAR_MAX_LOOP_LAG_MS``. When the
  process is out of CPU, calls wait in gRPC's queue before any handler runs,
  so the count in flight stays low while latency grows. A loop that runs
  late is the sign; refusing then is cheap, so the queue drains and the
  calls that are admitted keep their latency.

A refused call gets RESOURCE_EXHAUSTED with a message naming the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from .errors import ResourceExhaustedError

__all__ = ["Admission", "LagMonitor"]

TICK_SECONDS = 0.005
# How quickly the lag estimate follows the loop (per tick).
SMOOTHING = 0.2


class LagMonitor:
    """How late the event loop runs a timer, smoothed over a few ticks."""

    def __init__(self) -> None:
        self.lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)
            late = max(0.0, time.monotonic() - before - TICK_SECONDS)
            self.lag += SMOOTHING * (late - self.lag)


class Admission:
    def __init__(self, limit: int, max_lag_seconds: float, monitor: LagMonitor) -> None:
        self.limit = limit
        self.max_lag = max_lag_seconds
        self.monitor = monitor
        self.in_flight = 0

    def enter(self) -> None:
        if self.in_flight >= self.limit:
            raise ResourceExhaustedError(
                f"the sidecar is serving its maximum of {self.limit} calls "
                "(SIDECAR_MAX_CONCURRENT_CALLS); retry with backoff"
            )
        if self.max_lag and self.monitor.lag > self.max_lag:
            raise ResourceExhaustedError(
                f"the sidecar is overloaded (event loop"
                f" {self.monitor.lag * 1000:.0f} ms "
                f"late, SIDECAR_MAX_LOOP_LAG_MS {self.max_lag * 1000:.0f}); "
                "retry with backoff"
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
