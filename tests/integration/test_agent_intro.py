"""When an agent answers: the caller hears "工号1001为您服务" in the call's language (Queue()'s
AGI on the caller's channel), a member without a 工号 connects with nothing said, and the
emergency line is not delayed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ivr.adapters.telephony.originate import place_call
from ivr.core.call_report import CallReport
from ivr.devstack.stack import Stack
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, private_stack

pytestmark = pytest.mark.integration

AGENT = "Local/agent@sim-agents/n"  # answers after 1 s; here carrying agent 1001's name
INTRO_1001 = ["agent-intro", "digit-1", "digit-0", "digit-0", "digit-1", "agent-serving"]


async def _add_members(stack: Stack, members: dict[str, str | None]) -> None:
    """``queue -> MemberName`` (None: no name) for the simulated agent, via the actions account."""
    async with ami_session(stack.settings, "actions") as client:
        for queue, name in members.items():
            fields = {"Queue": queue, "Interface": AGENT} | ({"MemberName": name} if name else {})
            reply = await client.send_action("QueueAdd", fields, timeout=5)
            assert reply.response == "Success", reply.to_dict()


@pytest.fixture(scope="module")
def agents_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("intro")
    routing = routing_for_tests(base / "routing")
    with private_stack(base, "intro", "intro-logs", sim_agents=False, routing_dir=routing) as st:
        asyncio.run(
            _add_members(
                st, {"repair": "1001 测试", "consultation": None, "emergency": "1002 抢险"}
            )
        )
        yield st


def _streamed(report: CallReport, language: str) -> list[str]:
    """The prompt keys streamed in ``language`` after the menu: what followed the connect."""
    prefix = f"/{language}/"
    keys = [c.split(prefix, 1)[1].split(" ")[0] for c in report.agi_commands if prefix in c]
    start = keys.index("agent-intro") if "agent-intro" in keys else len(keys)
    return keys[start:]


def test_given_an_agent_with_a_work_number_then_the_caller_hears_it(agents_stack: Stack) -> None:
    report = asyncio.run(
        place_call(agents_stack.settings, did="95158", caller="13800138601", keys=["1"], hold_s=25)
    )
    assert report.queue == "repair"
    assert _streamed(report, "zh") == INTRO_1001


def test_given_an_english_call_then_the_work_number_is_read_in_english(agents_stack) -> None:
    report = asyncio.run(
        place_call(
            agents_stack.settings, did="95158", caller="13800138602", keys=["8", "1"], hold_s=30
        )
    )
    assert report.queue == "repair"
    assert report.variables.get("IVR_LANGUAGE") == "en"
    assert _streamed(report, "en") == INTRO_1001


def test_given_a_member_without_a_work_number_then_nothing_is_said(agents_stack) -> None:
    report = asyncio.run(
        place_call(agents_stack.settings, did="95158", caller="13800138603", keys=["4"], hold_s=25)
    )
    assert report.queue == "consultation"
    assert report.event_counts.get("AgentConnect") == 1
    assert _streamed(report, "zh") == []


def test_given_the_emergency_line_then_no_announcement_delays_the_crew(agents_stack) -> None:
    report = asyncio.run(
        place_call(agents_stack.settings, did="96777", caller="13800138604", hold_s=8)
    )
    assert report.queue == "emergency"
    assert report.event_counts.get("AgentConnect") == 1
    assert report.agi_commands == []
