"""Real calls through the real stack: `ivr call` (Local channel) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ivr import redis_keys
from ivr.devstack.sipp import message_counts, run_caller
from ivr.devstack.stack import asterisk_instance
from ivr.logging_setup import mask_number

pytestmark = pytest.mark.integration


def test_given_stack_up_when_ivr_call_json_then_greeting_menu_and_chosen_desk_queue(
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
    assert doc["agi_commands"][1].endswith("/prompts/zh/greeting 9")
    assert doc["agi_commands"][3].endswith("/prompts/zh/menu 3000 1")
    assert doc["agi_commands"][3].startswith("GET DATA ")
    assert doc["queue"] == "repair"
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
    received = [e for e in dtmf if e["Channel"].endswith(";2")]
    assert len(received) == 1  # one key reached the hotline; which one is not stored
    assert all("Digit" not in e for e in dtmf)


def test_given_bad_digits_when_ivr_call_then_clear_error_and_no_call(cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "call", "--digits", "1;Hangup"],
        env=os.environ, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "each group holds only 0-9, * and #" in proc.stderr


def test_given_sip_caller_when_calling_did_then_greeting_rfc2833_digit_and_queue(
    settings, redis_client, stored_events, wait_for
):
    inst = asterisk_instance(settings)
    caller = "13912345678"
    since = f"{int(time.time() * 1000)}-0"  # stored numbers are masked: this call's only
    result = run_caller(
        settings.asterisk.root,
        inst.base / "sipp" / "sip-caller",
        target=f"127.0.0.1:{settings.asterisk.sip_port}",
        did="95158",
        caller_id=caller,
        digits="1",
        digits_after_s=11,  # greeting and emergency notice take about 10 s; then the menu
        hold_s=60,
    )
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    assert message_counts(result)["BYE_Recv"] == 1  # the hotline ended the call, not sipp

    def the_sip_call() -> str | None:
        for _, ev in redis_client.xrange(redis_keys.AMI_EVENTS, since, "+"):
            if (
                ev.get("Event") == "Newchannel"
                and ev.get("Channel", "").startswith("PJSIP/pstn-")
                and ev.get("CallerIDNum") == mask_number(caller)  # stored masked
            ):
                return ev["Linkedid"]
        return None

    linkedid = wait_for(the_sip_call, 5, "the SIP call's Newchannel in Redis")
    events = wait_for(
        lambda: (evs := stored_events(linkedid)) and evs[-1]["Event"] == "Hangup" and evs,
        5,
        "the SIP call's last Hangup",
    )
    pjsip = [e for e in events if e.get("Channel", "").startswith("PJSIP/pstn-")]
    names = [e["Event"] for e in pjsip]
    assert names[0] == "Newchannel" and "Hangup" in names
    commands = [e["Command"] for e in pjsip if e["Event"] == "AGIExecStart"]
    assert commands[0] == "ANSWER" and commands[1].endswith("zh/greeting 9")
    assert commands[3].startswith("GET DATA") and commands[3].endswith("zh/menu 3000 1")
    keys = [e for e in pjsip if e["Event"] == "DTMFEnd" and e["Direction"] == "Received"]
    assert len(keys) == 1 and "Digit" not in keys[0]  # the key, not what it was
    joins = [e["Queue"] for e in pjsip if e["Event"] == "QueueCallerJoin"]
    assert joins == ["repair"]
