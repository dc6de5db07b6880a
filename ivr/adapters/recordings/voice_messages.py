"""Voice messages left after hours: kept in SQL when the call flow records one, and listed.

The FastAGI server saves a message as its call ends; a message left through the process AGI
(no SQL inside Asterisk's root) is saved by the recorder from the call's facts. The catalog
transaction (call_pipeline) turns each into a ticket; ``ivr messages`` lists them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import VoiceMessage, utcnow
from ivr.core import callflow
from ivr.core.recording_meta import CallFacts
from ivr.logging_setup import mask_number

logger = logging.getLogger(__name__)

FIELD_CHARS = 32  # voice_messages.did and .caller


def message_from(state: callflow.CallState, uniqueid: str, now: float) -> VoiceMessage | None:
    """The row for a call whose flow recorded a message (also when the caller hung up)."""
    if not state.message:
        return None
    desk = state.config.routing.desk(state.desk)
    return VoiceMessage(
        uniqueid=uniqueid,
        # cut to their columns, as the recorder does: PostgreSQL refuses a longer value (the
        # message would be lost), SQLite would keep it whole
        did=state.facts.did[:FIELD_CHARS],
        caller=state.facts.caller[:FIELD_CHARS],
        desk=desk.id,
        category=desk.category,
        language=state.language,
        file_name=f"{state.message}.wav",
        duration_s=state.message_s,
        complete=state.stage is not callflow.Stage.HUNG_UP,
        recorded_at=datetime.fromtimestamp(now, UTC),
    )


def message_from_facts(facts: CallFacts, desk: str) -> VoiceMessage | None:
    """The row for a message the call's facts name (``IVR_MESSAGE``) when nobody saved one:
    the call flow ran as a process AGI inside Asterisk's root, which has no SQL. Such a
    message was recorded to its end (the flow names it only then)."""
    if facts.message is None or facts.uniqueid is None:
        return None
    when = facts.ended_at if facts.ended_at is not None else facts.answered_at
    return VoiceMessage(
        uniqueid=facts.uniqueid,
        did=(facts.did or "")[:FIELD_CHARS],
        caller=(facts.caller or "")[:FIELD_CHARS],
        desk=desk,
        category=facts.category or desk,
        language=facts.language or "",
        file_name=f"{facts.message}.wav",
        duration_s=facts.message_s if facts.message_s is not None else 0.0,
        complete=True,
        recorded_at=datetime.fromtimestamp(when, UTC) if when is not None else utcnow(),
    )


def save(engine: Engine, message: VoiceMessage) -> None:
    """Store it once (the call's uniqueid is unique: a retried save changes nothing)."""
    with Session(engine, expire_on_commit=False) as session:  # logged below, detached
        session.add(message)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return
    logger.info(
        "voice message kept",
        extra={"uniqueid": message.uniqueid, "desk": message.desk,
               "caller": mask_number(message.caller), "seconds": message.duration_s},
    )  # fmt: skip


def recent(engine: Engine, limit: int = 50) -> list[VoiceMessage]:
    with Session(engine) as session:
        rows = session.scalars(
            select(VoiceMessage).order_by(VoiceMessage.recorded_at.desc()).limit(limit)
        )
        return list(rows)
