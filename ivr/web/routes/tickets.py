"""工单 over HTTP, and the tickets page.

Routes::

    GET  /api/tickets                       list (filters below), most urgent first, paged
    GET  /api/tickets/{id}                  one ticket: facts, notes, transitions, recording link,
                                            the outbound calls about it (each recording link)
    POST /api/tickets/{id}/transitions      {"to": "处理中", "comment": "..."} -> the ticket
    POST /api/tickets/{id}/notes            {"text": "..."} -> 201 the note (a staff note)
    GET  /tickets                           the page (HTML); /static/tickets.js, .css its assets

Roles: ``supervisor`` (and ``admin``, which holds every role) read and manage tickets; ``qa``
may read them (QA reads transcripts, and a ticket's notes are its transcripts) but not move
them or write notes. 401 without a session, 403 for a role that may not, 404 for an unknown
ticket, 409 for an illegal move (the message names both states and the allowed next ones),
422 for a bad filter or body; every error is ``{"error", "message", "details"}``. POSTs pass
the same-origin check of :mod:`ivr.web.auth`. Moves and notes write the audit log.

List filters (query string): ``state`` (a state, Chinese or English name, or ``open`` = not
已完成; repeatable), ``desk``, ``overdue``, ``danger``, ``emergency``, ``reopened`` (true/false;
reopened: a 回访 heard "not resolved", which moved it back to 处理中 with its priority raised,
and it has not reached 已完成 since; each ticket says ``reopened``), ``from`` and ``to`` (local
days, ``tickets.timezone``, inclusive, of when the call came in), ``page`` (from 1) and
``per_page`` (1..200, default 50). Order: priority, then deadline, then newest.

Callers' numbers and account numbers are masked (``138******00``) unless the user's role is in
``recordings.unmasked_roles``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from ivr.adapters.sql import followups
from ivr.adapters.sql import tickets as store
from ivr.adapters.sql.db import Role, Ticket, TicketNote, User
from ivr.core import tickets as rules
from ivr.core.tickets import InvalidTicketInput
from ivr.logging_setup import mask_number
from ivr.settings import Settings
from ivr.web import api_docs, static_pages
from ivr.web.auth import DbDep, client_ip, require_roles
from ivr.web.deps import SettingsDep, parse_json, read_body
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["tickets"])
MAX_BODY: Final = 16 * 1024

ReaderUser = Annotated[User, require_roles(Role.qa, Role.supervisor)]
ManagerUser = Annotated[User, require_roles(Role.supervisor)]


# --- input ------------------------------------------------------------------------------------
def _problem(exc: ValidationError) -> InvalidTicketInput:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    return InvalidTicketInput("; ".join(parts), problems=parts)


class TicketFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    state: list[str] = Field(default_factory=list)
    desk: str | None = Field(default=None, max_length=40)
    overdue: bool | None = None
    danger: bool | None = None
    emergency: bool | None = None
    reopened: bool | None = None
    from_day: date | None = Field(default=None, alias="from")
    to_day: date | None = Field(default=None, alias="to")
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=200)

    @field_validator("state")
    @classmethod
    def _known_states(cls, value: list[str]) -> list[str]:
        rules.parse_states(value)  # an unknown one raises a clear error naming the states
        return value

    def query(self, zone: ZoneInfo) -> store.TicketQuery:
        if self.from_day and self.to_day and self.from_day > self.to_day:
            raise InvalidTicketInput(
                f"from: {self.from_day} is after to: {self.to_day}", to=str(self.to_day)
            )
        return store.TicketQuery(
            states=rules.parse_states(self.state),
            desk=self.desk,
            overdue=self.overdue,
            danger=self.danger,
            emergency=self.emergency,
            reopened=self.reopened,
            since=datetime.combine(self.from_day, time(0), zone) if self.from_day else None,
            until=(
                datetime.combine(self.to_day + timedelta(days=1), time(0), zone)
                if self.to_day
                else None
            ),
            offset=(self.page - 1) * self.per_page,
            limit=self.per_page,
        )


def ticket_filter(request: Request) -> TicketFilter:
    """The list's query string, validated; unknown parameters are refused (typos show)."""
    raw: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key == "state":
            raw.setdefault("state", []).append(value)
        elif key in raw:
            raise InvalidTicketInput(f"{key}: given more than once")
        else:
            raw[key] = value
    try:
        return TicketFilter.model_validate(raw)  # an unknown state raises InvalidTicketInput
    except ValidationError as exc:
        raise _problem(exc) from None


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=40)
    comment: str = Field(default="", max_length=store.MAX_NOTE_CHARS)


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=store.MAX_NOTE_CHARS)


async def _json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidTicketInput("send a JSON body (Content-Type: application/json)")
    return parse_json(await read_body(request, MAX_BODY, InvalidTicketInput), InvalidTicketInput)


async def move_request(request: Request) -> MoveRequest:
    try:
        return MoveRequest.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise _problem(exc) from None


async def note_request(request: Request) -> NoteRequest:
    try:
        return NoteRequest.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise _problem(exc) from None


# --- output -----------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _shown(number: str | None, user: User, settings: Settings) -> str | None:
    if number is None:
        return None
    return number if user.role.value in settings.recordings.unmasked_roles else mask_number(number)


def note_doc(note: TicketNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "kind": note.kind,
        "source": note.source_key,
        "author": note.author,
        "text": note.text,
        "transcript_id": note.transcript_id,
        "created_at": _iso(note.created_at),
    }


# Who calls the customer back sees the contact number whole: the hotline (agents, supervisors)
# and the departments; others (qa) as callers' numbers (``recordings.unmasked_roles``).
CALL_BACK_ROLES: Final = frozenset({Role.agent, Role.supervisor, Role.department, Role.admin})


def record_doc(ticket: Ticket, user: User, settings: Settings) -> dict[str, Any]:
    """The agent's record and the department's part (text as stored: pages show it as text)."""
    happened = ticket.happened_at
    zone = store.calendar(settings).zone
    contact = ticket.contact_number
    return {
        "surname": ticket.surname,
        "title": ticket.title,
        "contact_number": contact
        if user.role in CALL_BACK_ROLES
        else _shown(contact, user, settings),
        "contact_confirmed": ticket.contact_confirmed,
        "estate": ticket.estate,
        "building": ticket.building,
        "unit": ticket.unit,
        "room": ticket.room,
        "problem_category": ticket.problem_category,
        "problem_subcategory": ticket.problem_subcategory,
        "happened_at": happened.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if happened else None,
        "place": ticket.place,
        "description": ticket.description,
        "urgency": ticket.urgency,
        "complaint": ticket.complaint,
        "outcome": ticket.outcome,
        "reply": ticket.reply,
        "replied_at": _iso(ticket.replied_at),
        "department": ticket.department,
        "recorded_at": _iso(ticket.recorded_at),
        "recorded_by": ticket.recorded_by,
        "taken_by": ticket.taken_by,
        "taken_at": _iso(ticket.taken_at),
        "result": ticket.result,
        "reported_at": _iso(ticket.reported_at),
        "customer_reply": ticket.customer_reply,
        "customer_reply_at": _iso(ticket.customer_reply_at),
        "customer_reply_by": ticket.customer_reply_by,
        "repeat_of": ticket.repeat_of,
        "repeat_state": ticket.repeat_state,
    }


def ticket_doc(
    ticket: Ticket, user: User, settings: Settings, now: datetime, notes: Sequence[TicketNote]
) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "linkedid": ticket.linkedid,
        "state": ticket.state.value,
        "allowed_next": [s.value for s in rules.allowed_next(ticket.state)],
        "desk": ticket.desk,
        "category": ticket.category,
        "caller": _shown(ticket.caller, user, settings),
        "account": _shown(ticket.account, user, settings),
        "agent": ticket.agent,
        "emergency": ticket.emergency,
        "danger": ticket.danger,
        "danger_words": list(ticket.danger_words or []),
        "priority": ticket.priority,
        "level": ticket.level,
        "deadline_at": _iso(ticket.deadline_at),
        "overdue": rules.is_overdue(ticket.state, ticket.deadline_at, now),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "closed_at": _iso(ticket.closed_at),
        "recording_id": ticket.recording_id,
        "recording_url": (
            f"/api/recordings/{ticket.recording_id}" if ticket.recording_id is not None else None
        ),
        "voice_message_id": ticket.voice_message_id,
        "notes": [note_doc(n) for n in notes],
        "record": record_doc(ticket, user, settings),
    }


def detail_doc(db: Session, ticket: Ticket, user: User, settings: Settings) -> dict[str, Any]:
    now = datetime.now(UTC)
    doc = ticket_doc(ticket, user, settings, now, store.notes_of(db, [ticket.id])[ticket.id])
    doc["reopened"] = bool(store.reopened_among(db, [ticket.id]))
    doc["transitions"] = [
        {
            "from": m.from_state.value if m.from_state is not None else None,
            "to": m.to_state.value,
            "actor": m.actor,
            "at": _iso(m.at),
            "comment": m.comment,
        }
        for m in store.transitions_of(db, ticket.id)
    ]
    doc["outbound_calls"] = [
        {
            "id": c.id,
            "purpose": c.purpose,
            "started_by": c.started_by,
            "started_at": _iso(c.started_at),
            "result": c.result,
            "recording_id": c.recording_id,
            "recording_url": (
                f"/api/recordings/{c.recording_id}" if c.recording_id is not None else None
            ),
        }
        for c in followups.calls_of_ticket(db, ticket.id)
    ]
    return doc


# --- the list ---------------------------------------------------------------------------------
def list_tickets(
    db: Session, filters: TicketFilter, user: User, settings: Settings, now: datetime
) -> dict[str, Any]:
    query = filters.query(ZoneInfo(settings.tickets.timezone))
    total, rows = store.search(db, query, now)
    notes = store.notes_of(db, [t.id for t in rows])
    again = store.reopened_among(db, [t.id for t in rows])
    return {
        "items": [
            ticket_doc(t, user, settings, now, notes[t.id]) | {"reopened": t.id in again}
            for t in rows
        ],
        "total": total,
        "page": filters.page,
        "per_page": filters.per_page,
        "at": now.isoformat(),
        "timezone": settings.tickets.timezone,
    }


# --- routes -----------------------------------------------------------------------------------
@router.get(
    "/api/tickets",
    openapi_extra=api_docs.query_parameters(TicketFilter, repeated=frozenset({"state"})),
)
def tickets_list(
    user: ReaderUser,
    db: DbDep,
    settings: SettingsDep,
    filters: Annotated[TicketFilter, Depends(ticket_filter)],
    response: Response,
) -> dict[str, Any]:
    response.headers.update(NO_STORE)
    return list_tickets(db, filters, user, settings, datetime.now(UTC))


def _ticket_id(raw: str) -> int:
    """The id in the path; anything but a number is an unknown ticket (404), like a number
    that names none."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise store.TicketNotFound(f"no ticket {raw[:40]!r}", ticket_id=raw[:40])
    return int(raw)


@router.get("/api/tickets/{ticket_id}")
def ticket_detail(
    ticket_id: str, user: ReaderUser, db: DbDep, settings: SettingsDep, response: Response
) -> dict[str, Any]:
    response.headers.update(NO_STORE)
    return detail_doc(db, store.get(db, _ticket_id(ticket_id)), user, settings)


@router.post("/api/tickets/{ticket_id}/transitions", openapi_extra=api_docs.json_body(MoveRequest))
def ticket_move(
    ticket_id: str,
    request: Request,
    user: ManagerUser,
    db: DbDep,
    settings: SettingsDep,
    body: Annotated[MoveRequest, Depends(move_request)],
) -> JSONResponse:
    to = rules.parse_state(body.to)
    ticket = store.move(db, _ticket_id(ticket_id), to, user, body.comment, ip=client_ip(request))
    db.commit()
    return JSONResponse(detail_doc(db, ticket, user, settings), headers=NO_STORE)


@router.post(
    "/api/tickets/{ticket_id}/notes", status_code=201, openapi_extra=api_docs.json_body(NoteRequest)
)
def ticket_note(
    ticket_id: str,
    request: Request,
    user: ManagerUser,
    db: DbDep,
    body: Annotated[NoteRequest, Depends(note_request)],
) -> JSONResponse:
    note = store.add_staff_note(db, _ticket_id(ticket_id), body.text, user, ip=client_ip(request))
    db.commit()
    return JSONResponse(note_doc(note), status_code=201, headers=NO_STORE)


static_pages.add_page(
    router,
    "tickets",
    ReaderUser,
    description="The tickets page (signed out: 303 to /login?next=/tickets).",
)
