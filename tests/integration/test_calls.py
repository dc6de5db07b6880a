"""Real calls through the real stack: `ivr call` (Local channel) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_given_stack_up_when_ivr_call_json_then_greeting_played_and_default_queue_joined(
    cli_env, stored_events, wait_for
):
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "call", "--json", "--did", "95158",
         "--from", "13800138000", "--digits", "1"],
        env=os.environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"linkedid", "agi_routes", "queue", "variables", "hangup_cause"} <= set(doc)
    assert doc["agi_routes"] == ["inbound"]
    assert doc["agi_commands"][0] == "ANSWER"
    assert doc["agi_commands"][1].startswith("STREAM FILE /srv/hotline-")
    assert doc["agi_commands"][1].endswith('/prompts/zh/greeting ""')
    assert doc["queue"] == "consultation"
    assert doc["variables"]["AGISTATUS"] == "SUCCESS"
    assert doc["variables"]["IVR_NEXT"] == "queue"
    assert doc["variables"]["IVR_DID"] == "95158"
    assert "IVR_FALLBACK" not in doc["variables"]
    assert doc["hangup_cause"] == "Normal Clearing (16)"

    def listener_saw_the_whole_call() -> list[dict[str, str]] | None:
        events = stored_events(doc["linkedid"])
        names = [e["Event"] for e in events]
        return events if names.count("Hangup") == len(doc["channels"]) else None

    events = wait_for(listener_saw_the_whole_call, 5, "the listener to store every Hangup")
    names = [e["Event"] for e in events]
    assert names.count("Newchannel") == len(doc["channels"]) == 4  # caller pair + agent pair
    assert "QueueCallerJoin" in names and "AgentConnect" in names
    dtmf = [e for e in events if e["Event"] == "DTMFEnd" and e["Direction"] == "Received"]
    assert [e["Digit"] for e in dtmf if e["Channel"].endswith(";2")] == ["1"]


def test_given_bad_digits_when_ivr_call_then_clear_error_and_no_call(cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "call", "--digits", "1;Hangup"],
        env=os.environ, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--digits may hold only 0-9, * and #" in proc.stderr
