"""Low disk space is said before the disk fills: by the recorder (logs, heartbeat, `ivr
status`) and the web role (/health, which the supervisor page shows), measured on a real,
nearly full file system (a 64 KiB tmpfs)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ivr.adapters.disk import DiskWatch, measure
from ivr.adapters.recordings.recorder import Recorder, heartbeat_status, write_heartbeat
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.core.disk import DiskSpace
from ivr.devstack.stack import Stack
from ivr.settings import RecordingsSettings
from ivr.web.app import create_app

pytestmark = pytest.mark.integration


def test_given_a_nearly_full_disk_then_low_once_in_the_log_and_room_elsewhere_is_fine(
    tiny_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tiny_disk / "filler").write_bytes(b"x" * 32 * 1024)
    watch = DiskWatch({"recordings": tiny_disk / "2026" / "12", "run": tmp_path}, min_free_mib=1)
    with caplog.at_level(logging.INFO, logger="ivr.adapters.disk"):
        first = watch.check()
        second = watch.check()
    assert [space.label for space in first] == [space.label for space in second] == ["recordings"]
    assert first[0].free_bytes < 64 * 1024 and first[0].total_bytes == 64 * 1024
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "recordings" in warnings[0].getMessage()  # once, not per check
    watch.min_free_mib = 0  # room enough again: said once too
    with caplog.at_level(logging.INFO, logger="ivr.adapters.disk"):
        assert watch.check() == []
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert {s.label for s in measure({"run": tmp_path})} == {"run"}


def test_the_recorder_heartbeat_names_the_low_folder_for_ivr_status(tmp_path: Path) -> None:
    recorder = Recorder.__new__(Recorder)  # only what the heartbeat reads
    recorder.catalogued_total, recorder.waiting, recorder.monitor_dir = 3, 0, tmp_path
    beat = tmp_path / "recorder.json"
    write_heartbeat(beat, recorder, None, [DiskSpace("monitor", 300 * 2**20, 10 * 2**30)])
    ok, detail = heartbeat_status(beat, os.getpid(), max_age_s=10)
    assert ok  # the role works: the warning rides on its status line
    assert detail.endswith("; LOW DISK SPACE: monitor 300 MiB free")


def test_given_recordings_on_a_nearly_full_disk_then_health_names_it_without_figures(
    stack: Stack, tiny_disk: Path, tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(
        update={
            "run_dir": tmp_path / "run",
            "recordings": RecordingsSettings(dir=tiny_disk, min_free_mib=1),
        }
    )
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)  # the web role starts only on a database at head
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
    assert health.status_code == 200  # the web role itself works
    assert health.json()["status"] == "low-disk-space"
    assert health.json()["disk_low"] == ["recordings"]
    assert "MiB" not in health.text and str(tiny_disk) not in health.text
