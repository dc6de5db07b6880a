"""An agent's presence over HTTP: log in to one's desks, log out, pause with a reason, resume.

Routes::

    GET  /api/agent/presence                   the signed-in agent's 工号, name and presence
    POST /api/agent/presence                   {"action": "login"|"logout"|"pause"|"resume",
                                               "reason"?: 小休|培训|会议|后处理 (pause only),
                                               "device"?: "desk"|"browser" (login only:
                                               which device rings, the desk phone by
                                               default; logging in again switches)}
    POST /api/agents/{work_number}/presence    the same for any agent: supervisors, admins

``/api/agent/presence`` is for the role ``agent`` acting on the agent its web account is linked
to (403 ``no-agent-for-user`` otherwise). Errors: 404 ``agent-not-found``, 409
``presence-refused`` (a pause while logged out, an unknown reason, a disabled agent logging
in), 422 ``invalid-presence-input``. Every change is recorded like the agents' other changes
(``agent_changes`` and the audit log, ``agent.login`` ...). The ami role makes Asterisk's
queues follow within about a second; the answer says what SQL now holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Role, User
from ivr.core.agent_presence import PAUSE_REASONS, Presence, describe
from ivr.errors import HotlineError
from ivr.web import api_docs
from ivr.web.auth import DbDep, SupervisorUser, client_ip, require_roles
from ivr.web.deps import parse_json, read_body
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["presence"])
MAX_BODY: Final = 4 * 1024
AgentUser = Annotated[User, require_roles(Role.agent)]


class InvalidPresenceInput(HotlineError):
    """A presence request whose body is not ``{"action", "reason"?}`` as documented (HTTP 422)."""

    slug = "invalid-presence-input"
    status = 422


class PresenceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["login", "logout", "pause", "resume"]
    reason: str = Field(
        default="", max_length=16, description="pause only: " + "|".join(PAUSE_REASONS)
    )
    device: Literal["desk", "browser"] = Field(
        default="desk",
        description="login only: which device rings, the desk phone (endpoint <工号>) or the "
        "agent desk page's softphone (endpoint <工号>-webrtc)",
    )


async def presence_change(request: Request) -> PresenceChange:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidPresenceInput("send a JSON body (Content-Type: application/json)")
    body = parse_json(
        await read_body(request, MAX_BODY, InvalidPresenceInput), InvalidPresenceInput
    )
    try:
        return PresenceChange.model_validate(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        ]
        raise InvalidPresenceInput("; ".join(problems), problems=problems) from None


ChangeDep = Annotated[PresenceChange, Depends(presence_change)]


def presence_doc(work_number: str, name: str, presence: Presence) -> dict[str, Any]:
    return {
        "work_number": work_number,
        "name": name,
        "logged_in": presence.logged_in,
        "paused": presence.paused,
        "reason": presence.reason,
        "device": presence.device,
        "label": describe(presence),
    }


def _change(
    db: DbDep, work_number: str, change: PresenceChange, user: User, request: Request
) -> JSONResponse:
    actor = store.Actor.of(user, client_ip(request))
    presence = store.change_presence(
        db, work_number, change.action, change.reason, actor, change.device
    )
    db.commit()
    agent = store.get(db, work_number)
    return JSONResponse(presence_doc(work_number, agent.name, presence), headers=NO_STORE)


@router.get("/api/agent/presence")
def own_presence(user: AgentUser, db: DbDep) -> JSONResponse:
    work_number = store.agent_of_user(db, user)
    agent = store.get(db, work_number)
    return JSONResponse(
        presence_doc(work_number, agent.name, store.get_presence(db, work_number)),
        headers=NO_STORE,
    )


@router.post("/api/agent/presence", openapi_extra=api_docs.json_body(PresenceChange))
def change_own_presence(
    request: Request, user: AgentUser, db: DbDep, change: ChangeDep
) -> JSONResponse:
    return _change(db, store.agent_of_user(db, user), change, user, request)


@router.post("/api/agents/{work_number}/presence", openapi_extra=api_docs.json_body(PresenceChange))
def change_agent_presence(
    work_number: Annotated[str, Path(min_length=1, max_length=12, pattern=r"^[0-9]+$")],
    request: Request,
    user: SupervisorUser,
    db: DbDep,
    change: ChangeDep,
) -> JSONResponse:
    return _change(db, work_number, change, user, request)
