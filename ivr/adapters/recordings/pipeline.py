"""What happens when a call's recording is catalogued: its ticket, its post-call survey
outcome and its transcription jobs.

The recorder calls :func:`cataloguer` 's hook inside the transaction that inserts the
recording, so the catalog row, the ticket (工单), the survey row and the speech-to-text job
rows commit together or not at all. An agent's outbound call (``direction`` outbound) opens
no ticket and has no survey: its recording is joined to its outbound call (and so to the
ticket or call-back it was for) instead. The jobs are only rows here: :func:`push_jobs` sends
the unsent ones to the Redis stream after the commit (and again on every later sweep), so a
Redis outage at that moment delays the transcription but loses nothing.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.recordings.recorder import OnCatalogued
from ivr.adapters.sql import followups, surveys, tickets
from ivr.adapters.sql.db import Recording, RecordingStatus, VoiceMessage
from ivr.adapters.stt import job_queue as stt_queue
from ivr.core.recording_meta import CallFacts
from ivr.settings import Settings

logger = logging.getLogger(__name__)

# Rows whose file holds the call's audio (an incomplete one: up to where Asterisk stopped).
TRANSCRIBED = frozenset({RecordingStatus.ok, RecordingStatus.incomplete})


def cataloguer(settings: Settings) -> OnCatalogued:
    """The recorder's ``on_catalogued`` hook for these settings."""

    def on_catalogued(session: Session, recording: Recording, facts: CallFacts | None) -> None:
        message = (
            session.get(VoiceMessage, recording.voice_message_id)
            if recording.voice_message_id is not None
            else None
        )
        if recording.direction == "outbound":
            followups.link_recording(session, recording)
        else:
            tickets.open_for_call(
                session, recording=recording, voice_message=message, settings=settings
            )
            surveys.record_for_call(session, recording, facts)
        if recording.status in TRANSCRIBED and recording.file_name:
            stt_queue.create_job(session, recording=recording)
        if message is not None:  # the message itself: the caller's words, nothing else
            stt_queue.create_job(session, voice_message=message)

    return on_catalogued


async def push_jobs(client: aioredis.Redis, engine: Engine, settings: Settings) -> int:
    """Send the job rows not yet in the stream; a Redis error is logged, retried next time."""
    try:
        return await stt_queue.send_pending(client, engine, settings.stt)
    except (aioredis.RedisError, OSError) as exc:
        logger.warning("speech-to-text jobs not sent yet (Redis): %s", exc)
        return 0
