"""The Python side down or dying: every caller still reaches a person."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time

import pytest

from ivr import redis_keys
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import pid_alive
from ivr.logging_setup import mask_number

pytestmark = pytest.mark.integration


def _wait_gone(pid: int) -> None:
    for _ in range(200):
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


async def test_given_fastagi_stopped_when_call_then_apology_and_fallback_queue(stack):
    agi = stack.running()["agi"]
    os.kill(agi.pid, signal.SIGTERM)
    try:
        await asyncio.to_thread(_wait_gone, agi.pid)
        report = await place_call(stack.settings, did="95158", caller="13800138001")
    finally:
        await asyncio.to_thread(stack.restart_role, "agi")
    assert report.agi_routes == ["inbound"]
    assert report.agi_commands == []
    assert report.variables["AGISTATUS"] == "FAILURE"
    assert report.variables["IVR_FALLBACK"] == "1"
    assert report.queue == "consultation"
    assert report.hangup_cause == "Normal Clearing (16)"


async def test_given_fastagi_killed_during_greeting_then_caller_reaches_fallback_queue(
    stack, redis_client
):
    # A number no other test calls from, stored masked: the greeting is looked for among the
    # events since the call was placed.
    caller = f"139{secrets.randbelow(10**8):08d}"
    since = f"{int(time.time() * 1000)}-0"
    agi = stack.running()["agi"]
    call = asyncio.create_task(place_call(stack.settings, did="95158", caller=caller))

    def greeting_started() -> bool:
        return any(
            f.get("Event") == "AGIExecStart"
            and f.get("CallerIDNum") == mask_number(caller)
            and "greeting" in f.get("Command", "")
            for _, f in redis_client.xrange(redis_keys.AMI_EVENTS, since, "+")
        )

    try:
        for _ in range(200):
            if await asyncio.to_thread(greeting_started):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the greeting never started")
        os.kill(agi.pid, signal.SIGKILL)
        report = await call
    finally:
        await asyncio.to_thread(stack.restart_role, "agi")
    assert report.agi_commands[:2] == ["ANSWER", report.agi_commands[1]]
    assert "SET VARIABLE IVR_NEXT queue" not in report.agi_commands
    assert report.variables["IVR_FALLBACK"] == "1"
    assert report.queue == "consultation"
    assert report.hangup_cause == "Normal Clearing (16)"
