"""The facts every figure needs, read from SQL (SQLite and PostgreSQL), and the figures of a
window computed from them by :mod:`ivr.core.figures` (docs/figures.md).

- tickets (``tickets``) opened in the window (``created_at``): their kind
  (:func:`ivr.core.figures.ticket_kind`), the first reply to the customer (on the call,
  ``replied_at``, or after the department, ``customer_reply_at``), the deadline of their level,
  the closing, the desk, the agent's 工号 and the department; a key account when the caller is
  a ``key_account`` of routing/priority_callers.yaml; a repeat complaint when its link is
  marked or confirmed (``repeat_state``, :data:`STORED_REPEATS`; ivr.core.repeats).
- satisfaction answers: the post-call survey's (``survey_answers``, by the ticket's Linkedid),
  each marked as the survey's, and the follow-up calls' (``followups``, revision 0010:
  :func:`stored_follow_ups`, the default :data:`STORED_FOLLOW_UPS` reader), each marked as the
  follow-up's; and the follow-ups themselves (reached: answered with a result; refused; the
  attempts), whenever their calls were made.
- QA spot checks (``reviews`` of the recordings of calls in the window): the latest review of
  a recording that no later review corrects, by the 工号 of the recording's agent.
- logged-in time: the agents' ``login``/``logout`` changes (``agent_changes``).
- calls: the stored call facts (``call_facts``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, select
from sqlalchemy.orm import InstrumentedAttribute

from ivr.adapters.sql.db import (
    Agent as AgentRow,
)
from ivr.adapters.sql.db import (
    AgentChange,
    CallFactRow,
    Followup,
    Recording,
    Review,
    SurveyAnswer,
    Ticket,
)
from ivr.adapters.sql.ticket_desk import COUNTED_REPEATS
from ivr.core.figures import (
    SURVEY_SATISFIED,
    AnswerSource,
    CallFact,
    FollowUp,
    MonthFacts,
    PresenceChange,
    SatisfactionAnswer,
    SpotCheck,
    TicketFact,
    Window,
    agent_work_number,
    first_reply,
    shifts_of,
    ticket_kind,
)
from ivr.core.followup import Result
from ivr.core.metrics import CallClass
from ivr.core.routing_models import PriorityReason, Routing

FollowUpReader = Callable[[Engine, Window], tuple[list[FollowUp], list[SatisfactionAnswer]]]


def stored_follow_ups(
    engine: Engine, window: Window
) -> tuple[list[FollowUp], list[SatisfactionAnswer]]:
    """The follow-ups owed on the tickets opened in ``window`` (``followups`` rows, oldest
    first), and the satisfaction answer of each one that reached the customer (``None``:
    asked, not answered)."""
    f = Followup
    query = (
        select(f.ticket_id, f.created_at, f.last_attempt_at, f.attempts, f.last_result,
               f.resolved, f.satisfaction)
        .join(Ticket, Ticket.id == f.ticket_id)
        .where(_in(Ticket.created_at, window))
        .order_by(f.ticket_id, f.id)
    )  # fmt: skip
    follow_ups: list[FollowUp] = []
    answers: list[SatisfactionAnswer] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            at = row.last_attempt_at or row.created_at
            reached = row.last_result == Result.ANSWERED.value
            follow_ups.append(
                FollowUp(row.ticket_id, at, reached, row.resolved if reached else None,
                         row.last_result == Result.REFUSED.value, row.attempts)
            )  # fmt: skip
            if reached:
                satisfied = SURVEY_SATISFIED.get(row.satisfaction or "")
                answers.append(SatisfactionAnswer(row.ticket_id, AnswerSource.follow_up, at,
                                                  satisfied))  # fmt: skip
    return follow_ups, answers


STORED_FOLLOW_UPS: FollowUpReader = stored_follow_ups
RepeatReader = Callable[[Engine, Window], set[int]]


def stored_repeats(engine: Engine, window: Window) -> set[int]:
    """The complaints opened in ``window`` marked as repeats (found when the agent's record
    was saved, or confirmed since; not those the agent unlinked): ivr.core.repeats."""
    query = select(Ticket.id).where(
        _in(Ticket.created_at, window), Ticket.repeat_state.in_(COUNTED_REPEATS)
    )
    with engine.connect() as conn:
        return set(conn.scalars(query))


STORED_REPEATS: RepeatReader = stored_repeats


def key_accounts(routing: Routing) -> frozenset[str]:
    """The numbers routing/priority_callers.yaml marks as key accounts (大客户)."""
    return frozenset(
        p.number for p in routing.priority_callers if p.reason is PriorityReason.KEY_ACCOUNT
    )


def _in(column: InstrumentedAttribute[datetime], window: Window) -> ColumnElement[bool]:
    return and_(column >= window.start, column < window.end)


def ticket_facts(
    engine: Engine, window: Window, accounts: Collection[str], repeats: Collection[int] = ()
) -> list[TicketFact]:
    """The tickets opened in ``window``, as the figures count them, by id (``repeats``: the
    ids marked as repeat complaints)."""
    t = Ticket
    query = (
        select(
            t.id, t.complaint, t.desk, t.outcome, t.problem_subcategory, t.created_at,
            t.deadline_at, t.replied_at, t.customer_reply_at, t.closed_at, t.level, t.caller,
            t.agent, t.department, t.problem_category,
        )
        .where(_in(t.created_at, window))
        .order_by(t.id)
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    work_numbers = {a: agent_work_number(a or "") for a in {row.agent for row in rows}}
    return [
        TicketFact(
            row.id,
            ticket_kind(
                row.complaint,
                row.desk,
                row.outcome,
                row.problem_subcategory,
                row.problem_category,
                row.department,
            ),
            row.created_at,
            row.deadline_at,
            first_reply(row.replied_at, row.customer_reply_at),
            row.closed_at,
            row.level,
            row.caller in accounts,
            row.id in repeats,
            row.desk or "",
            work_numbers[row.agent],
            row.department or "",
            row.problem_category or "",
        )
        for row in rows
    ]


def survey_answers(engine: Engine, window: Window) -> list[SatisfactionAnswer]:
    """The post-call survey's answers about the tickets opened in ``window`` (the questions
    asked, answered or not)."""
    query = (
        select(Ticket.id, SurveyAnswer.outcome, SurveyAnswer.call_ended_at, SurveyAnswer.created_at)
        .join(SurveyAnswer, SurveyAnswer.linkedid == Ticket.linkedid)
        .where(_in(Ticket.created_at, window))
        .where(SurveyAnswer.outcome.in_(list(SURVEY_SATISFIED)))
        .order_by(Ticket.id)
    )
    with engine.connect() as conn:
        return [
            SatisfactionAnswer(
                row.id,
                AnswerSource.survey,
                row.call_ended_at or row.created_at,
                SURVEY_SATISFIED[str(row.outcome)],
            )
            for row in conn.execute(query).all()
        ]


def spot_checks(engine: Engine, window: Window) -> list[SpotCheck]:
    """The QA spot checks of the recorded calls that started in ``window``: per recording,
    its latest review that no other review corrects."""
    corrected = select(Review.corrects_id).where(Review.corrects_id.is_not(None))
    query = (
        select(Review.id, Review.total, Recording.linkedid, Recording.agent, Recording.started_at)
        .join(Recording, Recording.id == Review.recording_id)
        .where(_in(Recording.started_at, window))
        .where(Review.id.not_in(corrected))
        .order_by(Recording.id, Review.id)
    )
    latest: dict[str, SpotCheck] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            work_number = agent_work_number(row.agent or "")
            latest[row.linkedid] = SpotCheck(work_number, row.linkedid, row.total, row.started_at)
    return list(latest.values())


def presence_changes(engine: Engine, window: Window) -> list[PresenceChange]:
    """Every login and logout up to the window's end (the ones before it tell who was logged
    in when it started)."""
    query = (
        select(AgentRow.work_number, AgentChange.at, AgentChange.action)
        .join(AgentRow, AgentRow.id == AgentChange.agent_id)
        .where(AgentChange.action.in_(("login", "logout")), AgentChange.at < window.end)
        .order_by(AgentChange.at, AgentChange.id)
    )
    with engine.connect() as conn:
        return [
            PresenceChange(row.work_number, row.at, row.action == "login")
            for row in conn.execute(query).all()
        ]


def call_facts(engine: Engine, window: Window) -> list[CallFact]:
    """The stored call facts counted in ``window``."""
    f = CallFactRow
    query = (
        select(f.linkedid, f.klass, f.queue, f.wait_s, f.threshold_s, f.counted_at, f.agent,
               f.talk_s, f.emergency, f.work_number)
        .where(_in(f.counted_at, window))
        .order_by(f.counted_at, f.linkedid)
    )  # fmt: skip
    known = {c.value for c in CallClass}
    with engine.connect() as conn:
        return [
            CallFact(
                row.linkedid,
                CallClass(row.klass) if row.klass in known else None,
                row.queue,
                row.wait_s,
                row.threshold_s,
                row.counted_at,
                row.agent,
                row.talk_s,
                row.emergency,
                row.work_number,
            )  # fmt: skip
            for row in conn.execute(query).all()
        ]


def month_facts(
    engine: Engine,
    window: Window,
    accounts: Collection[str],
    follow_ups: FollowUpReader = STORED_FOLLOW_UPS,
    repeats: RepeatReader = STORED_REPEATS,
    *,
    calls: bool = True,
) -> MonthFacts:
    """Every fact the figures of ``window`` need (``calls=False``: all but the call facts,
    whose figures SQL computes itself: ivr/adapters/sql/report_figures.py)."""
    reached, answer_list = follow_ups(engine, window)
    return MonthFacts(
        calls=call_facts(engine, window) if calls else (),
        tickets=ticket_facts(engine, window, accounts, repeats(engine, window)),
        answers=[*survey_answers(engine, window), *answer_list],
        follow_ups=reached,
        shifts=shifts_of(presence_changes(engine, window), window),
        checks=spot_checks(engine, window),
    )


def ticket_rows(engine: Engine, ids: Sequence[int]) -> list[dict[str, object]]:
    """These tickets, in the order given, with what a list of them shows and where each leads
    (its recording's id, or None)."""
    if not ids:
        return []
    t = Ticket
    query = select(
        t.id, t.linkedid, t.recording_id, t.desk, t.agent, t.department, t.state, t.level,
        t.complaint, t.created_at, t.deadline_at, t.replied_at, t.customer_reply_at,
        t.closed_at, t.problem_category, t.problem_subcategory,
    ).where(t.id.in_(list(ids)))  # fmt: skip
    with engine.connect() as conn:
        found = {row.id: dict(row._mapping) for row in conn.execute(query)}
    return [found[i] for i in ids if i in found]
