"""agi_scripts/inbound.py: process AGI over real pipes, driven like Asterisk drives it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "agi_scripts" / "inbound.py"
ENV_BLOCK = (
    b"agi_request: inbound.py\nagi_channel: PJSIP/pstn-00000001\nagi_language: en\n"
    b"agi_type: PJSIP\nagi_uniqueid: 1700000000.1\nagi_callerid: 13800138000\n"
    b"agi_context: from-pstn\nagi_extension: 95158\nagi_priority: 4\n"
    b"agi_arg_1: /srv/hotline-x/prompts\nagi_arg_2: /srv/hotline-x/spool/voicemessages\n\n"
)


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "/srv/hotline-x/prompts",
            "/srv/hotline-x/spool/voicemessages",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _drive(proc: subprocess.Popen[bytes], hangup_after: int | None = None) -> list[str]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ENV_BLOCK)
    proc.stdin.flush()
    seen: list[str] = []
    while line := proc.stdout.readline():
        seen.append(line.decode().rstrip("\n"))
        if hangup_after is not None and len(seen) == hangup_after:
            proc.send_signal(signal.SIGHUP)  # what Asterisk does when the caller hangs up
        # SET VARIABLE answers 1; GET DATA gets the key 1 (repair, open around the clock)
        reply = b"200 result=0 endpos=800\n" if seen[-1].startswith("STREAM") else b"200 result=1\n"
        proc.stdin.write(reply)
        proc.stdin.flush()
    proc.stdin.close()
    proc.stdout.close()
    proc.wait(timeout=10)
    return seen


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    with proc.stderr:
        return proc.stderr.read().decode()


def test_given_process_agi_when_call_flows_then_same_commands_as_fastagi_route():
    proc = _start()
    seen = _drive(proc)
    err = _stderr(proc)
    assert proc.returncode == 0, err
    p = "/srv/hotline-x/prompts"
    assert seen == [
        "ANSWER",
        f"STREAM FILE {p}/zh/greeting 9",
        f"STREAM FILE {p}/zh/emergency-notice 9",
        f"GET DATA {p}/zh/menu 3000 1",
        "SET VARIABLE IVR_LANGUAGE zh",
        "SET VARIABLE IVR_QUEUE repair",
        "SET VARIABLE IVR_PRIORITY 0",
        "SET VARIABLE IVR_CATEGORY repair",
        "SET VARIABLE IVR_DESK repair",
        "SET VARIABLE IVR_KEYS 1",
        "SET VARIABLE IVR_REASON menu",
        "SET VARIABLE IVR_NEXT queue",
    ]


def test_given_sighup_during_greeting_then_script_stops_cleanly_without_routing():
    proc = _start()
    seen = _drive(proc, hangup_after=2)
    err = _stderr(proc)
    assert proc.returncode == 0, err
    assert seen == ["ANSWER", "STREAM FILE /srv/hotline-x/prompts/zh/greeting 9"]


def test_given_no_directories_in_the_agi_environment_then_clear_error():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, input=b"", timeout=10, check=False
    )
    assert proc.returncode == 2
    assert b"prompts and messages directories as AGI arguments" in proc.stderr
