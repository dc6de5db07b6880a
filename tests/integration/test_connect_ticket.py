"""The 工单 of a call opens when its agent connects, owned by that agent (首问负责制), on the
real stack: Asterisk's AMI ``AgentConnect`` reaches the ami role, which opens the call's
ticket by Linkedid with the agent's 工号 and the desk; after the hang-up the recorder
catalogues the recording and attaches it to that same ticket (one ticket per call). A member
without a 工号 (the dev stack's simulated agent) opens nothing at connect: the recorder opens
the ticket after the call, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import AuditEntry, Recording, Ticket, settings_engine
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import Stack
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, private_stack, wait_for

pytestmark = pytest.mark.integration

AGENT_1001 = "Local/1001@sim-agents/n"  # the simulated agent, carrying 1001's name
NAMELESS = "Local/agent@sim-agents/n"


async def _add_members(stack: Stack) -> None:
    async with ami_session(stack.settings, "actions") as client:
        for queue, interface, name in (
            ("repair", AGENT_1001, "1001 张三"),
            ("consultation", NAMELESS, None),
        ):
            fields = {"Queue": queue, "Interface": interface}
            if name:
                fields["MemberName"] = name
            reply = await client.send_action("QueueAdd", fields, timeout=5)
            assert reply.response == "Success", reply.to_dict()


@pytest.fixture(scope="module")
def connect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("connect-ticket")
    routing = routing_for_tests(base / "routing")
    with private_stack(
        base, "conntk", "connect-ticket-logs", sim_agents=False, routing_dir=routing
    ) as st:
        asyncio.run(_add_members(st))
        yield st


def _ticket_with_recording(stack: Stack, linkedid: str) -> tuple[Ticket, Recording] | None:
    engine = settings_engine(stack.settings)
    try:
        with Session(engine, expire_on_commit=False) as db:
            tickets = db.scalars(select(Ticket).where(Ticket.linkedid == linkedid)).all()
            assert len(tickets) <= 1  # one ticket per call
            if not tickets or tickets[0].recording_id is None:
                return None
            recording = db.get(Recording, tickets[0].recording_id)
            assert recording is not None
            return tickets[0], recording
    finally:
        engine.dispose()


def _opened_by(stack: Stack, ticket_id: int) -> list[str]:
    engine = settings_engine(stack.settings)
    try:
        with Session(engine) as db:
            rows = db.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.open")).all()
            return [r.actor for r in rows if (r.target or "").startswith(f"ticket:{ticket_id} ")]
    finally:
        engine.dispose()


def test_the_agent_who_connects_owns_the_ticket_and_the_recording_joins_it(
    connect_stack: Stack,
) -> None:
    report = asyncio.run(
        place_call(connect_stack.settings, did="95158", caller="13800138901", keys=["1"],
                   hold_s=20)
    )  # fmt: skip
    assert report.queue == "repair"
    assert report.event_counts.get("AgentConnect") == 1
    found = wait_for(
        lambda: _ticket_with_recording(connect_stack, report.linkedid), 15,
        "the call's ticket with its recording",
    )  # fmt: skip
    ticket, recording = found
    assert (ticket.agent, ticket.desk, ticket.caller) == ("1001", "repair", "13800138901")
    assert ticket.contact_number == "13800138901"  # the form's contact number, pre-filled
    assert recording.linkedid == report.linkedid and recording.agent == "1001 张三"
    assert _opened_by(connect_stack, ticket.id) == ["ami"]  # at connect, by the ami role
    assert ticket.created_at >= recording.started_at  # opened at the connect, not before


def test_a_member_without_a_work_number_leaves_the_ticket_to_the_recorder(
    connect_stack: Stack,
) -> None:
    report = asyncio.run(
        place_call(connect_stack.settings, did="95158", caller="13800138902", keys=["4"],
                   hold_s=20)
    )  # fmt: skip
    assert report.queue == "consultation"
    ticket, recording = wait_for(
        lambda: _ticket_with_recording(connect_stack, report.linkedid), 15,
        "the call's ticket with its recording",
    )  # fmt: skip
    assert ticket.agent == recording.agent  # what the recorder knows: the member
    assert _opened_by(connect_stack, ticket.id) == []
