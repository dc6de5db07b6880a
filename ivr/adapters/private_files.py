"""Files that hold secrets, created with their final mode: never readable by others, not
even for a moment between creating and chmod-ing them.

:func:`write_private` writes a temporary file opened with ``O_CREAT | O_EXCL`` and the
mode (the umask can only take bits away; they are set to exactly ``mode`` before the rename),
then renames it over the target: a reader sees the old file or the new one, whole, and never
one with wider permissions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path``, created with ``mode`` (default 0600) from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a process that died half-way (same PID, long ago)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits away: exactly mode, never more
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def create_private(path: Path, text: str, mode: int = 0o600) -> bool:
    """Create ``path`` with ``text`` and ``mode`` unless it exists (then False, untouched).
    For generated secrets that must never be replaced under a running stack."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        os.fchmod(out.fileno(), mode)
    return True
