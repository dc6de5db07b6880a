"""ivr.adapters.sql.tickets against a real SQLite file and a real PostgreSQL server: opening
tickets for calls, transcript notes (exactly one per source, also under a race of two
threads), danger words, moves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import ticket_desk, tickets
from ivr.adapters.sql.db import (
    AuditEntry,
    Recording,
    Role,
    Ticket,
    TicketNote,
    TicketState,
    TicketTransition,
    Transcript,
    User,
    VoiceMessage,
)
from ivr.adapters.sql.users import create_user
from ivr.settings import Settings
from tests.pg_support import SQL_BACKENDS

# Monday 2025-03-03 10:00 in Shanghai
MONDAY_10 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


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


_serial = iter(range(1, 1_000_000))


def recording(db: Session, **facts: Any) -> Recording:
    n = next(_serial)
    row = Recording(
        linkedid=facts.pop("linkedid", f"1700000000.{n}"),
        uniqueid=facts.pop("uniqueid", f"1700000000.{n}"),
        started_at=facts.pop("started_at", MONDAY_10),
        did="95158",
        caller=facts.pop("caller", "13800138001"),
        caller_reversed="10083100831",
        desk=facts.pop("desk", "repair"),
        category=facts.pop("category", "repair"),
        agent=facts.pop("agent", "Local/agent@sim-agents"),
        account=facts.pop("account", None),
        file_name=f"call-{n}.wav",
        **facts,
    )
    db.add(row)
    db.commit()
    return row


def voice_message(db: Session, **facts: Any) -> VoiceMessage:
    n = next(_serial)
    row = VoiceMessage(
        uniqueid=facts.pop("uniqueid", f"1700000100.{n}"),
        did="95158",
        caller=facts.pop("caller", "13900139002"),
        desk=facts.pop("desk", "complaints"),
        category=facts.pop("category", "complaints"),
        language="zh",
        file_name=f"complaints-{n}.wav",
        duration_s=12.5,
        complete=True,
        recorded_at=facts.pop("recorded_at", MONDAY_10),
    )
    db.add(row)
    db.commit()
    return row


def transcript(
    db: Session,
    *,
    rec: Recording | None = None,
    msg: VoiceMessage | None = None,
    text: str = "我 家 暖气 不 热",
    danger: list[str] | None = None,
) -> Transcript:
    key = f"recording:{rec.id}" if rec is not None else f"voice_message:{msg.id}"  # type: ignore[union-attr]
    row = Transcript(
        source_key=key,
        recording_id=rec.id if rec is not None else None,
        voice_message_id=msg.id if msg is not None else None,
        language="zh",
        model="vosk-model-small-cn-0.22",
        text=text,
        words=[
            {"word": w, "start": i * 0.5, "end": i * 0.5 + 0.4, "conf": 0.9}
            for i, w in enumerate(text.split())
        ],  # fmt: skip
        confidence=0.9,
        audio_s=6.0,
        decode_s=1.2,
        danger_words=danger or [],
    )
    db.add(row)
    db.commit()
    return row


def count(db: Session, model: type[Any]) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


# --- open_for_call ----------------------------------------------------------------------------
def test_given_answered_call_when_opened_twice_then_one_ticket_with_the_call_facts(db, settings):
    rec = recording(db, account="88001234", desk="repair", category="repair")

    first = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()
    again = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()

    assert first is not None and again is not None
    assert again.id == first.id
    assert count(db, Ticket) == 1
    assert (first.linkedid, first.recording_id, first.desk, first.category) == (
        rec.linkedid, rec.id, "repair", "repair",
    )  # fmt: skip
    assert (first.caller, first.account, first.agent) == ("13800138001", "88001234", rec.agent)
    assert first.state is TicketState.awaiting_dispatch
    assert first.level == "L2"  # repair: 48 h
    assert first.deadline_at == MONDAY_10 + timedelta(hours=48)
    assert first.priority == 60
    assert first.created_at == MONDAY_10
    assert not first.emergency and not first.danger


def test_given_call_nobody_answered_and_no_message_then_no_ticket(db, settings):
    rec = recording(db, agent=None)

    assert tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings) is None
    assert tickets.open_for_call(db, recording=None, voice_message=None, settings=settings) is None
    assert count(db, Ticket) == 0


def test_given_emergency_call_then_level_1_two_hours_and_top_priority(db, settings):
    rec = recording(db, desk="emergency", category="emergency", emergency=True)

    ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)

    assert ticket is not None and ticket.emergency
    assert (ticket.level, ticket.priority) == ("L1", 100)
    assert ticket.deadline_at == MONDAY_10 + timedelta(hours=2)


def test_given_voice_message_then_ticket_by_its_uniqueid_and_working_day_deadline(db, settings):
    msg = voice_message(db, desk="complaints")

    ticket = tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
    db.commit()

    assert ticket is not None
    assert (ticket.linkedid, ticket.voice_message_id) == (msg.uniqueid, msg.id)
    assert (ticket.desk, ticket.caller, ticket.agent) == ("complaints", "13900139002", None)
    assert ticket.level == "L3"
    # Monday: Tue..Fri are the 4 working days; due at 24:00 Friday Shanghai time
    assert ticket.deadline_at == datetime(2025, 3, 7, 16, 0, tzinfo=UTC)


def test_given_message_then_its_recording_when_opened_then_the_same_ticket_gains_the_recording(
    db, settings
):
    msg = voice_message(db)
    first = tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
    db.commit()
    rec = recording(db, linkedid="other-linkedid", agent=None, voice_message_id=msg.id)

    second = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()

    assert first is not None and second is not None and second.id == first.id
    assert second.recording_id == rec.id
    assert count(db, Ticket) == 1


def test_given_the_caller_rolls_back_then_neither_ticket_nor_note_stays(engine, settings):
    """The SAVEPOINTs nest in the caller's transaction also when they are its first write
    (pysqlite would otherwise commit on releasing them)."""
    with Session(engine, expire_on_commit=False) as setup:
        msg = voice_message(setup)
        rec = recording(setup)
        ticket = tickets.open_for_call(setup, recording=rec, voice_message=None, settings=settings)
        setup.commit()
        tr = transcript(setup, rec=rec, danger=["着火"])
        assert ticket is not None

    with Session(engine) as db:
        assert tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
        assert tickets.add_transcript_note(db, tr, settings) is not None
        db.rollback()

    with Session(engine) as check:
        assert count(check, Ticket) == 1 and count(check, TicketNote) == 0
        kept = check.get(Ticket, ticket.id)
        assert kept is not None and not kept.danger and kept.level == "L2"


def test_given_two_processes_open_the_same_call_at_once_then_one_ticket(engine, settings):
    with Session(engine) as setup:
        rec_id = recording(setup).id
    barrier = threading.Barrier(2)

    def open_it() -> int:
        with Session(engine, expire_on_commit=False) as session:
            rec = session.get(Recording, rec_id)
            barrier.wait()
            ticket = tickets.open_for_call(
                session, recording=rec, voice_message=None, settings=settings
            )
            session.commit()
            assert ticket is not None
            return ticket.id

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: open_it(), range(2)))

    assert ids[0] == ids[1]
    with Session(engine) as check:
        assert count(check, Ticket) == 1


# --- the agent's connect and the recorder, racing on one call ---------------------------------
def _connect(engine: Engine, settings: Settings, linkedid: str) -> tuple[int, str | None]:
    with Session(engine, expire_on_commit=False) as session:
        ticket = ticket_desk.open_at_connect(
            session, linkedid=linkedid, work_number="1001", desk="repair", emergency=False,
            caller="13800138001", connected_at=MONDAY_10 + timedelta(seconds=30),
            settings=settings,
        )  # fmt: skip
        session.commit()
        return ticket.id, ticket.agent


def test_given_the_recorder_inserting_while_the_agent_connects_then_one_ticket_owned_by_the_agent(
    engine, settings
):
    """The recorder (A) has inserted the call's ticket, not yet committed, when the ami role
    (B) opens it at the agent's connect: B waits for the lock, its insert hits the unique
    Linkedid inside its SAVEPOINT, and B claims A's ticket for the agent."""
    with Session(engine) as setup:
        rec_id = recording(setup, agent="1001 张三").id
    with Session(engine, expire_on_commit=False) as a:
        rec = a.get(Recording, rec_id)
        assert rec is not None
        opened = tickets.open_for_call(a, recording=rec, voice_message=None, settings=settings)
        assert opened is not None
        with ThreadPoolExecutor(1) as pool:
            b = pool.submit(_connect, engine, settings, rec.linkedid)
            time.sleep(0.5)  # B has looked (nothing committed yet) and waits for the lock
            assert not b.done()
            a.commit()
            claimed = b.result(timeout=10)
    assert claimed == (opened.id, "1001")
    with Session(engine) as check:
        assert count(check, Ticket) == 1
        ticket = check.get(Ticket, opened.id)
        assert ticket is not None and (ticket.agent, ticket.recording_id) == ("1001", rec_id)


def test_given_the_agent_connected_first_then_the_recording_joins_its_ticket(engine, settings):
    with Session(engine) as setup:
        rec_id = recording(setup, agent="1001 张三").id
        linkedid = setup.get(Recording, rec_id).linkedid  # type: ignore[union-attr]
    ticket_id, owner = _connect(engine, settings, linkedid)
    with Session(engine, expire_on_commit=False) as session:
        rec = session.get(Recording, rec_id)
        joined = tickets.open_for_call(session, recording=rec, voice_message=None,
                                       settings=settings)  # fmt: skip
        session.commit()
    assert joined is not None and (joined.id, joined.agent, owner) == (ticket_id, "1001", "1001")
    assert joined.recording_id == rec_id
    assert joined.created_at == MONDAY_10  # when the call came in, not the connect
    assert joined.deadline_at == MONDAY_10 + timedelta(hours=48)  # repair: L2 from then


# --- transcript notes -------------------------------------------------------------------------
def test_given_transcript_when_added_twice_then_exactly_one_note(db, settings):
    rec = recording(db)
    ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()
    tr = transcript(db, rec=rec)

    note = tickets.add_transcript_note(db, tr, settings)
    db.commit()
    again = tickets.add_transcript_note(db, tr, settings)
    db.commit()

    assert note is not None and again is not None and again.id == note.id
    assert ticket is not None
    notes = db.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket.id)).all()
    assert [(n.kind, n.source_key, n.text, n.transcript_id) for n in notes] == [
        ("transcript", f"recording:{rec.id}", "我 家 暖气 不 热", tr.id)
    ]
    assert notes[0].author == "stt:vosk-model-small-cn-0.22"
    assert not ticket.danger


def test_given_silent_transcript_then_a_note_saying_no_speech(db, settings):
    msg = voice_message(db)
    tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
    db.commit()

    note = tickets.add_transcript_note(db, transcript(db, msg=msg, text=""), settings)

    assert note is not None and note.text == tickets.NO_SPEECH


def test_given_transcript_of_a_call_without_ticket_then_none(db, settings):
    rec = recording(db, agent=None)

    assert tickets.add_transcript_note(db, transcript(db, rec=rec), settings) is None
    assert count(db, TicketNote) == 0


def test_given_danger_words_then_flagged_priority_raised_level_1_and_deadline_pulled_in(
    db, settings
):
    msg = voice_message(db, desk="consultation", category="consultation")
    ticket = tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
    db.commit()
    assert ticket is not None and (ticket.level, ticket.priority) == ("L4", 20)

    tr = transcript(db, msg=msg, text="家里 有 煤气味 好像 漏气 了", danger=["煤气味", "漏气"])
    tickets.add_transcript_note(db, tr, settings)
    db.commit()
    db.refresh(ticket)

    assert ticket.danger
    assert ticket.danger_words == ["煤气味", "漏气"]
    assert ticket.priority == settings.stt.danger_priority == 90
    assert ticket.level == "L1"
    assert ticket.deadline_at == MONDAY_10 + timedelta(hours=2)


def test_given_danger_on_emergency_ticket_then_priority_and_deadline_never_move_down(db, settings):
    rec = recording(db, desk="emergency", emergency=True)
    ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()
    assert ticket is not None
    earlier = MONDAY_10 + timedelta(minutes=30)
    ticket.deadline_at = earlier  # e.g. set tighter by hand
    db.commit()

    tickets.add_transcript_note(db, transcript(db, rec=rec, danger=["着火"]), settings)
    db.commit()
    db.refresh(ticket)

    assert (ticket.priority, ticket.level, ticket.deadline_at) == (100, "L1", earlier)
    assert ticket.danger and ticket.danger_words == ["着火"]


def test_given_danger_in_a_second_source_then_words_merge_without_duplicates(db, settings):
    msg = voice_message(db)
    ticket = tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
    db.commit()
    rec = recording(db, voice_message_id=msg.id, agent=None)
    tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
    db.commit()

    tickets.add_transcript_note(db, transcript(db, msg=msg, danger=["漏气"]), settings)
    tickets.add_transcript_note(db, transcript(db, rec=rec, danger=["漏气", "着火"]), settings)
    db.commit()

    assert ticket is not None
    db.refresh(ticket)
    assert ticket.danger_words == ["漏气", "着火"]
    notes = db.scalars(select(TicketNote.source_key).where(TicketNote.ticket_id == ticket.id))
    assert sorted(notes) == [f"recording:{rec.id}", f"voice_message:{msg.id}"]


def _ticket_with_transcript(engine: Engine, settings: Settings, **kw: Any) -> tuple[int, int]:
    with Session(engine, expire_on_commit=False) as setup:
        rec = recording(setup)
        ticket = tickets.open_for_call(setup, recording=rec, voice_message=None, settings=settings)
        setup.commit()
        tr = transcript(setup, rec=rec, **kw)
        assert ticket is not None
        return ticket.id, tr.id


def _add_note(engine: Engine, settings: Settings, transcript_id: int, before: Callable[[], Any]):
    with Session(engine, expire_on_commit=False) as session:
        tr = session.get(Transcript, transcript_id)
        assert tr is not None
        before()
        note = tickets.add_transcript_note(session, tr, settings)
        session.commit()
        assert note is not None
        return note.id


def test_given_two_workers_racing_on_one_transcript_then_one_note(engine, settings):
    for _ in range(10):
        ticket_id, tr_id = _ticket_with_transcript(engine, settings, danger=["漏气"])
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(_add_note, engine, settings, tr_id, barrier.wait) for _ in range(2)
            ]
            ids = [f.result() for f in futures]

        assert ids[0] == ids[1]
        with Session(engine) as check:
            rows = check.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket_id))
            assert len(rows.all()) == 1
            ticket = check.get(Ticket, ticket_id)
            assert ticket is not None and ticket.danger_words == ["漏气"]


def test_given_the_other_worker_stores_it_after_our_check_then_the_savepoint_returns_its_note(
    engine, settings, caplog
):
    """Worker B checks (nothing yet) while A has inserted; B waits for the ticket's lock until
    A commits, then B's insert hits the unique constraint, only its SAVEPOINT rolls back, and
    B returns A's note; B's transaction goes on (its ticket update commits)."""
    caplog.set_level("INFO", logger="ivr.adapters.sql.tickets")
    ticket_id, tr_id = _ticket_with_transcript(engine, settings, danger=["着火"])
    with Session(engine, expire_on_commit=False) as a:
        tr_a = a.get(Transcript, tr_id)
        assert tr_a is not None
        note_a = tickets.add_transcript_note(a, tr_a, settings)  # A holds the write lock now
        assert note_a is not None
        with ThreadPoolExecutor(1) as pool:
            b = pool.submit(_add_note, engine, settings, tr_id, lambda: None)
            time.sleep(0.5)  # B has checked and waits for the lock
            assert not b.done()
            a.commit()
            b_id = b.result(timeout=10)

    assert b_id == note_a.id
    assert [r.message for r in caplog.records].count(
        "transcript note already stored by another worker"
    ) == 1
    with Session(engine) as check:
        assert count(check, TicketNote) == 1
        ticket = check.get(Ticket, ticket_id)
        assert ticket is not None and ticket.danger and ticket.level == "L1"


# --- moves ------------------------------------------------------------------------------------
@pytest.fixture
def boss(db: Session) -> User:
    user = create_user(db, "boss", "a long enough password", Role.supervisor)
    db.commit()
    return user


@pytest.fixture
def ticket_id(db: Session, settings: Settings) -> int:
    ticket = tickets.open_for_call(
        db, recording=recording(db), voice_message=None, settings=settings
    )
    db.commit()
    assert ticket is not None
    return ticket.id


def test_given_legal_moves_then_each_recorded_with_who_when_and_audited(db, boss, ticket_id):
    path = [
        (TicketState.in_progress, "派给维修一班"),
        (TicketState.awaiting_acceptance, "已修好"),
        (TicketState.in_progress, "回访用户说还漏水"),
        (TicketState.awaiting_acceptance, "再次修好"),
        (TicketState.done, ""),
    ]
    for to, comment in path:
        ticket = tickets.move(db, ticket_id, to, boss, comment, ip="127.0.0.1")
        db.commit()
        assert ticket.state is to

    assert ticket.closed_at is not None
    moves = db.scalars(
        select(TicketTransition).where(TicketTransition.ticket_id == ticket_id)
        .order_by(TicketTransition.id)
    ).all()  # fmt: skip
    assert [(m.from_state, m.to_state, m.comment) for m in moves] == [
        (TicketState.awaiting_dispatch, TicketState.in_progress, "派给维修一班"),
        (TicketState.in_progress, TicketState.awaiting_acceptance, "已修好"),
        (TicketState.awaiting_acceptance, TicketState.in_progress, "回访用户说还漏水"),
        (TicketState.in_progress, TicketState.awaiting_acceptance, "再次修好"),
        (TicketState.awaiting_acceptance, TicketState.done, ""),
    ]
    assert {(m.actor, m.user_id) for m in moves} == {("boss", boss.id)}
    assert all(m.at <= datetime.now(UTC) for m in moves)
    audits = db.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.move")).all()
    assert len(audits) == 5
    assert audits[0].target == f"ticket:{ticket_id} 待派单->处理中"
    assert audits[0].ip == "127.0.0.1" and audits[0].actor == "boss"


def test_given_illegal_move_then_refused_naming_both_states_and_what_is_allowed(
    db, boss, ticket_id
):
    with pytest.raises(tickets.IllegalTransition) as caught:
        tickets.move(db, ticket_id, TicketState.done, boss, "")

    assert caught.value.status == 409
    assert "待派单 -> 已完成" in caught.value.message
    assert caught.value.details["allowed"] == ["处理中"]
    db.rollback()
    assert count(db, TicketTransition) == 0
    assert tickets.get(db, ticket_id).state is TicketState.awaiting_dispatch


def test_given_rejection_without_a_reason_then_refused(db, boss, ticket_id):
    tickets.move(db, ticket_id, TicketState.in_progress, boss, "")
    tickets.move(db, ticket_id, TicketState.awaiting_acceptance, boss, "")
    db.commit()

    with pytest.raises(tickets.InvalidTicketInput, match="say why"):
        tickets.move(db, ticket_id, TicketState.in_progress, boss, "   ")


def test_given_cli_actor_then_it_is_recorded(db, ticket_id):
    tickets.move(db, ticket_id, TicketState.in_progress, None, "", actor="cli:root")
    db.commit()

    move = db.scalars(select(TicketTransition)).one()
    assert (move.actor, move.user_id) == ("cli:root", None)


def test_given_unknown_ticket_then_not_found(db, boss):
    with pytest.raises(tickets.TicketNotFound) as caught:
        tickets.move(db, 999, TicketState.in_progress, boss, "")
    assert caught.value.status == 404


def test_given_two_supervisors_move_at_once_then_the_second_is_told_it_moved(
    engine, boss, ticket_id
):
    with (
        Session(engine, expire_on_commit=False) as first,
        Session(engine, expire_on_commit=False) as second,
    ):
        tickets.get(second, ticket_id)  # second has read it as 待派单
        tickets.move(first, ticket_id, TicketState.in_progress, None, "", actor="a")
        first.commit()

        with pytest.raises(tickets.IllegalTransition, match="处理中 -> 处理中"):
            tickets.move(second, ticket_id, TicketState.in_progress, None, "", actor="b")
        second.rollback()

    with Session(engine) as check:
        assert count(check, TicketTransition) == 1


def test_given_staff_note_then_stored_with_author_and_audited(db, boss, ticket_id):
    note = tickets.add_staff_note(db, ticket_id, "  已电话联系用户  ", boss)
    db.commit()

    assert (note.kind, note.author, note.text, note.source_key) == (
        "staff", "boss", "已电话联系用户", None,
    )  # fmt: skip
    assert db.scalars(select(AuditEntry.action)).all()[-1] == "ticket.note"
    with pytest.raises(tickets.InvalidTicketInput):
        tickets.add_staff_note(db, ticket_id, "   ", boss)
