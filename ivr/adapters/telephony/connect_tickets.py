"""The ami role's part of the 工单: when an agent connects to a queue call (AMI
``AgentConnect``), the call's ticket is opened for that agent, or claimed by it (首问负责制).

The ticket is keyed on the call's ``Linkedid`` (the one every channel of the call shares,
through transfers), the owner is the 工号 at the start of the member's name (``1001 张三``;
members without one, such as the dev stack's simulated agents, open nothing here and the
recorder opens the ticket after the call as before), the desk is the one whose queue rang.
The rules are :func:`ivr.adapters.sql.ticket_desk.open_at_connect`; a database error is
logged and the event dropped (the recorder still opens the ticket after the call).

The AMI listener only queues the connect (:meth:`ConnectTickets.on_event` never waits for
SQL, so a busy database does not hold up the live metrics); :meth:`ConnectTickets.run`, one of
the ami role's loops, writes them one after the other, in the order they came (a transferred
call's second connect after its first).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr.adapters.sql import ticket_desk
from ivr.core.agent_intro import work_number_of
from ivr.core.routing_models import Routing
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connect:
    """One agent connected to one call, as the ticket needs it."""

    linkedid: str
    work_number: str
    desk: str | None
    emergency: bool
    caller: str
    at: datetime


class ConnectTickets:
    def __init__(self, engine: Engine, routing: Routing, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.desk_of_queue = {d.queue: (d.id, d.emergency) for d in routing.desks}
        self.pending: asyncio.Queue[Connect] = asyncio.Queue()

    async def on_event(self, message: AmiMessage) -> None:
        """Queue an ``AgentConnect`` of an agent with a 工号 (anything else: nothing)."""
        if message.event != "AgentConnect":
            return
        work_number = work_number_of(message.get("MemberName"))
        linkedid = message.get("Linkedid")
        if work_number is None or not linkedid:
            return
        queue = message.get("Queue") or ""
        desk, emergency = self.desk_of_queue.get(queue, (queue or None, False))
        caller = message.get("CallerIDNum") or ""
        if caller in ("<unknown>", "unknown"):
            caller = ""
        at = datetime.now(UTC)
        self.pending.put_nowait(Connect(linkedid, work_number, desk, emergency, caller[:32], at))

    async def run(self) -> None:
        """Open or claim each queued connect's ticket, in order, for ever."""
        while True:
            connect = await self.pending.get()
            try:
                await asyncio.to_thread(self._open, connect)
            except SQLAlchemyError as exc:
                logger.error(
                    "ticket not opened at connect",
                    extra={"linkedid": connect.linkedid, "agent": connect.work_number,
                           "error": str(exc)},
                )  # fmt: skip

    def _open(self, connect: Connect) -> None:
        with Session(self.engine) as session:
            ticket_desk.open_at_connect(
                session, linkedid=connect.linkedid, work_number=connect.work_number,
                desk=connect.desk, emergency=connect.emergency, caller=connect.caller,
                connected_at=connect.at, settings=self.settings,
            )  # fmt: skip
            session.commit()
