"""The post-call survey's outcomes in SQL (``survey_answers``), in the caller's session and
transaction (nothing here commits)::

    record_for_call(session, recording, facts)  -> SurveyAnswer | None
    for_call(session, linkedid)                 -> SurveyAnswer | None
    for_ticket(session, ticket)                 -> SurveyAnswer | None

One row per call (``linkedid`` is unique, the same key as the call's ticket and recording).
What the row says comes from the call's facts at hang-up (:func:`ivr.core.survey.
stored_outcome`): the survey's own outcome, or "caller hung up" / "not asked" / "hung up
during survey" read from what the channel was left holding.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, SurveyAnswer, Ticket, in_savepoint
from ivr.core.agent_intro import work_number_of
from ivr.core.recording_meta import CallFacts
from ivr.core.survey import ANSWERS, Outcome, stored_outcome


def record_for_call(
    session: Session, recording: Recording, facts: CallFacts | None
) -> SurveyAnswer | None:
    """The call's survey row, stored if an agent was connected (none otherwise, and none
    without facts: nothing is known then). Idempotent by the recording's Linkedid."""
    if facts is None:
        return None
    outcome = stored_outcome(connected=facts.connected_at is not None, survey=facts.survey)
    if outcome is None:
        return None
    existing = for_call(session, recording.linkedid)
    if existing is not None:
        return existing
    key = facts.survey_key if outcome in ANSWERS or outcome is Outcome.WRONG_KEY else None
    row = SurveyAnswer(
        linkedid=recording.linkedid,
        recording_id=recording.id,
        desk=recording.desk,
        queue=recording.queue,
        agent=recording.agent,
        work_number=work_number_of(recording.agent),
        language=facts.language,
        outcome=outcome,
        key=key,
        call_ended_at=recording.ended_at,
    )

    def insert() -> None:
        session.add(row)
        session.flush()

    if in_savepoint(session, insert) is not None:  # another sweep stored it meanwhile
        return for_call(session, recording.linkedid)
    return row


def for_call(session: Session, linkedid: str) -> SurveyAnswer | None:
    return session.scalar(select(SurveyAnswer).where(SurveyAnswer.linkedid == linkedid))


def for_ticket(session: Session, ticket: Ticket) -> SurveyAnswer | None:
    """The survey of the call a ticket was opened for (by their shared Linkedid)."""
    return for_call(session, ticket.linkedid)
