"""The 回访 loop: places the follow-up calls the pure policy decides on, through Asterisk.

Every ``tick_s`` while logged in to AMI (the actions account), :meth:`FollowupCalls.tick`
reads the follow-ups still owed and the outbound calls in flight from SQL, asks
:func:`ivr.core.followup.plan` at the injected clock's moment, hands what the machine could
not complete to the agents' worklist, and for each call to place marks the attempt taken
(SQL, committed) *before* it sends the Originate (``PJSIP/<number>@outbound``, the trunk of
routing/, the hotline's caller ID, ``[followup-call]`` once answered). So a crash between the
two can never call twice; :func:`ivr.adapters.sql.followups.release_stale` frees such a
follow-up when the loop starts again.

How each attempt ended comes from AMI events on the call's channel (its Uniqueid is the
``ChannelId`` chosen here): ``Newstate`` Up = answered; the channel's ``VarSet`` of
IVR_FOLLOWUP, IVR_FOLLOWUP_RESOLVED and IVR_SURVEY = the answers; ``Hangup`` of an answered
call = the end; an ``OriginateResponse`` Failure = not answered (its Reason: 5 busy, 3 rang
without answer; 1, the channel hung up: its ``Hangup`` cause, 17 busy, 18/19 no answer;
anything else failed). A call that reports nothing within the ring time and a
margin is ended as ``failed``. With Asterisk down nothing is placed: the follow-ups wait in
SQL and run once the link is back, inside the calling hours.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import followups as store
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.core import followup as policy
from ivr.core.followup_call import (
    IVR_FOLLOWUP,
    IVR_FOLLOWUP_RESOLVED,
    CallResult,
    policy_config,
    result_of,
)
from ivr.core.routing_models import OutboundTrunkIn, Routing
from ivr.core.survey import IVR_SURVEY
from ivr.errors import AmiError, ConfigError
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

logger = logging.getLogger(__name__)

# OriginateResponse's Reason (Asterisk's control frame): 3 rang out, 5 busy; 1 (the channel
# hung up) says no more: then the channel's Hangup cause tells (17 busy, 18/19 no answer).
ORIGINATE_REASONS = {"3": "NOANSWER", "5": "BUSY"}
HANGUP_CAUSES = {"17": "BUSY", "18": "NOANSWER", "19": "NOANSWER"}
REPORT_MARGIN_S = 15.0  # after the ring time: a call that said nothing has failed
ANSWERED_MAX_S = 600.0  # an answered call still up after this long is ended as failed
_WATCHED = (IVR_FOLLOWUP, IVR_FOLLOWUP_RESOLVED, IVR_SURVEY)


@dataclass(slots=True)
class _Call:
    place: policy.Place
    started: float  # the loop's clock
    answered: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    cause: str | None = None  # the Hangup cause of a call not answered
    refused: bool = False  # OriginateResponse Failure seen, waiting for the cause


class FollowupCalls:
    """The loop; ``clock`` (epoch seconds) is an input, so tests move time."""

    def __init__(
        self,
        engine: Engine,
        routing: Routing,
        ami: AmiClient,
        *,
        clock: Callable[[], float] = time.time,
        tick_s: float = 2.0,
        automated: bool = True,
    ) -> None:
        """``automated``: place the 回访 calls (routing's ``followup.enabled``); the agents'
        click-to-call requests are placed either way."""
        config = policy_config(routing)
        followup = routing.hotline.followup
        if config is None or followup is None:
            raise ConfigError("no followup section in routing/hotline.yaml: no 回访 calls")
        self.engine = engine
        self.config: policy.FollowupConfig = config
        self.trunk: OutboundTrunkIn = followup.trunk
        self.language = routing.hotline.default_language
        self.ami = ami
        self.clock = clock
        self.tick_s = tick_s
        self.automated = automated
        self.calls: dict[str, _Call] = {}  # by channel id: placed, not yet ended
        self.agent_calls: dict[str, str] = {}  # channel id -> DIALSTATUS seen so far

    @classmethod
    def for_role(cls, settings: Settings, engine: Engine, routing: Routing) -> FollowupCalls:
        """With an AMI client of its own (the actions account: Originate), events to it."""
        holder: list[FollowupCalls] = []

        async def on_event(message: AmiMessage) -> None:
            await holder[0].on_event(message)

        ami = AmiClient(
            settings.ami, settings.ami_actions_secret(), on_event=on_event,
            username=settings.ami.actions_username,
        )  # fmt: skip
        enabled = routing.hotline.followup is not None and routing.hotline.followup.enabled
        holder.append(cls(engine, routing, ami, automated=enabled))
        return holder[0]

    async def run(self) -> None:
        """Free what a crash left in flight, then tick for ever (while AMI is logged in)."""
        freed = await asyncio.to_thread(self._release_stale)
        if freed:
            logger.warning("follow-up calls left in flight by a stop ended as failed: %d", freed)
        while True:
            if self.ami.connected:
                try:
                    await self.tick()
                except AmiError as exc:
                    logger.warning("follow-up tick: AMI: %s", exc.message)
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> list[policy.Place]:
        """One round: the overdue watchdog, then plan and place. Returns what was placed."""
        now = self.clock()
        for channel_id, call in list(self.calls.items()):
            limit = ANSWERED_MAX_S if call.answered else self.trunk.ring_s + REPORT_MARGIN_S
            if now - call.started > limit:
                await self._finish(channel_id, CallResult(policy.Result.FAILED), "NO REPORT")
        for call_id, device, number in await asyncio.to_thread(self._agent_requests, now):
            await self._originate_agent_call(call_id, device, number)
        if not self.automated:
            return []
        taken = await asyncio.to_thread(self._plan_and_take, now)
        for place, channel_id in taken:
            self.calls[channel_id] = _Call(place, now)
            await self._originate(place, channel_id)
        return [place for place, _ in taken]

    def _agent_requests(self, now: float) -> list[tuple[str, str, str]]:
        """The agents' click-to-call requests not placed yet, marked placed (taken once)."""
        moment = datetime.fromtimestamp(now, UTC)
        with Session(self.engine) as session:
            taken = store.take_agent_requests(session, now=moment)
            session.commit()
            return taken

    async def _originate_agent_call(self, channel_id: str, device: str, number: str) -> None:
        """Ring the agent's device; once answered, ``[agent-callback]`` dials the customer on
        the trunk (Dial's DIALSTATUS, read from VarSet, is the call's result)."""
        caller_id = self.trunk.caller_id
        self.agent_calls[channel_id] = ""
        try:
            reply = await self.ami.send_action(
                "Originate",
                {
                    "Channel": device,
                    "Context": "agent-callback",
                    "Exten": number,
                    "Priority": "1",
                    "CallerID": f'"{caller_id}" <{caller_id}>',
                    "ChannelId": channel_id,
                    "Async": "true",
                    "Timeout": "30000",
                },  # fmt: skip
                timeout=10,
            )
        except AmiError as exc:
            logger.warning("agent call Originate not sent: %s", exc.message)
            await self._end_agent_call(channel_id, "NOT SENT")
            return
        if reply.response != "Success":
            await self._end_agent_call(channel_id, "REFUSED")

    async def _end_agent_call(self, channel_id: str, dial_status: str) -> None:
        if self.agent_calls.pop(channel_id, None) is None:
            return
        moment = datetime.fromtimestamp(self.clock(), UTC)

        def store_end() -> None:
            with Session(self.engine) as session:
                store.end_agent_call(session, channel_id, dial_status, now=moment)
                session.commit()

        await asyncio.to_thread(store_end)

    def _plan_and_take(self, now: float) -> list[tuple[policy.Place, str]]:
        moment = datetime.fromtimestamp(now, UTC)
        with Session(self.engine) as session:
            decided = policy.plan(
                now, store.due(session, self.config), store.in_flight(session), self.config
            )
            if decided.worklist:
                store.to_worklist(session, decided.worklist)
            session.commit()
            taken = []
            for place in decided.place:
                channel_id = f"followup-{uuid.uuid4().hex[:20]}"
                try:
                    store.start_attempt(session, place, channel_id, now=moment)
                    session.commit()
                except store.FollowupNotFound:
                    session.rollback()  # taken by another loop meanwhile
                    continue
                taken.append((place, channel_id))
            return taken

    async def _originate(self, place: policy.Place, channel_id: str) -> None:
        caller_id = self.trunk.caller_id
        try:
            reply = await self.ami.send_action(
                "Originate",
                {
                    "Channel": f"PJSIP/{place.number}@outbound",
                    "Context": "followup-call",
                    "Exten": "s",
                    "Priority": "1",
                    "CallerID": f'"{caller_id}" <{caller_id}>',
                    "ChannelId": channel_id,
                    "Async": "true",
                    "Timeout": str(self.trunk.ring_s * 1000),
                    "Variable": [f"IVR_LANGUAGE={self.language}"],
                },
                timeout=10,
            )
        except AmiError as exc:
            logger.warning("follow-up Originate not sent: %s", exc.message)
            await self._finish(channel_id, CallResult(policy.Result.FAILED), "NOT SENT")
            return
        if reply.response != "Success":
            await self._finish(channel_id, CallResult(policy.Result.FAILED), "REFUSED")
        logger.info(
            "follow-up call placed",
            extra={"ticket": place.ticket_id, "followup": place.followup_id,
                   "attempt": place.attempt, "channel_id": channel_id},
        )  # fmt: skip

    async def on_event(self, message: AmiMessage) -> None:
        uniqueid = message.get("Uniqueid") or ""
        if uniqueid in self.agent_calls:
            await self._on_agent_call_event(uniqueid, message)
            return
        call = self.calls.get(uniqueid)
        if call is None:
            return
        event = message.event
        if event == "Newstate" and message.get("ChannelState") == "6":
            call.answered = True
        elif event == "VarSet" and message.get("Variable") in _WATCHED:
            call.variables[message.get("Variable") or ""] = message.get("Value") or ""
        elif event == "OriginateResponse" and message.get("Response") != "Success":
            status = ORIGINATE_REASONS.get(message.get("Reason") or "")
            if status is not None or call.cause is not None:
                status = status or HANGUP_CAUSES.get(call.cause or "", "CONGESTION")
                await self._finish(uniqueid, _unanswered(status), status)
            else:
                call.refused = True  # the channel's Hangup (its cause) is still to come
        elif event == "Hangup" and not call.answered:
            call.cause = message.get("Cause") or ""
            if call.refused:
                status = HANGUP_CAUSES.get(call.cause, "CONGESTION")
                await self._finish(uniqueid, _unanswered(status), status)
        elif event == "Hangup":
            outcome = result_of(
                answered=True,
                dial_status="ANSWER",
                followup=call.variables.get(IVR_FOLLOWUP),
                resolved=call.variables.get(IVR_FOLLOWUP_RESOLVED),
                satisfaction=call.variables.get(IVR_SURVEY),
            )
            await self._finish(uniqueid, outcome, "ANSWER")

    async def _on_agent_call_event(self, channel_id: str, message: AmiMessage) -> None:
        if message.event == "VarSet" and message.get("Variable") == "DIALSTATUS":
            self.agent_calls[channel_id] = message.get("Value") or ""
        elif message.event == "OriginateResponse" and message.get("Response") != "Success":
            await self._end_agent_call(channel_id, "AGENT NOANSWER")
        elif message.event == "Hangup":
            await self._end_agent_call(channel_id, self.agent_calls.get(channel_id) or "AGENT")

    async def _finish(self, channel_id: str, outcome: CallResult, dial_status: str) -> None:
        if self.calls.pop(channel_id, None) is None:
            return
        moment = datetime.fromtimestamp(self.clock(), UTC)
        await asyncio.to_thread(self._store_result, channel_id, outcome, dial_status, moment)

    def _store_result(
        self, channel_id: str, outcome: CallResult, dial_status: str, moment: datetime
    ) -> None:
        with Session(self.engine) as session:
            store.finish_attempt(session, channel_id, outcome, dial_status, now=moment)
            session.commit()

    def _release_stale(self) -> int:
        with Session(self.engine) as session:
            freed = store.release_stale(session, now=datetime.fromtimestamp(self.clock(), UTC))
            session.commit()
            return freed


def _unanswered(status: str) -> CallResult:
    return result_of(answered=False, dial_status=status, followup=None, resolved=None,
                     satisfaction=None)  # fmt: skip
