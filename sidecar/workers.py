"""Process model: the event loop choice and the multi-worker mode.

With ``SIDECAR_WORKERS=N`` (N > 1) the first process becomes a supervisor:
it starts N ``clickhouse-sidecar serve`` processes that bind the same port
with SO_REUSEPORT (the kernel spreads connections across them), forwards
SIGTERM/SIGINT to them, and exits when they have all exited.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Coroutine, Mapping, Sequence
from types import FrameType
from typing import Any

__all__ = ["run_loop", "supervise"]

log = logging.getLogger(__name__)


def run_loop(main: Coroutine[Any, Any, None], choice: str) -> None:
    """Run ``main`` on uvloop or asyncio's own loop, as ``choice`` says."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def supervise(count: int, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``count`` single-worker servers; return the worst exit status."""
    # The last --workers wins: each child serves alone.
    command = [
        *(sys.executable, "-m", "sidecar", "serve", *argv),
        *("--workers", "1", "--reuse-port"),
    ]
    children = [subprocess.Popen(command, env=dict(environ)) for _ in range(count)]
    log.info("started %d workers: %s", count, [c.pid for c in children])

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(abs(child.wait()) for child in children)
