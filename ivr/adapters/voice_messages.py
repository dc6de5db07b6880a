"""Voice messages left after hours: kept in SQL when the call flow records one, and listed.

The tickets work turns each into a ticket; until then ``ivr messages`` lists them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.adapters.db import VoiceMessage
from ivr.core import callflow
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
