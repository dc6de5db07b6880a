"""Which local ports are free, and which process holds a busy one (from /proc)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


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


def free_port(proto: str = "tcp") -> int:
    """A port the OS considers free now (for tests and for picking sipp's port)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
