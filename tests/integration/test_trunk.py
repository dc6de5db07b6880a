"""The carrier trunk is an allow-list with a call limit, on a real Asterisk: SIP from an
address not listed gets no endpoint, and past the limit ordinary calls are refused (cause
34, the carrier hears 503) while the emergency numbers keep their reserve."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ivr.adapters.telephony.originate import place_call
from ivr.devstack.sipp import message_counts, run_caller
from ivr.devstack.stack import Stack, asterisk_instance
from tests.stack_support import open_around_the_clock, private_stack

pytestmark = pytest.mark.integration

EMERGENCY_DID = "96777"


@pytest.fixture(scope="module")
def trunk_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two calls at once from the trunk, the second of them for the emergency numbers only."""
    base = tmp_path_factory.mktemp("trunk-stack")
    trunk = {"trunk_addresses": ["127.0.0.1"], "trunk_max_calls": 2, "trunk_emergency_reserve": 1}
    with private_stack(
        base, "ttrunk", "trunk-stack-logs",
        routing_dir=open_around_the_clock(base / "routing"), asterisk=trunk,
    ) as stack:  # fmt: skip
        yield stack


def test_given_sip_from_an_address_not_on_the_allow_list_then_no_call(trunk_stack: Stack) -> None:
    settings = trunk_stack.settings
    inst = asterisk_instance(settings)
    result = run_caller(
        settings.asterisk.root,
        inst.base / "sipp" / "stranger",
        target=f"127.0.0.1:{settings.asterisk.sip_port}",
        did="95158",
        local_ip="127.0.0.2",  # loopback, but not the trunk's address
        hold_s=5,
        timeout_s=20,
    )
    assert (result.successful, result.failed) == (0, 1), result.stderr_tail
    counts = message_counts(result)
    assert counts.get("200_Recv", 0) == 0
    log = inst.messages_log.read_text(errors="replace")
    assert "No matching endpoint found" in log and "127.0.0.2" in log


async def test_given_the_trunk_full_then_ordinary_calls_refused_and_emergency_still_taken(
    trunk_stack: Stack,
) -> None:
    settings = trunk_stack.settings
    first = asyncio.create_task(
        place_call(settings, did="95158", caller="13800000001", keys=["1"], hold_s=25)
    )
    await asyncio.sleep(6)  # in the menu or the queue by now: one trunk call in
    second = await place_call(settings, did="95158", caller="13800000002", hold_s=5, timeout_s=30)
    assert second.agi_routes == []  # refused before the answer: no menu ran
    assert second.hangup_cause is not None and "congestion" in second.hangup_cause.lower()
    emergency = await place_call(
        settings, did=EMERGENCY_DID, caller="13800000003", hold_s=5, timeout_s=30
    )
    assert emergency.queue == "emergency"  # the reserve held a line for the leak number
    ordinary = await first
    assert ordinary.queue == "repair"
    log = asterisk_instance(settings).messages_log.read_text(errors="replace")
    assert "trunk full with 2 calls for a limit of 1 so the call to 95158 is refused" in log
