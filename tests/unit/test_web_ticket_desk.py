"""The 工单 at the agent desk, in the departments and back at the hotline, over HTTP
(FastAPI's TestClient on a real SQLite file), and the ticket of a call opened when its agent
connects, which the recorder's catalog row then joins."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import ticket_desk, tickets
from ivr.adapters.sql.db import AuditEntry, Recording, Role, Ticket, TicketState, User
from ivr.adapters.sql.ticket_figures import stored_repeats
from ivr.core.agents import DeskAssignment
from ivr.core.figures import month_window
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, loopback_settings, sign_in, staff_engine

PEOPLE = (
    ("qa1", Role.qa), ("sup1", Role.supervisor), ("agent1", Role.agent), ("agent2", Role.agent),
    ("dep1", Role.department), ("dep2", Role.department), ("dep3", Role.department),
)  # fmt: skip
CALLER = "13800138001"
RECORD: dict[str, Any] = {
    "surname": "王",
    "title": "女士",
    "contact_number": "13800138009",
    "contact_confirmed": True,
    "estate": "幸福小区",
    "building": "3",
    "unit": "2",
    "room": "501",
    "account": "11012345",
    "category": "gas",
    "subcategory": "smell",
    "happened_at": "2026-12-06T09:30",
    "place": "indoors",
    "description": "<script>alert('x')</script> 厨房有燃气味",
    "urgency": "urgent",
    "complaint": True,
    "level": "L2",
    "outcome": "dispatched",
    "department": "repair",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash, PEOPLE) as engine:
        with Session(engine) as db:
            for number, name, user in (("1001", "张三", "agent1"), ("1002", "李四", "agent2")):
                agent_store.add(
                    db, number, name, [DeskAssignment("repair", 0)], frozenset({"repair"}),
                    "hotline", agent_store.Actor("test"), user=user,
                )  # fmt: skip
            for username, departments in (("dep1", ["repair"]), ("dep2", ["repair"]),
                                          ("dep3", ["billing", "heating"])):  # fmt: skip
                user = db.scalars(select(User).where(User.username == username)).one()
                ticket_desk.set_departments(db, user, departments)
            db.commit()
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers.update(ORIGIN)
        yield client


_serial = iter(range(1, 1_000_000))


def connect(engine: Engine, settings: Settings, work_number: str = "1001") -> tuple[int, str]:
    """What the ami role does on AgentConnect: the call's ticket, owned by the agent."""
    linkedid = f"1765000000.{next(_serial)}"
    with Session(engine) as db:
        ticket = ticket_desk.open_at_connect(
            db, linkedid=linkedid, work_number=work_number, desk="repair", emergency=False,
            caller=CALLER, connected_at=datetime.now(UTC), settings=settings,
        )  # fmt: skip
        db.commit()
        return ticket.id, linkedid


def catalogue(engine: Engine, settings: Settings, linkedid: str) -> int | None:
    """What the recorder does after the hang-up: the recording row and the call's ticket."""
    with Session(engine) as db:
        rec = Recording(
            linkedid=linkedid, uniqueid=linkedid,
            started_at=datetime.now(UTC) - timedelta(minutes=2),
            did="95158", caller=CALLER, caller_reversed=CALLER[::-1], desk="repair",
            category="repair", agent="1001 张三", account="11099999",
        )  # fmt: skip
        db.add(rec)
        db.flush()
        ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
        db.commit()
        return ticket.id if ticket is not None else None


def stored(engine: Engine, ticket_id: int) -> Ticket:
    with Session(engine, expire_on_commit=False) as db:
        ticket = db.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


def actions(engine: Engine) -> list[str]:
    with Session(engine) as db:
        return [a.action for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# --- the ticket of the call -------------------------------------------------------------------
def test_the_agent_who_connects_owns_the_ticket_and_the_recording_joins_it(engine, settings):
    ticket_id, linkedid = connect(engine, settings)
    assert catalogue(engine, settings, linkedid) == ticket_id
    ticket = stored(engine, ticket_id)
    assert (ticket.agent, ticket.desk, ticket.caller, ticket.contact_number) == (
        "1001", "repair", CALLER, CALLER,
    )  # fmt: skip
    assert ticket.recording_id is not None
    assert ticket.account == "11099999"  # the recorder fills in what the connect did not know
    with Session(engine) as db:
        started = db.scalars(select(Recording.started_at)).one()
    assert ticket.created_at == started  # the call came in before its agent connected
    assert ticket.deadline_at == started + timedelta(hours=48)  # repair: L2, from then
    with Session(engine) as db:
        assert len(db.scalars(select(Ticket)).all()) == 1


def test_when_the_recorder_came_first_the_agent_claims_its_ticket(engine, settings):
    linkedid = "1765000000.999"
    first = catalogue(engine, settings, linkedid)
    with Session(engine) as db:
        claimed = ticket_desk.open_at_connect(
            db, linkedid=linkedid, work_number="1001", desk="repair", emergency=False,
            caller=CALLER, connected_at=datetime.now(UTC), settings=settings,
        )  # fmt: skip
        db.commit()
        assert (claimed.id, claimed.agent) == (first, "1001")


def test_a_transferred_call_keeps_its_first_agent_as_owner(engine, settings):
    ticket_id, linkedid = connect(engine, settings, "1001")
    with Session(engine) as db:
        again = ticket_desk.open_at_connect(
            db, linkedid=linkedid, work_number="1002", desk="billing", emergency=False,
            caller=CALLER, connected_at=datetime.now(UTC), settings=settings,
        )  # fmt: skip
        db.commit()
        assert (again.id, again.agent) == (ticket_id, "1001")


# --- the agent's form -------------------------------------------------------------------------
def test_the_form_offers_the_routings_problem_types_and_departments(client):
    sign_in(client, "agent1")
    doc = client.get("/api/ticket-form").json()
    assert {d["id"] for d in doc["departments"]} >= {"repair", "billing", "heating"}
    gas = next(t for t in doc["problem_types"] if t["id"] == "gas")
    assert gas["department"] == "repair" and {"smell"} <= {s["id"] for s in gas["subtypes"]}
    assert doc["titles"] == ["先生", "女士"]


def test_the_agent_finds_its_call_keeps_a_draft_and_gets_it_back(client, engine, settings):
    ticket_id, linkedid = connect(engine, settings)
    connect(engine, settings, "1002")  # another agent's call: not listed
    sign_in(client, "agent1")
    listed = client.get("/api/agent/tickets").json()["items"]
    assert [t["id"] for t in listed] == [ticket_id]
    found = client.get("/api/agent/tickets", params={"linkedid": linkedid}).json()["items"]
    assert [(t["id"], t["caller"], t["draft"]) for t in found] == [(ticket_id, CALLER, {})]

    half = {"surname": "王", "description": "<b>half</b>", "role": "admin"}
    answer = client.put(f"/api/agent/tickets/{ticket_id}/draft", json=half)
    assert answer.status_code == 200, answer.text
    client.put(f"/api/agent/tickets/{ticket_id}/draft", json={"surname": "王", "title": "女士"})
    doc = client.get(f"/api/agent/tickets/{ticket_id}").json()
    assert doc["draft"] == {"surname": "王", "title": "女士"}
    assert doc["draft_at"] is not None
    assert actions(engine).count("ticket.draft") == 1  # the first save only, not each keystroke
    bad = client.put(f"/api/agent/tickets/{ticket_id}/draft", json={"complaint": "yes"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid-ticket-draft")


def test_another_agents_ticket_is_refused(client, engine, settings):
    ticket_id, _ = connect(engine, settings, "1002")
    sign_in(client, "agent1")
    for answer in (
        client.get(f"/api/agent/tickets/{ticket_id}"),
        client.put(f"/api/agent/tickets/{ticket_id}/draft", json={}),
        client.post(f"/api/agent/tickets/{ticket_id}/record", json=RECORD),
    ):
        assert (answer.status_code, answer.json()["error"]) == (403, "ticket-not-yours")
    sign_in(client, "sup1")
    assert client.get("/api/agent/tickets").status_code == 403


def test_a_save_with_a_missing_field_is_refused_naming_it_and_changes_nothing(
    client, engine, settings
):
    ticket_id, _ = connect(engine, settings)
    sign_in(client, "agent1")
    answer = client.post(f"/api/agent/tickets/{ticket_id}/record",
                         json={**RECORD, "surname": "", "department": ""})  # fmt: skip
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "ticket-form-refused"
    assert body["details"]["fields"] == ["surname", "department"]
    assert "surname: required" in body["message"]
    ticket = stored(engine, ticket_id)
    assert (ticket.state, ticket.recorded_at, ticket.surname) == (
        TicketState.awaiting_dispatch, None, None,
    )  # fmt: skip


def test_a_dispatched_save_stores_every_field_and_moves_to_in_progress(client, engine, settings):
    ticket_id, _ = connect(engine, settings)
    sign_in(client, "agent1")
    client.put(f"/api/agent/tickets/{ticket_id}/draft", json={"surname": "王"})
    answer = client.post(f"/api/agent/tickets/{ticket_id}/record", json=RECORD)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["state"] == "处理中"
    assert doc["record"]["description"] == RECORD["description"]  # text as typed
    ticket = stored(engine, ticket_id)
    assert (ticket.surname, ticket.title, ticket.contact_number, ticket.contact_confirmed) == (
        "王", "女士", "13800138009", True,
    )  # fmt: skip
    assert (ticket.estate, ticket.building, ticket.unit, ticket.room, ticket.account) == (
        "幸福小区", "3", "2", "501", "11012345",
    )  # fmt: skip
    assert (ticket.problem_category, ticket.problem_subcategory, ticket.place) == (
        "gas", "smell", "indoors",
    )  # fmt: skip
    assert ticket.happened_at == datetime(2026, 12, 6, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    assert (ticket.urgency, ticket.complaint, ticket.level, ticket.outcome) == (
        "urgent", True, "L2", "dispatched",
    )  # fmt: skip
    assert ticket.deadline_at == ticket.created_at + timedelta(hours=48)  # L2 from the call
    assert (ticket.department, ticket.recorded_by, ticket.draft) == ("repair", "agent1", None)
    assert ["ticket.record", "ticket.move"] == actions(engine)[-2:]
    again = client.post(f"/api/agent/tickets/{ticket_id}/record", json=RECORD)
    assert (again.status_code, again.json()["error"]) == (409, "ticket-already-recorded")
    assert client.get("/api/agent/tickets").json()["items"] == []  # no longer to record


def test_a_consultation_resolved_on_the_call_is_done_with_its_reply_and_time(
    client, engine, settings
):
    ticket_id, _ = connect(engine, settings)
    sign_in(client, "agent1")
    resolved = {**RECORD, "outcome": "resolved", "reply": "已告知维修时间", "department": "",
                "complaint": False}  # fmt: skip
    doc = client.post(f"/api/agent/tickets/{ticket_id}/record", json=resolved).json()
    assert doc["state"] == "已完成"
    assert doc["transitions"][-1]["from"] == "待派单"
    ticket = stored(engine, ticket_id)
    assert (ticket.reply, ticket.department) == ("已告知维修时间", None)
    assert ticket.replied_at is not None and ticket.closed_at is not None


# --- the department and the hotline -----------------------------------------------------------
def dispatched(client: TestClient, engine: Engine, settings: Settings) -> int:
    ticket_id, _ = connect(engine, settings)
    sign_in(client, "agent1")
    assert client.post(f"/api/agent/tickets/{ticket_id}/record", json=RECORD).status_code == 200
    return ticket_id


def test_the_department_takes_reports_and_the_hotline_confirms_with_the_customer(
    client, engine, settings
):
    ticket_id = dispatched(client, engine, settings)
    sign_in(client, "dep3")  # billing and heating: not theirs
    assert client.get("/api/department/tickets").json()["items"] == []
    refused = client.post(f"/api/department/tickets/{ticket_id}/take")
    assert (refused.status_code, refused.json()["error"]) == (403, "ticket-not-yours")

    sign_in(client, "dep1")
    listed = client.get("/api/department/tickets").json()
    assert listed["departments"] == ["repair"]
    assert [t["id"] for t in listed["items"]] == [ticket_id]
    early = client.post(f"/api/department/tickets/{ticket_id}/report", json={"result": "done"})
    assert (early.status_code, early.json()["error"]) == (409, "department-step-refused")
    taken = client.post(f"/api/department/tickets/{ticket_id}/take").json()
    assert taken["record"]["taken_by"] == "dep1"
    sign_in(client, "dep2")
    other = client.post(f"/api/department/tickets/{ticket_id}/take")
    assert (other.status_code, other.json()["error"]) == (409, "department-step-refused")
    sign_in(client, "dep1")
    reported = client.post(f"/api/department/tickets/{ticket_id}/report",
                           json={"result": "更换减压阀，已通气"})  # fmt: skip
    assert reported.json()["state"] == "待验收"

    sign_in(client, "agent1")  # the owner's desk lists it: the customer is to be told
    replies = client.get("/api/agent/replies").json()["items"]
    assert [(t["id"], t["record"]["result"]) for t in replies] == [
        (ticket_id, "更换减压阀，已通气")
    ]
    sign_in(client, "agent2")
    assert client.get("/api/agent/replies").json()["items"] == []
    sign_in(client, "sup1")  # a bare move to 已完成 would lose the reply to the customer
    bare = client.post(f"/api/tickets/{ticket_id}/transitions", json={"to": "已完成"})
    assert (bare.status_code, bare.json()["error"]) == (409, "customer-reply-required")
    sign_in(client, "agent1")  # the owner confirms
    told = datetime.now(UTC)  # after the call: the customer was called back
    reply = {"reply": "客户确认已恢复供气", "replied_at": told.isoformat()}
    done = client.post(f"/api/tickets/{ticket_id}/confirm", json=reply)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "已完成"
    ticket = stored(engine, ticket_id)
    assert (ticket.taken_by, ticket.result) == ("dep1", "更换减压阀，已通气")
    assert (ticket.customer_reply, ticket.customer_reply_at, ticket.customer_reply_by) == (
        "客户确认已恢复供气", told, "agent1",
    )  # fmt: skip
    assert ticket.reported_at is not None and ticket.closed_at is not None
    moves = [(m["from"], m["to"], m["actor"]) for m in done.json()["transitions"]]
    assert moves == [("待派单", "处理中", "agent1"), ("处理中", "待验收", "dep1"),
                     ("待验收", "已完成", "agent1")]  # fmt: skip
    assert {"ticket.take", "ticket.move", "ticket.record"} <= set(actions(engine))


def test_only_the_owner_or_a_supervisor_confirms_and_never_with_an_empty_reply(
    client, engine, settings
):
    ticket_id = dispatched(client, engine, settings)
    sign_in(client, "dep1")
    client.post(f"/api/department/tickets/{ticket_id}/take")
    client.post(f"/api/department/tickets/{ticket_id}/report", json={"result": "修好了"})
    sign_in(client, "agent2")
    refused = client.post(f"/api/tickets/{ticket_id}/confirm", json={"reply": "好"})
    assert (refused.status_code, refused.json()["error"]) == (403, "ticket-not-yours")
    sign_in(client, "dep1")
    assert client.post(f"/api/tickets/{ticket_id}/confirm", json={"reply": "好"}).status_code == 403
    sign_in(client, "sup1")
    empty = client.post(f"/api/tickets/{ticket_id}/confirm", json={"reply": "   "})
    assert empty.status_code == 422
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    late = client.post(
        f"/api/tickets/{ticket_id}/confirm", json={"reply": "好", "replied_at": future}
    )
    assert late.status_code == 422
    for early in ("2020-01-01T00:00:00+08:00", "0001-01-01T00:00:00+05:00"):
        answer = client.post(
            f"/api/tickets/{ticket_id}/confirm", json={"reply": "好", "replied_at": early}
        )
        assert answer.status_code == 422, answer.text
    assert client.post(f"/api/tickets/{ticket_id}/confirm", json={"reply": "好"}).status_code == 200


def test_the_department_page_is_for_department_users(client):
    assert client.get("/department", follow_redirects=False).status_code == 303
    sign_in(client, "agent1")
    assert client.get("/department").status_code == 403
    sign_in(client, "dep1")
    page = client.get("/department")
    assert page.status_code == 200 and 'href="/"' in page.text
    assert client.get("/static/department.js").status_code == 200
    assert client.get("/static/agent-ticket.js").status_code == 200


def test_the_contact_number_is_whole_for_who_calls_back_and_masked_for_qa(client, engine, settings):
    ticket_id = dispatched(client, engine, settings)
    shown = {}
    for user in ("qa1", "sup1"):
        sign_in(client, user)
        shown[user] = client.get(f"/api/tickets/{ticket_id}").json()["record"]["contact_number"]
    sign_in(client, "dep1")
    listed = client.get("/api/department/tickets").json()["items"]
    shown["dep1"] = listed[0]["record"]["contact_number"]
    assert shown == {"qa1": "138******09", "sup1": "13800138009", "dep1": "13800138009"}


def test_saving_the_record_ends_a_pause_taken_for_the_paperwork(client, engine, settings):
    first, _ = connect(engine, settings)
    second, _ = connect(engine, settings)
    sign_in(client, "agent1")
    client.post("/api/agent/presence", json={"action": "login"})
    client.post("/api/agent/presence", json={"action": "pause", "reason": "后处理"})
    saved = client.post(f"/api/agent/tickets/{first}/record", json=RECORD).json()
    assert saved["wrapup_pause_ended"] is True
    state = client.get("/api/agent/presence").json()
    assert (state["logged_in"], state["paused"]) == (True, False)
    client.post("/api/agent/presence", json={"action": "pause", "reason": "小休"})
    saved = client.post(f"/api/agent/tickets/{second}/record", json=RECORD).json()
    assert saved["wrapup_pause_ended"] is False  # a break is not the paperwork's
    assert client.get("/api/agent/presence").json()["reason"] == "小休"


# --- repeat complaints (重复投诉) ----------------------------------------------------------------
def test_a_second_complaint_is_a_repeat_of_the_first_escalated_and_the_agent_may_unlink_it(
    client, engine, settings
):
    sign_in(client, "agent1")
    first, _ = connect(engine, settings)
    doc = client.post(f"/api/agent/tickets/{first}/record", json=RECORD).json()
    assert (doc["record"]["repeat_of"], doc["level"]) == (None, "L2")
    refused = client.post(f"/api/agent/tickets/{first}/repeat", json={"action": "confirm"})
    assert (refused.status_code, refused.json()["error"]) == (409, "repeat-link-refused")

    second, _ = connect(engine, settings)
    doc = client.post(f"/api/agent/tickets/{second}/record", json=RECORD).json()
    assert (doc["record"]["repeat_of"], doc["record"]["repeat_state"]) == (first, "marked")
    assert doc["level"] == "L1"  # one level up from the L2 the agent chose
    third, _ = connect(engine, settings)  # a repeat of the repeat links to the first
    doc = client.post(f"/api/agent/tickets/{third}/record", json=RECORD).json()
    assert doc["record"]["repeat_of"] == first

    other, _ = connect(engine, settings)  # another matter from the same caller: no repeat
    heating = {**RECORD, "category": "heating", "subcategory": "not-warm"}
    answer = client.post(f"/api/agent/tickets/{other}/record", json=heating)
    assert answer.status_code == 200, answer.text
    assert answer.json()["record"]["repeat_of"] is None

    unlinked = client.post(f"/api/agent/tickets/{third}/repeat", json={"action": "unlink"})
    assert unlinked.json()["record"]["repeat_state"] == "unlinked"
    assert unlinked.json()["level"] == "L1"  # a level never moves down
    confirmed = client.post(f"/api/agent/tickets/{second}/repeat", json={"action": "confirm"})
    assert confirmed.json()["record"]["repeat_state"] == "confirmed"
    bad = client.post(f"/api/agent/tickets/{second}/repeat", json={"action": "drop"})
    assert bad.status_code == 422
    assert {"ticket.repeat_marked", "ticket.repeat_unlinked", "ticket.repeat_confirmed"} <= set(
        actions(engine)
    )
    sign_in(client, "agent2")  # not theirs
    refused = client.post(f"/api/agent/tickets/{second}/repeat", json={"action": "unlink"})
    assert refused.status_code == 403

    zone = tickets.calendar(settings).zone
    month = month_window(datetime.now(UTC).astimezone(zone).strftime("%Y-%m"), zone)
    assert stored_repeats(engine, month) == {second}  # the unlinked one no longer counts


def test_a_complaint_after_the_window_is_not_a_repeat(client, engine, settings):
    sign_in(client, "agent1")
    first, _ = connect(engine, settings)
    assert client.post(f"/api/agent/tickets/{first}/record", json=RECORD).status_code == 200
    with Session(engine) as db:  # the first complaint was 31 local days ago
        ticket = db.get(Ticket, first)
        assert ticket is not None
        ticket.created_at = ticket.created_at - timedelta(days=31, hours=1)
        db.commit()
    second, _ = connect(engine, settings)
    doc = client.post(f"/api/agent/tickets/{second}/record", json=RECORD).json()
    assert (doc["record"]["repeat_of"], doc["level"]) == (None, "L2")
