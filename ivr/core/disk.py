"""Free disk space against the threshold below which the hotline warns (pure).

Recordings, the SQLite file, Redis's append-only file and the logs grow on local disks; a
full disk stops MixMonitor and the recorder. The roles measure the folders they write
(:mod:`ivr.adapters.disk`) and warn, in their health, their logs and on the supervisor page,
while there is still room: ``min_free_mib`` below the top.

>>> spaces = [DiskSpace("recordings", 800 * MIB, 100_000 * MIB),
...           DiskSpace("run", 50_000 * MIB, 100_000 * MIB)]
>>> [s.label for s in low_on_space(spaces, min_free_mib=1024)]
['recordings']
>>> spaces[0].free_mib
800
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DiskSpace:
    label: str  # what is kept there: "recordings", "monitor", "run" …
    free_bytes: int  # available to the service (not root's reserve)
    total_bytes: int

    @property
    def free_mib(self) -> int:
        return self.free_bytes // MIB

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "free_mib": self.free_mib,
                "total_mib": self.total_bytes // MIB}  # fmt: skip


def low_on_space(spaces: Iterable[DiskSpace], *, min_free_mib: int) -> list[DiskSpace]:
    """The places with less than ``min_free_mib`` free, in the given order."""
    return [space for space in spaces if space.free_bytes < min_free_mib * MIB]
