"""The QA search: filter normalisation (pure) and the SQL it becomes, on a real SQLite file
and a real PostgreSQL server (the query plans: SQLite's here, PostgreSQL's in
tests/integration/test_postgres.py).

Also the replay audit rule (a replay per start, seeks covered) and the admins' audit filter.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.recordings import query as catalog
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.db import AuditEntry, RecordingStatus, Role, User
from ivr.core.recording_search import (
    InvalidSearch,
    SearchFilter,
    build_filter,
    caller_digits,
    page_count,
    reversed_prefix_range,
    time_bounds,
)
from tests.pg_support import SQL_BACKENDS
from tests.qa_support import add_transcript, catalogue

ZONE = "Asia/Shanghai"
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


# --- pure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "digits"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "8613800138000"),
        ("(010) 8765.4321", "01087654321"),
        ("000", "000"),
    ],
)
def test_given_a_number_or_its_last_digits_then_plain_digits(given, digits):
    assert caller_digits(given) == digits


@pytest.mark.parametrize(
    "given", ["12", "1" * 33, "../../etc/passwd", "/etc/passwd", "138%", "138_", "١٢٣٤", "abc"]
)
def test_given_not_a_number_then_invalid_search(given):
    with pytest.raises(InvalidSearch) as caught:
        caller_digits(given)
    assert caught.value.status == 422
    assert caught.value.details == {"field": "caller"}


@pytest.mark.parametrize(
    ("digits", "low", "high"),
    [
        ("8000", "0008", "0009"),
        ("1234", "4321", "4322"),
        ("1239", "9321", "9322"),
        ("9123", "3219", "322"),
        ("123", "321", "322"),
        ("899", "998", "999"),
        ("999", "999", None),
        ("9990", "0999", "1"),
    ],
)
def test_reversed_prefix_range_brackets_exactly_the_numbers_with_that_ending(digits, low, high):
    assert reversed_prefix_range(digits) == (low, high)


def test_reversed_prefix_range_agrees_with_endswith_on_random_numbers():
    rng = random.Random(5)
    numbers = [
        "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 13))) for _ in range(3000)
    ]
    numbers += ["+8613800138000", "13800138999", "999", "1999"]
    for suffix in ["000", "999", "8000", "99", "0", "13800138000", "38999", "1999"]:
        low, high = reversed_prefix_range(suffix)
        by_range = {n for n in numbers if n[::-1] >= low and (high is None or n[::-1] < high)}
        assert by_range == {n for n in numbers if n.endswith(suffix)}, suffix


def test_time_bounds_read_dates_as_whole_local_days_and_times_as_local():
    low, high = time_bounds("2026-05-01", "2026-05-02", ZONE)
    assert low == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert high == datetime(2026, 5, 2, 16, 0, tzinfo=UTC)  # to includes all of May 2nd
    low, high = time_bounds("2026-05-01T08:30", "2026-05-01T09:00:00+00:00", ZONE)
    assert low == datetime(2026, 5, 1, 0, 30, tzinfo=UTC)
    assert high == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert time_bounds(None, None, ZONE) == (None, None)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-05-02", "2026-05-01"), ("yesterday", None), (None, "2026-13-01"), ("../..", None)],
)
def test_time_bounds_refuse_nonsense(start, end):
    with pytest.raises(InvalidSearch):
        time_bounds(start, end, ZONE)


def test_build_filter_drops_empty_values_and_checks_durations():
    wanted = build_filter(timezone=ZONE, caller=" ", desk="  repair ", agent="", status="")
    assert wanted == SearchFilter(desk="repair")
    with pytest.raises(InvalidSearch):
        build_filter(timezone=ZONE, min_duration_s=10, max_duration_s=5)
    with pytest.raises(InvalidSearch):
        build_filter(timezone=ZONE, min_duration_s=float("nan"))


def test_page_count():
    assert [page_count(n, 25) for n in (0, 1, 25, 26, 100_000)] == [0, 1, 1, 2, 4000]


# --- the SQL, on SQLite and PostgreSQL ----------------------------------------------------------
@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = sql.create_db_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def catalog_rows(engine: Engine) -> dict[str, int]:
    """Six calls over two local days; returns their ids by name."""
    ids: dict[str, int] = {}
    with Session(engine) as db:
        rows = {
            "a": {
                "caller": "13800138000",
                "desk": "repair",
                "queue": "repair",
                "agent": "a1",
                "duration_s": 30.0,
                "started_at": T0,
            },
            "b": {
                "caller": "+8613900139000",
                "desk": "repair",
                "queue": "repair",
                "agent": "a2",
                "duration_s": 300.0,
                "started_at": T0 + timedelta(hours=1),
            },
            "c": {
                "caller": "13700137999",
                "desk": "billing",
                "queue": "billing",
                "agent": "a1",
                "duration_s": 61.0,
                "started_at": T0 + timedelta(days=1),
                "direction": "outbound",  # an agent called the customer back
            },
            "d": {
                "caller": "110",
                "desk": "emergency",
                "queue": "emergency",
                "agent": "a3",
                "duration_s": 5.0,
                "emergency": True,
                "started_at": T0 + timedelta(hours=2),
            },
            "e": {
                "caller": "13800138001",
                "desk": "repair",
                "queue": "repair",
                "agent": None,
                "duration_s": None,
                "status": RecordingStatus.corrupt,
                "started_at": T0 + timedelta(hours=3),
            },
            "f": {
                "caller": "02087654000",
                "desk": "consultation",
                "queue": "consultation",
                "agent": "a2",
                "duration_s": 120.0,
                "status": RecordingStatus.deleted,
                "started_at": T0 - timedelta(hours=9),
            },  # 23:00 on April 30th, local
        }
        for name, fields in rows.items():
            ids[name] = catalogue(db, linkedid=f"L-{name}", **fields).id
        add_transcript(db, db.get(sql.Recording, ids["b"]), [("hello", 0.1, 0.5)])
        db.commit()
    return ids


def found(
    engine: Engine, ids: dict[str, int], *, offset: int = 0, limit: int = 50, **wanted: object
) -> tuple[list[str], int]:
    names = {v: k for k, v in ids.items()}
    with Session(engine) as db:
        result = catalog.search(
            db, build_filter(timezone=ZONE, **wanted), offset=offset, limit=limit
        )
    return [names[row.id] for row in result.rows], result.total


@pytest.mark.parametrize(
    ("wanted", "names"),
    [
        ({}, ["c", "e", "d", "b", "a", "f"]),
        ({"caller": "13800138000"}, ["a"]),
        ({"caller": "9000"}, ["b"]),  # last digits of a +86 number
        ({"caller": "000"}, ["b", "a", "f"]),
        ({"caller": "+86 139 0013 9000"}, ["b"]),
        ({"caller": "999"}, ["c"]),
        ({"caller": "110"}, ["d"]),
        ({"desk": "repair"}, ["e", "b", "a"]),
        ({"queue": "billing"}, ["c"]),
        ({"agent": "a1"}, ["c", "a"]),
        ({"min_duration_s": 60}, ["c", "b", "f"]),
        ({"max_duration_s": 30}, ["d", "a"]),
        ({"min_duration_s": 30, "max_duration_s": 61}, ["c", "a"]),
        ({"has_transcript": True}, ["b"]),
        ({"has_transcript": False}, ["c", "e", "d", "a", "f"]),
        ({"emergency": True}, ["d"]),
        ({"emergency": False}, ["c", "e", "b", "a", "f"]),
        ({"status": "corrupt"}, ["e"]),
        ({"direction": "outbound"}, ["c"]),
        ({"direction": "inbound"}, ["e", "d", "b", "a", "f"]),
        ({"start": "2026-05-01", "end": "2026-05-01"}, ["e", "d", "b", "a"]),
        ({"start": "2026-04-30", "end": "2026-04-30"}, ["f"]),
        ({"start": "2026-05-02"}, ["c"]),
        ({"end": "2026-05-01T09:00"}, ["a", "f"]),  # to is exclusive: b began at 09:00
        ({"end": "2026-05-01T09:00:01"}, ["b", "a", "f"]),
        ({"desk": "repair", "caller": "8000", "agent": "a1"}, ["a"]),
        ({"desk": "../../etc"}, []),
    ],
)
def test_given_filters_when_searching_then_exactly_the_matching_calls_newest_first(
    engine, catalog_rows, wanted, names
):
    assert found(engine, catalog_rows, **wanted) == (names, len(names))


def test_given_pages_then_each_page_in_order_and_the_total_of_all(engine, catalog_rows):
    pages = [found(engine, catalog_rows, offset=o, limit=4) for o in (0, 4, 8)]
    assert pages == [(["c", "e", "d", "b"], 6), (["a", "f"], 6), ([], 6)]


def test_review_counts_per_call(engine, catalog_rows):
    with Session(engine) as db:
        reviewer = User(username="qa1", password_hash="x", role=Role.qa)
        db.add(reviewer)
        db.flush()
        for _ in range(2):
            db.add(
                sql.Review(
                    recording_id=catalog_rows["a"],
                    reviewer_id=reviewer.id,
                    reviewer="qa1",
                    items={},
                    total=1.0,
                )
            )
        db.commit()
        counts = catalog.review_counts(db, [catalog_rows["a"], catalog_rows["b"]])
    assert counts == {catalog_rows["a"]: 2}


def plan_of(engine: Engine, statement: Any) -> str:
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        return "; ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )


def test_the_last_digits_search_is_a_range_on_the_reversed_number(engine):
    statement = catalog.search_statement(
        build_filter(timezone=ZONE, caller="8000"), offset=0, limit=25
    )
    compiled = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    assert "caller_reversed >= '0008'" in compiled
    assert "caller_reversed < '0009'" in compiled


@pytest.mark.parametrize("sql_backend", ["sqlite"], indirect=True)  # SQLite's EXPLAIN
@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        ({"caller": "8000"}, "ix_recordings_caller_reversed"),
        # a month and a desk: still the caller's digits (SQLite alone would take the month)
        (
            {"caller": "8000", "start": "2026-02-01", "end": "2026-02-28", "desk": "repair"},
            "ix_recordings_caller_reversed",
        ),
        # a week of one desk: the week (SQLite alone would take the desk: a fifth of all calls)
        (
            {"desk": "complaints", "start": "2026-04-01", "end": "2026-04-07"},
            "(started_at>? AND started_at<?)",
        ),
        ({"agent": "a1", "emergency": True, "start": "2026-04-01"}, "(started_at>?)"),
        ({"agent": "a1"}, "ix_recordings_agent"),  # nothing leads: the planner's choice
    ],
)
def test_the_selective_filter_leads_the_query_plan(engine, wanted, index):
    wanted_filter = build_filter(timezone=ZONE, **wanted)
    for statement in (
        catalog.search_statement(wanted_filter, offset=0, limit=25),
        catalog.count_statement(wanted_filter),
    ):
        plan = plan_of(engine, statement)
        assert index in plan, plan


# --- the replay audit rule ----------------------------------------------------------------------
def test_replays_are_audited_once_per_start_and_seeks_are_covered(engine, catalog_rows):
    rec = catalog_rows["a"]
    with Session(engine) as db:
        qa1 = User(username="qa1", password_hash="x", role=Role.qa)
        qa2 = User(username="qa2", password_hash="x", role=Role.qa)
        db.add_all([qa1, qa2])
        db.flush()

        def replay(user: User, at: float, *, start: bool) -> bool:
            added = catalog.audit_replay(
                db, user, rec, starts_replay=start, ip="127.0.0.1", now=T0 + timedelta(seconds=at)
            )
            db.flush()
            return added

        outcomes = [
            replay(qa1, 0, start=True),  # plays
            replay(qa1, 1, start=True),  # the browser's second request for the same start
            replay(qa1, 30, start=False),  # seeks
            replay(qa1, 3000, start=False),
            replay(qa2, 40, start=False),  # a seek with no replay of qa2's own: audited
            replay(qa1, 60, start=True),  # plays again from the start
            replay(qa1, 60 + 3600 + 1, start=False),  # a seek long after: audited
        ]
        rows = db.scalars(select(AuditEntry).order_by(AuditEntry.at)).all()
    assert outcomes == [True, False, False, False, True, True, True]
    assert [(r.actor, r.action, r.target, r.ip) for r in rows] == [
        ("qa1", "recording.replay", f"recording:{rec}", "127.0.0.1"),
        ("qa2", "recording.replay", f"recording:{rec}", "127.0.0.1"),
        ("qa1", "recording.replay", f"recording:{rec}", "127.0.0.1"),
        ("qa1", "recording.replay", f"recording:{rec}", "127.0.0.1"),
    ]


def test_audit_filter_exact_and_prefix(engine):
    with Session(engine) as db:
        for action, target in [
            ("recording.replay", "recording:1"),
            ("recording.download.mp3", "recording:1"),
            ("recording.replay", "recording:12"),
            ("auth.login", None),
            ("recording_x", "recording:1"),
        ]:
            sql.audit(db, None, action, target=target, actor="someone")
        db.commit()

        def actions(**wanted: str) -> list[tuple[str, str | None]]:
            rows, total = catalog.list_audit(db, catalog.AuditFilter(**wanted), offset=0, limit=10)
            assert total == len(rows)
            return [(r.action, r.target) for r in reversed(rows)]

        assert [a for a, _ in actions(action="recording.")] == [
            "recording.replay",
            "recording.download.mp3",
            "recording.replay",
        ]
        assert actions(action="recording.replay", target="recording:1") == [
            ("recording.replay", "recording:1")
        ]
        assert len(actions(target="recording:")) == 4
        assert actions(action="recording%") == []  # no wildcards
        assert len(actions(actor="someone")) == 5
        assert actions(actor="nobody") == []
