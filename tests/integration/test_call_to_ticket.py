"""The whole pipeline on a real stack: a call through Asterisk is recorded, catalogued by the
recorder role, gets its ticket, its speech-to-text job runs in the stt-worker role (real
vosk, the Korean model) and the transcript becomes the ticket's one note.

The caller "speaks" Korean rendered by espeak-ng (played into the call by the simulated
caller); the simulated agent answers with hello-world. Only the caller's side (the left
channel) is transcribed, so the note's word timings fall where the caller spoke.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import (
    Recording,
    SttJob,
    SttJobStatus,
    Ticket,
    TicketNote,
    Transcript,
    settings_engine,
)
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import Stack, asterisk_instance
from tests.stack_support import private_stack
from tests.stt_support import ko_model_path, korean_speech

CALLER = "13700137001"


@pytest.fixture(scope="module")
def stt_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("pipeline")
    stt = {"model_path": ko_model_path(), "language": "ko", "model_poll_s": 1.0}
    with private_stack(base, "tpipe", "pipeline-logs", stt=stt) as stack:
        yield stack


def test_a_recorded_call_becomes_a_ticket_with_its_transcript(
    stt_stack: Stack, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    settings = stt_stack.settings
    inst = asterisk_instance(settings)
    speech = korean_speech(tmp_path / "caller.wav", "안녕하세요 가스 냄새가 나요 빨리 와 주세요")
    inner = inst.base / "spool" / "caller-ko.wav"
    shutil.copy(speech, inst.host_path(inner))

    report = asyncio.run(
        place_call(
            settings,
            did="95158",
            caller=CALLER,
            keys=["1"],  # repair: the simulated agent answers after 1 s
            hold_s=40,
            audio=str(PurePosixPath(inner).with_suffix("")),
        )
    )
    assert report.queue == "repair", report

    engine = settings_engine(settings)
    try:

        def finished() -> tuple[Recording, Ticket, SttJob] | None:
            with Session(engine) as session:
                rec = session.scalar(select(Recording).where(Recording.linkedid == report.linkedid))
                if rec is None:
                    return None
                ticket = session.scalar(select(Ticket).where(Ticket.linkedid == rec.linkedid))
                job = session.scalar(select(SttJob).where(SttJob.recording_id == rec.id))
                if ticket is None or job is None or job.status is not SttJobStatus.done:
                    return None
                session.expunge_all()
                return rec, ticket, job

        rec, ticket, job = wait_for(finished, 90, "recording, ticket and a finished stt job")
        assert rec.status == "ok" and rec.agent and rec.queue == "repair"
        assert (ticket.caller, ticket.desk, ticket.recording_id) == (CALLER, "repair", rec.id)

        with Session(engine) as session:
            transcript = session.get(Transcript, job.transcript_id)
            assert transcript is not None
            assert transcript.recording_id == rec.id and transcript.language == "ko"
            words = transcript.words
            assert words and transcript.text.strip(), "the caller's speech gave no words"
            starts = [w["start"] for w in words]
            assert starts == sorted(starts)
            assert all(0 <= w["start"] <= w["end"] <= (rec.audio_s or 0) + 0.5 for w in words)
            assert session.get(Recording, rec.id).transcript_id == transcript.id  # type: ignore[union-attr]
            notes = session.scalars(
                select(TicketNote).where(TicketNote.ticket_id == ticket.id)
            ).all()
            assert [(n.kind, n.source_key) for n in notes] == [
                ("transcript", f"recording:{rec.id}")
            ]
            assert notes[0].transcript_id == transcript.id
            assert transcript.text.split()[0] in notes[0].text
    finally:
        engine.dispose()
