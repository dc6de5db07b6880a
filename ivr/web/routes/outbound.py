"""Who the hotline owes a call: the 回访 worklist, the tickets the 回访 reopened, and the
call-backs for abandoned callers (docs/followup.md).

Routes::

    GET /api/followups/worklist   follow-ups the machine could not complete, most urgent
                                  first, each ``overdue`` past its deadline (agent, supervisor)
    GET /api/followups/flagged    open tickets a customer said were not resolved (supervisor)
    GET /api/callbacks            today's abandoned callers owed a call-back (number, queue,
                                  wait, when, how many calls) and the share called back
                                  within 30 min (agent, supervisor)
    POST /api/agent/outbound-calls  the signed-in agent calls a number of those two lists
                                  back from the device chosen at log-in (desk phone or the
                                  page's softphone): ``{"number": ...}`` (a call-back) or
                                  ``{"followup_id": n}``; 202 with the call's id, or 409
                                  ``outbound-call-refused`` saying why (not a listed number,
                                  being called already, callers waiting in the agent's
                                  queues, outside the calling hours). The ami role rings the
                                  agent's device, then dials the customer on the trunk.

Numbers are whole: agents and supervisors call these customers back. Answers are ``no-store``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from ivr import redis_keys
from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import callbacks, followups
from ivr.adapters.sql.db import Agent, AgentDesk, Followup, OutboundCall, Role, User, audit, utcnow
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import callbacks as rules
from ivr.core.followup import BadNumber, FollowupConfig, normalise_number
from ivr.core.followup_call import policy_config
from ivr.errors import HotlineError
from ivr.web import static_pages
from ivr.web.auth import DbDep, SupervisorUser, client_ip, require_roles
from ivr.web.deps import RedisDep, SettingsDep, parse_json, read_body
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["outbound"])
static_pages.add_script(router, "agent-worklist.js")  # the agent desk's #worklist part
CallerUser = Annotated[User, require_roles(Role.agent, Role.supervisor)]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@router.get("/api/followups/worklist")
def followup_worklist(user: CallerUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    """The agents' 回访 worklist."""
    config = policy_config(load_routing(settings.routing_dir)) or FollowupConfig()
    items = followups.worklist(db, config, utcnow())
    body = [
        {
            "followup_id": i.followup_id,
            "ticket_id": i.ticket_id,
            "number": i.number,
            "desk": i.desk,
            "reason": i.reason,
            "attempts": i.attempts,
            "last_result": i.last_result,
            "created_at": i.created_at.isoformat(),
            "due_at": i.due_at.isoformat(),
            "overdue": i.overdue,
        }  # fmt: skip
        for i in items
    ]
    return JSONResponse({"items": body}, headers=NO_STORE)


@router.get("/api/followups/flagged")
def followup_flagged(user: SupervisorUser, db: DbDep) -> JSONResponse:
    """Open tickets the 回访 reopened (the customer said not resolved)."""
    body = [
        {"ticket_id": t.id, "state": t.state.value, "priority": t.priority, "desk": t.desk}
        for t in followups.flagged_tickets(db)
    ]
    return JSONResponse({"tickets": body}, headers=NO_STORE)


@router.get("/api/callbacks")
def callback_list(user: CallerUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    """Today's (metrics.timezone) call-back list and the 30-minute share."""
    zone = ZoneInfo(settings.metrics.timezone)
    now = utcnow()
    entries: list[dict[str, Any]] = [
        {
            "number": e.number,
            "linkedid": e.linkedid,
            "queue": e.queue,
            "class": e.klass,
            "wait_s": round(e.wait_s, 1),
            "entered_at": _iso(e.entered_at),
            "left_at": _iso(e.left_at),
            "calls": e.calls,
        }  # fmt: skip
        for e in callbacks.owed_on(db, now, zone)
    ]
    share = callbacks.share_on(db, now, zone)
    return JSONResponse(
        {
            "day": now.astimezone(zone).date().isoformat(),
            "entries": entries,
            "called_back_within_30_min": {
                "called_back": share.called_back,
                "owed": share.owed,
                "rate": share.rate,
            },  # fmt: skip
        },
        headers=NO_STORE,
    )


class OutboundCallRefused(HotlineError):
    """An agent's call-back that may not be placed now (the reason is the message)."""

    slug = "outbound-call-refused"
    status = 409


class InvalidOutboundCall(HotlineError):
    """The body of a call-back request is not ``{"number": ...}`` or ``{"followup_id": n}``."""

    slug = "invalid-outbound-call"
    status = 422


class CallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str | None = Field(default=None, max_length=32)
    followup_id: int | None = Field(default=None, ge=1)


AgentUser = Annotated[User, require_roles(Role.agent)]


async def _waiting_queues(redis: Any) -> set[str]:
    """The queues a caller waits in now (the live view the ami role keeps)."""
    queues = set()
    for raw in await redis.hvals(redis_keys.LIVE_CALLS):
        call = json.loads(raw)
        if isinstance(call, dict) and isinstance(call.get("queue"), str):
            queues.add(call["queue"])
    return queues


def _normalised(raw: str) -> str | None:
    try:
        return normalise_number(raw)
    except BadNumber:
        return None


@router.post("/api/agent/outbound-calls", status_code=202)
async def agent_outbound_call(
    request: Request, user: AgentUser, db: DbDep, settings: SettingsDep, redis: RedisDep
) -> JSONResponse:
    """Call a customer of the worklist or the call-back list back from the agent's phone."""
    body = parse_json(await read_body(request, 1024, InvalidOutboundCall), InvalidOutboundCall)
    try:
        wanted = CallBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidOutboundCall(str(exc.errors()[0]["msg"])) from None
    if (wanted.number is None) == (wanted.followup_id is None):
        raise InvalidOutboundCall('give "number" (a call-back) or "followup_id", not both')
    work_number = agent_store.agent_of_user(db, user)
    routing = load_routing(settings.routing_dir)
    config = policy_config(routing) or FollowupConfig()
    now = utcnow()
    worklist = followups.worklist(db, config, now)
    owed = callbacks.owed_on(db, now, ZoneInfo(settings.metrics.timezone))
    followup: Followup | None = None
    if wanted.followup_id is not None:
        followup = db.get(Followup, wanted.followup_id)
        listed = {i.followup_id for i in worklist}
        number = _normalised(followup.number) if followup and followup.id in listed else None
        known = {number} if number else set()
    else:
        number = _normalised(wanted.number or "")
        known = {e.number for e in owed}
    desks = set(db.scalars(select(AgentDesk.desk).join(Agent).where(
        Agent.work_number == work_number)))  # fmt: skip
    queues = {d.queue for d in routing.desks if d.id in desks}
    device = db.scalar(select(Agent.device).where(Agent.work_number == work_number)) or "desk"
    in_flight = {c.number for c in followups.in_flight(db)}

    def refusal(waiting: set[str]) -> str | None:
        return rules.refuse_agent_call(
            number=number or "", known=known, in_flight=in_flight, waiting_queues=waiting,
            agent_queues=queues, now=now.timestamp(), config=config,
        )  # fmt: skip

    reason = refusal(set())  # what SQL alone refuses first; then the live view in Redis
    if reason is None:
        reason = refusal(await _waiting_queues(redis))
    if reason is not None or number is None:
        raise OutboundCallRefused(reason or "no number to call")
    call = OutboundCall(
        channel_id=f"agentcall-{uuid.uuid4().hex[:20]}",
        purpose="followup" if followup is not None else "callback",
        number=number,
        ticket_id=followup.ticket_id if followup is not None else None,
        followup_id=followup.id if followup is not None else None,
        started_by=user.username,
        started_at=now,
        device=rules.agent_device(work_number, device),
    )
    db.add(call)
    audit(db, user, "outbound.call", target=f"{call.purpose} {call.channel_id}",
          ip=client_ip(request))  # fmt: skip
    db.commit()
    return JSONResponse({"id": call.id, "channel_id": call.channel_id, "number": number},
                        status_code=202, headers=NO_STORE)  # fmt: skip


class ResultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["resolved", "not resolved", "refused", "no answer"]
    satisfaction: Literal["satisfied", "basically satisfied", "dissatisfied"] | None = None


@router.post("/api/agent/outbound-calls/{call_id}/result")
async def agent_call_result(
    call_id: int, request: Request, user: AgentUser, db: DbDep
) -> JSONResponse:
    """The agent enters what the customer said on a worklist follow-up call."""
    body = parse_json(await read_body(request, 1024, InvalidOutboundCall), InvalidOutboundCall)
    try:
        wanted = ResultBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidOutboundCall(str(exc.errors()[0]["msg"])) from None
    row = followups.record_agent_result(
        db, call_id, wanted.outcome, wanted.satisfaction, user, now=utcnow()
    )
    db.commit()
    return JSONResponse(
        {"followup_id": row.id, "status": row.status, "resolved": row.resolved,
         "satisfaction": row.satisfaction, "flagged": row.flagged},
        headers=NO_STORE,
    )  # fmt: skip
