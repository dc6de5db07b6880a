"""The unprivileged users the hotline runs as: the roles' service user on the host, and
Asterisk's own user inside its root. One definition for the systemd units
(``ivr install-units``, ``ivr asterisk prepare``) and the dev stack (``ivr up``).

- :data:`SERVICE_USER`: the system user (and group of the same name) of every role and of
  redis-server under ``ivr up``; created when missing, with no home and no shell.
- :data:`ASTERISK_USER`: Asterisk starts as root only for ``chroot``, then drops to this user
  and group of its root (``-U``/``-G``, looked up in the root's own ``/etc/passwd``).
- :data:`SERVICE_UMASK`: what the roles, redis-server and Asterisk create (recordings, the
  SQLite file, Redis's data, logs) has no permission bits for others.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ivr.errors import StackError

SERVICE_USER: Final = "hotline"
ASTERISK_USER: Final = "asterisk"
SERVICE_UMASK: Final = 0o027


@dataclass(frozen=True, slots=True)
class Account:
    """A host user and the group its processes run with (no supplementary groups)."""

    user: str
    group: str
    uid: int
    gid: int

    def own(self, path: os.PathLike[str] | str) -> None:
        """Give ``path`` (not a symlink's target) to this account."""
        os.chown(path, self.uid, self.gid, follow_symlinks=False)


def account(user: str, group: str | None = None) -> Account:
    """An existing host user and group (default: the user's own group), else StackError."""
    group = group or user
    try:
        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise StackError(f"no user {user!r} or group {group!r} on this host") from None
    return Account(user, group, uid, gid)


def ensure_user(user: str, group: str) -> list[str]:
    """The system user and group, created when missing; says what it created. Another
    process creating the same one at the same moment is not an error."""
    done = []
    try:
        grp.getgrnam(group)
    except KeyError:
        if _create(["groupadd", "--system", group], lambda: grp.getgrnam(group)):
            done.append(f"created system group {group}")
    try:
        pwd.getpwnam(user)
    except KeyError:
        cmd = ["useradd", "--system", "--gid", group, "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", user]  # fmt: skip
        if _create(cmd, lambda: pwd.getpwnam(user)):
            done.append(f"created system user {user} (group {group})")
    return done


def _create(cmd: list[str], exists: Callable[[], object]) -> bool:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return True
    try:
        exists()
    except KeyError:
        raise StackError(f"{' '.join(cmd)} failed: {result.stderr.strip()}") from None
    return False  # made meanwhile by someone else
