"""The tickets API and page over HTTP: FastAPI's TestClient on ``create_app(settings)`` with a
real SQLite file in tmp_path (Redis unreachable on purpose: the tickets never need it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import followups, tickets
from ivr.adapters.sql.db import AuditEntry, OutboundCall, Recording, Transcript, VoiceMessage
from ivr.core.followup import Result
from ivr.core.followup_call import CallResult
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, loopback_settings, sign_in, staff_engine

NOW = datetime.now(UTC)
CALLER = "13800138001"
MASKED = "138******01"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


_serial = iter(range(1, 1_000_000))


def open_ticket(
    engine: Engine, settings: Settings, *, danger: list[str] | None = None, **facts: Any
) -> int:
    """A recorded call answered by an agent, its ticket and its transcript note."""
    n = next(_serial)
    with Session(engine, expire_on_commit=False) as db:
        rec = Recording(
            linkedid=f"1700.{n}",
            uniqueid=f"1700.{n}",
            started_at=facts.pop("started_at", NOW - timedelta(minutes=5)),
            did="95158",
            caller=facts.pop("caller", CALLER),
            caller_reversed="x",
            desk=facts.pop("desk", "repair"),
            category=facts.pop("category", "repair"),
            agent="Local/agent@sim-agents",
            account=facts.pop("account", "88001234"),
            **facts,
        )
        db.add(rec)
        db.flush()
        ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
        tr = Transcript(
            source_key=f"recording:{rec.id}",
            recording_id=rec.id,
            language="zh",
            model="vosk-model-small-cn-0.22",
            text="家里 有 煤气味" if danger else "暖气 不 热",
            words=[],
            audio_s=3.0,
            decode_s=0.5,
            danger_words=danger or [],
        )
        db.add(tr)
        db.flush()
        tickets.add_transcript_note(db, tr, settings)
        db.commit()
        assert ticket is not None
        return ticket.id


def message_ticket(engine: Engine, settings: Settings, recorded_at: datetime) -> int:
    with Session(engine, expire_on_commit=False) as db:
        msg = VoiceMessage(
            uniqueid=f"1800.{next(_serial)}", did="95158", caller="13900139002",
            desk="complaints", category="complaints", language="zh", file_name="m.wav",
            duration_s=4.0, complete=True, recorded_at=recorded_at,
        )  # fmt: skip
        db.add(msg)
        db.flush()
        ticket = tickets.open_for_call(db, recording=None, voice_message=msg, settings=settings)
        db.commit()
        assert ticket is not None
        return ticket.id


def move(client: TestClient, ticket_id: int, to: str, comment: str = "", **kw: Any) -> Any:
    return client.post(
        f"/api/tickets/{ticket_id}/transitions",
        json={"to": to, "comment": comment},
        headers=kw.pop("headers", ORIGIN),
        **kw,
    )


# --- who may do what --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tickets"),
        ("GET", "/api/tickets/1"),
        ("POST", "/api/tickets/1/transitions"),
        ("POST", "/api/tickets/1/notes"),
    ],
)
def test_given_no_session_then_401_json(client, method, path):
    response = client.request(method, path, json={}, headers=ORIGIN)

    assert response.status_code == 401
    assert response.json()["error"] == "not-authenticated"


def test_given_no_session_when_opening_the_page_then_redirected_to_sign_in(client):
    response = client.get("/tickets", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/tickets"


def test_given_qa_then_reads_tickets_but_may_not_move_or_write(client, engine, settings):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "qa1")

    assert client.get("/api/tickets").status_code == 200
    assert client.get(f"/api/tickets/{ticket_id}").status_code == 200
    assert client.get("/tickets").status_code == 200
    refused = move(client, ticket_id, "处理中")
    note = client.post(f"/api/tickets/{ticket_id}/notes", json={"text": "x"}, headers=ORIGIN)

    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert note.status_code == 403


def test_given_unknown_ticket_then_404(client):
    sign_in(client, "sup1")

    for path in ("/api/tickets/999", "/api/tickets/abc"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "ticket-not-found"
    assert move(client, 999, "处理中").status_code == 404


# --- the list ---------------------------------------------------------------------------------
def test_given_tickets_then_listed_most_urgent_first_with_notes_deadline_and_masked_caller(
    client, engine, settings
):
    plain = open_ticket(engine, settings, desk="consultation", category="consultation")
    danger = open_ticket(engine, settings, danger=["煤气味"])
    sign_in(client, "sup1")

    response = client.get("/api/tickets")

    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["total"], body["page"], body["per_page"]) == (2, 1, 50)
    assert body["timezone"] == settings.tickets.timezone == "Asia/Shanghai"
    first, second = body["items"]
    assert (first["id"], second["id"]) == (danger, plain)
    assert first["danger"] and first["danger_words"] == ["煤气味"]
    assert (first["priority"], first["level"]) == (90, "L1")
    assert first["caller"] == MASKED and first["account"] == "880***34"
    assert first["notes"][0]["text"] == "家里 有 煤气味"
    assert first["notes"][0]["kind"] == "transcript"
    assert first["allowed_next"] == ["处理中"]
    assert first["overdue"] is False
    assert datetime.fromisoformat(first["deadline_at"]) > NOW
    assert CALLER not in response.text and "88001234" not in response.text


def test_given_admin_then_numbers_unmasked(client, engine, settings):
    open_ticket(engine, settings)
    sign_in(client, "admin1")

    item = client.get("/api/tickets").json()["items"][0]

    assert (item["caller"], item["account"]) == (CALLER, "88001234")


def test_given_filters_then_only_matching_tickets(client, engine, settings):
    old = open_ticket(engine, settings, started_at=NOW - timedelta(days=3))  # L2: overdue
    emergency = open_ticket(engine, settings, desk="emergency", category="emergency",
                            emergency=True)  # fmt: skip
    danger = open_ticket(engine, settings, danger=["漏气"], desk="billing", category="billing")
    message = message_ticket(engine, settings, NOW - timedelta(days=10))
    sign_in(client, "sup1")
    move(client, emergency, "处理中")

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/tickets", params=params)
        assert response.status_code == 200, response.text
        return sorted(item["id"] for item in response.json()["items"])

    assert ids() == sorted([old, emergency, danger, message])
    assert ids(overdue="true") == sorted([old, message])
    assert ids(overdue="false") == sorted([emergency, danger])
    assert ids(danger="true") == [danger]
    assert ids(emergency="true") == [emergency]
    assert ids(state="处理中") == [emergency]
    assert ids(state="awaiting_dispatch") == sorted([old, danger, message])
    assert ids(desk="complaints") == [message]
    shanghai_today = (NOW + timedelta(hours=8)).date()  # tickets.timezone: no DST, UTC+8
    assert ids(**{"from": str(shanghai_today - timedelta(days=5))}) == sorted(
        [old, emergency, danger]
    )
    assert ids(to=str(shanghai_today - timedelta(days=5))) == [message]
    assert client.get("/api/tickets", params={"overdue": "true"}).json()["items"][0]["overdue"]


def test_given_state_open_then_everything_not_done(client, engine, settings):
    done = open_ticket(engine, settings)
    open_one = open_ticket(engine, settings)
    sign_in(client, "sup1")
    for to in ("处理中", "待验收", "已完成"):
        assert move(client, done, to).status_code == 200

    items = client.get("/api/tickets", params={"state": "open"}).json()["items"]
    both = client.get("/api/tickets", params=[("state", "已完成"), ("state", "待派单")]).json()

    assert [i["id"] for i in items] == [open_one]
    assert sorted(i["id"] for i in both["items"]) == sorted([done, open_one])


def test_given_pages_then_total_and_slices(client, engine, settings):
    made = [open_ticket(engine, settings) for _ in range(5)]
    sign_in(client, "sup1")

    first = client.get("/api/tickets", params={"per_page": 2}).json()
    last = client.get("/api/tickets", params={"per_page": 2, "page": 3}).json()

    assert first["total"] == 5 and len(first["items"]) == 2
    assert len(last["items"]) == 1
    assert [i["id"] for i in first["items"]] == sorted(made, reverse=True)[:2]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"state": "closed"}, "unknown ticket state 'closed'"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "500"}, "per_page"),
        ({"overdue": "perhaps"}, "overdue"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-03-05", "to": "2025-03-01"}, "from: 2025-03-05 is after to: 2025-03-01"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_given_bad_filters_then_422_naming_the_parameter(client, params, fragment):
    sign_in(client, "sup1")

    response = client.get("/api/tickets", params=params)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid-ticket-request"
    assert fragment in response.json()["message"]


# --- one ticket, moves and notes --------------------------------------------------------------
def test_given_moves_then_detail_shows_who_when_and_the_audit_log_has_them(
    client, engine, settings
):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    moved = move(client, ticket_id, "处理中", "派给维修一班")
    detail = client.get(f"/api/tickets/{ticket_id}").json()

    assert moved.status_code == 200
    assert moved.json()["state"] == "处理中"
    assert moved.json()["allowed_next"] == ["待验收"]
    (step,) = detail["transitions"]
    assert (step["from"], step["to"], step["actor"], step["comment"]) == (
        "待派单", "处理中", "sup1", "派给维修一班",
    )  # fmt: skip
    assert abs(datetime.fromisoformat(step["at"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert detail["recording_url"] == f"/api/recordings/{detail['recording_id']}"
    assert detail["notes"][0]["source"] == f"recording:{detail['recording_id']}"
    with Session(engine) as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.move")).one()
    assert (entry.actor, entry.target) == ("sup1", f"ticket:{ticket_id} 待派单->处理中")


def test_given_a_ticket_a_followup_reopened_then_flagged_with_its_raised_priority_and_filterable(
    client, engine, settings
):
    reopened, other = open_ticket(engine, settings), open_ticket(engine, settings)
    sign_in(client, "sup1")
    for to in ("处理中", "待验收", "已完成"):
        assert move(client, reopened, to).status_code == 200
    with Session(engine) as db:
        before = tickets.get(db, reopened).priority
        (row,) = followups.of_ticket(db, reopened)
        db.add(OutboundCall(channel_id="followup-1", purpose="followup", number=CALLER,
                            ticket_id=reopened, followup_id=row.id,
                            started_by="role:followups"))  # fmt: skip
        db.flush()
        answer = CallResult(Result.ANSWERED, resolved=False)
        followups.finish_attempt(db, "followup-1", answer, "ANSWER", now=datetime.now(UTC))
        db.commit()

    listed = {t["id"]: t for t in client.get("/api/tickets").json()["items"]}
    only = client.get("/api/tickets", params={"reopened": "true"}).json()["items"]
    others = client.get("/api/tickets", params={"reopened": "false"}).json()["items"]
    detail = client.get(f"/api/tickets/{reopened}").json()

    assert (listed[reopened]["reopened"], listed[other]["reopened"]) == (True, False)
    assert listed[reopened]["state"] == "处理中" and listed[reopened]["priority"] > before
    assert [t["id"] for t in only] == [reopened]
    assert reopened not in [t["id"] for t in others] and other in [t["id"] for t in others]
    assert detail["reopened"] is True


def test_given_an_agents_recorded_call_about_the_ticket_then_detail_lists_it_with_its_recording(
    client, engine, settings
):
    ticket_id = open_ticket(engine, settings)
    with Session(engine) as db:
        recording = Recording(
            linkedid="agentcall-1", uniqueid="1764900000.9", started_at=datetime.now(UTC),
            did="", caller="13800138000", caller_reversed="00083100831", agent="1001",
            direction="outbound", file_name="out.wav",
        )  # fmt: skip
        db.add(recording)
        db.flush()
        db.add(OutboundCall(channel_id="agentcall-1", purpose="followup", number="13800138000",
                            ticket_id=ticket_id, started_by="agent1001", device="PJSIP/1001",
                            result="answered"))  # fmt: skip
        db.flush()
        assert followups.link_recording(db, recording) is not None
        db.commit()
        recording_id = recording.id
    sign_in(client, "sup1")

    detail = client.get(f"/api/tickets/{ticket_id}").json()

    (call,) = detail["outbound_calls"]
    assert (call["purpose"], call["started_by"], call["result"], call["recording_id"]) == (
        "followup", "agent1001", "answered", recording_id
    )  # fmt: skip
    assert call["recording_url"] == f"/api/recordings/{recording_id}"
    assert detail["recording_id"] != recording_id  # the ticket's own call stays its recording


def test_given_illegal_move_then_409_with_both_states_and_the_allowed_ones(
    client, engine, settings
):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    response = move(client, ticket_id, "已完成")

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "illegal-transition"
    assert body["message"] == "待派单 -> 已完成 is not allowed; from 待派单 only: 处理中"
    assert body["details"]["allowed"] == ["处理中"]


def test_given_rejection_at_acceptance_then_needs_a_reason(client, engine, settings):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "admin1")
    move(client, ticket_id, "处理中")
    move(client, ticket_id, "待验收")

    bare = move(client, ticket_id, "处理中")
    reasoned = move(client, ticket_id, "in_progress", "用户说还是不热")

    assert bare.status_code == 422 and "say why" in bare.json()["message"]
    assert reasoned.status_code == 200 and reasoned.json()["state"] == "处理中"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"comment": "x"}, "to: Field required"),
        ({"to": "关闭"}, "unknown ticket state"),
        ({"to": "处理中", "extra": 1}, "extra"),
        ([1, 2], "Input should be"),
    ],
)
def test_given_a_bad_move_body_then_422(client, engine, settings, body, fragment):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    response = client.post(f"/api/tickets/{ticket_id}/transitions", json=body, headers=ORIGIN)

    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_given_a_body_that_is_not_json_then_422(client, engine, settings):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    response = client.post(
        f"/api/tickets/{ticket_id}/transitions",
        content=b"to=x",
        headers={**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 422 and "JSON" in response.json()["message"]


def test_given_a_post_from_another_site_then_403(client, engine, settings):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    foreign = move(client, ticket_id, "处理中", headers={"Origin": "http://evil.example"})
    bare = move(client, ticket_id, "处理中", headers={})

    assert foreign.status_code == 403 and foreign.json()["error"] == "cross-origin-request"
    assert bare.status_code == 403


def test_given_staff_note_then_201_and_listed(client, engine, settings):
    ticket_id = open_ticket(engine, settings)
    sign_in(client, "sup1")

    created = client.post(
        f"/api/tickets/{ticket_id}/notes", json={"text": "已电话回访"}, headers=ORIGIN
    )
    empty = client.post(f"/api/tickets/{ticket_id}/notes", json={"text": ""}, headers=ORIGIN)
    notes = client.get(f"/api/tickets/{ticket_id}").json()["notes"]

    assert created.status_code == 201
    assert (created.json()["kind"], created.json()["author"]) == ("staff", "sup1")
    assert empty.status_code == 422
    assert [n["kind"] for n in notes] == ["transcript", "staff"]


def test_given_a_signed_in_user_then_the_page_with_a_strict_policy_and_its_assets(client):
    sign_in(client, "sup1")

    page = client.get("/tickets")
    script = client.get("/static/tickets.js")
    style = client.get("/static/tickets.css")

    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'id="tickets"' in page.text and "overdue-marker" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/api/tickets" in script.text
    assert style.headers["content-type"].startswith("text/css")
