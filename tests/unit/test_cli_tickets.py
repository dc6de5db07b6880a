"""``ivr tickets list`` and ``ivr tickets move`` through ``ivr.cli.main`` on a real SQLite file."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, tickets
from ivr.adapters.sql.db import AuditEntry, Recording, TicketTransition
from ivr.cli import main
from ivr.settings import Settings, load_settings

NOW = datetime.now(UTC)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return load_settings()


@pytest.fixture
def ids(settings: Settings) -> dict[str, int]:
    """An overdue repair ticket and a fresh one with a danger word."""
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    made = {}
    try:
        with Session(engine, expire_on_commit=False) as db:
            for name, started, caller in (
                ("late", NOW - timedelta(days=3), "13800138001"),
                ("fresh", NOW - timedelta(minutes=1), "13800138002"),
            ):
                rec = Recording(
                    linkedid=name, uniqueid=name, started_at=started, did="95158",
                    caller=caller, caller_reversed="x", desk="repair", category="repair",
                    agent="Local/agent@sim-agents",
                )  # fmt: skip
                db.add(rec)
                db.flush()
                ticket = tickets.open_for_call(
                    db, recording=rec, voice_message=None, settings=settings
                )
                assert ticket is not None
                made[name] = ticket.id
            fresh = db.get(sql.Ticket, made["fresh"])
            assert fresh is not None
            fresh.danger, fresh.danger_words, fresh.priority = True, ["漏气"], 90
            db.commit()
    finally:
        engine.dispose()
    return made


def listing(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["tickets", "list", "--json", *args]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_given_tickets_when_listed_as_json_then_most_urgent_first_masked_with_flags(ids, capsys):
    rows = listing(capsys)

    assert [r["id"] for r in rows] == [ids["fresh"], ids["late"]]
    fresh, late = rows
    assert fresh["caller"] == "138******02" and fresh["danger_words"] == ["漏气"]
    assert late["overdue"] is True and fresh["overdue"] is False
    assert listing(capsys, "--overdue") == [late]
    assert listing(capsys, "--danger") == [fresh]
    assert listing(capsys, "--show-numbers")[0]["caller"] == "13800138002"


def test_given_a_move_then_recorded_as_the_cli_login_and_the_list_follows(ids, settings, capsys):
    assert main(["tickets", "move", str(ids["late"]), "in_progress", "--comment", "派单"]) == 0
    said = capsys.readouterr().out

    actor = f"cli:{getpass.getuser()}"
    assert said.strip() == f"ticket {ids['late']} is now 处理中 (by {actor})"
    assert [r["id"] for r in listing(capsys, "--state", "处理中")] == [ids["late"]]
    assert [r["id"] for r in listing(capsys, "--state", "待派单")] == [ids["fresh"]]
    assert len(listing(capsys, "--state", "open")) == 2
    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            move = db.scalars(select(TicketTransition)).one()
            assert (move.actor, move.user_id, move.comment) == (actor, None, "派单")
            entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.move"))
            assert entry.one().actor == actor
    finally:
        engine.dispose()


def test_given_an_illegal_move_then_exit_1_naming_the_allowed_states(ids, capsys):
    assert main(["tickets", "move", str(ids["late"]), "已完成"]) == 1

    err = capsys.readouterr().err
    assert "待派单 -> 已完成 is not allowed; from 待派单 only: 处理中" in err


def test_given_unknown_ticket_or_state_then_clear_errors(ids, capsys):
    assert main(["tickets", "move", "999", "处理中"]) == 1
    assert "no ticket 999" in capsys.readouterr().err
    assert main(["tickets", "list", "--state", "closed"]) == 1
    assert "unknown ticket state 'closed'" in capsys.readouterr().err


def test_given_text_output_then_a_table_with_flags(ids, capsys):
    assert main(["tickets", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "LVL"]
    assert lines[1].split()[0] == str(ids["fresh"]) and "DANGER:漏气" in lines[1]
    assert lines[2].endswith("OVERDUE") and "138******01" in lines[2]
