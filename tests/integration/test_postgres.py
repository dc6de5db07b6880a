"""The SQL store on a real PostgreSQL server (tests/pg_support.py: a private one on 127.0.0.1,
ICU zh-CN collation, its clock in Asia/Shanghai), beside SQLite where both must agree.

The adapters' own tests run on both backends too (tickets, users, the recordings search, the
recordings API, the STT queue, the migrations); here is what only PostgreSQL can show: the
schema it gets, upgraders waiting on its advisory lock, its errors, its planner, its
collation, and the values SQLite takes but PostgreSQL refuses (NUL characters, over-long
text, integers over 32 bits).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from ivr.adapters.recordings import query as catalog
from ivr.adapters.recordings import voice_messages
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, tickets
from ivr.adapters.sql.db import AuditEntry, Recording, Role, Ticket, TicketState, VoiceMessage
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import callflow
from ivr.core.recording_search import build_filter
from ivr.devstack.ports import free_port
from ivr.web.app import create_app
from tests.pg_support import SQL_BACKENDS, PostgresServer, on_sql_backends
from tests.qa_support import catalogue
from tests.web_support import ORIGIN, PASSWORD, add_user, login, loopback_settings, sign_in

REPO = Path(__file__).resolve().parent.parent.parent
SHANGHAI = timezone(timedelta(hours=8))
REVISIONS = tuple(r.revision for r in schema.history())  # every one, oldest first
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def empty_url(postgres: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database with no tables at all."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = sql.create_db_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


# --- the schema ---------------------------------------------------------------------------------
def test_upgrade_on_an_empty_database_makes_every_table_and_again_changes_nothing(empty_url):
    engine = sql.create_db_engine(empty_url)
    try:
        assert schema.upgrade(engine).applied == REVISIONS  # every revision, oldest first
        assert schema.upgrade(engine).applied == ()

        found = set(inspect(engine).get_table_names())
        assert found == set(sql.Base.metadata.tables) | {schema.VERSION_TABLE}
        with engine.connect() as conn:
            types = dict(
                conn.execute(
                    text(
                        "SELECT table_name || '.' || column_name, data_type"
                        " FROM information_schema.columns WHERE table_schema = 'public'"
                    )
                ).all()
            )
            assert conn.execute(text("SHOW TimeZone")).scalar() == "Asia/Shanghai"
    finally:
        engine.dispose()
    assert types["recordings.started_at"] == "timestamp with time zone"
    assert types["audit_log.at"] == "timestamp with time zone"
    assert types["recordings.size_bytes"] == "bigint"
    assert types["stt_jobs.status"] == "character varying"  # the value, as on SQLite
    assert types["tickets.state"] == "character varying"


def test_an_upgrade_waits_for_the_schema_lock_another_upgrader_holds(empty_url):
    """Two `ivr db upgrade` at once (compose's one-shot, an operator): the second waits on
    the advisory lock until the first's transaction ends, then reads what it left."""
    holder = sql.create_db_engine(empty_url)
    engine = sql.create_db_engine(empty_url)
    done: list[schema.Upgrade] = []
    try:
        with holder.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(sql.SCHEMA_LOCK)))
            waiting = threading.Thread(target=lambda: done.append(schema.upgrade(engine)))
            waiting.start()
            waiting.join(1.0)
            assert waiting.is_alive() and done == []
            assert inspect(holder).get_table_names() == []  # it has not begun
        waiting.join(60)
        assert [d.applied for d in done] == [REVISIONS]
    finally:
        holder.dispose()
        engine.dispose()


@pytest.fixture(params=SQL_BACKENDS)
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("empty_url"))


def test_given_a_table_of_an_older_version_then_roles_refuse_and_upgrade_names_its_columns(
    blank_url, tmp_path
):
    engine = sql.create_db_engine(blank_url)
    try:
        with engine.begin() as conn:  # recordings as a version without most of its columns
            conn.execute(text("CREATE TABLE recordings (id INTEGER PRIMARY KEY, linkedid TEXT)"))
            conn.execute(text("INSERT INTO recordings (id, linkedid) VALUES (7, 'L-old')"))
        settings = loopback_settings(tmp_path / "run", database={"url": blank_url})
        with pytest.raises(schema.SchemaOutdated, match="run `ivr db upgrade`"):
            with TestClient(create_app(settings)):
                pass  # the web role does not start
        with pytest.raises(schema.SchemaUnrecognised) as caught:
            schema.upgrade(engine)
        assert "recordings.caller_reversed VARCHAR(32)" in caught.value.message
        assert "Nothing was changed" in caught.value.message
        missing = caught.value.details["missing_columns"]
        assert list(missing) == ["recordings"] and "linkedid" not in missing["recordings"]
        assert "users" in caught.value.details["missing_tables"]
        assert set(inspect(engine).get_table_names()) == {"recordings"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, linkedid FROM recordings")).all() == [(7, "L-old")]
    finally:
        engine.dispose()


def test_a_wrong_password_or_no_server_is_database_unavailable_without_the_password(postgres):
    secret = "not-the-password-123"
    refused = sql.create_db_engine(postgres.url("postgres", password=secret))
    nobody = sql.create_db_engine(
        f"postgresql+psycopg://hotline:{secret}@127.0.0.1:{free_port()}/hotline"
    )
    try:
        for engine, reason in ((refused, "password authentication failed"), (nobody, "refused")):
            for attempt in (schema.require_head, schema.upgrade):  # a role; ivr db upgrade
                with pytest.raises(sql.DatabaseUnavailable, match=reason) as caught:
                    attempt(engine)
                assert caught.value.status == 503
                assert secret not in caught.value.message and "***" in caught.value.message
    finally:
        refused.dispose()
        nobody.dispose()


# --- times --------------------------------------------------------------------------------------
@on_sql_backends
def test_times_come_back_as_the_same_instant_in_utc_whatever_the_zone_given(engine):
    given = datetime(2026, 5, 1, 8, 30, 15, 123456, tzinfo=SHANGHAI)
    with Session(engine) as db:
        row = catalogue(db, linkedid="L-time", started_at=given)
        row.ended_at = given + timedelta(minutes=3)
        db.commit()
        row_id = row.id

    with Session(engine) as db:
        stored = db.get(Recording, row_id)
        assert stored is not None
        assert stored.started_at == given
        assert stored.started_at.tzinfo is UTC
        assert stored.started_at.isoformat() == "2026-05-01T00:30:15.123456+00:00"
        assert stored.ended_at == datetime(2026, 5, 1, 0, 33, 15, 123456, tzinfo=UTC)
        # and compared in SQL as instants, not as the text of one zone
        bounds = (given - timedelta(microseconds=1), given + timedelta(microseconds=1))
        assert db.scalars(
            select(Recording.id).where(Recording.started_at.between(*bounds))
        ).all() == [row_id]
        stored.ended_at = datetime(2026, 5, 1, 9, 0)  # naive: refused on every backend
        with pytest.raises(Exception, match="naive datetime"):
            db.commit()


# --- what SQLite keeps and PostgreSQL refuses ---------------------------------------------------
@on_sql_backends
def test_a_nul_character_in_any_text_is_never_a_server_error(database_url, tmp_path, sql_backend):
    """PostgreSQL text cannot hold NUL: a search, a sign-in or a note with one still answers
    as on SQLite (nothing found, 401, the note kept with U+FFFD in its place)."""
    settings = loopback_settings(
        tmp_path / "run", database={"url": database_url}, recordings={"dir": tmp_path / "rec"}
    )
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    add_user(engine, "admin1", PASSWORD, Role.admin)
    with Session(engine) as db:
        rec = catalogue(db, linkedid="L-nul", agent="agent-1", desk="repair")
        db.commit()
        ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
        db.commit()
        assert ticket is not None
        ticket_id = ticket.id
    engine.dispose()

    with TestClient(create_app(settings)) as client:
        refused = login(client, "adm\x00in1", "x\x00")
        assert refused.status_code == 401
        sign_in(client, "admin1")
        for path, params in [
            ("/api/recordings", {"desk": "\x00"}),
            ("/api/recordings", {"agent": "agent-1\x00", "queue": "\x00"}),
            ("/api/audit", {"action": "\x00", "user": "\x00", "target": "x\x00:"}),
            ("/api/tickets", {"desk": "repair\x00"}),
        ]:
            response = client.get(path, params=params)
            assert (response.status_code, response.json()["total"]) == (200, 0), (path, params)
        note = client.post(
            f"/api/tickets/{ticket_id}/notes", json={"text": "煤气\x00味"}, headers=ORIGIN
        )
        assert note.status_code == 201
        detail = client.get(f"/api/tickets/{ticket_id}").json()

    kept = "煤气\x00味" if sql_backend == "sqlite" else "煤气\ufffd味"
    assert [n["text"] for n in detail["notes"]] == [kept]
    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            failed = db.scalars(
                select(AuditEntry.actor).where(AuditEntry.action == "auth.login_failed")
            ).all()
    finally:
        engine.dispose()
    assert failed == ["adm\x00in1" if sql_backend == "sqlite" else "adm\ufffdin1"]


@on_sql_backends
def test_a_voice_message_from_an_overlong_caller_id_is_kept(engine):
    """SIP can send any caller id; the column holds 32 characters (PostgreSQL enforces it)."""
    config = callflow.flow_config(load_routing(REPO / "routing"))
    caller = "sip-user-with-a-very-long-name-0123456789"
    state, _ = callflow.start(config, callflow.CallFacts("95158", caller, now=0.0))
    state = replace(state, desk="repair", message="repair-1700000000.42", message_s=12.0)
    message = voice_messages.message_from(state, "1700000000.42", 1_700_000_000.0)
    assert message is not None

    voice_messages.save(engine, message)

    with Session(engine) as db:
        stored = db.scalars(select(VoiceMessage)).one()
    assert stored.caller == caller[:32] and stored.uniqueid == "1700000000.42"


@on_sql_backends
def test_a_recording_over_2_gib_keeps_its_size(engine):
    with Session(engine) as db:
        row = catalogue(db, linkedid="L-huge")
        row.size_bytes = 3 * 2**30  # 28 h of 8 kHz stereo: past PostgreSQL's int4
        db.commit()
        row_id = row.id
    with Session(engine) as db:
        assert db.scalar(select(Recording.size_bytes).where(Recording.id == row_id)) == 3 * 2**30


# --- searching ----------------------------------------------------------------------------------
def _random_numbers(rng: random.Random, count: int) -> list[str]:
    numbers = {"13800138000", "13800138999", "999", "1999", "8613800138000", "02087654000"}
    while len(numbers) < count:
        numbers.add("".join(rng.choice("0123456789") for _ in range(rng.randint(3, 13))))
    return sorted(numbers)


def _bulk_catalogue(engine: Engine, numbers: list[str]) -> None:
    rows = [
        {
            "linkedid": f"L-{i}",
            "uniqueid": f"L-{i}.1",
            "started_at": T0 - timedelta(minutes=i),
            "did": "95158",
            "caller": number,
            "caller_reversed": number[::-1],
            "desk": ("repair", "billing", "complaints", "consultation", "emergency")[i % 5],
        }
        for i, number in enumerate(numbers)
    ]
    with Session(engine) as db:
        db.execute(insert(Recording), rows)
        db.commit()


@on_sql_backends
def test_the_last_digits_search_finds_exactly_the_numbers_with_that_ending(engine):
    """The reversed-number range, under the database's own collation (zh-CN on PostgreSQL)."""
    numbers = _random_numbers(random.Random(5), 400)
    _bulk_catalogue(engine, numbers)
    with Session(engine) as db:
        for suffix in ["000", "999", "8000", "13800138000", "38999", "1999", "123", "090"]:
            wanted = build_filter(timezone="Asia/Shanghai", caller=suffix)
            result = catalog.search(db, wanted, offset=0, limit=500)
            found = sorted(row.caller for row in result.rows)
            assert found == [n for n in numbers if n.endswith(suffix)], suffix
            assert result.total == len(found)


@pytest.mark.parametrize("sql_backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        ({"caller": "8000"}, "ix_recordings_caller_reversed"),
        ({"caller": "8000", "start": "2026-01-01", "end": "2026-05-01", "desk": "repair"},
         "ix_recordings_caller_reversed"),
    ],
)  # fmt: skip
def test_postgresql_walks_the_index_of_the_leading_filter(engine, wanted, index):
    _bulk_catalogue(engine, _random_numbers(random.Random(7), 3000))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE recordings"))
        wanted_filter = build_filter(timezone="Asia/Shanghai", **wanted)
        for statement in (
            catalog.search_statement(wanted_filter, offset=0, limit=25),
            catalog.count_statement(wanted_filter),
        ):
            compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
            assert index in plan, plan


@on_sql_backends
def test_tickets_list_most_urgent_first_with_no_deadline_last_and_overdue_ones(engine):
    now = T0 + timedelta(days=1)
    with Session(engine) as db:
        for linkedid, priority, deadline, state in [
            ("no-deadline", 60, None, TicketState.awaiting_dispatch),
            ("later", 60, T0 + timedelta(days=2), TicketState.in_progress),
            ("overdue", 60, T0, TicketState.awaiting_dispatch),
            ("urgent", 100, T0 + timedelta(hours=30), TicketState.awaiting_dispatch),
            ("done-late", 60, T0 - timedelta(days=1), TicketState.done),
        ]:
            db.add(
                Ticket(linkedid=linkedid, caller="13800138000", priority=priority,
                       deadline_at=deadline, state=state, created_at=T0, updated_at=T0)
            )  # fmt: skip
        db.commit()

        def listed(**query: Any) -> list[str]:
            total, rows = tickets.search(db, tickets.TicketQuery(**query), now)
            assert total == (len(rows) if "limit" not in query else 5)
            return [t.linkedid for t in rows]

        assert listed() == ["urgent", "done-late", "overdue", "later", "no-deadline"]
        assert listed(overdue=True) == ["overdue"]
        assert listed(overdue=False) == ["urgent", "done-late", "later", "no-deadline"]
        open_states = frozenset(set(TicketState) - {TicketState.done})
        assert listed(states=open_states) == ["urgent", "overdue", "later", "no-deadline"]
        assert listed(limit=2, offset=3) == ["later", "no-deadline"]
