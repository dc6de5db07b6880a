"""What the dev stack's service user must reach, from a checkout anywhere.

``ivr up`` runs as root but starts every role and redis-server as the service user
(:mod:`ivr.adapters.service_user`). That user must run the virtualenv's Python, read the
package, ``routing/``, ``prompts/`` and the models, and write the run dir, wherever the
checkout and the run dir are: a clone under ``/root`` (mode 0700), pytest's temporary
directories (0700 at several levels). Rather than opening those directories to everyone,
:func:`open_the_way` gives the service user, by a POSIX ACL entry (``setfacl -m
u:USER:x``), the right to pass through exactly the directories on the way that it cannot
pass through now: search only, not list, and nothing else. :func:`hand_over_run_dir` makes
the run dir the service user's (0750), like ``hotline-migrate.service`` does, and takes the
permission bits for others off what an earlier stack left in it, secrets excepted (they stay
root's, 0600: each role gets its own in its environment).
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ivr.adapters.service_user import Account
from ivr.errors import StackError

_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_MASK = 0x02, 0x10  # entry tags of the kernel's ACL format (acl_ea.h)


def open_the_way(account: Account, paths: Iterable[Path]) -> list[Path]:
    """Let ``account`` pass through every directory on the way to each of ``paths`` (and
    into the path itself when it is a directory); returns the directories it was given."""
    opened: list[Path] = []
    for path in paths:
        path = path.absolute()
        on_the_way = [*reversed(path.parents), *([path] if path.is_dir() else [])]
        for folder in on_the_way:
            if folder in opened or not folder.exists() or _can_search(account, folder):
                continue
            try:
                done = subprocess.run(
                    ["setfacl", "-m", f"u:{account.user}:x", str(folder)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
            except FileNotFoundError:
                raise StackError(
                    f"the service user {account.user} cannot pass through {folder}, and "
                    "setfacl is missing: install the Debian package acl (scripts/provision)"
                ) from None
            if done.returncode != 0:
                raise StackError(
                    f"the service user {account.user} cannot pass through {folder}, and "
                    f"setfacl could not let it: {done.stderr.strip()} (put the checkout and "
                    "the run dir where that user can reach them)"
                )
            opened.append(folder)
    return opened


def _can_search(account: Account, folder: Path) -> bool:
    """Whether the kernel lets ``account`` (its user and group only) search ``folder``."""
    st = folder.stat()
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    named = _acl_user_perm(folder, account.uid)
    if named is not None:
        return bool(named & 1)
    if st.st_gid == account.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _acl_user_perm(folder: Path, uid: int) -> int | None:
    """The permissions a named-user ACL entry gives ``uid`` (limited by the mask), if any."""
    try:
        raw = os.getxattr(folder, _ACL_XATTR)
    except OSError:
        return None
    entries = [struct.unpack_from("<HHI", raw, offset) for offset in range(4, len(raw), 8)]
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 7)
    return next((perm & mask for tag, perm, who in entries if tag == _ACL_USER and who == uid),
                None)  # fmt: skip


def check_reach(account: Account, wanted: Iterable[tuple[str, Path, str]]) -> None:
    """Each ``(test flag, path, what)`` holds for ``account`` (``test -x``/``-r``/``-w`` run as
    that user), else StackError naming everything that does not."""
    closed = []
    for flag, path, what in wanted:
        done = subprocess.run(
            ["test", flag, str(path)], user=account.uid, group=account.gid, extra_groups=[],
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            closed.append(f"{path} ({what}, test {flag})")
    if closed:
        raise StackError(f"the service user {account.user} cannot reach: " + "; ".join(closed))


def hand_over_run_dir(run_dir: Path, account: Account, root_only: Iterable[Path]) -> None:
    """The run dir (created when missing) and what is in it become ``account``'s, with no
    permission bits for others; the files ``root_only`` (secrets) stay root's, mode 0600."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keep = {path.absolute() for path in root_only}
    account.own(run_dir)
    run_dir.chmod(0o750)
    for top, folders, files in os.walk(run_dir):
        for name in [*folders, *files]:
            path = Path(top) / name
            if path.is_symlink():
                continue
            if path.absolute() in keep:
                os.chown(path, 0, 0)
                path.chmod(0o600)
                continue
            account.own(path)
            path.chmod(path.stat().st_mode & 0o7770)
