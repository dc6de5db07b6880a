"""Call facts in SQL (ivr/adapters/metrics/call_facts.py, ivr/adapters/sql/call_figures.py) on
SQLite and PostgreSQL: the synthetic month stored as the ami role stores it gives every call
figure, per desk and per agent, exactly as the pure functions do, with the same calls behind
each number; storing is idempotent per Linkedid; the writer survives SQL going away; and the
recompute from queue_log adds what SQL lacks and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ivr.adapters.metrics.call_facts import (
    CallFactsWriter,
    outcome_row,
    recompute,
    store_rows,
)
from ivr.adapters.sql.call_figures import CALL_FIGURES, call_figures, calls_of
from ivr.adapters.sql.db import CallFactRow
from ivr.core import figures
from ivr.core.metrics import CallUnknown
from ivr.settings import Settings
from tests import figures_month as m
from tests.pg_support import on_sql_backends


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


def store_month(engine: Engine) -> int:
    return store_rows(engine, [outcome_row(o) for o in m.classified_calls()])


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(CallFactRow)).scalar_one())


@on_sql_backends
def test_sql_figures_equal_the_pure_ones(engine: Engine) -> None:
    assert store_month(engine) == 12
    pure = figures.call_figures(m.call_facts(), m.MONTH)
    sql = call_figures(engine, m.MONTH)[""]
    for key in CALL_FIGURES:
        expected = m.EXPECTED[key]
        assert sql[key].value == pytest.approx(expected[0]), key
        assert sql[key].denominator == len(expected[2]), key
        if pure[key].numerator or key in ("answer_rate", "emergency_in_time"):
            assert sql[key].numerator == len(expected[1]), key
        assert calls_of(engine, m.MONTH, key, "denominator") == list(pure[key].denominator), key
        assert calls_of(engine, m.MONTH, key, "numerator") == list(pure[key].numerator), key


@on_sql_backends
def test_per_desk_and_per_agent_in_sql(engine: Engine) -> None:
    store_month(engine)
    facts = m.call_facts()
    for grouping, key in (("desk", lambda c: c.queue), ("agent", lambda c: c.work_number)):
        sql = call_figures(engine, m.MONTH, grouping=grouping)  # type: ignore[arg-type]
        groups = figures.group_by(facts, key)  # type: ignore[arg-type]
        pure = {g: figures.call_figures(calls, m.MONTH) for g, calls in groups.items()}
        pure = {g: v for g, v in pure.items() if any(c.counted_at in m.MONTH for c in groups[g])}
        assert set(sql) == set(pure)
        for group, values in pure.items():
            for name in CALL_FIGURES:
                assert sql[group][name].value == pytest.approx(values[name].value), (group, name)
            listed = calls_of(
                engine, m.MONTH, "offered", "denominator", grouping=grouping, group=group
            )  # type: ignore[arg-type]
            assert listed == list(values["offered"].denominator)
    assert call_figures(engine, m.MONTH, grouping="desk")["repair"]["answer_rate"].value == 0.25


@on_sql_backends
def test_storing_is_idempotent_per_linkedid(engine: Engine) -> None:
    store_month(engine)
    assert store_month(engine) == 0
    first = m.classified_calls()[0]
    assert store_rows(engine, [outcome_row(CallUnknown(first.linkedid, "repair", 1.0, "x"))]) == 0
    assert count(engine) == 12
    with engine.connect() as conn:
        klass = conn.execute(
            select(CallFactRow.klass).where(CallFactRow.linkedid == first.linkedid)
        ).scalar_one()
    assert klass == first.klass.value  # the first outcome stays, as in Redis


def test_an_empty_window_has_no_rate(engine: Engine) -> None:
    total = call_figures(engine, m.MONTH)[""]
    assert total["answer_rate"].value is None and total["offered"].value == 0.0
    assert total["wait_p90"].value is None


def test_the_writer_keeps_outcomes_while_sql_is_away(tmp_path: Path, engine: Engine) -> None:
    from ivr.adapters.sql.db import create_db_engine

    gone = create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    writer = CallFactsWriter(gone, buffer_max=11)
    writer.submit(m.classified_calls())  # 12 outcomes, room for 11
    assert writer.counters["facts_dropped"] == 1
    assert asyncio.run(writer.flush()) is False
    assert writer.pending == 11 and writer.counters["facts_errors"] == 1
    writer.engine = engine  # SQL is back
    assert asyncio.run(writer.flush()) is True
    assert writer.counters["facts_stored"] == 11 and count(engine) == 11
    gone.dispose()


def _queue_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@on_sql_backends
def test_recompute_adds_what_sql_lacks_and_says_so(tmp_path: Path, engine: Engine) -> None:
    store_rows(engine, [outcome_row(o) for o in m.classified_calls() if o.linkedid != "a10"])
    t = int(m.local(4)) + 5  # a10's queue entry
    e = int(m.local(6)) + 5  # ab30's
    log = _queue_log(
        tmp_path / "queue_log",
        [
            f"{t}|a10|billing|NONE|ENTERQUEUE||13800138000|1",
            f"{t + 10}|a10|billing|1002 李四|CONNECT|10|a10-agent|2",
            f"{t + 310}|a10|billing|1002 李四|COMPLETECALLER|10|300|1",
            f"{e}|ab30|billing|NONE|ENTERQUEUE||13800138000|1",
            f"{e + 30}|ab30|billing|NONE|EXITWITHTIMEOUT|1|1|30",  # stored as abandoned
        ],
    )
    config = m.CONFIG
    result = recompute(engine, log, m.MONTH, config)
    assert result.changed and result.added == ("a10",)
    assert [(d.linkedid, d.stored, d.queue_log) for d in result.disagree] == [
        ("ab30", "abandoned", "timed_out")
    ]
    sql = call_figures(engine, m.MONTH)[""]
    assert sql["answer_rate"].value == pytest.approx(0.4)  # a10 is back: the month as it was
    assert sql["handle_mean"].value == pytest.approx(120.0)
    again = recompute(engine, log, m.MONTH, config)
    assert not again.changed and again.stored_before == 11


@on_sql_backends
def test_recompute_classifies_an_unknown_outcome(tmp_path: Path, engine: Engine) -> None:
    start = m.local(5) + 5  # ab3's queue entry
    lost = CallUnknown("ab3", "repair", start + 4, "the start of the call was not seen")
    store_rows(engine, [outcome_row(lost)])
    log = _queue_log(
        tmp_path / "queue_log",
        [
            f"{int(start)}|ab3|repair|NONE|ENTERQUEUE||13800138000|1",
            f"{int(start) + 3}|ab3|repair|NONE|ABANDON|1|1|3",
        ],
    )
    result = recompute(engine, log, m.MONTH, m.CONFIG)
    assert result.changed and result.resolved == ("ab3",) and result.added == ()
    assert calls_of(engine, m.MONTH, "short_abandons", "denominator") == ["ab3"]
    assert not recompute(engine, log, m.MONTH, m.CONFIG).changed
