"""Every figure over HTTP (ivr/web/routes/reports.py: /api/reports/figures, its lists, the trend
and the monthly file): the synthetic month's calls, tickets, survey answers, logins and QA
reviews in a real SQLite file; a number opens its tickets or calls, and those lead on to their
recording."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.core.figures import FIGURES
from ivr.settings import Settings
from ivr.web.app import create_app
from tests import figures_month as m
from tests.figures_month_sql import store_agents, store_tickets
from tests.web_support import loopback_settings, sign_in, staff_engine

MONTH = {"month": "2026-11"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def client(settings: Settings, password_hash: str) -> Iterator[TestClient]:
    with staff_engine(settings, password_hash) as engine:
        store(engine)
        with TestClient(create_app(settings)) as client:
            yield client


def store(engine: Engine) -> None:
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    store_tickets(engine)
    store_agents(engine)


def test_every_figure_against_its_target(client: TestClient) -> None:
    sign_in(client, "sup1")
    body = client.get("/api/reports/figures", params=MONTH).json()
    total = body["groups"][""]
    assert list(total) == [f.key for f in FIGURES]  # every figure, in their order
    assert total["complaint_reply_timely_rate"] == {
        "value": pytest.approx(4 / 6), "numerator": 4, "denominator": 6, "meets_target": False,
        "lists": "tickets", "sources": {},
    }  # fmt: skip
    assert total["answer_rate"]["lists"] == "calls" and total["answer_rate"]["value"] == 0.4
    # complaints 5, 6, 10 answered by their follow-up calls, 8 by the survey only
    assert total["complaint_satisfaction"]["sources"] == {"follow_up": 3, "survey": 1}
    assert total["qa_average"]["value"] == pytest.approx(80.0)
    agents = client.get("/api/reports/figures", params={**MONTH, "by": "agent"}).json()
    assert agents["groups"]["1001"]["occupancy"]["value"] == pytest.approx(180 / 3600)
    assert agents["groups"]["1001"]["occupancy"]["numerator"] == 2
    assert agents["groups"]["1002"]["occupancy"]["value"] is None  # no login recorded
    assert body["follow_ups"] == m.FOLLOW_UP_SUMMARY
    assert "follow_ups" not in agents
    departments = client.get("/api/reports/figures", params={**MONTH, "by": "department"})
    assert departments.json()["groups"]["customer-service"]["complaint_reply_rate"]["value"] == (
        pytest.approx(5 / 6)
    )


def test_a_number_opens_its_tickets_and_calls_lead_to_recordings(client: TestClient) -> None:
    sign_in(client, "sup1")
    timely = client.get(
        "/api/reports/figures/complaint_reply_timely_rate/numerator", params=MONTH
    ).json()
    assert timely["lists"] == "tickets" and timely["total"] == 4
    assert [t["id"] for t in timely["tickets"]] == [5, 8, 10, 11]
    assert timely["tickets"][0]["deadline_at"].startswith("2026-11-09")
    followed = client.get("/api/reports/figures/follow_up_complaints/denominator", params=MONTH)
    states = {t["id"]: t["follow_up"] for t in followed.json()["tickets"]}
    assert states == {5: "not_resolved", 6: "resolved", 8: "not_reached", 10: "resolved"}
    satisfied = client.get("/api/reports/figures/complaint_satisfaction/denominator",
                           params=MONTH).json()  # fmt: skip
    sources = {t["id"]: t["answer_source"] for t in satisfied["tickets"]}
    assert sources == {5: "follow_up", 6: "follow_up", 7: None, 8: "survey", 10: "follow_up",
                       11: None}  # fmt: skip
    checks = client.get("/api/reports/figures/qa_average/denominator", params=MONTH).json()
    assert [c["linkedid"] for c in checks["calls"]] == ["a10", "a60", "a605"]  # by time, id
    assert all(c["recording_id"] is not None for c in checks["calls"])
    per_agent = client.get(
        "/api/reports/figures/complaint_reply_rate/denominator",
        params={**MONTH, "by": "agent", "group": "1002"},
    ).json()
    assert [t["id"] for t in per_agent["tickets"]] == [5, 6]
    talked = client.get(
        "/api/reports/figures/occupancy/numerator",
        params={**MONTH, "by": "agent", "group": "1001"},
    ).json()
    assert [c["linkedid"] for c in talked["calls"]] == ["a60", "a605"]


def test_trend_over_twelve_months(client: TestClient) -> None:
    sign_in(client, "sup1")
    body = client.get("/api/reports/trend", params=MONTH).json()
    assert body["months"][0] == "2025-12" and body["months"][-1] == "2026-11"
    assert body["figures"]["answer_rate"] == [None] * 11 + [0.4]


def test_the_monthly_file_from_the_page(client: TestClient) -> None:
    sign_in(client, "sup1")
    response = client.get("/api/reports/file", params={**MONTH, "format": "xlsx"})
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="hotline-report-2026-11.xlsx"'
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[0] == "指标 Figures"
    pdf = client.get("/api/reports/file", params={**MONTH, "format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/reports/figures/wait_mean/numerator", MONTH, 404),
        ("/api/reports/figures/nothing/denominator", MONTH, 404),
        ("/api/reports/figures/complaint_reply_rate/denominator", {**MONTH, "by": "desk",
                                                                   "group": "nowhere"}, 404),
        ("/api/reports/figures/occupancy/numerator", {**MONTH, "by": "desk"}, 404),
        ("/api/reports/figures", {"month": "2026-13"}, 422),
        ("/api/reports/file", {**MONTH, "format": "doc"}, 422),
        ("/api/reports/trend", {}, 422),
        ("/api/reports/trend", {"month": "0001-11"}, 422),
    ],
)  # fmt: skip
def test_bad_queries(client: TestClient, path: str, params: dict[str, str], status: int) -> None:
    sign_in(client, "sup1")
    assert client.get(path, params=params).status_code == status


@pytest.mark.parametrize("path", ["/api/reports/figures", "/api/reports/file"])
def test_only_supervisors_and_admins(client: TestClient, path: str) -> None:
    assert client.get(path, params=MONTH).status_code == 401
    sign_in(client, "qa1")
    assert client.get(path, params=MONTH).status_code == 403
