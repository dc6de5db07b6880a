"""The AMI listener against a real Asterisk: restarts and frozen links."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from ivr import redis_keys
from ivr.adapters.telephony.originate import place_call

pytestmark = pytest.mark.integration


def _status(redis_client) -> dict[str, str]:
    return redis_client.hgetall(redis_keys.AMI_STATUS)


def test_given_asterisk_restarted_then_listener_logs_in_again_and_keeps_storing(
    stack, redis_client, stored_events, wait_for
):
    logins = int(_status(redis_client)["logins"])
    stack.restart_role("asterisk")
    wait_for(
        lambda: (
            int(_status(redis_client).get("logins", 0)) > logins
            and _status(redis_client).get("connected") == "1"
        ),
        20,
        "the listener to log in to the restarted Asterisk",
    )
    report = asyncio.run(place_call(stack.settings, did="95158", caller="13800138003", hold_s=2))
    events = wait_for(
        lambda: [e for e in stored_events(report.linkedid) if e["Event"] == "Hangup"],
        5,
        "the call's Hangup in Redis",
    )
    assert events
    names = {e["Event"] for e in stored_events(report.linkedid)}
    assert "Newchannel" in names


def test_given_asterisk_frozen_then_unanswered_ping_drops_link_and_it_recovers(
    stack, redis_client, wait_for
):
    pid = stack.running()["asterisk"].pid
    reconnects = int(_status(redis_client)["reconnects"])
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: _status(redis_client).get("connected") == "0",
            10,
            "the listener to notice the unanswered ping",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: _status(redis_client).get("connected") == "1",
        15,
        "the listener to log in again",
    )
    assert int(_status(redis_client)["reconnects"]) > reconnects
