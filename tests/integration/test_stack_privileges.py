"""No root at run time: after `ivr up`, every process of the stack runs unprivileged, the roles
with umask 027, and the files holding customer data (recordings, the SQLite file and its
-wal/-shm, Redis's data, the logs) have no permission bits for others."""

from __future__ import annotations

import asyncio
import hashlib
import json
import pwd
import stat
from pathlib import Path

import pytest

from ivr.adapters.service_user import ASTERISK_USER, SERVICE_USER
from ivr.adapters.telephony.asterisk import root_user_id
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import APP_ROLES, asterisk_instance

pytestmark = pytest.mark.integration


def _status(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.split() for key, _, value in (line.partition(":") for line in lines)}


def _others_bits(path: Path) -> str:
    mode = path.lstat().st_mode
    return f"{path} {stat.filemode(mode)}" if mode & 0o007 else ""


def test_given_stack_up_then_no_process_of_it_runs_as_root(stack):
    roles = json.loads(stack.state_file.read_text())["roles"]
    assert set(roles) == {"redis", "asterisk", *APP_ROLES}
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    asterisk_uid = root_user_id(stack.settings.asterisk.root, ASTERISK_USER)
    for role, record in roles.items():
        status = _status(record["pid"])
        uids = [int(uid) for uid in status["Uid"]]  # real, effective, saved, filesystem
        gids = [int(gid) for gid in status["Gid"]]
        assert len(uids) == 4 and 0 not in uids, (role, status["Uid"])
        assert 0 not in gids and "0" not in status["Groups"], (role, status["Groups"])
        assert set(uids) == {asterisk_uid if role == "asterisk" else service_uid}, role
        assert status["Umask"] == ["0027"], (role, status["Umask"])


async def test_given_a_recorded_call_then_no_data_file_has_bits_for_others(stack, wait_for):
    settings = stack.settings
    report = await place_call(settings, did="96777", caller="13800138090", hold_s=3)
    recordings = settings.recordings_dir
    digest = hashlib.sha256(report.linkedid.encode()).hexdigest()[:16]  # recording_stem's
    await asyncio.to_thread(
        wait_for, lambda: list(recordings.rglob(f"*-{digest}.wav")), 15, "the call's recording"
    )
    run = settings.run_dir
    database = run / "hotline.db"
    inst = asterisk_instance(settings)
    files = [
        *recordings.rglob("*"),
        database,
        *database.parent.glob("hotline.db-*"),  # -wal and -shm while the roles hold it open
        *(run / "redis").rglob("*"),
        *(run / "logs").rglob("*"),
        *inst.log_dir.rglob("*"),
        *inst.monitor_dir.rglob("*"),
        *inst.messages_dir.rglob("*"),
    ]
    names = {p.name for p in files}
    assert {"hotline.db-wal", "hotline.db-shm", "agi.log", "queue_log"} <= names, names
    assert any(p.suffix == ".aof" for p in files), names  # Redis's append-only file
    folders = [run, recordings, run / "redis", run / "logs", inst.log_dir, inst.monitor_dir,
               inst.messages_dir, inst.monitor_dir.parent]  # fmt: skip
    assert [bad for bad in map(_others_bits, [*folders, *files]) if bad] == []
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    written_by_roles = [database, *recordings.rglob("*.wav"), *(run / "redis").rglob("*.aof")]
    assert {p.stat().st_uid for p in written_by_roles} == {service_uid}
