"""The 工单 at the agent desk and in the departments, in SQL (the caller commits)::

    open_at_connect(session, linkedid=..., work_number=..., ...)  -> Ticket   (the ami role)
    agent_tickets(session, work_number, linkedid=None)           -> [Ticket] not yet recorded
    agent_replies(session, work_number)                           -> [Ticket] 待验收: to tell
    agent_ticket(session, ticket_id, work_number)                -> Ticket   (owned by the agent)
    save_draft(session, ticket, draft)                            the form as typed so far
    record(session, ticket, record, user, settings, ip=...)      the checked save: 待派单 ->
                                                                 处理中 (dispatched) or 已完成
                                                                 (resolved on the call)
    end_wrapup_pause(session, work_number, user, ip=...)          a 后处理 pause ends with it
    departments_of / set_departments(session, user, ...)         a department user's departments
    department_tickets(session, departments)                      dispatched to them, open
    take / report(session, ticket_id, user, ...)                 taken; result reported -> 待验收
    confirm(session, ticket_id, user, reply, replied_at, ...)    the reply to the customer -> 已完成
    mark_repeat / set_repeat / complaint_of(ticket)               repeat complaints (重复投诉)

The ticket of a call is opened when its agent connects (AMI ``AgentConnect``), owned by that
agent (首问负责制: ``tickets.agent`` is the 工号); the recorder later finds it by the Linkedid
and attaches the recording (:func:`ivr.adapters.sql.tickets.open_for_call`), and the STT worker
its transcript. Whichever of the two roles comes first inserts; the other's insert fails on
the unique ``linkedid`` inside a SAVEPOINT and it takes the stored row instead. A transferred
call keeps its first agent as owner. Every move is a transition with an audit row; taking a
ticket, saving a record and a draft's first save are audited too (a draft's later saves, made
as the agent types, are not).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import tickets as store
from ivr.adapters.sql.db import (
    Ticket,
    TicketState,
    User,
    UserDepartment,
    audit,
    in_savepoint,
    utcnow,
)
from ivr.core import repeats
from ivr.core import tickets as rules
from ivr.core.agent_intro import work_number_of
from ivr.core.agent_states import WRAPUP_REASON
from ivr.core.ticket_form import Outcome, TicketRecord
from ivr.errors import HotlineError
from ivr.logging_setup import mask_number
from ivr.settings import Settings

logger = logging.getLogger(__name__)

MAX_TEXT = 4000


class TicketNotYours(HotlineError):
    """The ticket is owned by another agent (首问负责制), or not dispatched to one of the
    user's departments (HTTP 403)."""

    slug = "ticket-not-yours"
    status = 403


class TicketAlreadyRecorded(HotlineError):
    """The agent's record of this ticket was saved already: it is no longer a draft (HTTP 409)."""

    slug = "ticket-already-recorded"
    status = 409


class RepeatLinkRefused(HotlineError):
    """A confirm or unlink of a repeat-complaint link on a ticket that has none (HTTP 409)."""

    slug = "repeat-link-refused"
    status = 409


class DepartmentStepRefused(HotlineError):
    """A department's take or report, or the hotline's confirmation, that the ticket's present
    state does not allow (HTTP 409; the message says why)."""

    slug = "department-step-refused"
    status = 409


# --- the agent connects -----------------------------------------------------------------------
def open_at_connect(
    session: Session,
    *,
    linkedid: str,
    work_number: str,
    desk: str | None,
    emergency: bool,
    caller: str,
    connected_at: datetime,
    settings: Settings,
) -> Ticket:
    """The call's ticket, opened now for ``work_number`` or claimed by it when the recorder
    opened it first without an owner; a ticket owned by another agent (the first to answer a
    transferred call) keeps its owner."""
    existing = session.scalars(select(Ticket).where(Ticket.linkedid == linkedid)).first()
    if existing is None:
        ticket = _new(linkedid, work_number, desk, emergency, caller, connected_at, settings)

        def insert() -> None:
            session.add(ticket)
            session.flush()

        refused = in_savepoint(session, insert)
        if refused is None:
            audit(session, None, "ticket.open", target=f"ticket:{ticket.id} agent:{work_number}",
                  actor="ami")  # fmt: skip
            logger.info(
                "ticket opened at connect",
                extra={"ticket": ticket.id, "linkedid": linkedid, "agent": work_number,
                       "desk": desk, "caller": mask_number(caller)},
            )  # fmt: skip
            return ticket
        existing = session.scalars(select(Ticket).where(Ticket.linkedid == linkedid)).first()
        if existing is None:  # refused for another reason: not ours to hide
            raise refused
    if existing.agent is None or work_number_of(existing.agent) == work_number:
        existing.agent = work_number
        existing.updated_at = utcnow()
    return existing


def _new(
    linkedid: str,
    work_number: str,
    desk: str | None,
    emergency: bool,
    caller: str,
    connected_at: datetime,
    settings: Settings,
) -> Ticket:
    conf = settings.tickets
    level = rules.level_for(
        desk=desk, emergency=emergency, danger=False, desk_levels=conf.desk_levels,
        default_level=conf.default_level,
    )  # fmt: skip
    return Ticket(
        linkedid=linkedid,
        desk=desk,
        category=desk,
        caller=caller,
        agent=work_number,
        emergency=emergency,
        state=TicketState.awaiting_dispatch,
        level=level.value,
        deadline_at=rules.deadline(level, connected_at, store.calendar(settings)),
        priority=rules.priority_for(
            level, emergency=emergency, danger=False, danger_priority=settings.stt.danger_priority
        ),
        danger=False,
        danger_words=[],
        contact_number=caller or None,
        created_at=connected_at,
        updated_at=utcnow(),
    )


# --- the agent's record -----------------------------------------------------------------------
def agent_tickets(
    session: Session, work_number: str, linkedid: str | None = None, limit: int = 20
) -> list[Ticket]:
    """The agent's tickets whose record is not saved yet, newest first."""
    query = select(Ticket).where(Ticket.agent == work_number, Ticket.recorded_at.is_(None))
    if linkedid is not None:
        query = query.where(Ticket.linkedid == linkedid)
    return list(session.scalars(query.order_by(Ticket.created_at.desc()).limit(limit)))


def agent_replies(session: Session, work_number: str, limit: int = 50) -> list[Ticket]:
    """The agent's tickets whose department reported (待验收): the customer is to be told,
    oldest report first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.agent == work_number, Ticket.state == TicketState.awaiting_acceptance)
            .order_by(Ticket.reported_at, Ticket.id)
            .limit(limit)
        )
    )


def agent_ticket(session: Session, ticket_id: int, work_number: str) -> Ticket:
    ticket = store.get(session, ticket_id)
    if work_number_of(ticket.agent) != work_number:
        raise TicketNotYours(f"ticket {ticket_id} is owned by another agent", ticket_id=ticket_id)
    return ticket


def save_draft(
    session: Session, ticket: Ticket, draft: dict[str, Any], user: User, *, ip: str | None
) -> None:
    """Keep what the agent typed so far (replaces the previous draft)."""
    if ticket.recorded_at is not None:
        raise TicketAlreadyRecorded(f"ticket {ticket.id} was saved already", ticket_id=ticket.id)
    if ticket.draft_at is None:
        audit(session, user, "ticket.draft", target=f"ticket:{ticket.id}", ip=ip)
    now = utcnow()
    ticket.draft = draft
    ticket.draft_at = now
    ticket.updated_at = now
    session.flush()


def record(
    session: Session,
    ticket: Ticket,
    rec: TicketRecord,
    user: User,
    settings: Settings,
    *,
    ip: str | None,
) -> Ticket:
    """Save the agent's checked record; dispatched: 待派单 -> 处理中 (to the department);
    resolved on the call: 待派单 -> 已完成 with the reply and its time."""
    if ticket.recorded_at is not None:
        raise TicketAlreadyRecorded(f"ticket {ticket.id} was saved already", ticket_id=ticket.id)
    now = utcnow()
    ticket.surname, ticket.title = rec.surname, rec.title
    ticket.contact_number, ticket.contact_confirmed = rec.contact_number, rec.contact_confirmed
    ticket.estate, ticket.building, ticket.unit, ticket.room = (
        rec.estate, rec.building, rec.unit, rec.room,
    )  # fmt: skip
    if rec.account is not None:
        ticket.account = rec.account
    ticket.problem_category, ticket.problem_subcategory = rec.category, rec.subcategory
    ticket.happened_at = rec.happened_at
    ticket.place = rec.place.value if rec.place is not None else None
    ticket.description = rec.description
    ticket.urgency = rec.urgency.value
    ticket.complaint = rec.complaint
    ticket.outcome = rec.outcome.value
    if rec.level is not None:
        _set_level(ticket, rec.level, settings)
    if rec.complaint:
        mark_repeat(session, ticket, settings, user, ip=ip)
    ticket.recorded_at, ticket.recorded_by = now, user.username
    ticket.draft, ticket.draft_at = None, None
    ticket.updated_at = now
    if rec.outcome is Outcome.resolved:
        ticket.reply, ticket.replied_at = rec.reply, now
    else:
        ticket.department = rec.department
    audit(session, user, "ticket.record", target=f"ticket:{ticket.id} {rec.outcome.value}", ip=ip)
    session.flush()
    if rec.outcome is Outcome.resolved:
        return store.move(
            session, ticket.id, TicketState.done, user, "当场解答 resolved on the call",
            ip=ip, now=now, resolved_on_call=True,
        )  # fmt: skip
    return store.move(
        session, ticket.id, TicketState.in_progress, user, f"派单 dispatched to {rec.department}",
        ip=ip, now=now,
    )  # fmt: skip


def end_wrapup_pause(session: Session, work_number: str, user: User, *, ip: str | None) -> bool:
    """The agent's record is saved: a pause taken for the paperwork (后处理) ends with it
    (resumed, recorded like any presence change; the ami role unpauses the queues). True when
    it did; any other presence is left as it is."""
    presence = agent_store.get_presence(session, work_number)
    if not (presence.logged_in and presence.paused and presence.reason == WRAPUP_REASON):
        return False
    agent_store.change_presence(session, work_number, "resume", "", agent_store.Actor.of(user, ip))
    return True


def _set_level(ticket: Ticket, level: rules.Level, settings: Settings) -> None:
    """The complaint's level the agent chose; an emergency or a danger word keeps L1."""
    if ticket.emergency or ticket.danger:
        level = rules.more_urgent(level, rules.Level.L1)
    ticket.level = level.value
    ticket.deadline_at = rules.deadline(level, ticket.created_at, store.calendar(settings))
    ticket.priority = rules.priority_for(
        level, emergency=ticket.emergency, danger=ticket.danger,
        danger_priority=settings.stt.danger_priority,
    )  # fmt: skip


# --- repeat complaints (重复投诉) ----------------------------------------------------------------
REPEAT_MARKED = "marked"  # found when the record was saved
REPEAT_CONFIRMED = "confirmed"  # the agent confirmed the link
REPEAT_UNLINKED = "unlinked"  # the agent said it is not a repeat: not counted, link kept
COUNTED_REPEATS = (REPEAT_MARKED, REPEAT_CONFIRMED)
REPEAT_ACTIONS = {"confirm": REPEAT_CONFIRMED, "unlink": REPEAT_UNLINKED}


def _earlier_complaints(
    session: Session, ticket: Ticket, since: datetime
) -> list[repeats.Complaint]:
    """The complaints opened from ``since`` to ``ticket``, by its caller's number or account."""
    who = [Ticket.caller == ticket.caller] if ticket.caller else []
    if ticket.account:
        who.append(Ticket.account == ticket.account)
    if not who:
        return []
    rows = session.scalars(
        select(Ticket).where(
            Ticket.complaint.is_(True),
            Ticket.id != ticket.id,
            Ticket.created_at >= since,
            Ticket.created_at < ticket.created_at,
            or_(*who),
        )
    )
    return [complaint_of(t) for t in rows]


def complaint_of(ticket: Ticket) -> repeats.Complaint:
    """A complaint's ticket as the repeat rules see it (a link unlinked by the agent is none)."""
    return repeats.Complaint(
        ticket_id=ticket.id,
        opened_at=ticket.created_at,
        number=ticket.caller,
        account=ticket.account or "",
        category=ticket.problem_category or "",
        repeat_of=ticket.repeat_of if ticket.repeat_state in COUNTED_REPEATS else None,
    )


def mark_repeat(
    session: Session, ticket: Ticket, settings: Settings, user: User, *, ip: str | None
) -> repeats.RepeatLink | None:
    """A complaint being saved: when it repeats an earlier one (ivr.core.repeats), link it to
    the first complaint of the matter and escalate it one level (its deadline and priority
    follow). Audited as ``ticket.repeat_marked``."""
    zone = store.calendar(settings).zone
    days = settings.tickets.repeat_window_days
    new = repeats.Complaint(
        ticket_id=ticket.id, opened_at=ticket.created_at, number=ticket.caller,
        account=ticket.account or "", category=ticket.problem_category or "",
    )  # fmt: skip
    since = repeats.window_start(ticket.created_at, zone, days)
    link = repeats.find_repeat(new, _earlier_complaints(session, ticket, since), zone, days)
    if link is None:
        return None
    ticket.repeat_of, ticket.repeat_state = link.first, REPEAT_MARKED
    level = rules.Level(ticket.level) if ticket.level else None
    _set_level(ticket, repeats.escalated(level, rules.Level(settings.tickets.default_level)),
               settings)  # fmt: skip
    audit(
        session, user, "ticket.repeat_marked",
        target=f"ticket:{ticket.id} repeats ticket:{link.first} (same {link.matched_on})", ip=ip,
    )  # fmt: skip
    return link


def set_repeat(
    session: Session, ticket: Ticket, action: str, user: User, *, ip: str | None
) -> None:
    """The agent confirms (``confirm``) or unlinks (``unlink``) the ticket's repeat link.
    Unlinking keeps the link for the record but the complaint no longer counts as a repeat;
    its level stays (a level never moves down). Audited as ``ticket.repeat_<state>``."""
    if ticket.repeat_of is None:
        raise RepeatLinkRefused(f"ticket {ticket.id} is not marked a repeat", ticket_id=ticket.id)
    state = REPEAT_ACTIONS[action]
    ticket.repeat_state, ticket.updated_at = state, utcnow()
    audit(
        session, user, f"ticket.repeat_{state}",
        target=f"ticket:{ticket.id} repeats ticket:{ticket.repeat_of}", ip=ip,
    )  # fmt: skip
    session.flush()


# --- departments ------------------------------------------------------------------------------
def departments_of(session: Session, user: User) -> list[str]:
    return list(
        session.scalars(
            select(UserDepartment.department)
            .where(UserDepartment.user_id == user.id)
            .order_by(UserDepartment.department)
        )
    )


def set_departments(session: Session, user: User, departments: Iterable[str]) -> None:
    """Replace the user's departments (the caller checks them against the routing)."""
    session.execute(delete(UserDepartment).where(UserDepartment.user_id == user.id))
    for department in sorted(set(departments)):
        session.add(UserDepartment(user_id=user.id, department=department))
    session.flush()


def department_tickets(session: Session, departments: Sequence[str]) -> list[Ticket]:
    """Tickets dispatched to ``departments`` and not done: 处理中 and 待验收, most urgent first."""
    if not departments:
        return []
    return list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.department.in_(departments),
                Ticket.state.in_([TicketState.in_progress, TicketState.awaiting_acceptance]),
            )
            .order_by(Ticket.priority.desc(), Ticket.deadline_at, Ticket.id)
            .limit(200)
        )
    )


def _of_department(session: Session, ticket_id: int, departments: Sequence[str]) -> Ticket:
    ticket = store.get(session, ticket_id)
    if ticket.department not in departments:
        raise TicketNotYours(
            f"ticket {ticket_id} is not dispatched to your department(s)", ticket_id=ticket_id
        )
    return ticket


def _text(value: str, what: str) -> str:
    body = value.strip()
    if not body:
        raise rules.InvalidTicketInput(f"{what}: required")
    if len(body) > MAX_TEXT:
        raise rules.InvalidTicketInput(f"{what}: at most {MAX_TEXT} characters")
    return body


def take(
    session: Session, ticket_id: int, user: User, departments: Sequence[str], *, ip: str | None
) -> Ticket:
    """A department user takes a dispatched ticket (处理中, not taken yet)."""
    ticket = _of_department(session, ticket_id, departments)
    if ticket.state is not TicketState.in_progress:
        raise DepartmentStepRefused(
            f"ticket {ticket_id} is {ticket.state.value}: only 处理中 tickets are taken",
            state=ticket.state.value,
        )
    if ticket.taken_by is not None and ticket.taken_by != user.username:
        raise DepartmentStepRefused(
            f"ticket {ticket_id} was taken by {ticket.taken_by}", taken_by=ticket.taken_by
        )
    now = utcnow()
    ticket.taken_by, ticket.taken_at, ticket.updated_at = user.username, now, now
    audit(session, user, "ticket.take", target=f"ticket:{ticket_id}", ip=ip)
    session.flush()
    return ticket


def report(
    session: Session,
    ticket_id: int,
    user: User,
    departments: Sequence[str],
    result: str,
    *,
    ip: str | None,
) -> Ticket:
    """The department reports what it did: 处理中 -> 待验收, by whoever took it."""
    ticket = _of_department(session, ticket_id, departments)
    body = _text(result, "result")
    if ticket.taken_by != user.username:
        raise DepartmentStepRefused(
            f"ticket {ticket_id}: take it before reporting"
            if ticket.taken_by is None
            else f"ticket {ticket_id} was taken by {ticket.taken_by}",
            taken_by=ticket.taken_by,
        )
    now = utcnow()
    moved = store.move(session, ticket_id, TicketState.awaiting_acceptance, user, body, ip=ip,
                       now=now)  # fmt: skip
    moved.result, moved.reported_at = body, now
    session.flush()
    return moved


def confirm(
    session: Session,
    ticket_id: int,
    user: User,
    reply: str,
    replied_at: datetime,
    *,
    ip: str | None,
) -> Ticket:
    """The hotline confirmed with the customer: the reply to them (content, time, who) is
    stored, 待验收 -> 已完成."""
    body = _text(reply, "reply")
    now = utcnow()
    if replied_at > now:
        raise rules.InvalidTicketInput("replied_at: in the future")
    if replied_at < store.get(session, ticket_id).created_at:
        raise rules.InvalidTicketInput("replied_at: before the call came in")
    moved = store.move(
        session, ticket_id, TicketState.done, user, body, ip=ip, now=now, with_reply=True
    )
    moved.customer_reply, moved.customer_reply_at = body, replied_at
    moved.customer_reply_by = user.username
    session.flush()
    return moved
