"""The emergency line: dialplan alone, recorded, top priority, safety advice, overflow."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, settings_engine
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import asterisk_instance, pid_alive

pytestmark = pytest.mark.integration

EMERGENCY_DID = "96777"  # routing/hotline.yaml emergency_dids
AGENT = "Local/agent@sim-agents/n"


async def test_given_emergency_did_then_no_agi_recorded_and_emergency_queue(
    stack, stored_events, wait_for
):
    report = await place_call(stack.settings, did=EMERGENCY_DID, caller="13800138010", hold_s=10)
    assert report.agi_routes == [] and report.agi_commands == []
    assert report.queue == "emergency"
    assert report.variables["IVR_EMERGENCY"] == "1"
    assert report.variables["IVR_DID"] == EMERGENCY_DID
    events = wait_for(
        lambda: [e for e in stored_events(report.linkedid) if e["Event"] == "Hangup"],
        5,
        "the emergency call's events in Redis",
    )
    assert events
    assert not [e for e in stored_events(report.linkedid) if e["Event"].startswith("AGIExec")]
    engine = settings_engine(stack.settings)  # recorded: the recorder role catalogues it
    try:
        recording = wait_for(lambda: _recording(engine, report.linkedid), 10, "the recording")
    finally:
        engine.dispose()
    assert recording.emergency and recording.size_bytes > 44


def _recording(engine, linkedid):
    with Session(engine) as session:
        return session.scalars(select(Recording).where(Recording.linkedid == linkedid)).first()


async def test_given_emergency_key_in_menu_then_emergency_path_at_top_priority(stack):
    report = await place_call(stack.settings, did="95158", caller="13800138011", keys=["9"])
    assert report.variables["IVR_NEXT"] == "emergency"
    assert report.variables["IVR_REASON"] == "emergency_key"
    assert report.queue == "emergency"
    assert report.variables["IVR_EMERGENCY"] == "1"


async def test_given_crew_not_answering_then_advice_while_waiting_and_overflow_to_backup(stack):
    inst = asterisk_instance(stack.settings)
    inst.rx(f"queue remove member {AGENT} from emergency")
    inst.rx("dialplan set global IVR_EMERGENCY_OVERFLOW_S 6")
    try:
        report = await place_call(
            stack.settings, did=EMERGENCY_DID, caller="13800138012", hold_s=30
        )
    finally:
        inst.rx(f"queue add member {AGENT} to emergency")
        inst.rx("dialplan set global IVR_EMERGENCY_OVERFLOW_S 30")
    assert report.queues == ["emergency", "emergency-backup"]
    assert report.event_counts.get("AgentConnect") == 1
    assert report.hangup_cause == "Normal Clearing (16)"
    log = inst.messages_log.read_text(errors="replace")
    for part in (1, 2):
        assert f"{inst.prompts_inner}/zh/safety-{part}" in log


async def test_given_fastagi_down_then_emergency_did_still_answered(stack):
    agi = stack.running()["agi"]
    os.kill(agi.pid, signal.SIGTERM)
    try:
        while pid_alive(agi.pid):
            await asyncio.sleep(0.05)
        report = await place_call(stack.settings, did=EMERGENCY_DID, caller="13800138013")
    finally:
        await asyncio.to_thread(stack.restart_role, "agi")
    assert report.queue == "emergency"
    assert report.event_counts.get("AgentConnect") == 1
