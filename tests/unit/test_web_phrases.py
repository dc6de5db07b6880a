"""GET /api/agent/phrases (TestClient, a real SQLite file, the repository's routing/): the
signed-in agent's phrases with its 工号, the customer and the call's language filled in, the
day's kind from the tickets settings, the complaint level's reply time; roles, bad parameters
and a routing without phrases get clear answers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Role
from ivr.core.agents import DeskAssignment
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.web_support import ORIGIN, STAFF, loopback_settings, sign_in, staff_engine

PEOPLE = (*STAFF, ("agent1", Role.agent), ("agent2", Role.agent))
URL = "/api/agent/phrases"
REPO = Path(__file__).resolve().parents[2]


def client_for(settings: Settings, password_hash: str) -> Iterator[TestClient]:
    with staff_engine(settings, password_hash, PEOPLE) as engine:
        with Session(engine) as db:
            store.add(
                db, "1001", "张三", [DeskAssignment("complaints", 0)], frozenset({"complaints"}),
                "hotline", store.Actor("test"), user="agent1",
            )  # fmt: skip
            db.commit()
        with TestClient(create_app(settings)) as client:
            client.headers.update(ORIGIN)
            yield client


@pytest.fixture
def client(tmp_path: Path, password_hash: str) -> Iterator[TestClient]:
    yield from client_for(loopback_settings(tmp_path), password_hash)


def texts(doc: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["text"] for p in doc["phrases"]}


def test_the_agent_gets_every_phrase_with_its_work_number_and_the_customer(client):
    sign_in(client, "agent1")

    answer = client.get(URL, params={"surname": "王", "title": "先生"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    doc = answer.json()
    assert (doc["work_number"], doc["language"], doc["level"]) == ("1001", "zh", "L3")
    assert doc["customer_known"] is True
    said = texts(doc)
    assert list(said) == ["greeting", "readback", "wait", "complaint", "closing"]
    assert re.fullmatch(r"(上午|下午|晚上)好，华源燃气热力服务热线，1001号话务员为您服务.*",
                        said["greeting"])  # fmt: skip
    assert said["readback"].startswith("王先生，")
    assert said["wait"] == "请您稍等，我帮您查询一下。"
    assert "会在4个工作日内给您回复" in said["complaint"]
    assert "1001号话务员" in said["closing"]
    assert doc["phrases"][0]["label"] == {"zh": "问候", "en": "Greeting"}
    assert doc["day_kind"] in ("workday", "weekend", "holiday")


def test_an_english_call_gets_english_phrases_with_the_chinese_beside(client):
    sign_in(client, "agent1")

    doc = client.get(URL, params={"surname": "Smith", "title": "女士", "lang": "en",
                                  "level": "L1"}).json()  # fmt: skip

    assert doc["language"] == "en"
    assert texts(doc)["readback"].startswith("Ms Smith, ")
    assert "reply within 2 hours." in texts(doc)["complaint"]
    assert all(p["gloss"] for p in doc["phrases"])


def test_without_a_customer_the_phrases_address_them_politely(client):
    sign_in(client, "agent1")

    doc = client.get(URL).json()

    assert doc["customer_known"] is False
    assert texts(doc)["readback"].startswith("先生/女士，")


def test_today_as_a_holiday_in_the_tickets_settings_gives_the_holiday_variants(
    tmp_path, password_hash
):
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    settings = loopback_settings(
        tmp_path, tickets={"holidays": [today], "desk_levels": {"complaints": "L2"}}
    )
    for client in client_for(settings, password_hash):
        sign_in(client, "agent1")
        doc = client.get(URL).json()

        assert doc["day_kind"] == "holiday" and doc["day"] == today.isoformat()
        assert "祝您节日快乐" in texts(doc)["closing"]
        assert "会在48小时内给您回复" in texts(doc)["complaint"]  # the desk's level, L2


@pytest.mark.parametrize(
    ("params", "field"),
    [({"surname": "王", "title": "小姐"}, "title"), ({"title": "先生"}, "surname"),
     ({"surname": "王" * 21, "title": "先生"}, "surname"), ({"lang": "fr"}, "lang"),
     ({"level": "L9"}, "level")],
)  # fmt: skip
def test_a_bad_parameter_is_refused_naming_it(client, params, field):
    sign_in(client, "agent1")

    answer = client.get(URL, params=params)

    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid-phrase-request"
    assert answer.json()["details"]["field"] == field


@pytest.mark.parametrize(
    ("user", "status", "error"),
    [(None, 401, "not-authenticated"), ("qa1", 403, "forbidden"), ("sup1", 403, "forbidden"),
     ("admin1", 403, "no-agent-for-user"), ("agent2", 403, "no-agent-for-user")],
)  # fmt: skip
def test_only_an_agent_linked_to_an_agent_gets_phrases(client, user, status, error):
    if user:
        sign_in(client, user)

    answer = client.get(URL)

    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_a_routing_without_phrases_is_a_configuration_error(tmp_path, password_hash):
    routing = tmp_path / "routing"
    shutil.copytree(REPO / "routing", routing)
    (routing / "phrases.yaml").unlink()
    settings = loopback_settings(tmp_path / "run", routing_dir=routing)
    for client in client_for(settings, password_hash):
        sign_in(client, "agent1")
        answer = client.get(URL)

        assert (answer.status_code, answer.json()["error"]) == (500, "invalid-configuration")
        assert "no phrases section" in answer.json()["message"]


def test_the_desk_loads_the_phrases_script_which_renders_text_only(client):
    sign_in(client, "agent1")

    assert '<script src="/static/agent-phrases.js" defer>' in client.get("/agent").text
    script = client.get("/static/agent-phrases.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text and "hotline:customer" in script.text
