"""The 工单 at the agent desk, in the departments, and the hotline's reply to the customer.

Routes::

    GET  /api/ticket-form                       the form's choices: titles, problem types
                                                (category -> subcategories), departments,
                                                urgency, places, levels (routing/)
    GET  /api/agent/tickets[?linkedid=...]      the agent's tickets not yet recorded (the
                                                call in progress, in wrap-up), with drafts
    GET  /api/agent/tickets/{id}                one of them
    GET  /api/agent/replies                     the agent's tickets the department reported
                                                on (待验收): the customer is to be told
    PUT  /api/agent/tickets/{id}/draft          {field: value, ...}: the form as typed so far
    POST /api/agent/tickets/{id}/record         the form saved: checked, 422 naming every
                                                field at fault; then 待派单 -> 处理中
                                                (dispatched) or -> 已完成 (resolved on the call);
                                                an agent paused for 后处理 is resumed
                                                (``wrapup_pause_ended``)
    POST /api/agent/tickets/{id}/repeat         {"action": "confirm"|"unlink"}: the agent's word
                                                on a repeat-complaint link found at the save
                                                (409 ``repeat-link-refused`` when there is none)
    GET  /api/department/tickets                dispatched to the user's departments, open
    POST /api/department/tickets/{id}/take      take one (处理中)
    POST /api/department/tickets/{id}/report    {"result"}: 处理中 -> 待验收
    POST /api/tickets/{id}/confirm              {"reply", "replied_at"?}: the hotline's reply to
                                                the customer (its content and time) -> 已完成
    GET  /department                            the departments' page

Roles: ``agent`` for ``/api/agent/...`` (its own tickets only: 403 ``ticket-not-yours``),
``department`` for ``/api/department/...`` (tickets of its departments only), the confirmation
for supervisors and for the agent who owns the ticket. Errors are ``{"error", "message",
"details"}``; writes pass the same-origin check and are audited (:mod:`ivr.adapters.sql.
ticket_desk`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import ticket_desk
from ivr.adapters.sql import tickets as store
from ivr.adapters.sql.db import Role, Ticket, User
from ivr.adapters.sql.users import has_role
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import ticket_form
from ivr.core.routing_models import Routing
from ivr.core.tickets import InvalidTicketInput, Level
from ivr.settings import Settings
from ivr.web import api_docs, static_pages
from ivr.web.auth import DbDep, client_ip, require_roles
from ivr.web.deps import SettingsDep, parse_json, read_body
from ivr.web.routes.presence import AgentUser
from ivr.web.routes.tickets import _iso, _problem, _ticket_id, detail_doc, ticket_doc
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["tickets"])
MAX_BODY: Final = 32 * 1024
DepartmentUser = Annotated[User, require_roles(Role.department)]
HotlineUser = Annotated[User, require_roles(Role.agent, Role.supervisor)]
FormUser = Annotated[User, require_roles(Role.agent, Role.supervisor, Role.department)]


#: The form's fields as a JSON body (drafts and saves), for the API description.
FORM_BODY: Final = {
    "type": "object",
    "properties": {
        **{name: {"type": "string", "maxLength": n} for name, n in ticket_form.TEXT_FIELDS.items()},
        **{name: {"type": "boolean"} for name in ticket_form.BOOL_FIELDS},
    },
}


def choices_of(routing: Routing) -> ticket_form.FormChoices:
    return ticket_form.FormChoices(
        problem_types={t.id: frozenset(s.id for s in t.subtypes) for t in routing.problem_types},
        departments=frozenset(d.id for d in routing.departments),
    )


def form_doc(routing: Routing) -> dict[str, Any]:
    return {
        "titles": list(ticket_form.TITLES),
        "problem_types": [
            {
                "id": t.id,
                "label": t.label.model_dump(),
                "department": t.department,
                "subtypes": [{"id": s.id, "label": s.label.model_dump()} for s in t.subtypes],
            }
            for t in routing.problem_types
        ],
        "departments": [{"id": d.id, "label": d.label.model_dump()} for d in routing.departments],
        "urgency": [u.value for u in ticket_form.Urgency],
        "places": [p.value for p in ticket_form.Place],
        "levels": [level.value for level in Level],
        "outcomes": [o.value for o in ticket_form.Outcome],
        "fields": list(ticket_form.FIELDS),
    }


def agent_doc(ticket: Ticket, user: User, settings: Settings) -> dict[str, Any]:
    """A ticket as its agent sees it: the caller unmasked (agents call back), the draft."""
    doc = ticket_doc(ticket, user, settings, datetime.now(UTC), [])
    doc["caller"] = ticket.caller
    doc["account"] = ticket.account
    doc["draft"] = ticket.draft or {}
    doc["draft_at"] = _iso(ticket.draft_at)
    return doc


async def _json(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidTicketInput("send a JSON body (Content-Type: application/json)")
    return parse_json(await read_body(request, MAX_BODY, InvalidTicketInput), InvalidTicketInput)


# --- the form's choices -----------------------------------------------------------------------
@router.get("/api/ticket-form")
def ticket_form_choices(user: FormUser, settings: SettingsDep) -> JSONResponse:
    return JSONResponse(form_doc(load_routing(settings.routing_dir)), headers=NO_STORE)


# --- the agent --------------------------------------------------------------------------------
@router.get("/api/agent/tickets")
def agent_ticket_list(
    user: AgentUser, db: DbDep, settings: SettingsDep, linkedid: str | None = None
) -> JSONResponse:
    work_number = agent_store.agent_of_user(db, user)
    wanted = linkedid[:150] if linkedid else None
    rows = ticket_desk.agent_tickets(db, work_number, wanted)
    return JSONResponse(
        {"items": [agent_doc(t, user, settings) for t in rows], "work_number": work_number},
        headers=NO_STORE,
    )


def _own(db: Session, user: User, ticket_id: str) -> Ticket:
    work_number = agent_store.agent_of_user(db, user)
    return ticket_desk.agent_ticket(db, _ticket_id(ticket_id), work_number)


@router.get("/api/agent/replies")
def agent_reply_list(user: AgentUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    """The agent's tickets the department reported on (待验收): call the customer back and
    record the reply (``POST /api/tickets/{id}/confirm``)."""
    work_number = agent_store.agent_of_user(db, user)
    rows = ticket_desk.agent_replies(db, work_number)
    return JSONResponse({"items": [agent_doc(t, user, settings) for t in rows]}, headers=NO_STORE)


@router.get("/api/agent/tickets/{ticket_id}")
def agent_ticket_one(
    ticket_id: str, user: AgentUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    return JSONResponse(agent_doc(_own(db, user, ticket_id), user, settings), headers=NO_STORE)


@router.put("/api/agent/tickets/{ticket_id}/draft", openapi_extra=api_docs.json_body(FORM_BODY))
async def agent_ticket_draft(
    ticket_id: str, request: Request, user: AgentUser, db: DbDep
) -> JSONResponse:
    draft = ticket_form.clean_draft(await _json(request))
    ticket = _own(db, user, ticket_id)
    ticket_desk.save_draft(db, ticket, draft, user, ip=client_ip(request))
    db.commit()
    return JSONResponse({"id": ticket.id, "draft_at": _iso(ticket.draft_at)}, headers=NO_STORE)


@router.post("/api/agent/tickets/{ticket_id}/record", openapi_extra=api_docs.json_body(FORM_BODY))
async def agent_ticket_record(
    ticket_id: str, request: Request, user: AgentUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    raw = await _json(request)
    if not isinstance(raw, dict):
        raise ticket_form.InvalidDraft("a record is a JSON object of the form's fields")
    work_number = agent_store.agent_of_user(db, user)
    ticket = ticket_desk.agent_ticket(db, _ticket_id(ticket_id), work_number)
    rec = ticket_form.check_record(
        raw, choices_of(load_routing(settings.routing_dir)), store.calendar(settings).zone
    )
    saved = ticket_desk.record(db, ticket, rec, user, settings, ip=client_ip(request))
    resumed = ticket_desk.end_wrapup_pause(db, work_number, user, ip=client_ip(request))
    db.commit()
    doc = detail_doc(db, saved, user, settings)
    doc["wrapup_pause_ended"] = resumed
    return JSONResponse(doc, headers=NO_STORE)


class RepeatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["confirm", "unlink"]


@router.post(
    "/api/agent/tickets/{ticket_id}/repeat", openapi_extra=api_docs.json_body(RepeatRequest)
)
async def agent_ticket_repeat(
    ticket_id: str, request: Request, user: AgentUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    try:
        wanted = RepeatRequest.model_validate(await _json(request))
    except ValidationError as exc:
        raise InvalidTicketInput('send {"action": "confirm"} or {"action": "unlink"}') from exc
    ticket = _own(db, user, ticket_id)
    ticket_desk.set_repeat(db, ticket, wanted.action, user, ip=client_ip(request))
    db.commit()
    return JSONResponse(detail_doc(db, ticket, user, settings), headers=NO_STORE)


# --- departments ------------------------------------------------------------------------------
class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: str = Field(min_length=1, max_length=ticket_desk.MAX_TEXT)


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reply: str = Field(min_length=1, max_length=ticket_desk.MAX_TEXT)
    replied_at: AwareDatetime | None = None  # when the customer was told; default: now

    @field_validator("replied_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None


async def report_request(request: Request) -> ReportRequest:
    try:
        return ReportRequest.model_validate(await _json(request))
    except ValidationError as exc:
        raise _problem(exc) from None


async def confirm_request(request: Request) -> ConfirmRequest:
    try:
        return ConfirmRequest.model_validate(await _json(request))
    except ValidationError as exc:
        raise _problem(exc) from None


def department_doc(ticket: Ticket, user: User, settings: Settings) -> dict[str, Any]:
    """A ticket as a department sees it: the contact number to reach the customer unmasked
    (they go there), the caller's own number masked as for any role."""
    return ticket_doc(ticket, user, settings, datetime.now(UTC), [])


@router.get("/api/department/tickets")
def department_ticket_list(user: DepartmentUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    departments = ticket_desk.departments_of(db, user)
    rows = ticket_desk.department_tickets(db, departments)
    return JSONResponse(
        {
            "departments": departments,
            "items": [department_doc(t, user, settings) for t in rows],
        },
        headers=NO_STORE,
    )


@router.post("/api/department/tickets/{ticket_id}/take")
def department_take(
    ticket_id: str, request: Request, user: DepartmentUser, db: DbDep, settings: SettingsDep
) -> JSONResponse:
    ticket = ticket_desk.take(
        db, _ticket_id(ticket_id), user, ticket_desk.departments_of(db, user),
        ip=client_ip(request),
    )  # fmt: skip
    db.commit()
    return JSONResponse(department_doc(ticket, user, settings), headers=NO_STORE)


@router.post(
    "/api/department/tickets/{ticket_id}/report", openapi_extra=api_docs.json_body(ReportRequest)
)
def department_report(
    ticket_id: str,
    request: Request,
    user: DepartmentUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[ReportRequest, Depends(report_request)],
) -> JSONResponse:
    ticket = ticket_desk.report(
        db, _ticket_id(ticket_id), user, ticket_desk.departments_of(db, user), body.result,
        ip=client_ip(request),
    )  # fmt: skip
    db.commit()
    return JSONResponse(department_doc(ticket, user, settings), headers=NO_STORE)


# --- the hotline's reply to the customer ------------------------------------------------------
@router.post("/api/tickets/{ticket_id}/confirm", openapi_extra=api_docs.json_body(ConfirmRequest))
def ticket_confirm(
    ticket_id: str,
    request: Request,
    user: HotlineUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[ConfirmRequest, Depends(confirm_request)],
) -> JSONResponse:
    number = _ticket_id(ticket_id)
    if not has_role(user, Role.supervisor):  # an agent confirms the tickets it owns
        ticket_desk.agent_ticket(db, number, agent_store.agent_of_user(db, user))
    replied_at = body.replied_at or datetime.now(UTC)
    ticket = ticket_desk.confirm(db, number, user, body.reply, replied_at, ip=client_ip(request))
    db.commit()
    return JSONResponse(detail_doc(db, ticket, user, settings), headers=NO_STORE)


static_pages.add_script(router, "agent-ticket.js")
static_pages.add_page(
    router,
    "department",
    DepartmentUser,
    description="部门工单 The departments' page: tickets dispatched to them, take, report.",
)
