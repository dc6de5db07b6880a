"""Detached child processes (the stack's roles) and PID checks.

``ivr up`` starts each role in its own session so it outlives the command. Within one
Python process (the tests, a benchmark) the Popen objects are kept here, so children are
reaped when they exit instead of lingering as zombies.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ivr.adapters.service_user import Account

_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn_detached(
    cmd: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    *,
    as_user: Account | None = None,
    umask: int = -1,
) -> int:
    """Start ``cmd`` in its own session, output appended to ``log`` (created 0640). With
    ``as_user``: as that user and its group only (no supplementary groups); ``umask``: the
    child's (-1: this process's)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, umask=umask,
            user=None if as_user is None else as_user.uid,
            group=None if as_user is None else as_user.gid,
            extra_groups=None if as_user is None else [],
        )  # fmt: skip
    _children[proc.pid] = proc
    return proc.pid


def pid_alive(pid: int) -> bool:
    """Running, and not a zombie (our own exited children are reaped here)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def memory_mib(pid: int | None = None, field: str = "VmRSS") -> float:
    """A memory figure of a process (default: this one) from /proc/<pid>/status, in MiB:
    ``VmRSS`` resident now, ``VmHWM`` its peak. 0.0 when the kernel does not report it."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0
