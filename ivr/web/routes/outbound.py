"""Who the hotline owes a call: the 回访 worklist, the tickets the 回访 reopened, and the
call-backs for abandoned callers (docs/followup.md).

Routes::

    GET /api/followups/worklist   follow-ups the machine could not complete, most urgent
                                  first, each ``overdue`` past its deadline (agent, supervisor)
    GET /api/followups/flagged    open tickets a customer said were not resolved (supervisor)
    GET /api/callbacks            today's abandoned callers owed a call-back (number, queue,
                                  wait, when, how many calls) and the share called back
                                  within 30 min (agent, supervisor)

Numbers are whole: agents and supervisors call these customers back. Answers are ``no-store``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ivr.adapters.sql import callbacks, followups
from ivr.adapters.sql.db import Role, User, utcnow
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.followup import FollowupConfig
from ivr.core.followup_call import policy_config
from ivr.web.auth import DbDep, SupervisorUser, require_roles
from ivr.web.deps import SettingsDep
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["outbound"])
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
