"""An agent's presence over HTTP (FastAPI's TestClient, a real SQLite file): the agent acts on
its own linked agent, supervisors and admins on any; bad requests get clear answers and
change nothing; every change is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Agent, AgentChange, Role
from ivr.core.agents import DeskAssignment
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, STAFF, loopback_settings, sign_in, staff_engine

PEOPLE = (*STAFF, ("agent1", Role.agent), ("agent2", Role.agent))
OWN = "/api/agent/presence"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash, PEOPLE) as engine:
        with Session(engine) as db:
            store.add(
                db, "1001", "张三", [DeskAssignment("repair", 0)], frozenset({"repair"}),
                "hotline", store.Actor("test"), user="agent1",
            )  # fmt: skip
            db.commit()
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers.update(ORIGIN)
        yield client


def presence(engine: Engine) -> tuple[bool, bool, str | None]:
    with Session(engine) as db:
        agent = db.scalars(select(Agent).where(Agent.work_number == "1001")).one()
        return agent.logged_in, agent.paused, agent.pause_reason


def test_an_agent_logs_itself_in_pauses_with_a_reason_resumes_and_logs_out(client, engine):
    sign_in(client, "agent1")
    assert client.get(OWN).json()["label"] == "未登录 logged out"
    steps = [
        ({"action": "login"}, (True, False, None)),
        ({"action": "pause", "reason": "小休"}, (True, True, "小休")),
        ({"action": "resume"}, (True, False, None)),
        ({"action": "logout"}, (False, False, None)),
    ]
    for body, stored in steps:
        answer = client.post(OWN, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert presence(engine) == stored
    with Session(engine) as db:
        actions = [c.action for c in db.scalars(select(AgentChange).order_by(AgentChange.id))]
        assert actions == ["add", "login", "pause", "resume", "logout"]


def test_an_agent_chooses_at_log_in_which_device_rings_and_switches_by_logging_in_again(
    client, engine
):
    sign_in(client, "agent1")
    answer = client.post(OWN, json={"action": "login", "device": "browser"})
    assert (answer.status_code, answer.json()["device"]) == (200, "browser"), answer.text
    client.post(OWN, json={"action": "pause", "reason": "小休"})
    answer = client.post(OWN, json={"action": "login", "device": "desk"})
    assert (answer.json()["device"], answer.json()["reason"]) == ("desk", "小休")  # pause kept
    assert client.get(OWN).json()["device"] == "desk"
    with Session(engine) as db:
        changes = [c.changes for c in db.scalars(select(AgentChange).order_by(AgentChange.id))]
    assert changes[1]["device"] == {"old": "desk", "new": "browser"}
    assert changes[-1] == {"device": {"old": "browser", "new": "desk"}}


def test_a_supervisor_pauses_any_agent_and_an_agent_only_itself(client, engine):
    sign_in(client, "sup1")
    assert client.post("/api/agents/1001/presence", json={"action": "login"}).status_code == 200
    answer = client.post("/api/agents/1001/presence", json={"action": "pause", "reason": "会议"})
    assert answer.json() | {"name": None} == {
        "work_number": "1001", "name": None, "logged_in": True, "paused": True,
        "reason": "会议", "label": "会议 paused", "device": "desk",
    }  # fmt: skip
    sign_in(client, "agent2")  # an agent account linked to no agent
    answer = client.post(OWN, json={"action": "resume"})
    assert (answer.status_code, answer.json()["error"]) == (403, "no-agent-for-user")
    answer = client.post("/api/agents/1001/presence", json={"action": "resume"})
    assert answer.status_code == 403
    assert presence(engine) == (True, True, "会议")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"action": "pause", "reason": "小休"}, 409, "presence-refused"),  # not logged in
        ({"action": "login", "reason": "x" * 17}, 422, "invalid-presence-input"),
        ({"action": "dance"}, 422, "invalid-presence-input"),
        ({"action": "login", "device": "fax"}, 422, "invalid-presence-input"),
        ({"action": "login", "extra": 1}, 422, "invalid-presence-input"),
    ],
)
def test_given_a_bad_request_then_a_clear_answer_and_nothing_changes(
    client, engine, body, status, error
):
    sign_in(client, "agent1")
    answer = client.post(OWN, json=body)
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert presence(engine) == (False, False, None)


def test_given_an_unknown_reason_or_agent_then_refused(client, engine):
    sign_in(client, "admin1")
    client.post("/api/agents/1001/presence", json={"action": "login"})
    answer = client.post("/api/agents/1001/presence", json={"action": "pause", "reason": "午饭"})
    assert (answer.status_code, answer.json()["error"]) == (409, "presence-refused")
    assert "小休" in answer.json()["message"]
    answer = client.post("/api/agents/9999/presence", json={"action": "login"})
    assert (answer.status_code, answer.json()["error"]) == (404, "agent-not-found")
    assert presence(engine) == (True, False, None)


def test_a_disabled_agent_cannot_log_in(client, engine):
    with Session(engine) as db:
        store.set_active(db, "1001", False, store.Actor("test"))
        db.commit()
    sign_in(client, "agent1")
    answer = client.post(OWN, json={"action": "login"})
    assert (answer.status_code, answer.json()["error"]) == (409, "presence-refused")
    assert presence(engine) == (False, False, None)


def test_disabling_a_logged_in_agent_logs_it_out(client, engine):
    sign_in(client, "agent1")
    client.post(OWN, json={"action": "pause", "reason": "小休"})  # refused: logged out
    client.post(OWN, json={"action": "login"})
    with Session(engine) as db:
        store.set_active(db, "1001", False, store.Actor("test"))
        db.commit()
    assert presence(engine) == (False, False, None)
