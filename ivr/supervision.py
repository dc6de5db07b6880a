"""How a role runs: its long-lived loops under one TaskGroup until SIGTERM or SIGINT.

A crash in one loop cancels the others, so the process exits instead of limping on; a
signal ends them all. Shared by the roles that ``ivr/cli.py`` starts and by those wired in
its sibling modules (``ivr/cli_recordings.py``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


class _Stop(Exception):
    """Raised inside the task group when SIGTERM/SIGINT arrives."""


async def supervise(*coros: Coroutine[Any, Any, None]) -> None:
    """Run long-lived loops in one TaskGroup until a signal; a crash in one stops all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def stopper() -> None:
        await stop.wait()
        raise _Stop

    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
            group.create_task(stopper())
    except* _Stop:
        pass
