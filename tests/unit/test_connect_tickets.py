"""The ami role's AgentConnect -> ticket part (ivr.adapters.telephony.connect_tickets) on a real
SQLite file: connects are queued by the listener and written in order by their own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.db import Ticket
from ivr.adapters.telephony.connect_tickets import ConnectTickets
from ivr.adapters.telephony.routing_files import load_routing
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def connect(linkedid: str, member: str, queue: str = "repair", caller: str = "13800138001"):
    return AmiMessage((
        ("Event", "AgentConnect"), ("Queue", queue), ("MemberName", member),
        ("Interface", "PJSIP/x"), ("CallerIDNum", caller), ("Linkedid", linkedid),
        ("Uniqueid", linkedid), ("HoldTime", "3"),
    ))  # fmt: skip


async def feed(part: ConnectTickets, *messages: AmiMessage) -> None:
    worker = asyncio.create_task(part.run())
    for message in messages:
        await part.on_event(message)
    for _ in range(200):  # the loop drains the queue
        if part.pending.empty():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the last write
    worker.cancel()


def tickets(engine: Engine) -> list[tuple[str, str | None, str | None, bool, str]]:
    with Session(engine) as db:
        return [
            (t.linkedid, t.agent, t.desk, t.emergency, t.caller)
            for t in db.scalars(select(Ticket).order_by(Ticket.id))
        ]


def test_connects_open_tickets_in_order_and_the_first_agent_keeps_a_transferred_call(
    engine, settings
):
    part = ConnectTickets(engine, load_routing(settings.routing_dir), settings)
    asyncio.run(feed(
        part,
        connect("1765.1", "1001 张三"),
        connect("1765.1", "1002 李四", queue="billing"),  # transferred: the first agent owns it
        connect("1765.2", "Local/agent@sim-agents/n"),  # no 工号: the recorder's, after the call
        connect("1765.3", "1002 李四", queue="emergency", caller="<unknown>"),
        AmiMessage((("Event", "AgentCalled"), ("MemberName", "1001 张三"), ("Linkedid", "1765.4"))),
    ))  # fmt: skip
    assert tickets(engine) == [
        ("1765.1", "1001", "repair", False, "13800138001"),
        ("1765.3", "1002", "emergency", True, ""),
    ]
