"""ivr.adapters.sql.surveys against a real SQLite file and a real PostgreSQL server: one
survey row per call from the call's facts, read back by its ticket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import surveys, tickets
from ivr.adapters.sql.db import Recording, SurveyAnswer
from ivr.core.recording_meta import CallFacts
from ivr.settings import Settings
from tests.pg_support import SQL_BACKENDS

ENDED = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def _recording(db: Session, linkedid: str, agent: str | None = "1001 张三") -> Recording:
    row = Recording(
        linkedid=linkedid, uniqueid=f"{linkedid}-2", started_at=ENDED, ended_at=ENDED,
        did="95158", caller="13800138001", caller_reversed="10083100831", desk="repair",
        category="repair", queue="repair", agent=agent,
    )  # fmt: skip
    db.add(row)
    db.flush()
    return row


def _facts(**fields: Any) -> CallFacts:
    return CallFacts(connected_at=1796552108.7, language="zh", **fields)


def test_given_an_answer_then_one_row_with_the_call_ticket_agent_and_desk(
    db: Session, settings: Settings
) -> None:
    rec = _recording(db, "L1")
    ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    row = surveys.record_for_call(db, rec, _facts(survey="basically satisfied", survey_key="2"))
    db.commit()
    assert row is not None and ticket is not None
    stored = surveys.for_ticket(db, ticket)
    assert stored is not None
    assert (stored.outcome, stored.key, stored.desk, stored.queue) == (
        "basically satisfied", "2", "repair", "repair")  # fmt: skip
    assert (stored.agent, stored.work_number, stored.recording_id) == ("1001 张三", "1001", rec.id)
    assert (stored.language, stored.call_ended_at) == ("zh", ENDED)


def test_given_the_same_call_again_then_still_one_row(db: Session) -> None:
    rec = _recording(db, "L2")
    first = surveys.record_for_call(db, rec, _facts(survey="satisfied", survey_key="1"))
    again = surveys.record_for_call(db, rec, _facts(survey="no answer"))
    db.commit()
    assert first is again
    assert db.scalar(select(func.count(SurveyAnswer.id))) == 1


@pytest.mark.parametrize(
    ("survey", "key", "outcome", "kept_key"),
    [
        (None, None, "caller hung up", None),
        ("asked", None, "not asked", None),
        ("asking", None, "hung up during survey", None),
        ("wrong key", "9", "wrong key", "9"),
        ("no answer", "5", "no answer", None),  # a stray key is not kept without an answer
        ("off", None, "off", None),
    ],
)
def test_given_what_the_channel_held_then_the_outcome(db, survey, key, outcome, kept_key):
    rec = _recording(db, f"L-{outcome}")
    row = surveys.record_for_call(db, rec, _facts(survey=survey, survey_key=key))
    assert row is not None and (row.outcome, row.key) == (outcome, kept_key)


def test_given_no_agent_connected_or_no_facts_then_no_row(db: Session) -> None:
    rec = _recording(db, "L3", agent=None)
    assert surveys.record_for_call(db, rec, CallFacts(survey="satisfied")) is None
    assert surveys.record_for_call(db, rec, None) is None
    assert surveys.for_call(db, "L3") is None
