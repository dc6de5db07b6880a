"""The synthetic month (tests/figures_month.py) stored in SQL as the hotline stores it: its
tickets as 工单 rows, its survey answers as survey_answers rows, its follow-ups as followups
rows (as ivr/adapters/sql/followups.py leaves them), its agents' logins and QA reviews; and
a repeat reader (the marks without the repeat links)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import (
    Agent,
    AgentChange,
    Followup,
    Recording,
    Review,
    SurveyAnswer,
    Ticket,
)
from ivr.core.figures import AnswerSource, TicketKind, Window
from tests import figures_month as m

KEY_ACCOUNT = "031183000002"
DEPARTMENT_OF = {
    TicketKind.repair: "repair",
    TicketKind.complaint: "customer-service",
    TicketKind.new_supply: "installation",
}
CATEGORY_OF = {
    TicketKind.repair: "gas",
    TicketKind.complaint: "service",
    TicketKind.new_supply: "new-supply",
}
DESK_OF = {TicketKind.consultation: "consultation", TicketKind.repair: "repair"}
SATISFACTION = {True: "satisfied", False: "dissatisfied", None: None}


def store_tickets(engine: Engine) -> None:
    """The synthetic month's tickets, survey answers and follow-ups, as the desk, the recorder
    and the follow-up role store them (the 新装, ticket 15, at the billing desk, dispatched to
    the installation department with the problem type 报装)."""
    survey = {a.ticket_id: a for a in m.ANSWERS if a.source is AnswerSource.survey}
    said = {a.ticket_id: a for a in m.ANSWERS if a.source is AnswerSource.follow_up}
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
                    department=DEPARTMENT_OF.get(t.kind),
                    problem_category=CATEGORY_OF.get(t.kind),
                    outcome="dispatched" if t.kind is TicketKind.new_supply else None,
                )
            )
        session.flush()
        for f in m.FOLLOW_UPS:
            answer = said.get(f.ticket_id)
            result = "answered" if f.reached else ("refused" if f.refused else "no answer")
            session.add(
                Followup(
                    ticket_id=f.ticket_id, number=f"1380013{f.ticket_id:04d}",
                    created_at=f.at - timedelta(days=1), status="finished", attempts=f.attempts,
                    last_attempt_at=f.at, last_result=result, resolved=f.resolved,
                    satisfaction=SATISFACTION[answer.satisfied] if answer else None,
                )
            )  # fmt: skip
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


def repeat_reader(engine: Engine, window: Window) -> set[int]:
    """The repeat-complaint marks (ticket 8 on the month's last day, 9 the day after)."""
    return {t.id for t in m.TICKETS if t.repeat}
