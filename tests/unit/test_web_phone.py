"""The softphone's account over HTTP (FastAPI's TestClient, a real SQLite file): the signed-in
agent gets its own browser endpoint, realm and HA1, never cached, and nobody else's; the desk
page may connect to Asterisk's WebSocket and nowhere else; JsSIP is served from this origin."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Agent, Role
from ivr.core.agents import DeskAssignment
from ivr.core.sip_accounts import digest_ha1
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.static_pages import page_headers
from tests.web_support import ORIGIN, STAFF, loopback_settings, sign_in, staff_engine

PEOPLE = (*STAFF, ("agent1", Role.agent), ("agent2", Role.agent))
PHONE = "/api/agent/phone"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path, asterisk={"http_port": 8188, "sip_bind": "127.0.0.1"})


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash, PEOPLE) as engine:
        with Session(engine) as db:
            for number, user in (("1001", "agent1"), ("1002", None)):
                store.add(
                    db, number, "张三", [DeskAssignment("repair", 0)], frozenset({"repair"}),
                    "hotline", store.Actor("test"), user=user,
                )  # fmt: skip
            db.commit()
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers.update(ORIGIN)
        yield client


def ha1_of(engine: Engine, number: str) -> str:
    with Session(engine) as db:
        return db.scalars(select(Agent.sip_ha1).where(Agent.work_number == number)).one()


def test_the_agent_gets_its_own_browser_account_never_cached(client, engine):
    sign_in(client, "agent1")
    answer = client.get(PHONE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "work_number": "1001",
        "name": "张三",
        "websocket": "ws://127.0.0.1:8188/ws",
        "uri": "sip:1001-webrtc@127.0.0.1",
        "authorization_user": "1001",
        "realm": "hotline",
        "ha1": ha1_of(engine, "1001"),
    }
    assert ha1_of(engine, "1001") != ha1_of(engine, "1002")


@pytest.mark.parametrize(("user", "status"), [("sup1", 403), ("admin1", 403), ("agent2", 403)])
def test_given_no_agent_of_ones_own_then_refused(client, user, status):
    sign_in(client, user)
    answer = client.get(PHONE)
    assert answer.status_code == status
    assert "ha1" not in answer.text


def test_signed_out_401(client):
    assert client.get(PHONE).status_code == 401


def test_given_a_disabled_agent_or_a_password_of_another_realm_then_409_saying_why(client, engine):
    sign_in(client, "agent1")
    with Session(engine) as db:
        db.execute(
            update(Agent)
            .where(Agent.work_number == "1001")
            .values(sip_realm="old", sip_ha1=digest_ha1("1001", "old", "x"))
        )
        db.commit()
    answer = client.get(PHONE)
    assert (answer.status_code, answer.json()["error"]) == (409, "phone-unavailable")
    assert "reset" in answer.json()["message"] and "ha1" not in answer.json()
    with Session(engine) as db:
        db.execute(update(Agent).where(Agent.work_number == "1001").values(active=False))
        db.commit()
    answer = client.get(PHONE)
    assert (answer.status_code, answer.json()["error"]) == (409, "phone-unavailable")
    assert "disabled" in answer.json()["message"]


def test_the_desk_page_connects_to_asterisks_websocket_only_and_loads_jssip_from_here(client):
    sign_in(client, "agent1")
    page = client.get("/agent")
    csp = page.headers["content-security-policy"]
    assert "connect-src 'self' ws://127.0.0.1:8188;" in csp
    assert "script-src 'self';" in csp and "unsafe" not in csp
    assert '<script src="/static/vendor/jssip/jssip.min.js" defer></script>' in page.text
    script = client.get("/static/vendor/jssip/jssip.min.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "JsSIP" in script.text
    assert client.get("/static/agent-phone.js").status_code == 200
    assert client.get("/static/vendor/jssip/LICENSE-jssip").status_code == 404  # not routed
    assert "connect-src 'self';" in page_headers(media=True)["Content-Security-Policy"]


def test_given_asterisk_on_every_address_then_the_websocket_is_on_the_pages_host(settings, engine):
    asterisk = settings.asterisk.model_copy(update={"sip_bind": IPv4Address("0.0.0.0")})
    wide = settings.model_copy(update={"asterisk": asterisk})
    with TestClient(create_app(wide), base_url="http://desk.example:8080") as client:
        client.headers.update({"Origin": "http://desk.example:8080"})
        answer = client.post(
            "/api/auth/login", json={"username": "agent1", "password": "correct horse battery"}
        )
        assert answer.status_code == 200, answer.text
        assert client.get(PHONE).json()["websocket"] == "ws://desk.example:8188/ws"
