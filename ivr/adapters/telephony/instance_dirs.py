"""Where one of the project's Asterisk instances keeps its files inside the sid root.

Each instance has its own folder ``/srv/hotline-<name>`` inside the root (``<name>`` is the
setting ``asterisk.instance``), so several instances can share one root.
``ivr/adapters/telephony/asterisk.py`` renders that layout (for ``ivr up``, and for systemd through
``ivr asterisk prepare``); the roles that only read what Asterisk leaves behind find the
folders here, without the Asterisk instance's code:

- ``spool/monitor``: MixMonitor's legs of every answered call (the recorder reads them);
- ``spool/voicemessages``: the voice messages callers left (the speech-to-text worker reads
  them).

>>> instance_base("hotline") / MONITOR_SUBDIR
PurePosixPath('/srv/hotline-hotline/spool/monitor')
>>> host_path(Path("/var/lib/hotline/sid-root"), PurePosixPath("/srv/hotline-a/spool"))
PosixPath('/var/lib/hotline/sid-root/srv/hotline-a/spool')
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Final

from ivr.settings import Settings

MONITOR_SUBDIR: Final = "spool/monitor"
VOICE_MESSAGES_SUBDIR: Final = "spool/voicemessages"


def instance_base(name: str) -> PurePosixPath:
    """The instance's folder as Asterisk sees it, inside the root."""
    return PurePosixPath("/srv") / f"hotline-{name}"


def host_path(root: Path, inner: PurePosixPath) -> Path:
    """Where a path inside the root lies on the host."""
    return root / inner.relative_to("/")


def _local_dir(settings: Settings, subdir: str) -> Path:
    # From the settings alone: the roles that read these folders hold no AMI secret.
    inner = instance_base(settings.asterisk.instance) / subdir
    return host_path(settings.asterisk.root, inner)


def monitor_dir(settings: Settings) -> Path:
    """MixMonitor's folder of the local instance, on the host."""
    return _local_dir(settings, MONITOR_SUBDIR)


def messages_dir(settings: Settings) -> Path:
    """Where the local instance records voice messages, on the host."""
    return _local_dir(settings, VOICE_MESSAGES_SUBDIR)
