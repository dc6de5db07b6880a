"""Every path of the resident's call, through the real Asterisk and the FastAGI call flow.

The session stack's routing (tests/conftest.py) closes the complaints desk today and
announces the qiaoxi outage now, so the after-hours and outage paths run at any hour.
Calls run concurrently where they do not compete for the same simulated agent.
"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import pytest

from ivr.adapters.telephony.originate import place_call
from ivr.cli import main
from ivr.core.call_report import CallReport
from ivr.devstack.stack import asterisk_instance

pytestmark = pytest.mark.integration

MOBILE = "13800138000"  # no area, no priority
QIAOXI_LANDLINE = "031187000123"  # area qiaoxi (outage announced), no priority
PRIORITY_CALLER = "13900000001"  # routing/priority_callers.yaml: priority 5


def commands(report: CallReport, verb: str) -> list[str]:
    return [c.split("/prompts/", 1)[-1] for c in report.agi_commands if c.startswith(verb)]


async def test_given_each_desk_key_when_pressed_then_its_queue_and_variables(stack):
    repair, billing, consultation, person = await asyncio.gather(
        place_call(stack.settings, did="95158", caller=MOBILE, keys=["1"]),
        place_call(stack.settings, did="95158", caller="13800138001", keys=["2", "14002233#", "1"]),
        place_call(stack.settings, did="95158", caller="13800138002", keys=["4"]),
        place_call(stack.settings, did="4008000000", caller="13800138003", keys=["0"]),
    )
    assert (repair.queue, repair.variables["IVR_CATEGORY"]) == ("repair", "repair")
    assert (billing.queue, billing.variables["IVR_ACCOUNT"]) == ("billing", "14002233")
    assert billing.variables["IVR_AREA"] == "changan"
    assert "zh/account-readback 9" in commands(billing, "STREAM FILE")
    assert consultation.queue == "consultation"
    assert (person.queue, person.variables["IVR_REASON"]) == ("consultation", "person")
    assert person.variables["IVR_DID"] == "4008000000"
    for report in (repair, billing, consultation, person):
        assert report.variables["IVR_NEXT"] == "queue"
        assert report.variables["IVR_LANGUAGE"] == "zh"
        assert report.variables["IVR_PRIORITY"] == "0"
        assert report.hangup_cause == "Normal Clearing (16)"


async def test_given_english_key_then_menu_again_in_english_and_language_variable(stack):
    report = await place_call(stack.settings, did="95158", caller=MOBILE, keys=["8", "1"])
    assert commands(report, "GET DATA") == ["zh/menu 3000 1", "en/menu 3000 1"]
    assert (report.queue, report.variables["IVR_LANGUAGE"]) == ("repair", "en")


async def test_given_three_invalid_keys_then_a_person(stack):
    report = await place_call(stack.settings, did="95158", caller=MOBILE, keys=["5", "6", "7"])
    assert commands(report, "STREAM FILE").count("zh/invalid-input 9") == 2
    assert (report.queue, report.variables["IVR_REASON"]) == ("consultation", "invalid")


async def test_given_a_silent_caller_then_prompted_to_speak_then_a_person(stack):
    report = await place_call(stack.settings, did="95158", caller=MOBILE, silent=True)
    assert commands(report, "GET DATA") == [
        "zh/menu 3000 1",
        "zh/silence 3000 1",
        "zh/silence 3000 1",
    ]
    assert (report.queue, report.variables["IVR_REASON"]) == ("consultation", "silence")


async def test_given_closed_desk_when_caller_leaves_a_message_then_recorded_and_listed(
    stack, cli_env, capsys
):
    report = await place_call(
        stack.settings, did="95158", caller=MOBILE, keys=["3", "1"], speak_s=3.0
    )
    assert "zh/closed-complaints 9" in commands(report, "STREAM FILE")
    assert report.queue is None
    assert report.variables["IVR_NEXT"] == "hangup"
    name = report.variables["IVR_MESSAGE"]
    assert name.startswith("complaints-")
    seconds = float(report.variables["IVR_MESSAGE_S"])
    assert 2.0 <= seconds <= 6.0
    recorded = asterisk_instance(stack.settings).messages_dir / f"{name}.wav"
    with wave.open(str(recorded)) as wav:
        assert wav.getframerate() == 8000
        assert abs(wav.getnframes() / 8000 - seconds) < 1.0
    assert main(["messages", "--json", "--show-numbers"]) == 0
    listed = [m for m in json.loads(capsys.readouterr().out) if m["file"] == f"{name}.wav"]
    assert len(listed) == 1
    assert (listed[0]["desk"], listed[0]["caller"], listed[0]["complete"]) == (
        "complaints",
        MOBILE,
        True,
    )


async def test_given_caller_in_outage_area_then_notice_before_menu_and_others_not(stack):
    affected, other = await asyncio.gather(
        place_call(stack.settings, did="95158", caller=QIAOXI_LANDLINE, keys=["1"]),
        place_call(stack.settings, did="95158", caller="13800138004", keys=["4"]),
    )
    played = commands(affected, "STREAM FILE")
    assert played.index("zh/outage-qiaoxi-20261126 9") == 2  # greeting, emergency notice, outage
    assert affected.variables["IVR_AREA"] == "qiaoxi"
    assert not any(p.startswith("zh/outage-") for p in commands(other, "STREAM FILE"))


async def test_given_priority_caller_then_queued_ahead_of_earlier_callers(stack, wait_for):
    inst = asterisk_instance(stack.settings)
    member = "Local/agent@sim-agents/n"
    inst.rx(f"queue remove member {member} from repair")
    try:
        first = asyncio.create_task(
            place_call(stack.settings, did="95158", caller=MOBILE, keys=["1"], hold_s=40)
        )
        await asyncio.sleep(14)  # the first caller is waiting in repair
        second = asyncio.create_task(
            place_call(stack.settings, did="95158", caller=PRIORITY_CALLER, keys=["1"])
        )
        await asyncio.sleep(16)
        inst.rx(f"queue add member {member} to repair")
        early, priority = await asyncio.gather(first, second)
    finally:
        if member not in inst.rx("queue show repair"):
            inst.rx(f"queue add member {member} to repair")
    assert priority.variables["IVR_PRIORITY"] == "5"
    assert early.variables["IVR_PRIORITY"] == "0"
    assert priority.queue == early.queue == "repair"
    assert priority.event_counts.get("AgentConnect") == 1
    assert priority.queue_position == 1 and early.queue_position == 1


async def test_given_process_agi_mode_then_same_flow_through_agi_scripts(stack):
    inst = asterisk_instance(stack.settings)
    inst.rx("dialplan set global IVR_AGI_MODE process")
    try:
        report = await place_call(stack.settings, did="95158", caller=MOBILE, keys=["1"])
    finally:
        inst.rx("dialplan set global IVR_AGI_MODE fastagi")
    assert report.agi_routes == [f"{inst.app_inner}/inbound-agi"]
    assert report.variables["AGISTATUS"] == "SUCCESS"
    assert (report.queue, report.variables["IVR_NEXT"]) == ("repair", "queue")
    assert commands(report, "GET DATA") == ["zh/menu 3000 1"]


async def test_given_hangups_at_every_step_then_no_error_logged_and_next_call_served(stack):
    # Each caller leaves at a different moment: greeting, notice, menu, account entry,
    # read-back, and while recording a voice message.
    leaving = [
        ([], 3),
        ([], 8),
        (["_"], 12),
        (["2", "1400"], 16),
        (["2", "14002233#"], 20),
        (["3", "1"], 30),
    ]
    reports = await asyncio.gather(
        *(
            place_call(stack.settings, did="95158", caller=f"1380013810{n}", keys=k, hold_s=h)
            for n, (k, h) in enumerate(leaving)
        )
    )
    assert all(r.hangup_cause is not None for r in reports)
    after = await place_call(stack.settings, did="95158", caller=MOBILE, keys=["4"])
    assert after.queue == "consultation"
    log = Path(stack.running()["agi"].log).read_text(errors="replace")
    assert '"level": "ERROR"' not in log and "Traceback" not in log
