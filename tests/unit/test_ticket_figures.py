"""The ticket, satisfaction, follow-up and agent figures from SQL (ivr/adapters/sql/
ticket_figures.py)
on SQLite and PostgreSQL: the synthetic month's tickets stored as 工单 rows, its survey answers
as survey_answers rows, its agents' logins and QA reviews as the desk and /qa write them, give
the known answer of every figure, with the same tickets behind each number."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql.db import Followup
from ivr.adapters.sql.report_figures import items_of, report_figures
from ivr.adapters.sql.ticket_figures import month_facts
from ivr.core import figures
from ivr.core.figures import AnswerSource, Window
from ivr.core.report_tables import figures_by, follow_up_summary
from ivr.settings import Settings
from tests import figures_month as m
from tests.figures_month_sql import (
    KEY_ACCOUNT,
    repeat_reader,
    store_agents,
    store_tickets,
)
from tests.pg_support import on_sql_backends


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


TICKET_FIGURES = [
    f.key for f in figures.FIGURES if f.family in ("tickets", "satisfaction", "follow_up")
]


@on_sql_backends
def test_every_ticket_figure_from_sql(engine: Engine) -> None:
    store_tickets(engine)
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT}, repeats=repeat_reader)
    values = figures.all_figures(facts, m.MONTH)
    for key in [*TICKET_FIGURES, "answer_rate", "handle_mean"]:
        value, numerator, denominator = m.EXPECTED[key]
        assert values[key].value == pytest.approx(value), key
        assert values[key].numerator == numerator, key
        assert values[key].denominator == denominator, key
    sources = values["complaint_satisfaction"].sources
    assert sources == {"5": "follow_up", "6": "follow_up", "8": "survey", "10": "follow_up"}


@on_sql_backends
def test_the_follow_ups_from_sql(engine: Engine) -> None:
    """The followups rows read back as the month's follow-ups (reached, not resolved, never
    reached, refused) and their satisfaction answers; the report counts them."""
    store_tickets(engine)
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT})
    assert facts.follow_ups == m.FOLLOW_UPS
    assert [a for a in facts.answers if a.source is AnswerSource.follow_up] == [
        a for a in m.ANSWERS if a.source is AnswerSource.follow_up
    ]
    records = figures.follow_up_records(facts.tickets, facts.follow_ups, facts.answers, m.MONTH)
    assert follow_up_summary(records) == m.FOLLOW_UP_SUMMARY
    # ticket 15 is a 报装 dispatched to the installation department: a new-supply case
    assert {t.id: t.kind for t in facts.tickets}[15] is figures.TicketKind.new_supply
    # December's window reads none of November's tickets' follow-ups
    december = Window(m.MONTH.end, m.MONTH.end + timedelta(days=31))
    assert month_facts(engine, december, set()).follow_ups == []


@on_sql_backends
def test_without_stored_marks_and_follow_ups(engine: Engine) -> None:
    store_tickets(engine)
    with Session(engine) as session:
        session.execute(delete(Followup))
        session.commit()
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT})
    assert facts.follow_ups == []
    values = figures.all_figures(facts, m.MONTH)
    assert values["follow_up_complaints"].numerator == ()
    assert values["follow_up_complaints"].value == 0.0
    # no repeat-complaint link stored: every complaint reads as not a repeat
    assert values["repeat_complaint_rate"].numerator == ()
    assert len(values["repeat_complaint_rate"].denominator) == 6
    # the survey alone: ticket 5's survey said satisfied (its follow-up would have said not)
    assert values["complaint_satisfaction"].numerator == ("5", "8")


@on_sql_backends
def test_per_desk_agent_and_department(engine: Engine) -> None:
    store_tickets(engine)
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT})
    by_desk = figures.ticket_groups(facts, m.MONTH, lambda t: t.desk)
    assert set(by_desk) == {"billing", "complaints", "consultation", "repair"}
    assert by_desk["complaints"]["complaint_reply_timely_rate"].numerator == ("5",)
    assert by_desk["complaints"]["complaint_reply_timely_rate"].denominator == ("5", "6", "7")
    by_agent = figures.ticket_groups(facts, m.MONTH, lambda t: t.agent)
    assert by_agent["1002"]["complaint_reply_rate"].numerator == ("5", "6")
    by_department = figures.ticket_groups(facts, m.MONTH, lambda t: t.department)
    assert by_department["repair"]["follow_up_repairs"].value == 0.5


@on_sql_backends
def test_occupancy_and_qa_from_sql(engine: Engine) -> None:
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    store_agents(engine)
    facts = month_facts(engine, m.MONTH, set())
    agents = figures.agent_groups(facts, m.MONTH)
    assert agents["1001"]["occupancy"].value == pytest.approx(180.0 / 3600.0)
    assert agents["1001"]["occupancy"].numerator == ("a60", "a605")
    assert agents["1001"]["qa_average"].value == pytest.approx(85.0)  # 80 (corrected 50), 90
    assert agents["1002"]["qa_average"].value == pytest.approx(70.0)
    assert agents["1002"]["occupancy"].value is None  # no login recorded
    # December: 1002's call just after midnight; 1001 logged out in November, no shift
    december = Window(m.MONTH.end, m.MONTH.end + timedelta(days=31))
    assert list(figures.agent_groups(month_facts(engine, december, set()), december)) == ["1002"]


@on_sql_backends
def test_the_report_s_counts_equal_the_pure_figures(engine: Engine) -> None:
    """The page's numbers (calls counted in SQL, the rest by the core) are the pure functions'
    over every fact, in total and per desk, agent and department; and so are its lists."""
    store_tickets(engine)
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    store_agents(engine)
    readers = {"repeats": repeat_reader}
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT}, repeats=repeat_reader)
    config = figures.DEFAULT_CONFIG
    for by in ("total", "desk", "agent", "department"):
        pure = figures_by(facts, m.MONTH, config, by)
        counted, _ = report_figures(engine, m.MONTH, config, {KEY_ACCOUNT}, by, **readers)
        assert set(counted) == set(pure), by
        for group, values in pure.items():
            for key, value in values.items():
                got = counted[group][key]
                assert got.value == pytest.approx(value.value), (by, group, key)
                if got.numerator is not None:
                    assert got.numerator == len(value.numerator), (by, group, key)
                parts = ("numerator", "denominator") if got.numerator is not None else ()
                if key == "occupancy":
                    parts = ("numerator",)
                for part in parts or ("denominator",):
                    items = items_of(engine, m.MONTH, config, {KEY_ACCOUNT}, key, part, by, group,
                                     **readers)  # fmt: skip
                    assert items is not None, (by, group, key, part)
                    expected = value.numerator if part == "numerator" else value.denominator
                    assert items[0] == list(expected), (by, group, key, part)
