"""ivr.adapters.sql.followups on SQLite and PostgreSQL: a closed ticket owes one 回访, attempts
are taken once, results reach the ticket, "not resolved" reopens it, the worklist."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import followups, tickets
from ivr.adapters.sql.db import (
    Followup,
    OutboundCall,
    Recording,
    Role,
    TicketState,
    TicketTransition,
    User,
)
from ivr.adapters.sql.users import create_user
from ivr.core import survey
from ivr.core.followup import FollowupConfig, Place, Result, plan
from ivr.core.followup_call import CallResult
from ivr.settings import Settings
from tests.pg_support import SQL_BACKENDS

MONDAY_10 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CONFIG = FollowupConfig()
_serial = iter(range(1, 1_000_000))


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


@pytest.fixture
def boss(db: Session) -> User:
    user = create_user(db, "boss", "a long enough password", Role.supervisor)
    db.commit()
    return user


def closed_ticket(db: Session, settings: Settings, boss: User, caller: str) -> int:
    n = next(_serial)
    rec = Recording(
        linkedid=f"1700000000.{n}", uniqueid=f"1700000000.{n}", started_at=MONDAY_10,
        did="95158", caller=caller, caller_reversed=caller[::-1], desk="repair",
        category="repair", agent="1001 张三", file_name=f"call-{n}.wav",
    )  # fmt: skip
    db.add(rec)
    db.flush()
    ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    assert ticket is not None
    close(db, ticket.id, boss)
    return ticket.id


def close(db: Session, ticket_id: int, boss: User) -> None:
    for to in (TicketState.in_progress, TicketState.awaiting_acceptance, TicketState.done):
        if tickets.get(db, ticket_id).state is not to:
            tickets.move(db, ticket_id, to, boss, "done", now=MONDAY_10)
    db.commit()


def attempt(db: Session, now: datetime) -> Place:
    todo = plan(now.timestamp(), followups.due(db, CONFIG), followups.in_flight(db), CONFIG)
    assert len(todo.place) == 1, todo
    followups.start_attempt(db, todo.place[0], f"fu-{next(_serial)}", now=now)
    db.commit()
    return todo.place[0]


def channel_of(db: Session, followup_id: int) -> str:
    call = db.scalar(
        select(OutboundCall).where(
            OutboundCall.followup_id == followup_id, OutboundCall.ended_at.is_(None)
        )
    )
    assert call is not None
    return call.channel_id


def test_a_closed_ticket_owes_one_followup_called_once_at_a_time(db, settings, boss):
    ticket_id = closed_ticket(db, settings, boss, "+86 138 0013 8000")
    rows = followups.of_ticket(db, ticket_id)
    assert [(r.status, r.number, r.desk) for r in rows] == [("due", "+86 138 0013 8000", "repair")]

    place = attempt(db, MONDAY_10)
    assert (place.number, place.attempt) == ("13800138000", 1)
    with pytest.raises(followups.FollowupNotFound):
        followups.start_attempt(db, place, "fu-twice", now=MONDAY_10)
    db.rollback()
    assert followups.due(db, CONFIG) == []  # in flight: not offered again
    assert [f.number for f in followups.in_flight(db)] == ["13800138000"]
    log = db.scalars(select(OutboundCall)).one()
    assert (log.purpose, log.started_by, log.ticket_id) == ("followup", "role:followups", ticket_id)

    row = followups.finish_attempt(db, channel_of(db, place.followup_id), CallResult(Result.BUSY),
                                   "BUSY", now=MONDAY_10 + timedelta(seconds=20))  # fmt: skip
    db.commit()
    assert (row.status, row.attempts, row.last_result, row.in_flight) == ("due", 1, "busy", False)
    assert followups.in_flight(db) == []


def test_not_resolved_reopens_raises_priority_and_flags_then_a_second_closure_owes_another(
    db, settings, boss
):
    ticket_id = closed_ticket(db, settings, boss, "13800138001")
    before = tickets.get(db, ticket_id).priority
    place = attempt(db, MONDAY_10)
    answer = CallResult(Result.ANSWERED, resolved=False, satisfaction=survey.Outcome.DISSATISFIED)
    followups.finish_attempt(db, channel_of(db, place.followup_id), answer, "ANSWER",
                             now=MONDAY_10 + timedelta(minutes=1))  # fmt: skip
    db.commit()
    ticket = tickets.get(db, ticket_id)
    assert ticket.state is TicketState.in_progress
    assert ticket.priority == before + 20
    last = db.scalars(select(TicketTransition).where(TicketTransition.ticket_id == ticket_id)
                      .order_by(TicketTransition.id.desc())).first()  # fmt: skip
    assert last is not None and (last.actor, last.from_state) == ("回访", TicketState.done)
    assert "not resolved" in last.comment
    row = followups.of_ticket(db, ticket_id)[0]
    assert (row.status, row.resolved, row.satisfaction, row.flagged) == (
        "finished",
        False,
        "dissatisfied",
        True,
    )
    assert [t.id for t in followups.flagged_tickets(db)] == [ticket_id]

    close(db, ticket_id, boss)  # closed again: a second follow-up, the flag off the list
    assert [r.status for r in followups.of_ticket(db, ticket_id)] == ["finished", "due"]
    assert followups.flagged_tickets(db) == []


def test_resolved_and_refused_are_final(db, settings, boss):
    first = closed_ticket(db, settings, boss, "13800138002")
    second = closed_ticket(db, settings, boss, "13800138003")
    for ticket_id, outcome in (
        (first, CallResult(Result.ANSWERED, resolved=True,
                           satisfaction=survey.Outcome.SATISFIED)),
        (second, CallResult(Result.REFUSED)),
    ):  # fmt: skip
        row = followups.of_ticket(db, ticket_id)[0]
        place = Place(row.id, ticket_id, row.number, 1)
        followups.start_attempt(db, place, f"fu-final-{ticket_id}", now=MONDAY_10)
        followups.finish_attempt(db, f"fu-final-{ticket_id}", outcome, "ANSWER", now=MONDAY_10)
        db.commit()
        assert tickets.get(db, ticket_id).state is TicketState.done
    assert followups.due(db, CONFIG) == []
    assert followups.of_ticket(db, first)[0].satisfaction == "satisfied"


def test_exhausted_and_bad_numbers_land_on_the_worklist_overdue_after_24h(db, settings, boss):
    good = closed_ticket(db, settings, boss, "13800138004")
    bad = closed_ticket(db, settings, boss, "138OO138000")
    now = MONDAY_10
    for n in range(CONFIG.max_attempts):
        todo = plan(now.timestamp(), followups.due(db, CONFIG), followups.in_flight(db), CONFIG)
        assert [p.ticket_id for p in todo.place] == [good]
        assert [w.ticket_id for w in todo.worklist] == [bad]
        followups.start_attempt(db, todo.place[0], f"fu-x-{n}", now=now)
        followups.finish_attempt(db, f"fu-x-{n}", CallResult(Result.NO_ANSWER), "NOANSWER",
                                 now=now)  # fmt: skip
        db.commit()
        now += timedelta(minutes=CONFIG.spacing_min)
    todo = plan(now.timestamp(), followups.due(db, CONFIG), followups.in_flight(db), CONFIG)
    assert todo.place == ()
    assert sorted(w.ticket_id for w in todo.worklist) == sorted([good, bad])
    assert followups.to_worklist(db, todo.worklist) == 2
    db.commit()
    items = followups.worklist(db, CONFIG, now)
    assert {(i.ticket_id, i.reason) for i in items} == {
        (good, "attempts exhausted"), (bad, "bad number: letters in the number")
    }  # fmt: skip
    assert not any(i.overdue for i in items)
    assert all(i.overdue for i in followups.worklist(db, CONFIG, MONDAY_10 + timedelta(hours=25)))
    assert followups.due(db, CONFIG) == []


def test_a_call_left_in_flight_by_a_crash_is_released_as_failed(db, settings, boss):
    ticket_id = closed_ticket(db, settings, boss, "13800138005")
    attempt(db, MONDAY_10)
    assert followups.release_stale(db, now=MONDAY_10 + timedelta(minutes=5)) == 1
    db.commit()
    row = db.scalars(select(Followup).where(Followup.ticket_id == ticket_id)).one()
    assert (row.in_flight, row.attempts, row.last_result, row.status) == (False, 1, "failed", "due")
