"""How much room the folders the hotline writes have left (os.statvfs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ivr.core.disk import DiskSpace, low_on_space
from ivr.settings import Settings

logger = logging.getLogger(__name__)


def watched_folders(settings: Settings) -> dict[str, Path]:
    """What grows on disk: the recordings, MixMonitor's spool (when configured here), and
    the run folder (SQLite, Redis's append-only file, logs)."""
    folders = {"recordings": settings.recordings_dir, "run": settings.run_dir}
    if settings.recordings.monitor_dir is not None:
        folders["monitor"] = settings.recordings.monitor_dir
    return folders


def measure(folders: Mapping[str, Path]) -> list[DiskSpace]:
    """The free space of each folder's file system (a folder not there yet: its nearest
    existing parent's); a folder that cannot be measured is left out, and logged."""
    spaces = []
    for label, folder in folders.items():
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            stat = os.statvfs(probe)
        except OSError as exc:
            logger.warning("cannot measure free space of %s: %s", label, exc.strerror)
            continue
        spaces.append(
            DiskSpace(label, stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize)
        )
    return spaces


class DiskWatch:
    """Measures on demand and logs each change between enough room and too little, once."""

    def __init__(self, folders: Mapping[str, Path], min_free_mib: int) -> None:
        self.folders = dict(folders)
        self.min_free_mib = min_free_mib
        self._low: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> DiskWatch:
        return cls(watched_folders(settings), settings.recordings.min_free_mib)

    def check(self) -> list[DiskSpace]:
        """The folders low on space now (logged as they become low, and when they recover)."""
        low = low_on_space(measure(self.folders), min_free_mib=self.min_free_mib)
        names = {space.label for space in low}
        for space in low:
            if space.label not in self._low:
                logger.warning(
                    "disk space low: %s has %d MiB free (warning below %d MiB)",
                    space.label, space.free_mib, self.min_free_mib,
                    extra={"disk": space.label, "free_mib": space.free_mib},
                )  # fmt: skip
        for label in sorted(self._low - names):
            logger.info("disk space recovered: %s", label, extra={"disk": label})
        self._low = names
        return low
