"""The ticket, satisfaction, follow-up and agent figures from SQL (ivr/adapters/sql/
ticket_figures.py)
on SQLite and PostgreSQL: the synthetic month's tickets stored as 工单 rows, its survey answers
as survey_answers rows, its agents' logins and QA reviews as the desk and /qa write them, give
the known answer of every figure, with the same tickets behind each number."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql.db import (
    Agent,
    AgentChange,
    Recording,
    Review,
    SurveyAnswer,
    Ticket,
)
from ivr.adapters.sql.ticket_figures import month_facts
from ivr.core import figures
from ivr.core.figures import AnswerSource, FollowUp, SatisfactionAnswer, TicketKind, Window
from ivr.settings import Settings
from tests import figures_month as m
from tests.pg_support import on_sql_backends

KEY_ACCOUNT = "031183000002"
DESK_OF = {TicketKind.consultation: "consultation", TicketKind.repair: "repair"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


def store_tickets(engine: Engine) -> None:
    """The synthetic month's tickets and survey answers, as the desk and the recorder store them
    (a 新装 has no field yet: ticket 15 is stored at the billing desk, as ``other``)."""
    survey = {a.ticket_id: a for a in m.ANSWERS if a.source is AnswerSource.survey}
    with Session(engine) as session:
        for t in m.TICKETS:
            session.add(
                Ticket(
                    id=t.id,
                    linkedid=f"t{t.id}",
                    desk=t.desk or DESK_OF.get(t.kind, "billing"),
                    caller=KEY_ACCOUNT if t.key_account else f"1380013{t.id:04d}",
                    agent=t.agent or None,
                    complaint=t.kind is TicketKind.complaint,
                    level=t.level,
                    created_at=t.opened_at,
                    deadline_at=t.deadline_at,
                    customer_reply_at=t.replied_at,
                    closed_at=t.closed_at,
                    department="repair" if t.kind is TicketKind.repair else None,
                )
            )
        for ticket_id, answer in survey.items():
            outcome = {True: "satisfied", False: "dissatisfied", None: "no answer"}
            session.add(
                SurveyAnswer(
                    linkedid=f"t{ticket_id}",
                    outcome=outcome[answer.satisfied],
                    call_ended_at=answer.asked_at,
                )
            )
        session.add(SurveyAnswer(linkedid="t3", outcome="caller hung up"))  # nothing asked
        session.commit()


def store_agents(engine: Engine) -> None:
    """1001 logged in for an hour on the 3rd (twice half an hour); reviews of its two calls
    (one corrected) and of 1002's."""
    at = m.MONTH.start + timedelta(days=2, hours=9)
    with Session(engine) as session:
        for work_number in ("1001", "1002"):
            session.add(Agent(work_number=work_number, name="x", sip_ha1="0" * 32, sip_realm="r"))
        session.flush()
        agent = session.query(Agent).filter_by(work_number="1001").one()
        for start in (at, at + timedelta(hours=2)):
            for action, when in (("login", start), ("logout", start + timedelta(minutes=30))):
                session.add(
                    AgentChange(agent_id=agent.id, at=when, actor="t", action=action, changes={})
                )
        scores = {"a60": (ZHANG_CALL, [50.0, 80.0]), "a605": (ZHANG_CALL, [90.0]),
                  "a10": ("1002 李四", [70.0])}  # fmt: skip
        for linkedid, (member, totals) in scores.items():
            recording = Recording(
                linkedid=linkedid, uniqueid=linkedid, started_at=at, did="1", caller="1",
                caller_reversed="1", agent=member,
            )  # fmt: skip
            session.add(recording)
            session.flush()
            previous: int | None = None
            for total in totals:
                review = Review(
                    recording_id=recording.id, reviewer="qa", items={}, total=total,
                    corrects_id=previous,
                )  # fmt: skip
                session.add(review)
                session.flush()
                previous = review.id
        session.commit()


ZHANG_CALL = "1001 张三"


def follow_up_reader(
    engine: Engine, window: Window
) -> tuple[list[FollowUp], list[SatisfactionAnswer]]:
    """The synthetic month's follow-up calls, as the follow-up table will give them."""
    answers = [a for a in m.ANSWERS if a.source is AnswerSource.follow_up]
    return list(m.FOLLOW_UPS), answers


def repeat_reader(engine: Engine, window: Window) -> set[int]:
    """The repeat-complaint marks (ticket 8 on the month's last day, 9 the day after)."""
    return {t.id for t in m.TICKETS if t.repeat}


TICKET_FIGURES = [f.key for f in figures.FIGURES if f.family in ("tickets", "satisfaction")]
FOLLOW_UP_FIGURES = ["follow_up_complaints", "follow_up_repairs"]


@on_sql_backends
def test_every_ticket_figure_from_sql(engine: Engine) -> None:
    store_tickets(engine)
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT}, follow_up_reader, repeat_reader)
    values = figures.all_figures(facts, m.MONTH)
    for key in [*TICKET_FIGURES, *FOLLOW_UP_FIGURES, "answer_rate", "handle_mean"]:
        value, numerator, denominator = m.EXPECTED[key]
        assert values[key].value == pytest.approx(value), key
        assert values[key].numerator == numerator, key
        assert values[key].denominator == denominator, key
    # no ticket field says 新装 yet: the new-supply rate has nothing to divide by
    assert values["follow_up_new_supply"].value is None
    sources = values["complaint_satisfaction"].sources
    assert sources == {"5": "follow_up", "6": "follow_up", "8": "survey", "10": "follow_up"}


@on_sql_backends
def test_without_follow_up_data_the_follow_up_figures_are_empty(engine: Engine) -> None:
    store_tickets(engine)
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
    facts = month_facts(engine, m.MONTH, {KEY_ACCOUNT}, follow_up_reader)
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
