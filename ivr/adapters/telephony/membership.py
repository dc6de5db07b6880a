"""The agents' queue membership, kept by the service: SQL's presence into Asterisk's queues.

The ami role runs :class:`MembershipKeeper`. On every AMI login (Asterisk restarted, the role
restarted, the link back) it reads what Asterisk holds (``QueueStatus``), what SQL says each
active agent should be (logged in to its desks' queues, paused with its reason; the rules in
:mod:`ivr.core.agent_presence`) and sends the difference (QueueAdd, QueueRemove, QueuePause,
QueuePenalty). Between logins it looks at SQL every ``interval_s`` and reconciles again when
what it wants has changed, so a login, pause or resume from the API, the CLI or the phone
reaches Asterisk within about a second. Asterisk's queues are a mirror: an agent member added
or paused by hand in Asterisk is put back as SQL says at the next reconcile. Members that are
not agents (``PJSIP/<digits>``) are never touched.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr.adapters.sql.agents import seats
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.core.agent_presence import (
    Add,
    Member,
    Pause,
    Penalty,
    QueueAction,
    Remove,
    plan,
    wanted_members,
)
from ivr.core.routing_models import Routing
from ivr.errors import HotlineError
from ivr.protocols.ami import AmiMessage

logger = logging.getLogger(__name__)
ACTION_TIMEOUT_S = 5.0


def held_members(entries: list[AmiMessage]) -> list[Member]:
    """``QueueStatus``'s ``QueueMember`` entries as members."""
    return [
        Member(
            queue=e.get("Queue") or "",
            interface=e.get("Location") or e.get("Interface") or "",
            name=e.get("Name") or e.get("MemberName") or "",
            penalty=int(e.get("Penalty") or 0),
            paused=(e.get("Paused") or "0") == "1",
            reason=e.get("PausedReason") or "",
        )
        for e in entries
        if e.event == "QueueMember"
    ]


def ami_fields(action: QueueAction) -> tuple[str, dict[str, str]]:
    """The AMI action and its fields for one planned change."""
    match action:
        case Add(m):
            return "QueueAdd", {
                "Queue": m.queue,
                "Interface": m.interface,
                "MemberName": m.name,
                "StateInterface": m.interface,
                "Penalty": str(m.penalty),
                "Paused": "true" if m.paused else "false",
                "Reason": m.reason,
            }
        case Remove(queue, interface):
            return "QueueRemove", {"Queue": queue, "Interface": interface}
        case Pause(queue, interface, paused, reason):
            return "QueuePause", {
                "Queue": queue,
                "Interface": interface,
                "Paused": "true" if paused else "false",
                "Reason": reason,
            }
        case Penalty(queue, interface, penalty):
            return "QueuePenalty", {"Queue": queue, "Interface": interface, "Penalty": str(penalty)}


class MembershipKeeper:
    def __init__(
        self, engine: Engine, routing: Routing, ami: AmiClient, interval_s: float = 1.0
    ) -> None:
        self.engine = engine
        self.ami = ami
        self.interval_s = interval_s
        self.queue_of_desk = {desk.id: desk.queue for desk in routing.desks}
        self.applied: list[Member] | None = None  # what the last reconcile made Asterisk hold
        self._lock = asyncio.Lock()

    async def wanted(self) -> list[Member]:
        found = await asyncio.to_thread(seats, self.engine, self.queue_of_desk)
        return wanted_members(found)

    async def reconcile(self) -> list[QueueAction]:
        """Make Asterisk hold exactly the wanted agent memberships; the actions sent."""
        async with self._lock:
            wanted = await self.wanted()
            entries = await self.ami.send_list_action("QueueStatus", timeout=ACTION_TIMEOUT_S)
            actions = plan(wanted, held_members(entries))
            for action in actions:
                name, fields = ami_fields(action)
                reply = await self.ami.send_action(name, fields, timeout=ACTION_TIMEOUT_S)
                if reply.response != "Success":
                    logger.warning(
                        "queue membership not changed",
                        extra={"action": name, **fields, "reply": reply.get("Message")},
                    )
            if actions:
                logger.info("queue membership reconciled", extra={"actions": len(actions)})
            self.applied = wanted
            return actions

    async def on_login(self, ami: AmiClient) -> None:
        """After every AMI login: Asterisk may have restarted with empty queues."""
        try:
            await self.reconcile()
        except (HotlineError, SQLAlchemyError) as exc:
            self.applied = None  # the next round tries again
            logger.warning("queue membership not reconciled at login: %s", exc)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.ami.connected:
                continue
            try:
                if await self.wanted() != self.applied:
                    await self.reconcile()
            except (HotlineError, SQLAlchemyError) as exc:
                self.applied = None
                logger.warning("queue membership not reconciled, trying again: %s", exc)
