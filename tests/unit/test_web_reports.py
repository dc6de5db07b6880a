"""The figures API over HTTP (ivr/web/routes/reports.py): FastAPI's TestClient on
``create_app(settings)`` with a real SQLite file holding the synthetic month's call facts,
one of them recorded and ticketed. Redis is unreachable on purpose: figures come from SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql import tickets
from ivr.adapters.sql.db import Recording
from ivr.core.figures import FIGURES
from ivr.settings import Settings
from ivr.web.app import create_app
from tests import figures_month as m
from tests.web_support import loopback_settings, sign_in, staff_engine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
        with Session(engine, expire_on_commit=False) as db:
            rec = Recording(
                linkedid="a60", uniqueid="a60", started_at=datetime.fromtimestamp(m.local(3), UTC),
                did="95158", caller="13800138000", caller_reversed="x", desk="repair",
                category="repair", agent=m.ZHANG,
            )  # fmt: skip
            db.add(rec)
            db.flush()
            tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
            db.commit()
        yield engine


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_month_against_its_targets(client: TestClient) -> None:
    sign_in(client, "sup1")
    response = client.get("/api/reports/calls", params={"month": "2026-11"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["from"] == "2026-11-01T00:00:00+08:00" and body["by"] == "total"
    total = body["groups"][""]
    assert total["answer_rate"] == {
        "value": 0.4, "numerator": 4, "denominator": 10, "meets_target": False,
    }  # fmt: skip
    assert total["short_abandons"]["value"] == 1.0
    assert total["offered"]["meets_target"] is None  # no target


def test_per_agent_and_a_day_range(client: TestClient) -> None:
    sign_in(client, "admin1")
    params = {"from": "2026-11-03", "to": "2026-11-04", "by": "agent"}
    groups = client.get("/api/reports/calls", params=params).json()["groups"]
    assert groups["1001"]["answer_rate"]["value"] == 0.5  # a60 in time, a605 late
    assert groups["1002"]["answered"]["value"] == 1.0  # a10


def test_a_number_opens_its_calls_and_they_lead_to_recording_and_ticket(
    client: TestClient,
) -> None:
    sign_in(client, "sup1")
    month = {"month": "2026-11"}
    numerator = client.get("/api/reports/calls/answer_rate/numerator", params=month).json()
    assert numerator["total"] == 4
    assert [c["linkedid"] for c in numerator["calls"]] == list(m.EXPECTED["answer_rate"][1])
    first = numerator["calls"][0]
    assert first["recording_id"] is not None and first["ticket_id"] is not None
    assert first["class"] == "answered" and first["wait_s"] == 60.0
    assert first["work_number"] == "1001"
    assert numerator["calls"][1]["recording_id"] is None  # a10 was not recorded here
    page = client.get(
        "/api/reports/calls/offered/denominator",
        params={**month, "by": "desk", "group": "repair", "per_page": 2, "page": 2},
    ).json()
    assert page["total"] == 4 and [c["linkedid"] for c in page["calls"]] == ["ab3", "ab5"]


def test_definitions_are_the_code_s(client: TestClient) -> None:
    sign_in(client, "sup1")
    figures = client.get("/api/reports/definitions").json()["figures"]
    assert [f["key"] for f in figures] == [f.key for f in FIGURES]
    rate = figures[0]
    assert rate["zh"] == "接通率" and rate["target"] == {"op": ">=", "value": 0.9}
    assert rate["target_text"] == "≥ 90%"


@pytest.mark.parametrize(
    ("path", "params", "status", "slug"),
    [
        ("/api/reports/calls", {}, 422, "invalid-report-query"),
        ("/api/reports/calls", {"month": "2026-13"}, 422, "invalid-report-query"),
        ("/api/reports/calls", {"month": "9999-12"}, 422, "invalid-report-query"),
        ("/api/reports/calls", {"from": "2026-11-05", "to": "2026-11-01"}, 422,
         "invalid-report-query"),
        ("/api/reports/calls", {"month": "2026-11", "from": "2026-11-01", "to": "2026-11-02"},
         422, "invalid-report-query"),
        ("/api/reports/calls/nothing/numerator", {"month": "2026-11"}, 404, "figure-not-found"),
        ("/api/reports/calls/offered/numerator", {"month": "2026-11"}, 404, "figure-not-found"),
        ("/api/reports/calls/offered/sideways", {"month": "2026-11"}, 404, "figure-not-found"),
    ],
)  # fmt: skip
def test_bad_queries(
    client: TestClient, path: str, params: dict[str, str], status: int, slug: str
) -> None:
    sign_in(client, "sup1")
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"] == slug


@pytest.mark.parametrize("path", ["/api/reports/calls?month=2026-11", "/api/reports/definitions"])
def test_only_supervisors_and_admins(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    sign_in(client, "qa1")
    assert client.get(path).status_code == 403
