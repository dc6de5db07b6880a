"""工单 in SQL: opened for calls, transcripts appended as notes, moved between states.

The rules (states, levels, deadlines, priority) are :mod:`ivr.core.tickets`; this module
reads and writes the rows, in the caller's session and transaction (nothing here commits)::

    open_for_call(session, recording=..., voice_message=..., settings=...)  -> Ticket | None
    add_transcript_note(session, transcript, settings)                      -> TicketNote | None
    move(session, ticket_id, to_state, user, comment, actor=..., ip=...)     -> Ticket
    add_staff_note(session, ticket_id, text, user, actor=...)                -> TicketNote
    get(session, ticket_id)                                                   -> Ticket
    search(session, TicketQuery(...), now)                           -> (total, [Ticket])

Idempotence: one ticket per call (``tickets.linkedid`` is unique; a ticket is also found by
its recording or voice message), one transcript note per (ticket, source) (``ticket_notes``
has a unique constraint on it). A racing second writer's insert fails on the constraint inside
a SAVEPOINT, which is rolled back alone, and the row the first writer stored is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    and_,
    false,
    func,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import (
    Followup,
    Recording,
    Ticket,
    TicketNote,
    TicketState,
    TicketTransition,
    Transcript,
    User,
    VoiceMessage,
    audit,
    in_savepoint,
    utcnow,
)
from ivr.core import tickets as rules
from ivr.core.tickets import IllegalTransition, InvalidTicketInput
from ivr.errors import HotlineError
from ivr.logging_setup import mask_number
from ivr.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "IllegalTransition",
    "InvalidTicketInput",
    "ReplyRequired",
    "TicketNotFound",
    "TicketQuery",
    "add_staff_note",
    "add_transcript_note",
    "calendar",
    "get",
    "move",
    "notes_of",
    "open_for_call",
    "search",
    "transitions_of",
]

SYSTEM_ACTOR = "system"
NO_SPEECH = "（未听到讲话 no speech heard）"
MAX_NOTE_CHARS = 4000


class TicketNotFound(HotlineError):
    """No ticket has this id."""

    slug = "ticket-not-found"
    status = 404


class ReplyRequired(HotlineError):
    """A dispatched ticket is closed only with the reply to the customer (its content and
    time: ``POST /api/tickets/{id}/confirm``), not by a bare move to 已完成 (HTTP 409)."""

    slug = "customer-reply-required"
    status = 409


def calendar(settings: Settings) -> rules.Calendar:
    """The working-day calendar of ``settings.tickets``."""
    conf = settings.tickets
    return rules.Calendar.of(ZoneInfo(conf.timezone), conf.holidays, conf.workdays)


def get(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(f"no ticket {ticket_id}", ticket_id=ticket_id)
    return ticket


# --- finding tickets --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TicketQuery:
    """What to list. ``since``/``until``: when the call came in (``until`` exclusive)."""

    states: frozenset[TicketState] = frozenset()  # empty: all
    desk: str | None = None
    overdue: bool | None = None
    danger: bool | None = None
    emergency: bool | None = None
    reopened: bool | None = None  # reopened by a "not resolved" 回访 and not done again
    since: datetime | None = None
    until: datetime | None = None
    offset: int = 0
    limit: int = 50


def reopened() -> ColumnElement[bool]:
    """SQL: the ticket is open again because a 回访 heard "not resolved" (its follow-up is
    flagged for supervisors) and has not reached 已完成 since."""
    return and_(
        Ticket.id.in_(select(Followup.ticket_id).where(Followup.flagged.is_(True))),
        Ticket.state != TicketState.done,
    )


def reopened_among(session: Session, ticket_ids: Sequence[int]) -> set[int]:
    """Which of these tickets are reopened (:func:`reopened`)."""
    if not ticket_ids:
        return set()
    return set(session.scalars(select(Ticket.id).where(Ticket.id.in_(ticket_ids), reopened())))


def _late(now: datetime) -> ColumnElement[bool]:
    """SQL for :func:`ivr.core.tickets.is_overdue`."""
    return and_(
        Ticket.state != TicketState.done,
        Ticket.deadline_at.is_not(None),
        Ticket.deadline_at < now,
    )


def search(session: Session, query: TicketQuery, now: datetime) -> tuple[int, list[Ticket]]:
    """How many tickets match, and one page of them: the most urgent first (priority, then
    the nearest deadline, then the newest)."""
    where: list[ColumnElement[bool]] = []
    if query.states:
        where.append(Ticket.state.in_(sorted(query.states)))
    if query.desk is not None:
        where.append(Ticket.desk == query.desk)
    if query.danger is not None:
        where.append(Ticket.danger.is_(true() if query.danger else false()))
    if query.emergency is not None:
        where.append(Ticket.emergency.is_(true() if query.emergency else false()))
    if query.overdue is not None:
        where.append(_late(now) if query.overdue else not_(_late(now)))
    if query.reopened is not None:
        where.append(reopened() if query.reopened else not_(reopened()))
    if query.since is not None:
        where.append(Ticket.created_at >= query.since)
    if query.until is not None:
        where.append(Ticket.created_at < query.until)
    total = session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    rows = session.scalars(
        select(Ticket)
        .where(*where)
        .order_by(
            Ticket.priority.desc(),
            Ticket.deadline_at.is_(None),
            Ticket.deadline_at,
            Ticket.id.desc(),
        )
        .offset(query.offset)
        .limit(query.limit)
    ).all()
    return int(total), list(rows)


def notes_of(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[TicketNote]]:
    """The notes of each ticket, oldest first."""
    found: dict[int, list[TicketNote]] = {i: [] for i in ticket_ids}
    if ticket_ids:
        rows = session.scalars(
            select(TicketNote)
            .where(TicketNote.ticket_id.in_(ticket_ids))
            .order_by(TicketNote.created_at, TicketNote.id)
        )
        for note in rows:
            found[note.ticket_id].append(note)
    return found


def transitions_of(session: Session, ticket_id: int) -> list[TicketTransition]:
    return list(
        session.scalars(
            select(TicketTransition)
            .where(TicketTransition.ticket_id == ticket_id)
            .order_by(TicketTransition.at, TicketTransition.id)
        )
    )


# --- opening a ticket -------------------------------------------------------------------------
def _find_for_call(
    session: Session, linkedid: str, recording: Recording | None, message: VoiceMessage | None
) -> Ticket | None:
    clauses = [Ticket.linkedid == linkedid]
    if recording is not None:
        clauses.append(Ticket.recording_id == recording.id)
    message_id = message.id if message is not None else None
    if message_id is None and recording is not None:
        message_id = recording.voice_message_id
    if message_id is not None:
        clauses.append(Ticket.voice_message_id == message_id)
    return session.scalars(select(Ticket).where(or_(*clauses)).order_by(Ticket.id).limit(1)).first()


def _link(
    ticket: Ticket, recording: Recording | None, message: VoiceMessage | None, settings: Settings
) -> None:
    """Fill in what a later source knows (the recording of a call first seen as a message, or
    of a call whose ticket its agent's connect opened: the call came in before, so the ticket
    dates from then and its deadline counts from then, moving only earlier)."""
    if recording is not None:
        if recording.started_at < ticket.created_at:
            ticket.created_at = recording.started_at
            if ticket.level is not None:
                due = rules.deadline(
                    rules.Level(ticket.level), ticket.created_at, calendar(settings)
                )
                if ticket.deadline_at is None or due < ticket.deadline_at:
                    ticket.deadline_at = due
        if ticket.recording_id is None:
            ticket.recording_id = recording.id
        if ticket.agent is None and recording.agent:
            ticket.agent = recording.agent
        if ticket.account is None and recording.account:
            ticket.account = recording.account
        if ticket.voice_message_id is None and recording.voice_message_id is not None:
            ticket.voice_message_id = recording.voice_message_id
    if message is not None and ticket.voice_message_id is None:
        ticket.voice_message_id = message.id


def open_for_call(
    session: Session,
    *,
    recording: Recording | None,
    voice_message: VoiceMessage | None,
    settings: Settings,
) -> Ticket | None:
    """The call's ticket, opened if new: only when the call reached an agent
    (``recording.agent``) or left a voice message; None otherwise.

    Idempotent by the call's ``linkedid`` (the recording's; for a message alone, its
    ``uniqueid``, which is the caller's channel and so the call's first channel). Also found
    by the recording or the message, so that the two sources of one call share one ticket.
    The rows given must have been flushed (they need their ids).
    """
    if recording is None and voice_message is None:
        return None
    left_message = voice_message is not None or (
        recording is not None and recording.voice_message_id is not None
    )
    reached_agent = recording is not None and bool(recording.agent)
    if not (reached_agent or left_message):
        return None
    if recording is not None:
        linkedid = recording.linkedid
    else:
        assert voice_message is not None
        linkedid = voice_message.uniqueid
    existing = _find_for_call(session, linkedid, recording, voice_message)
    if existing is not None:
        _link(existing, recording, voice_message, settings)
        return existing

    ticket = _new_ticket(linkedid, recording, voice_message, settings)

    def insert() -> None:
        session.add(ticket)
        session.flush()

    refused = in_savepoint(session, insert)
    if refused is not None:  # another process opened it meanwhile
        found = _find_for_call(session, linkedid, recording, voice_message)
        if found is None:  # refused for another reason: not ours to hide
            raise refused
        _link(found, recording, voice_message, settings)
        return found
    logger.info(
        "ticket opened",
        extra={"ticket": ticket.id, "linkedid": linkedid, "desk": ticket.desk,
               "caller": mask_number(ticket.caller), "level": ticket.level,
               "deadline": ticket.deadline_at.isoformat() if ticket.deadline_at else None},
    )  # fmt: skip
    return ticket


def _new_ticket(
    linkedid: str, recording: Recording | None, message: VoiceMessage | None, settings: Settings
) -> Ticket:
    if recording is not None:
        desk, category, caller = recording.desk, recording.category, recording.caller
        opened_at = recording.started_at
        emergency = recording.emergency
    else:
        assert message is not None
        desk, category, caller = message.desk, message.category, message.caller
        opened_at = message.recorded_at
        emergency = False
    conf = settings.tickets
    level = rules.level_for(
        desk=desk,
        emergency=emergency,
        danger=False,
        desk_levels=conf.desk_levels,
        default_level=conf.default_level,
    )
    now = utcnow()
    ticket = Ticket(
        linkedid=linkedid,
        desk=desk,
        category=category,
        caller=caller,
        account=recording.account if recording is not None else None,
        agent=recording.agent if recording is not None else None,
        recording_id=recording.id if recording is not None else None,
        voice_message_id=(
            message.id
            if message is not None
            else recording.voice_message_id
            if recording is not None
            else None
        ),
        emergency=emergency,
        state=TicketState.awaiting_dispatch,
        level=level.value,
        deadline_at=rules.deadline(level, opened_at, calendar(settings)),
        priority=rules.priority_for(
            level, emergency=emergency, danger=False, danger_priority=settings.stt.danger_priority
        ),
        danger=False,
        danger_words=[],
        created_at=opened_at,  # when the call came in: the deadline counts from there
        updated_at=now,
    )
    return ticket


# --- transcript notes -------------------------------------------------------------------------
def _ticket_for_transcript(session: Session, transcript: Transcript) -> Ticket | None:
    clauses = []
    if transcript.recording_id is not None:
        clauses.append(Ticket.recording_id == transcript.recording_id)
    if transcript.voice_message_id is not None:
        clauses.append(Ticket.voice_message_id == transcript.voice_message_id)
    if not clauses:
        return None
    return session.scalars(select(Ticket).where(or_(*clauses)).order_by(Ticket.id).limit(1)).first()


def _existing_note(session: Session, ticket_id: int, source_key: str) -> TicketNote | None:
    return session.scalars(
        select(TicketNote).where(
            TicketNote.ticket_id == ticket_id, TicketNote.source_key == source_key
        )
    ).first()


def _apply_danger(ticket: Ticket, words: list[str], settings: Settings) -> None:
    merged = list(dict.fromkeys([*(ticket.danger_words or []), *words]))
    step = rules.escalate_for_danger(
        level=rules.Level(ticket.level) if ticket.level else None,
        deadline_at=ticket.deadline_at,
        priority=ticket.priority,
        opened_at=ticket.created_at,
        calendar=calendar(settings),
        danger_priority=settings.stt.danger_priority,
    )
    changed = (
        not ticket.danger
        or merged != list(ticket.danger_words or [])
        or ticket.level != step.level.value
        or ticket.deadline_at != step.deadline_at
        or ticket.priority != step.priority
    )
    if not changed:
        return
    ticket.danger = True
    ticket.danger_words = merged
    ticket.level = step.level.value
    ticket.deadline_at = step.deadline_at
    ticket.priority = step.priority
    ticket.updated_at = utcnow()
    logger.warning(
        "danger words heard",
        extra={"ticket": ticket.id, "linkedid": ticket.linkedid, "words": merged,
               "priority": ticket.priority, "deadline": step.deadline_at.isoformat()},
    )  # fmt: skip


def add_transcript_note(
    session: Session, transcript: Transcript, settings: Settings
) -> TicketNote | None:
    """Append the transcript to its ticket as a note, once per (ticket, source).

    Danger words in the transcript flag the ticket, merge into its ``danger_words``, raise
    its priority to at least ``stt.danger_priority`` and its level to L1 (never down).
    Returns the note (the one stored earlier when called again), None when no ticket.

    Two workers on one transcript: each checks for the note, then takes the ticket's row
    (an UPDATE of ``updated_at``: a row lock on PostgreSQL, the write lock on SQLite, where it
    also opens the transaction so that the SAVEPOINT nests in it) and re-reads the ticket.
    The second one's insert then fails on the unique (ticket, source) constraint inside its
    SAVEPOINT, which alone is rolled back, and the note the first one stored is returned.
    Danger words are merged on the re-read row, so two sources of one call lose none.
    """
    found = _ticket_for_transcript(session, transcript)
    if found is None:
        return None
    ticket_id = found.id
    note = _existing_note(session, ticket_id, transcript.source_key)
    if note is not None and not transcript.danger_words:
        return note  # done before: nothing to write
    session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    ticket = get(session, ticket_id)
    session.refresh(ticket)
    if note is None:
        note = _insert_note(session, ticket, transcript)
    if transcript.danger_words:
        _apply_danger(ticket, list(transcript.danger_words), settings)
    return note


def _insert_note(session: Session, ticket: Ticket, transcript: Transcript) -> TicketNote:
    fresh = TicketNote(
        ticket_id=ticket.id,
        kind="transcript",
        source_key=transcript.source_key,
        author=f"stt:{transcript.model}"[:128],
        text=transcript.text.strip() or NO_SPEECH,
        transcript_id=transcript.id,
        created_at=utcnow(),
    )

    def insert() -> None:
        session.add(fresh)
        session.flush()

    refused = in_savepoint(session, insert)
    if refused is None:
        logger.info(
            "transcript note added",
            extra={"ticket": ticket.id, "source": transcript.source_key, "note": fresh.id},
        )
        return fresh
    stored = _existing_note(session, ticket.id, transcript.source_key)
    if stored is None:  # refused for another reason: not ours to hide
        raise refused
    logger.info(
        "transcript note already stored by another worker",
        extra={"ticket": ticket.id, "source": transcript.source_key, "note": stored.id},
    )
    return stored


# --- staff actions ----------------------------------------------------------------------------
def _actor_of(user: User | None, actor: str | None) -> str:
    if actor:
        return actor[:128]
    return user.username if user is not None else SYSTEM_ACTOR


def move(
    session: Session,
    ticket_id: int,
    to_state: TicketState,
    user: User | None,
    comment: str = "",
    *,
    actor: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
    resolved_on_call: bool = False,
    with_reply: bool = False,
    reopen: bool = False,
) -> Ticket:
    """Move a ticket to ``to_state``, recording who, when and why, with an audit row
    (``resolved_on_call``: the agent's record closes a consultation, 待派单 -> 已完成;
    ``with_reply``: the reply to the customer is recorded with it, which a dispatched ticket
    needs to be closed, :class:`ReplyRequired` otherwise; ``reopen``: the 回访 found it not
    resolved, 已完成 -> 处理中). Reaching 已完成 schedules the ticket's 回访
    (:func:`ivr.adapters.sql.followups.schedule`, in the same transaction).

    Raises :class:`TicketNotFound`, :class:`IllegalTransition` (also when someone else moved
    it first: the state is compared and set in one UPDATE) or :class:`InvalidTicketInput`.
    """
    ticket = get(session, ticket_id)
    current = ticket.state
    comment = comment.strip()
    rules.check_transition(
        current, to_state, comment, resolved_on_call=resolved_on_call, reopen=reopen
    )
    if to_state is TicketState.done and ticket.outcome == "dispatched" and not with_reply:
        raise ReplyRequired(
            f"ticket {ticket_id} was dispatched: close it with the reply to the customer "
            f"(POST /api/tickets/{ticket_id}/confirm)",
            ticket_id=ticket_id,
        )
    at = now or utcnow()
    closed_at = at if to_state is TicketState.done else None
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.state == current)
        .values(state=to_state, updated_at=at, closed_at=closed_at)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:  # moved by someone since we read it
        session.refresh(ticket)
        rules.check_transition(
            ticket.state, to_state, comment, resolved_on_call=resolved_on_call, reopen=reopen
        )
        raise IllegalTransition(
            f"ticket {ticket_id} was moved to {ticket.state.value} meanwhile; reload it",
            current=ticket.state.value,
        )
    who = _actor_of(user, actor)
    if to_state is TicketState.done:  # 回访: one follow-up call owed (ivr.adapters.sql.followups)
        number = ticket.contact_number or ticket.caller
        session.add(Followup(ticket_id=ticket_id, desk=ticket.desk, number=number, created_at=at))
    session.add(
        TicketTransition(
            ticket_id=ticket_id,
            from_state=current,
            to_state=to_state,
            user_id=user.id if user is not None else None,
            actor=who,
            at=at,
            comment=comment,
        )
    )
    audit(
        session,
        user,
        "ticket.move",
        target=f"ticket:{ticket_id} {current.value}->{to_state.value}",
        ip=ip,
        actor=who,
    )
    session.flush()
    session.refresh(ticket)
    logger.info(
        "ticket moved",
        extra={"ticket": ticket_id, "from": current.value, "to": to_state.value, "actor": who},
    )
    return ticket


def add_staff_note(
    session: Session,
    ticket_id: int,
    text: str,
    user: User | None,
    *,
    actor: str | None = None,
    ip: str | None = None,
) -> TicketNote:
    """A note written by a person (any state, 已完成 included), with an audit row."""
    ticket = get(session, ticket_id)
    body = text.strip()
    if not body:
        raise InvalidTicketInput("the note is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise InvalidTicketInput(f"the note is longer than {MAX_NOTE_CHARS} characters")
    who = _actor_of(user, actor)
    note = TicketNote(
        ticket_id=ticket.id, kind="staff", source_key=None, author=who, text=body,
        created_at=utcnow(),
    )  # fmt: skip
    session.add(note)
    ticket.updated_at = utcnow()
    audit(session, user, "ticket.note", target=f"ticket:{ticket_id}", ip=ip, actor=who)
    session.flush()
    return note
