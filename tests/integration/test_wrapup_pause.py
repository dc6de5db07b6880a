"""后处理 (wrap-up) as a pause, on the real stack: a queue call of agent 1001 ends (AMI
``AgentComplete``), the ami role pauses 1001 with reason 后处理 in its desk's queue
(QueueStatus), and the pause ends when the agent saves the call's ticket (at once) or when the
desk's wrap-up time runs out, also across a restart of the ami role; a 小休 taken meanwhile
stays. The call is answered by the dev stack's simulated agent carrying 1001's member name
(``Local/1001@sim-agents/n``), beside the member ``PJSIP/1001`` the ami role keeps for the
logged-in agent (its phone is not registered, so only the simulation rings); the queues
themselves have no Asterisk wrap-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Ticket, settings_engine
from ivr.adapters.telephony.originate import CallReport, place_call
from ivr.devstack.stack import Stack
from ivr.settings import Settings
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, ivr_cli, private_stack, wait_for
from tests.web_support import PASSWORD, add_user, login

pytestmark = pytest.mark.integration

WRAPUP_S = 12
AGENT = "PJSIP/1001"
RESOLVED = {
    "surname": "王", "title": "女士", "contact_number": "13800138009",
    "contact_confirmed": True, "estate": "幸福小区", "building": "3", "unit": "2",
    "room": "501", "account": "11012345", "category": "gas", "subcategory": "smell",
    "happened_at": "2026-12-06T09:30", "place": "indoors", "description": "厨房有燃气味",
    "urgency": "urgent", "complaint": False, "level": "L2", "outcome": "resolved",
    "reply": "已告知维修时间", "department": "",
}  # fmt: skip


@pytest.fixture(scope="module")
def wrapup_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("wrapup")
    routing = routing_for_tests(base / "routing")
    desks = yaml.safe_load((routing / "desks.yaml").read_text(encoding="utf-8"))
    desks["ringing"]["repair"] = {"strategy": "ringall", "ring_s": 10, "wrapup_s": WRAPUP_S}
    (routing / "desks.yaml").write_text(yaml.safe_dump(desks, allow_unicode=True))
    with private_stack(
        base, "wrap", "wrapup-logs", sim_agents=False, routing_dir=routing
    ) as stack:  # fmt: skip
        s = stack.settings
        engine = settings_engine(s)
        try:
            add_user(engine, "agent1", PASSWORD, "agent")
        finally:
            engine.dispose()
        added = ivr_cli(s, "agents", "add", "1001", "--name", "张三", "--desk", "repair:0",
                        "--user", "agent1")  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert ivr_cli(s, "agents", "login", "1001").returncode == 0
        asyncio.run(_add_simulated_1001(s))
        wait_for(lambda: _member(s) is not None, 5, "PJSIP/1001 in repair")
        yield stack


async def _add_simulated_1001(s: Settings) -> None:
    async with ami_session(s, "actions") as client:
        fields = {"Queue": "repair", "Interface": "Local/1001@sim-agents/n",
                  "MemberName": "1001 张三"}  # fmt: skip
        reply = await client.send_action("QueueAdd", fields, timeout=5)
        assert reply.response == "Success", reply.to_dict()


async def _queue_members(s: Settings) -> list[dict[str, str]]:
    async with ami_session(s) as client:
        entries = await client.send_list_action("QueueStatus", timeout=10)
    return [e.to_dict() for e in entries if e.event == "QueueMember"]


def _member(s: Settings) -> dict[str, str] | None:
    """The agent's membership of repair, as Asterisk holds it (QueueStatus)."""
    found = [
        m for m in asyncio.run(_queue_members(s))
        if m.get("Queue") == "repair" and m.get("Location") == AGENT
    ]  # fmt: skip
    return found[0] if found else None


def _paused(s: Settings, reason: str) -> bool:
    m = _member(s)
    return m is not None and m.get("Paused") == "1" and m.get("PausedReason") == reason


def _unpaused(s: Settings) -> bool:
    m = _member(s)
    return m is not None and m.get("Paused") == "0"


def _call(s: Settings, caller: str) -> CallReport:
    report = asyncio.run(place_call(s, did="95158", caller=caller, keys=["1"], hold_s=16))
    assert report.queue == "repair" and report.event_counts.get("AgentComplete") == 1
    return report


def _ticket_id(s: Settings, linkedid: str) -> int | None:
    engine = settings_engine(s)
    try:
        with Session(engine) as db:
            return db.scalar(select(Ticket.id).where(Ticket.linkedid == linkedid))
    finally:
        engine.dispose()


def _save(s: Settings, ticket_id: int) -> dict[str, object]:
    base = f"http://{s.web.host}:{s.web.port}"
    with httpx.Client(base_url=base, timeout=10, headers={"Origin": base}) as client:
        assert login(client, "agent1", PASSWORD, origin=base).status_code == 200
        answer = client.post(f"/api/agent/tickets/{ticket_id}/record", json=RESOLVED)
    assert answer.status_code == 200, answer.text
    doc: dict[str, object] = answer.json()
    return doc


def test_the_agent_is_paused_for_wrapup_and_saving_the_ticket_ends_it_at_once(
    wrapup_stack: Stack,
) -> None:
    s = wrapup_stack.settings
    report = _call(s, "13800138601")
    wait_for(lambda: _paused(s, "后处理"), 5, "1001 paused 后处理 after the call")
    ticket_id = wait_for(lambda: _ticket_id(s, report.linkedid), 5, "the call's ticket")
    saved_at = time.monotonic()
    assert _save(s, ticket_id)["wrapup_pause_ended"] is True
    wait_for(lambda: _unpaused(s), 3, "1001 unpaused after the save")
    assert time.monotonic() - saved_at < WRAPUP_S / 2  # the save ended it, not the clock


def test_the_wrapup_pause_ends_when_its_time_runs_out(wrapup_stack: Stack) -> None:
    s = wrapup_stack.settings
    _call(s, "13800138602")
    wait_for(lambda: _paused(s, "后处理"), 5, "1001 paused 后处理 after the call")
    paused_at = time.monotonic()
    time.sleep(WRAPUP_S / 2)
    assert _paused(s, "后处理")  # not saved: still wrapping up
    wait_for(lambda: _unpaused(s), WRAPUP_S, "1001 unpaused when the wrap-up ran out")
    assert WRAPUP_S - 2 < time.monotonic() - paused_at < WRAPUP_S + 3


def test_a_pause_for_a_break_during_wrapup_is_left_alone(wrapup_stack: Stack) -> None:
    s = wrapup_stack.settings
    _call(s, "13800138603")
    wait_for(lambda: _paused(s, "后处理"), 5, "1001 paused 后处理 after the call")
    assert ivr_cli(s, "agents", "pause", "1001", "--reason", "小休").returncode == 0
    wait_for(lambda: _paused(s, "小休"), 3, "1001 paused 小休")
    time.sleep(WRAPUP_S + 2)
    assert _paused(s, "小休")  # the wrap-up's end left the break alone
    assert ivr_cli(s, "agents", "resume", "1001").returncode == 0
    wait_for(lambda: _unpaused(s), 3, "1001 resumed")


def test_an_ami_role_restarted_mid_wrapup_still_ends_it_on_time(wrapup_stack: Stack) -> None:
    s = wrapup_stack.settings
    _call(s, "13800138604")
    wait_for(lambda: _paused(s, "后处理"), 5, "1001 paused 后处理 after the call")
    paused_at = time.monotonic()
    wrapup_stack.restart_role("ami")  # the deadline is in SQL, not in the old process
    assert _paused(s, "后处理")
    # the wait starts after the restart; the bound on time is the assertion after it
    wait_for(lambda: _unpaused(s), WRAPUP_S + 3, "1001 unpaused when the wrap-up ran out")
    assert time.monotonic() - paused_at < WRAPUP_S + 3
