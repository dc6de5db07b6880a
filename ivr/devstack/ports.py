"""Which local ports are free, a free one for a stack to bind, and which process holds a
busy one (from /proc)."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Final


def is_free(port: int, proto: str = "tcp", host: str = "127.0.0.1") -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if proto == "tcp":  # as the servers bind: connections of a stopped server in
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT are no owner
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


#: Where :func:`free_port` notes the ports it handed out, one empty file each (any process).
RESERVED_DIR: Final = Path(tempfile.gettempdir()) / "hotline-ports"
RESERVED_S: Final = 600.0  # a port handed out is not handed out again for this long
LOWEST: Final = 20001  # above Asterisk's RTP ports (dialplan/rtp.conf: 10000-20000)


def free_port(proto: str = "tcp") -> int:
    """A port free now for both TCP and UDP on 127.0.0.1, for a stack's servers to bind
    (the dev and test stacks, sipp).

    Picked at random between Asterisk's RTP ports and the kernel's ephemeral range, so that
    neither a call's media nor an outgoing connection takes it between now and the server's
    bind (the kernel hands those out from its range),
    and noted in :data:`RESERVED_DIR` for :data:`RESERVED_S` seconds, so that no other
    process picking ports at the same moment (two test processes starting stacks at once)
    gets it too. ``proto`` is kept for the callers' sake: the port is free for both."""
    del proto  # Asterisk binds its SIP port for UDP and TCP alike: every pick is free for both
    low, high = LOWEST, ephemeral_range()[0]
    chooser = random.SystemRandom()
    for _ in range(500):
        port = chooser.randrange(low, high)
        if is_free(port, "tcp") and is_free(port, "udp") and _reserve(port):
            return port
    raise OSError(f"no free port between {low} and {high} after 500 tries")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unread)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _reserve(port: int) -> bool:
    """Note ``port`` as handed out; False when another process did so in the last
    :data:`RESERVED_S` seconds. Without a writable folder nothing is noted (True)."""
    try:
        if not RESERVED_DIR.is_dir():
            RESERVED_DIR.mkdir(exist_ok=True)
            RESERVED_DIR.chmod(0o1777)  # shared by every user's stacks, like /tmp
    except OSError:
        return True
    path = RESERVED_DIR / str(port)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        try:
            if time.time() - path.stat().st_mtime < RESERVED_S:
                return False
            os.utime(path)  # an old note: the port is ours now
            return True
        except OSError:
            return False
    except OSError:
        return True


def port_owner(port: int, proto: str = "tcp") -> str:
    """``name (pid N)`` of the process bound to the port, or a reason it is unknown."""
    inodes = set()
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    inodes.discard("0")
    if not inodes:
        return "an unknown process"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if any(link[8:-1] in inodes for link in _socket_links(Path("/proc", pid, "fd"))):
            try:
                name = Path("/proc", pid, "comm").read_text().strip()
            except OSError:
                name = "?"
            return f"{name} (pid {pid})"
    return "a process this user cannot see"


def _socket_links(fd_dir: Path) -> list[str]:
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return []
    links = []
    for fd in fds:
        try:
            link = os.readlink(fd_dir / fd)
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            links.append(link)
    return links
