"""A catalogued recording's file, found only through its catalog row, and read for serving.

The file is ``Recording.file_name`` under the recordings folder and nowhere else: the name is
resolved (symbolic links followed) and refused unless the result is a regular file inside
that folder. No request parameter is ever part of the path; the web layer only passes a
row it looked up by id.

A row whose status says there is nothing to play answers a clear error, never a 500:
``deleted`` (retention removed the file) 410, ``empty`` and ``corrupt`` 409 (as is a file of
zero bytes: ``recording-empty``), and a file that is missing, not a regular file or outside
the folder 410 ``recording-file-missing``. ``incomplete`` recordings (Asterisk died
mid-call) play if their file is there.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Final

import anyio.to_thread

from ivr.adapters.sql.db import Recording, RecordingStatus
from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

CHUNK: Final = 256 * 1024


class RecordingUnavailable(HotlineError):
    """The call is catalogued, but there is no audio to hand out."""

    slug = "recording-unavailable"
    status = 409


class RecordingDeleted(RecordingUnavailable):
    """Retention deleted the recording's file; the row stays, marked ``deleted`` (HTTP 410)."""

    slug = "recording-deleted"
    status = 410


class RecordingEmpty(RecordingUnavailable):
    """The call was catalogued with legs of zero length: there is no audio."""

    slug = "recording-empty"


class RecordingCorrupt(RecordingUnavailable):
    """The legs could not be decoded when the call was catalogued (the row says why)."""

    slug = "recording-corrupt"


class RecordingFileMissing(RecordingUnavailable):
    """The row names no file, or its file is gone from the recordings folder (HTTP 410)."""

    slug = "recording-file-missing"
    status = 410


def check_playable(recording: Recording) -> None:
    """Raise the error for a row whose status says there is nothing to play."""
    details = {"id": recording.id, "status": recording.status.value}
    match recording.status:
        case RecordingStatus.deleted:
            raise RecordingDeleted("the recording was deleted by retention", **details)
        case RecordingStatus.empty:
            raise RecordingEmpty("the recording holds no audio", **details)
        case RecordingStatus.corrupt:
            reason = recording.status_detail or "unknown reason"
            raise RecordingCorrupt(f"the recording is corrupt: {reason}", **details)
    if not recording.file_name:
        raise RecordingFileMissing("no file is catalogued for this call", **details)


def locate(recordings_dir: Path, recording: Recording) -> Path:
    """The file of a playable row, inside ``recordings_dir``; raises otherwise."""
    check_playable(recording)
    assert recording.file_name is not None  # check_playable refused the rest
    root = recordings_dir.resolve()
    try:
        path = (root / recording.file_name).resolve()
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        path = root
    if not path.is_relative_to(root) or path == root:
        logger.error(
            "catalogued file name leaves the recordings folder",
            extra={"recording_id": recording.id},
        )
        raise RecordingFileMissing("the catalogued file is not available", id=recording.id)
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What the response headers need, from one ``stat``; :meth:`chunks` reads the file.

    The file is opened only while its body is sent (no descriptor is held by a response
    that never starts), and only if it is still the file that was stat'ed.
    """

    path: Path
    size: int
    etag: str
    last_modified: str
    identity: tuple[int, int, int, int]  # device, inode, size, mtime (ns)

    def _open(self) -> int | None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != self.identity:
            os.close(fd)
            return None
        return fd

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes from ``start``. A file replaced or removed since the ``stat``
        ends the body early (the client sees a short response, never another file)."""
        try:
            fd = await anyio.to_thread.run_sync(self._open)
        except OSError:
            fd = None
        if fd is None:
            logger.warning(
                "recording file changed while being served", extra={"path": self.path.name}
            )
            return
        try:
            offset, left = start, length
            while left > 0:
                data = await anyio.to_thread.run_sync(os.pread, fd, min(CHUNK, left), offset)
                if not data:
                    break
                offset += len(data)
                left -= len(data)
                yield data
        finally:
            os.close(fd)


def stat_file(path: Path, recording_id: int) -> FileInfo:
    """The regular, non-empty file at ``path``; raises a :class:`RecordingUnavailable`."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        logger.warning(
            "recording file cannot be read",
            extra={"recording_id": recording_id, "error": exc.strerror},
        )
        raise RecordingFileMissing("the recording's file is missing", id=recording_id) from None
    if not stat.S_ISREG(info.st_mode):
        raise RecordingFileMissing("the recording's file is missing", id=recording_id)
    if info.st_size == 0:
        raise RecordingEmpty("the recording's file is empty", id=recording_id)
    return FileInfo(
        path=path,
        size=info.st_size,
        etag=f'"{info.st_size:x}-{info.st_mtime_ns:x}"',
        last_modified=formatdate(info.st_mtime, usegmt=True),
        identity=(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns),
    )
