"""回访 in SQL: the follow-ups owed on closed tickets, their attempts, and the outbound call log.

A ticket reaching 已完成 gets one ``followups`` row in the same transaction as the move
(:func:`ivr.adapters.sql.tickets.move`). The ``followups`` role reads the rows still due
(:func:`due`, :func:`in_flight`), lets the pure policy (:func:`ivr.core.followup.plan`)
decide, and for each call it places writes :func:`start_attempt` (the follow-up in flight, one
more attempt, and one ``outbound_calls`` row naming what started it) *before* the Originate,
and :func:`finish_attempt` when the call has ended. A row left in flight by a crash is freed by
:func:`release_stale` when the role starts (its attempt counts: never called twice at once,
never more than the attempts allowed).

Results on the ticket: ``answered`` (resolved yes/no, satisfaction), ``refused`` (final), or
the attempt's ``no answer`` / ``busy`` / ``failed`` (tried again per the policy). "Not
resolved" reopens the ticket (已完成 -> 处理中, actor ``回访``, with the reason), raises its
priority one level and flags the follow-up for supervisors. Follow-ups the machine could not
complete (attempts exhausted, a number that cannot be dialled) move to the agents' worklist.

An agent's click-to-call is recorded; the recorder's hook joins the catalogued recording to
its outbound call (:func:`link_recording`), and so to the ticket and follow-up it was for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ivr.adapters.sql import tickets as store
from ivr.adapters.sql.db import (
    Followup,
    OutboundCall,
    Recording,
    Ticket,
    TicketState,
    User,
    audit,
)
from ivr.core import followup as policy
from ivr.core import tickets as rules
from ivr.core.followup_call import CallResult
from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

DUE, FINISHED, WORKLIST = "due", "finished", "worklist"
ACTOR = "回访"  # who reopens a ticket the customer said is not resolved
ROLE_ACTOR = "role:followups"  # who starts the automated calls (outbound_calls.started_by)


class FollowupNotFound(HotlineError):
    """No follow-up has this id, or its call is not the one in flight."""

    slug = "followup-not-found"
    status = 404


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def as_policy(row: Followup, config: policy.FollowupConfig) -> policy.FollowUp:
    created = row.created_at.timestamp()
    return policy.FollowUp(
        id=row.id,
        ticket_id=row.ticket_id,
        number=row.number,
        desk=row.desk or "",
        created_at=created,
        due_at=policy.due_at_for(row.desk or "", created, config),
        attempts=row.attempts,
        last_attempt_at=_epoch(row.last_attempt_at),
        last_result=policy.Result(row.last_result) if row.last_result else None,
    )


def due(session: Session, config: policy.FollowupConfig) -> list[policy.FollowUp]:
    """The follow-ups still owed and not in flight, for :func:`ivr.core.followup.plan`."""
    rows = session.scalars(
        select(Followup)
        .where(Followup.status == DUE, Followup.in_flight.is_(False))
        .order_by(Followup.created_at, Followup.id)
    )
    return [as_policy(row, config) for row in rows]


def in_flight(session: Session) -> list[policy.InFlight]:
    """The outbound calls placed and not ended (every purpose: follow-ups and call-backs)."""
    rows = session.execute(
        select(OutboundCall.ticket_id, OutboundCall.number).where(OutboundCall.ended_at.is_(None))
    )
    return [policy.InFlight(ticket_id=t or 0, number=n) for t, n in rows]


def start_attempt(
    session: Session, place: policy.Place, channel_id: str, *, now: datetime
) -> OutboundCall:
    """Mark one attempt started (before the Originate): the follow-up in flight, its attempt
    counted, the call logged. Raises :class:`FollowupNotFound` if it was taken meanwhile."""
    taken = session.execute(
        update(Followup)
        .where(
            Followup.id == place.followup_id, Followup.in_flight.is_(False), Followup.status == DUE
        )  # fmt: skip
        .values(in_flight=True, attempts=Followup.attempts + 1, last_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", 0) != 1:
        raise FollowupNotFound(f"follow-up {place.followup_id} is not due or already in flight")
    call = OutboundCall(
        channel_id=channel_id,
        purpose="followup",
        number=place.number,
        ticket_id=place.ticket_id,
        followup_id=place.followup_id,
        started_by=ROLE_ACTOR,
        started_at=now,
    )
    session.add(call)
    session.flush()
    return call


def finish_attempt(
    session: Session, channel_id: str, outcome: CallResult, dial_status: str, *, now: datetime
) -> Followup:
    """The attempt's call ended: log it, put its result on the follow-up and the ticket."""
    call = session.scalar(select(OutboundCall).where(OutboundCall.channel_id == channel_id))
    if call is None or call.followup_id is None or call.ended_at is not None:
        raise FollowupNotFound(f"no follow-up call {channel_id!r} in flight")
    call.ended_at, call.result, call.dial_status = now, outcome.result.value, dial_status[:32]
    row = session.get(Followup, call.followup_id)
    if row is None:
        raise FollowupNotFound(f"follow-up {call.followup_id} is gone")
    row.in_flight = False
    row.last_result = outcome.result.value
    if outcome.result in policy.FINAL:
        row.status, row.finished_at = FINISHED, now
    if outcome.result is policy.Result.ANSWERED:
        row.resolved = outcome.resolved
        row.satisfaction = outcome.satisfaction.value if outcome.satisfaction else None
        if outcome.resolved is False:
            _reopen(session, row, now)
    audit(session, None, "followup.call", target=f"ticket:{row.ticket_id} {outcome.result.value}",
          actor=ROLE_ACTOR)  # fmt: skip
    session.flush()
    logger.info(
        "follow-up call ended",
        extra={"followup": row.id, "ticket": row.ticket_id, "result": outcome.result.value},
    )
    return row


def _reopen(session: Session, row: Followup, now: datetime) -> None:
    """Not resolved: the ticket goes back to 处理中, one level more urgent, flagged."""
    row.flagged = True
    ticket = store.get(session, row.ticket_id)
    if ticket.state is TicketState.done:
        store.move(session, ticket.id, TicketState.in_progress, None,
                   "回访: the customer says it is not resolved", actor=ACTOR, now=now,
                   reopen=True)  # fmt: skip
    ticket.priority = rules.reopened_priority(ticket.priority)


def to_worklist(session: Session, items: Sequence[policy.ToWorklist]) -> int:
    """Hand what the machine could not complete to the agents; returns how many moved."""
    moved = 0
    for item in items:
        row = session.get(Followup, item.followup_id)
        if row is not None and row.status == DUE and not row.in_flight:
            row.status, row.worklist_reason = WORKLIST, item.reason[:120]
            moved += 1
    session.flush()
    return moved


def release_stale(session: Session, *, now: datetime) -> int:
    """At the role's start: calls left in flight by a crash ended as ``failed`` (their attempt
    counts); returns how many."""
    stale = session.scalars(select(OutboundCall).where(
        OutboundCall.ended_at.is_(None), OutboundCall.purpose == "followup"))  # fmt: skip
    count = 0
    for call in stale:
        finish_attempt(session, call.channel_id, CallResult(policy.Result.FAILED), "STALE",
                       now=now)  # fmt: skip
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One follow-up on the agents' worklist."""

    followup_id: int
    ticket_id: int
    number: str
    desk: str
    reason: str
    attempts: int
    last_result: str | None
    created_at: datetime
    due_at: datetime
    overdue: bool


def worklist(session: Session, config: policy.FollowupConfig, now: datetime) -> list[WorkItem]:
    """The follow-ups on the agents' worklist, most urgent first; overdue past their deadline."""
    rows = session.scalars(select(Followup).where(Followup.status == WORKLIST))
    items = []
    for row in rows:
        as_p = as_policy(row, config)
        due_at = datetime.fromtimestamp(as_p.due_at, UTC)
        items.append(
            WorkItem(
                row.id,
                row.ticket_id,
                row.number,
                row.desk or "",
                row.worklist_reason or "",
                row.attempts,
                row.last_result,
                row.created_at,
                due_at,
                now > due_at,
            )  # fmt: skip
        )
    return sorted(items, key=lambda i: (i.due_at, i.ticket_id))


def of_ticket(session: Session, ticket_id: int) -> list[Followup]:
    """A ticket's follow-ups, oldest first (the tickets page shows them)."""
    return list(
        session.scalars(
            select(Followup).where(Followup.ticket_id == ticket_id).order_by(Followup.id)
        )
    )


def flagged_tickets(session: Session) -> list[Ticket]:
    """Open tickets the 回访 reopened (the customer said not resolved): for supervisors."""
    return list(
        session.scalars(
            select(Ticket).where(store.reopened()).order_by(Ticket.priority.desc(), Ticket.id)
        )
    )


# Dial's DIALSTATUS on the agent's channel -> the call's result (ANSWER: the customer answered)
AGENT_CALL_RESULTS = {"ANSWER": "answered", "BUSY": "busy", "NOANSWER": "no answer"}


def take_agent_requests(session: Session, *, now: datetime) -> list[tuple[str, str, str]]:
    """The agents' click-to-call requests not placed yet (channel id, device, number), each
    marked placed here so that it is placed once."""
    rows = session.scalars(
        select(OutboundCall).where(
            OutboundCall.device.is_not(None),
            OutboundCall.placed_at.is_(None),
            OutboundCall.ended_at.is_(None),
        )
    )
    taken = []
    for row in rows:
        row.placed_at = now
        assert row.device is not None
        taken.append((row.channel_id, row.device, row.number))
    session.flush()
    return taken


def end_agent_call(session: Session, channel_id: str, dial_status: str, *, now: datetime) -> None:
    """An agent's call ended: its result from Dial's status (``failed`` for anything else,
    the agent not answering included); the agent enters what the customer said on the page."""
    call = session.scalar(select(OutboundCall).where(OutboundCall.channel_id == channel_id))
    if call is None or call.ended_at is not None:
        return
    call.ended_at, call.dial_status = now, dial_status[:32]
    call.result = AGENT_CALL_RESULTS.get(dial_status, "failed")
    session.flush()


AGENT_OUTCOMES = ("resolved", "not resolved", "refused", "no answer")


def record_agent_result(
    session: Session,
    call_id: int,
    outcome: str,
    satisfaction: str | None,
    user: User,
    *,
    now: datetime,
) -> Followup:
    """What the customer said on an agent's worklist call (the call's ``started_by``): resolved
    or not (with the satisfaction), refused, or no answer (it stays on the worklist). Not
    resolved reopens the ticket as the machine's answer does. Raises
    :class:`FollowupNotFound` for a call that is not this agent's follow-up call, or one whose
    follow-up is no longer on the worklist."""
    call = session.get(OutboundCall, call_id)
    if call is None or call.followup_id is None or call.started_by != user.username:
        raise FollowupNotFound(f"no follow-up call {call_id} of yours")
    row = session.get(Followup, call.followup_id)
    if row is None or row.status != WORKLIST:
        raise FollowupNotFound(f"the follow-up of call {call_id} is not on the worklist")
    row.last_result = "no answer" if outcome == "no answer" else policy.Result.ANSWERED.value
    if outcome == "refused":
        row.last_result = policy.Result.REFUSED.value
    if outcome != "no answer":
        row.status, row.finished_at = FINISHED, now
    if outcome in ("resolved", "not resolved"):
        row.resolved = outcome == "resolved"
        row.satisfaction = satisfaction
        if not row.resolved:
            _reopen(session, row, now)
    audit(session, user, "followup.agent-result", target=f"ticket:{row.ticket_id} {outcome}")
    session.flush()
    return row


def calls_of_ticket(session: Session, ticket_id: int) -> list[OutboundCall]:
    """The outbound calls made about a ticket (its 回访, the agents' calls), oldest first."""
    return list(
        session.scalars(
            select(OutboundCall)
            .where(OutboundCall.ticket_id == ticket_id)
            .order_by(OutboundCall.started_at, OutboundCall.id)
        )
    )


def link_recording(session: Session, recording: Recording) -> OutboundCall | None:
    """Join an outbound call's recording (``direction`` outbound; its Linkedid is the call's
    ``channel_id``) to its ``outbound_calls`` row, and give it the desk of the ticket it was
    for (the QA page's filter). None: no such call (it is catalogued all the same)."""
    call = session.scalar(select(OutboundCall).where(OutboundCall.channel_id == recording.linkedid))
    if call is None:
        logger.warning(
            "outbound recording of no known call", extra={"linkedid": recording.linkedid}
        )
        return None
    call.recording_id = recording.id
    if call.ticket_id is not None and recording.desk is None:
        ticket = session.get(Ticket, call.ticket_id)
        recording.desk = ticket.desk if ticket is not None else None
    session.flush()
    return call
