"""Each queue rings as routing/ says (section ringing): its strategy, and wrap-up between calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import yaml

from ivr import redis_keys
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import Stack
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, private_stack, wait_for

pytestmark = pytest.mark.integration

WRAPUP_S = 30  # well above the menu's length (about 12 s from the call's start to the queue)


@pytest.fixture(scope="module")
def wrapup_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("ringing")
    routing = routing_for_tests(base / "routing")
    desks = yaml.safe_load((routing / "desks.yaml").read_text(encoding="utf-8"))
    desks["ringing"]["repair"] = {"strategy": "fewestcalls", "ring_s": 10, "wrapup_s": WRAPUP_S}
    (routing / "desks.yaml").write_text(yaml.safe_dump(desks, allow_unicode=True))
    with private_stack(base, "ring", "ringing-logs", routing_dir=routing) as stack:
        yield stack


async def _queue_params(stack: Stack) -> dict[str | None, dict[str, str]]:
    async with ami_session(stack.settings) as client:
        entries = await client.send_list_action("QueueStatus", timeout=10)
    return {e.get("Queue"): e.to_dict() for e in entries if e.event == "QueueParams"}


def test_each_queue_has_the_strategy_of_its_routing(wrapup_stack: Stack) -> None:
    params = asyncio.run(_queue_params(wrapup_stack))
    strategies = {queue: p["Strategy"] for queue, p in params.items()}
    assert strategies["repair"] == "fewestcalls"  # the test's own routing
    assert strategies["billing"] == "leastrecent"  # as shipped in routing/desks.yaml
    assert strategies["emergency"] == strategies["emergency-backup"] == "ringall"


def _event_times(stack: Stack, linkedid: str, event: str) -> list[int]:
    """When the AMI listener stored each ``event`` of a call: its stream ids' milliseconds."""
    s = stack.settings
    with redis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True) as client:
        return [
            int(entry_id.split("-")[0])
            for entry_id, fields in client.xrange(redis_keys.AMI_EVENTS, "-", "+")
            if fields.get("Linkedid") == linkedid and fields.get("Event") == event
        ]


async def _gap_to_next_connect(stack: Stack, key: str, caller: str) -> float:
    """Two calls to one desk, the second placed as the first ends: seconds from the first's
    last hang-up to the second's agent connecting."""
    calls = []
    for _ in range(2):
        report = await place_call(stack.settings, did="95158", caller=caller, keys=[key], hold_s=50)
        calls.append(report)
    assert calls[0].queue is not None and calls[1].queue == calls[0].queue
    ended = max(_event_times(stack, calls[0].linkedid, "Hangup"))
    connected = wait_for(
        lambda: _event_times(stack, calls[1].linkedid, "AgentConnect"), 5, "the AgentConnect"
    )
    return (connected[0] - ended) / 1000


def test_given_a_wrapup_time_then_the_next_call_rings_only_after_it(wrapup_stack: Stack) -> None:
    # repair (key 1) waits for its only agent's wrap-up to end. consultation (key 4) has no
    # wrap-up: its pair of calls is the control, placed the same way on the same stack. The
    # simulated agent is one member in every queue and queues.conf shares a member's last call
    # across queues (shared_lastcall), so repair goes first, on a stack that took no call yet.
    waited = asyncio.run(_gap_to_next_connect(wrapup_stack, "1", "13800138502"))
    control = asyncio.run(_gap_to_next_connect(wrapup_stack, "4", "13800138501"))
    assert control < WRAPUP_S - 5 < WRAPUP_S - 0.5 < waited, (control, waited)
