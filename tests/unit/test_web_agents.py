"""The agents admin API over HTTP (FastAPI's TestClient on ``create_app(settings)``, a real
SQLite file, Redis unreachable on purpose), and the web role ``agent``: it signs in, and every
route that wants a session refuses it (403), the agents API included."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Agent, AgentChange, AuditEntry, Role
from ivr.core.sip_accounts import digest_ha1
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, STAFF, loopback_settings, sign_in, staff_engine

PEOPLE = (*STAFF, ("agent1", Role.agent), ("agent2", Role.agent))
BASE = "/api/admin/agents"
DESKS = [{"desk": "repair", "penalty": 1}, {"desk": "billing", "penalty": 2}]
NEW = {"work_number": "1001", "name": "张三", "desks": DESKS}
# what signs in or out, or needs nobody: not a route the role agent could be refused
NOT_GUARDED = {("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("GET", "/api/auth/me")}
# what the role agent is for: its desk page and the desk's APIs (tests/unit/test_web_presence.py,
# tests/unit/test_web_phrases.py, tests/unit/test_web_front.py, tests/unit/test_web_phone.py)
AGENTS_OWN = {
    ("GET", "/agent"),
    ("GET", "/api/agent/presence"),
    ("POST", "/api/agent/presence"),
    ("GET", "/api/agent/phrases"),
    ("GET", "/api/agent/phone"),
    ("GET", "/api/agent/events"),  # its screen pop (an agent linked to no agent: 403)
    ("GET", "/api/ticket-form"),  # the 工单 part: the form's choices, the agent's own tickets
    ("GET", "/api/agent/tickets"),
    ("GET", "/api/agent/replies"),
    ("GET", "/api/agent/tickets/{ticket_id}"),
    ("PUT", "/api/agent/tickets/{ticket_id}/draft"),
    ("POST", "/api/agent/tickets/{ticket_id}/record"),
    ("POST", "/api/agent/tickets/{ticket_id}/repeat"),  # the agent's word on a repeat link
    ("POST", "/api/tickets/{ticket_id}/confirm"),  # the reply to the customer, own tickets
    ("GET", "/api/followups/worklist"),  # the #worklist part: 回访 the machine could not do
    ("GET", "/api/callbacks"),  # ... and today's abandoned callers
    ("POST", "/api/agent/outbound-calls"),  # one click: the agent's phone, then the customer
    ("POST", "/api/agent/outbound-calls/{call_id}/result"),  # what the customer said
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash, PEOPLE) as engine:
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    sign_in(client, "admin1")
    client.headers.update(ORIGIN)
    return client


def created(admin: TestClient, body: dict[str, Any] = NEW) -> dict[str, Any]:
    answer = admin.post(BASE, json=body)
    assert answer.status_code == 201, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def stored(engine: Engine, model: Any) -> list[Any]:
    with Session(engine) as db:
        return list(db.scalars(select(model).order_by(model.id)))


# --- the role agent ---------------------------------------------------------------------------
def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def guarded_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the app describes (``/openapi.json``: each route but the style sheets)
    that a signed-out request is refused (401, or a redirect to the sign-in form)."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method in (m.upper() for m in operations):
            if method == "HEAD" or (method, path) in NOT_GUARDED:
                continue
            answer = client.request(method, _concrete(path), headers=ORIGIN,
                                    follow_redirects=False)  # fmt: skip
            if answer.status_code in (401, 303):
                found.append((method, path))
    return found


def test_an_agent_signs_in_and_every_other_route_that_wants_a_session_refuses_it(client):
    guarded = guarded_operations(client)
    assert len(guarded) >= 25 and ("POST", BASE) in guarded and ("GET", "/qa") in guarded

    sign_in(client, "agent1")

    assert client.get("/api/auth/me").json() == {"username": "agent1", "role": "agent"}
    opened = {}
    assert AGENTS_OWN <= set(guarded)
    for method, path in set(guarded) - AGENTS_OWN:
        answer = client.request(method, _concrete(path), headers=ORIGIN, follow_redirects=False)
        if answer.status_code != 403:
            opened[(method, path)] = answer.status_code
    assert opened == {}


@pytest.mark.parametrize(("username", "status"),
                         [(None, 401), ("qa1", 403), ("sup1", 403), ("agent1", 403)])  # fmt: skip
def test_the_agents_api_is_for_admins_only(client, engine, username, status):
    if username is not None:
        sign_in(client, username)
    client.headers.update(ORIGIN)
    for method, path, body in (
        ("GET", BASE, None), ("POST", BASE, NEW), ("GET", f"{BASE}/1001", None),
        ("PATCH", f"{BASE}/1001", {"name": "x"}), ("POST", f"{BASE}/1001/disable", None),
        ("POST", f"{BASE}/1001/enable", None), ("POST", f"{BASE}/1001/reset-password", None),
    ):  # fmt: skip
        answer = client.request(method, path, json=body)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error"] == ("not-authenticated" if status == 401 else "forbidden")
    assert stored(engine, Agent) == []


# --- the API ----------------------------------------------------------------------------------
def test_create_answers_201_with_the_password_once_and_stores_only_its_ha1(admin, engine):
    answer = admin.post(BASE, json=NEW | {"user": "agent1"})

    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    doc = answer.json()
    assert doc["agent"] | {"created_at": None, "updated_at": None, "password_set_at": None} == {
        "work_number": "1001", "name": "张三", "active": True, "user": "agent1",
        "desks": [{"desk": "billing", "penalty": 2}, {"desk": "repair", "penalty": 1}],
        "sip_username": "1001", "password_reset_needed": False, "registered": None,
        "created_at": None, "updated_at": None, "password_set_at": None,
    }  # fmt: skip
    assert doc["phone"] == {"username": "1001", "auth_id": "1001", "realm": "hotline",
                            "sip_port": 5060}  # fmt: skip
    (row,) = stored(engine, Agent)
    assert row.sip_ha1 == digest_ha1("1001", "hotline", doc["sip_password"])
    assert doc["sip_password"] not in admin.get(f"{BASE}/1001").text
    assert doc["sip_password"] not in admin.get(BASE).text
    (entry,) = [e for e in stored(engine, AuditEntry) if e.action.startswith("agent.")]
    assert (entry.actor, entry.action, entry.target, entry.ip) == (
        "admin1", "agent.add", "agent:1001", "testclient"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [(NEW | {"name": "李四"}, 409, "agent-exists"),
     (NEW | {"work_number": "1002", "desks": [{"desk": "meter"}]}, 422, "unknown-desk"),
     (NEW | {"work_number": "1002", "desks": []}, 422, "agent-without-desk"),
     (NEW | {"work_number": "1002", "desks": [{"desk": "repair", "penalty": 11}]}, 422,
      "invalid-agent-input"),
     (NEW | {"work_number": "10x2"}, 422, "invalid-agent-input"),
     (NEW | {"work_number": "1002", "user": "qa1"}, 422, "invalid-agent-input"),
     (NEW | {"work_number": "1002", "extra": 1}, 422, "invalid-agent-input"),
     ({"work_number": "1002"}, 422, "invalid-agent-input")],
    ids=["duplicate", "unknown-desk", "no-desk", "penalty", "work-number", "user-role", "extra",
         "missing"],
)  # fmt: skip
def test_bad_input_gets_a_clear_answer_and_nothing_is_lost(admin, engine, body, status, error):
    first = created(admin)["agent"]
    before = ([c.id for c in stored(engine, AgentChange)], admin.get(BASE).json())

    answer = admin.post(BASE, json=body)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error and answer.json()["message"]
    assert ([c.id for c in stored(engine, AgentChange)], admin.get(BASE).json()) == before
    assert admin.get(BASE).json()["items"] == [first]


def test_unknown_desk_names_the_desks(admin):
    answer = admin.post(BASE, json=NEW | {"desks": [{"desk": "meter", "penalty": 0}]})
    assert answer.json()["message"] == (
        "unknown desk 'meter'; the desks are: billing, complaints, consultation, emergency, repair"
    )


def test_patch_changes_what_is_given_and_the_changes_show_old_to_new(admin):
    created(admin, NEW | {"user": "agent1"})

    answer = admin.patch(f"{BASE}/1001", json={"desks": [{"desk": "emergency"}], "user": None})

    assert answer.status_code == 200, answer.text
    agent = answer.json()
    assert (agent["name"], agent["desks"], agent["user"]) == (
        "张三", [{"desk": "emergency", "penalty": 0}], None
    )  # fmt: skip
    assert admin.patch(f"{BASE}/1001", json={}).json() == agent  # nothing to change
    assert admin.patch(f"{BASE}/1001", json={"user": "agent2"}).json()["user"] == "agent2"
    detail = admin.get(f"{BASE}/1001").json()
    assert [(c["actor"], c["action"]) for c in detail["changes"]] == [
        ("admin1", "add"), ("admin1", "set"), ("admin1", "set")
    ]  # fmt: skip
    assert detail["changes"][1]["changes"] == {
        "desks": {"old": [{"desk": "billing", "penalty": 2}, {"desk": "repair", "penalty": 1}],
                  "new": [{"desk": "emergency", "penalty": 0}]},
        "user": {"old": "agent1", "new": None},
    }  # fmt: skip
    assert detail["changes"][2]["ip"] == "testclient"


@pytest.mark.parametrize(
    ("body", "error"),
    [({"name": None}, "invalid-agent-input"), ({"desks": None}, "invalid-agent-input"),
     ({"desks": []}, "agent-without-desk"), ({"user": "agent2", "x": 1}, "invalid-agent-input")],
)  # fmt: skip
def test_a_bad_patch_is_refused_and_changes_nothing(admin, body, error):
    before = created(admin)["agent"]

    answer = admin.patch(f"{BASE}/1001", json=body)

    assert (answer.status_code, answer.json()["error"]) == (422, error)
    assert admin.get(BASE).json()["items"] == [before]


def test_disable_enable_and_reset_password(admin, engine):
    first = created(admin)["sip_password"]

    assert admin.post(f"{BASE}/1001/disable").json()["active"] is False
    again = admin.post(f"{BASE}/1001/disable")
    assert (again.status_code, again.json()["error"]) == (409, "agent-state-unchanged")
    assert admin.post(f"{BASE}/1001/enable").json()["active"] is True
    reset = admin.post(f"{BASE}/1001/reset-password")

    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    second = reset.json()["sip_password"]
    assert second != first
    assert stored(engine, Agent)[0].sip_ha1 == digest_ha1("1001", "hotline", second)
    actions = [e.action for e in stored(engine, AuditEntry) if e.action.startswith("agent.")]
    assert actions == ["agent.add", "agent.disable", "agent.enable", "agent.reset_password"]
    changes = admin.get(f"{BASE}/1001").json()["changes"]
    assert changes[-1]["changes"] == {"password": "set"}
    assert first not in str(changes) and second not in str(changes)


@pytest.mark.parametrize("number", ["1009", "abc", "1" * 13])
def test_an_unknown_agent_is_404(admin, number):
    created(admin)
    for method, path in (("GET", ""), ("PATCH", ""), ("POST", "/disable"),
                         ("POST", "/reset-password")):  # fmt: skip
        answer = admin.request(method, f"{BASE}/{number}{path}", json={"name": "x"})
        assert (answer.status_code, answer.json()["error"]) == (404, "agent-not-found"), path


def test_a_body_that_is_not_json_or_from_another_origin_is_refused(admin, engine):
    not_json = admin.post(BASE, content=b"work_number=1001", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (not_json.status_code, not_json.json()["error"]) == (422, "invalid-agent-input")
    broken = admin.post(BASE, content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    foreign = admin.post(BASE, json=NEW, headers={"Origin": "http://evil.example"})
    assert (foreign.status_code, foreign.json()["error"]) == (403, "cross-origin-request")
    assert stored(engine, Agent) == []


@pytest.mark.parametrize(
    "raw",
    [b'{"work_number": "\\ud800", "name": "x", "desks": [{"desk": "repair"}]}',
     b'{"work_number": "1002", "name": "\\ud800", "desks": [{"desk": "repair"}]}',
     b'{"work_number": "1002", "name": "x\\u0000", "desks": [{"desk": "repair"}]}',
     b'{"work_number": "1002", "name": "x", "desks": [{"desk": "\\ud800"}]}',
     b'{"work_number": "1002", "name": "x", "desks": [{"desk": "repair"}], "user": "\\ud800"}'],
    ids=["work-number", "name", "nul", "desk", "user"],
)  # fmt: skip
def test_characters_no_database_keeps_are_refused_as_input_not_a_server_error(admin, raw):
    answer = admin.post(BASE, content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert admin.get(BASE).json()["items"] == []
