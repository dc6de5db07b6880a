"""GET /api/callbacks, /api/followups/worklist and /api/followups/flagged over HTTP: today's
abandoned callers (wait, when; gone once the number got through), the 30-minute share, the
worklist with overdue, the flagged tickets, and who may read them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql.db import (
    Agent,
    Followup,
    OutboundCall,
    Recording,
    Role,
    Ticket,
    TicketState,
    User,
)
from ivr.core.metrics import CallClass, CallClassified
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, add_staff, loopback_settings, sign_in, staff_engine

NOW = datetime.now(UTC)


def fact(
    linkedid: str, caller: str, klass: CallClass, minutes_ago: float, wait: float
) -> dict[str, Any]:
    left = (NOW - timedelta(minutes=minutes_ago)).timestamp()
    return outcome_row(
        CallClassified(linkedid, "repair", klass, wait, 60.0, left - wait, left, caller)
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        add_staff(engine, password_hash, [("agent1", Role.agent), ("dept1", Role.department)])
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_callbacks_list_today_with_wait_and_when_and_the_30_minute_share(
    client: TestClient, engine: Engine
) -> None:
    minutes = 1.0  # left the queue a minute ago: today (local), unless run at midnight
    store_rows(engine, [
        fact("gone", "13800138000", CallClass.ABANDONED, minutes, 75.0),
        fact("tout", "13900139000", CallClass.TIMED_OUT, minutes, 300.0),
        fact("back", "13700137000", CallClass.ABANDONED, minutes, 20.0),
        fact("back2", "13700137000", CallClass.ANSWERED, minutes / 2, 5.0),  # got through
    ])  # fmt: skip
    with Session(engine) as db:
        db.add(OutboundCall(channel_id="cb-1", purpose="callback", number="13800138000",
                            started_by="agent1", started_at=NOW))  # fmt: skip
        db.commit()
    sign_in(client, "agent1")
    response = client.get("/api/callbacks")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [(e["number"], e["class"], e["wait_s"], e["calls"]) for e in body["entries"]] == [
        ("13800138000", "abandoned", 75.0, 1), ("13900139000", "timed_out", 300.0, 1)
    ]  # fmt: skip
    assert body["called_back_within_30_min"] == {"called_back": 1, "owed": 2, "rate": 0.5}


def test_worklist_overdue_and_flagged_tickets(client: TestClient, engine: Engine) -> None:
    with Session(engine) as db:
        rec = Recording(linkedid="t1", uniqueid="t1", started_at=NOW, did="95158",
                        caller="13800138000", caller_reversed="x", file_name="t1.wav")  # fmt: skip
        db.add(rec)
        db.flush()
        ticket = Ticket(linkedid="t1", caller="13800138000", desk="repair", priority=60)
        db.add(ticket)
        db.flush()
        db.add_all([
            Followup(ticket_id=ticket.id, desk="repair", number="13800138000",
                     created_at=NOW - timedelta(hours=30), status="worklist", attempts=3,
                     worklist_reason="attempts exhausted", last_result="busy", in_flight=False,
                     flagged=False),
            Followup(ticket_id=ticket.id, desk="repair", number="13800138000",
                     created_at=NOW - timedelta(hours=2), status="finished", attempts=1,
                     in_flight=False, flagged=True, resolved=False),
        ])  # fmt: skip
        db.commit()
    sign_in(client, "agent1")
    items = client.get("/api/followups/worklist").json()["items"]
    assert [(i["reason"], i["overdue"], i["attempts"]) for i in items] == [
        ("attempts exhausted", True, 3)
    ]
    assert client.get("/api/followups/flagged").status_code == 403  # supervisors only
    sign_in(client, "sup1")
    flagged = client.get("/api/followups/flagged").json()["tickets"]
    assert [(t["state"], t["priority"]) for t in flagged] == [("待派单", 60)]


@pytest.mark.parametrize("path", ["/api/callbacks", "/api/followups/worklist"])
def test_who_may_read(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    for user in ("qa1", "dept1"):
        sign_in(client, user)
        assert client.get(path).status_code == 403, user


def test_the_desk_loads_the_worklist_part_which_renders_text_only(
    client: TestClient, engine: Engine
) -> None:
    with Session(engine) as db:
        agent1 = db.scalar(select(User).where(User.username == "agent1"))
        assert agent1 is not None
        db.add(Agent(work_number="1001", name="张三", sip_ha1="0" * 32, sip_realm="hotline",
                     user_id=agent1.id))  # fmt: skip
        db.commit()
    sign_in(client, "agent1")
    page = client.get("/agent").text
    assert '<script src="/static/agent-worklist.js" defer>' in page
    assert '<section id="worklist"' in page
    script = client.get("/static/agent-worklist.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text and "/api/agent/outbound-calls" in script.text


def test_an_agent_call_with_a_bad_body_or_an_unlisted_number_is_refused(
    client: TestClient, engine: Engine
) -> None:
    with Session(engine) as db:
        agent1 = db.scalar(select(User).where(User.username == "agent1"))
        assert agent1 is not None
        db.add(Agent(work_number="1001", name="张三", sip_ha1="0" * 32, sip_realm="hotline",
                     user_id=agent1.id))  # fmt: skip
        db.commit()
    sign_in(client, "agent1")
    both = client.post("/api/agent/outbound-calls", json={"number": "1", "followup_id": 1},
                       headers=ORIGIN)  # fmt: skip
    assert (both.status_code, both.json()["error"]) == (422, "invalid-outbound-call")
    extra = client.post("/api/agent/outbound-calls", json={"number": "1", "x": 1}, headers=ORIGIN)
    assert extra.status_code == 422
    unlisted = client.post("/api/agent/outbound-calls", json={"number": "13800138000"},
                           headers=ORIGIN)  # fmt: skip
    assert (unlisted.status_code, unlisted.json()["error"]) == (409, "outbound-call-refused")
    assert "not a number of the worklist" in unlisted.json()["message"]
    with Session(engine) as db:
        assert db.scalars(select(OutboundCall)).all() == []


def test_the_supervisor_page_shows_the_flagged_tickets_and_the_30_minute_share(
    client: TestClient,
) -> None:
    sign_in(client, "sup1")
    page = client.get("/supervisor").text
    assert 'id="flagged-list"' in page and 'id="callback-share-value"' in page
    script = client.get("/static/supervisor.js").text
    assert "/api/followups/flagged" in script and "called_back_within_30_min" in script
    assert client.get("/api/callbacks").status_code == 200  # supervisors read the share


def test_the_agent_enters_what_the_customer_said_on_a_worklist_call(
    client: TestClient, engine: Engine
) -> None:
    with Session(engine) as db:
        agent1 = db.scalar(select(User).where(User.username == "agent1"))
        assert agent1 is not None
        db.add(Agent(work_number="1001", name="张三", sip_ha1="0" * 32, sip_realm="hotline",
                     user_id=agent1.id))  # fmt: skip
        ticket = Ticket(linkedid="r1", caller="13800138000", desk="repair", priority=40,
                        state=TicketState.done)  # fmt: skip
        db.add(ticket)
        db.flush()
        row = Followup(ticket_id=ticket.id, desk="repair", number="13800138000", created_at=NOW,
                       status="worklist", attempts=3, in_flight=False, flagged=False)  # fmt: skip
        db.add(row)
        db.flush()
        mine = OutboundCall(channel_id="agentcall-1", purpose="followup", number="13800138000",
                            ticket_id=ticket.id, followup_id=row.id, started_by="agent1",
                            started_at=NOW, device="PJSIP/1001")  # fmt: skip
        theirs = OutboundCall(channel_id="agentcall-2", purpose="followup", number="13800138000",
                              ticket_id=ticket.id, followup_id=row.id, started_by="agent2",
                              started_at=NOW, device="PJSIP/1002")  # fmt: skip
        db.add_all([mine, theirs])
        db.commit()
        ids, ticket_id = (mine.id, theirs.id), ticket.id
    sign_in(client, "agent1")
    url = "/api/agent/outbound-calls/{}/result"
    other = client.post(url.format(ids[1]), json={"outcome": "resolved"}, headers=ORIGIN)
    assert (other.status_code, other.json()["error"]) == (404, "followup-not-found")
    bad = client.post(url.format(ids[0]), json={"outcome": "maybe"}, headers=ORIGIN)
    assert bad.status_code == 422
    answer = {"outcome": "not resolved", "satisfaction": "dissatisfied"}
    said = client.post(url.format(ids[0]), json=answer, headers=ORIGIN)
    assert said.status_code == 200, said.text
    assert said.json() | {"followup_id": 0} == {
        "followup_id": 0, "status": "finished", "resolved": False,
        "satisfaction": "dissatisfied", "flagged": True,
    }  # fmt: skip
    with Session(engine) as db:
        reopened = db.get(Ticket, ticket_id)
        assert reopened is not None
        assert (reopened.state, reopened.priority) == (TicketState.in_progress, 60)
    again = client.post(url.format(ids[0]), json={"outcome": "resolved"}, headers=ORIGIN)
    assert again.status_code == 404  # no longer on the worklist
