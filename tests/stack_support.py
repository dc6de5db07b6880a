"""Helpers for tests that run a private stack of their own (beside the session's)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ivr.settings import Settings
from ivr.stack import asterisk_instance

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def keep_logs(settings: Settings, folder: str) -> Path:
    """Copy the stack's role logs and Asterisk's logs to ``test-artifacts/<folder>/``
    (emptied first), for reading after the run; returns the folder."""
    target = ARTIFACTS / folder
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    asterisk_logs = asterisk_instance(settings).log_dir
    for src in [*(settings.run_dir / "logs").glob("*.log"), *asterisk_logs.glob("*")]:
        if src.is_file():
            shutil.copy(src, target / src.name)
    return target
