"""Shared by the benchmarks: a private stack with extra bench numbers, and CPU accounting."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.devstack.stack import Stack, asterisk_instance, isolated_settings

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu_seconds(pid: int) -> float:
    """cutime + cstime: CPU of the process's reaped children (process-AGI scripts)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICK


@dataclass
class Phase:
    name: str
    did: str
    calls: int = 0
    failed: int = 0
    cpu_s: float = 0.0

    @property
    def per_call_ms(self) -> float:
        return 1000 * self.cpu_s / max(self.calls, 1)


@contextmanager
def bench_stack(name: str, dialplan_extra: str, **settings: Any) -> Iterator[Stack]:
    """A stack on free loopback ports whose dialplan has ``dialplan_extra`` as
    extensions-local.conf (the site hook), torn down and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        dialplan = Path(tmp) / "dialplan"
        shutil.copytree(REPO / "dialplan", dialplan)
        (dialplan / "extensions-local.conf").write_text(dialplan_extra)
        stack = Stack(
            isolated_settings(
                Path(tmp) / "run", name, dialplan_dir=dialplan, log_level="WARNING", **settings
            ),
            sim_agents=True,
        )
        stack.up()
        inst = asterisk_instance(stack.settings)
        try:
            yield stack
        finally:
            stack.down()
            inst.remove()
