"""Agents (坐席) over HTTP, for admins: the same operations as ``ivr agents``.

Routes::

    GET   /api/admin/agents                              every agent, by 工号
    POST  /api/admin/agents                              {"work_number", "name", "desks":
                                                         [{"desk", "penalty"}], "user"} -> 201
                                                         the agent, its SIP password (once)
                                                         and the phone settings
    GET   /api/admin/agents/{work_number}                one agent and its changes
    PATCH /api/admin/agents/{work_number}                {"name"?, "desks"?, "user"?}: what
                                                         is given changes (desks replace all
                                                         desks; "user": null unlinks)
    POST  /api/admin/agents/{work_number}/disable        Asterisk drops the agent's endpoint
    POST  /api/admin/agents/{work_number}/enable
    POST  /api/admin/agents/{work_number}/reset-password a new SIP password, once

``admin`` only: 401 without a session, 403 for every other role (``agent``, ``qa``,
``supervisor``). Errors are ``{"error", "message", "details"}``: 404 ``agent-not-found``, 409
``agent-exists`` (a duplicate 工号), ``agent-user-taken``, ``agent-state-unchanged``, 422
``unknown-desk``, ``agent-without-desk``, ``invalid-agent-input`` (the message names the
field). POST and PATCH pass the same-origin check of :mod:`ivr.web.auth`. Every change is
recorded with who, when, from which address, each field old -> new (never a password) and
written to the audit log (``agent.*``, target ``agent:<工号>``). Answers carrying a password
are ``Cache-Control: no-store`` like every other answer here.

``registered`` in an agent is ``null``: the registrations come from the Asterisk side.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import AgentChange, User
from ivr.core import agents as rules
from ivr.core.agents import AgentInfo, DeskAssignment, InvalidAgentInput
from ivr.settings import Settings
from ivr.web import api_docs
from ivr.web.auth import AdminUser, DbDep, client_ip
from ivr.web.deps import SettingsDep, parse_json, read_body
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["agents"])
MAX_BODY: Final = 16 * 1024
BASE: Final = "/api/admin/agents"


# --- input ------------------------------------------------------------------------------------
class DeskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desk: str = Field(min_length=1, max_length=40, description="a desk of routing/desks.yaml")
    penalty: int = Field(
        default=0, ge=rules.MIN_PENALTY, le=rules.MAX_PENALTY, description="0 is asked first"
    )


class NewAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    work_number: str = Field(min_length=1, max_length=12, description="工号: 1 to 12 digits")
    name: str = Field(min_length=1, max_length=rules.MAX_NAME)
    desks: list[DeskIn] = Field(max_length=rules.MAX_DESKS, description="at least one")
    user: str | None = Field(
        default=None, max_length=64, description="a web account with the role agent"
    )


class AgentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=rules.MAX_NAME)
    desks: list[DeskIn] | None = Field(
        default=None, max_length=rules.MAX_DESKS, description="replace all desks (at least one)"
    )
    user: str | None = Field(default=None, max_length=64, description="null: unlink")


def _problem(exc: ValidationError) -> InvalidAgentInput:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    return InvalidAgentInput("; ".join(parts), problems=parts)


async def _json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidAgentInput("send a JSON body (Content-Type: application/json)")
    return parse_json(await read_body(request, MAX_BODY, InvalidAgentInput), InvalidAgentInput)


async def new_agent(request: Request) -> NewAgent:
    try:
        return NewAgent.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise _problem(exc) from None


async def agent_patch(request: Request) -> AgentPatch:
    try:
        patch = AgentPatch.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise _problem(exc) from None
    for field in ("name", "desks"):
        if field in patch.model_fields_set and getattr(patch, field) is None:
            raise InvalidAgentInput(f"{field}: leave it out to keep it; null is not a value")
    return patch


def _desks(given: list[DeskIn]) -> list[DeskAssignment]:
    return [DeskAssignment(d.desk, d.penalty) for d in given]


# --- output -----------------------------------------------------------------------------------
def agent_doc(agent: AgentInfo, settings: Settings) -> dict[str, Any]:
    return rules.document(agent, settings.asterisk.sip_realm, None)


def change_doc(change: AgentChange) -> dict[str, Any]:
    return {
        "at": change.at.isoformat(),
        "actor": change.actor,
        "action": change.action,
        "changes": change.changes,
        "ip": change.ip,
    }


def _answer(doc: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=NO_STORE)


def _with_password(agent: AgentInfo, password: str, settings: Settings) -> dict[str, Any]:
    return {
        "agent": agent_doc(agent, settings),
        "sip_password": password,
        "phone": store.phone_settings(agent, settings),
    }


def _actor(user: User, request: Request) -> store.Actor:
    return store.Actor.of(user, client_ip(request))


# --- routes -----------------------------------------------------------------------------------
@router.get(BASE)
def agents_list(_: AdminUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    return _answer({"items": [agent_doc(a, settings) for a in store.list_agents(db)]})


@router.post(BASE, status_code=201, openapi_extra=api_docs.json_body(NewAgent))
def agent_add(
    request: Request,
    user: AdminUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[NewAgent, Depends(new_agent)],
) -> JSONResponse:
    agent, password = store.add(
        db, body.work_number, body.name, _desks(body.desks), store.known_desks(settings),
        settings.asterisk.sip_realm, _actor(user, request), user=body.user,
    )  # fmt: skip
    db.commit()
    return _answer(_with_password(agent, password, settings), 201)


@router.get(BASE + "/{work_number}")
def agent_detail(work_number: str, _: AdminUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    doc = agent_doc(store.get(db, work_number), settings)
    doc["changes"] = [change_doc(c) for c in store.history(db, work_number)]
    return _answer(doc)


@router.patch(BASE + "/{work_number}", openapi_extra=api_docs.json_body(AgentPatch))
def agent_change(
    work_number: str,
    request: Request,
    user: AdminUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[AgentPatch, Depends(agent_patch)],
) -> JSONResponse:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = body.name
    if "desks" in given and body.desks is not None:
        changes["desks"] = _desks(body.desks)
    if "user" in given:
        changes["user"] = body.user
    known = store.known_desks(settings) if "desks" in changes else frozenset()
    agent = store.update(db, work_number, known, _actor(user, request), **changes)
    db.commit()
    return _answer(agent_doc(agent, settings))


def _set_active(
    db: Session, settings: Settings, work_number: str, active: bool, actor: store.Actor
) -> JSONResponse:
    agent = store.set_active(db, work_number, active, actor)
    db.commit()
    return _answer(agent_doc(agent, settings))


@router.post(BASE + "/{work_number}/disable")
def agent_disable(
    work_number: str, request: Request, user: AdminUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    return _set_active(db, settings, work_number, False, _actor(user, request))


@router.post(BASE + "/{work_number}/enable")
def agent_enable(
    work_number: str, request: Request, user: AdminUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    return _set_active(db, settings, work_number, True, _actor(user, request))


@router.post(BASE + "/{work_number}/reset-password")
def agent_reset_password(
    work_number: str, request: Request, user: AdminUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    agent, password = store.reset_password(
        db, work_number, settings.asterisk.sip_realm, _actor(user, request)
    )
    db.commit()
    return _answer(_with_password(agent, password, settings))
