"""``ivr report month``: the synthetic month stored in SQL written as a workbook (read back with
openpyxl), a PDF (its first page made an image with pdftoppm into test-artifacts/, its text
read back with pdftotext: the Chinese is there) and a CSV."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.cli import main
from ivr.settings import Settings, load_settings
from tests import figures_month as m
from tests.conftest import ARTIFACTS
from tests.figures_month_sql import store_agents, store_tickets


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    settings = load_settings()
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
    store_tickets(engine)
    store_agents(engine)
    engine.dispose()
    return settings


def month_file(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / f"report.{fmt}"
    assert main(["report", "month", "--month", "2026-11", "--format", fmt, "-o", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    return path


def test_the_workbook(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = load_workbook(month_file(tmp_path, "xlsx", capsys))
    assert book.sheetnames == [
        "指标 Figures", "按坐席组 By desk", "按坐席 By agent", "按部门 By department",
        "月度回访报告 Follow-ups", "回访明细 Follow-up records", "满意度来源 Satisfaction sources",
    ]  # fmt: skip
    figures = {row[0]: row for row in book["指标 Figures"].iter_rows(min_row=3, values_only=True)}
    assert figures["接通率 answer rate"][1:6] == (0.4, "40.0%", 4, 10, "≥ 90%")
    assert figures["接通率 answer rate"][6] == "未达标 missed"
    assert figures["咨询回复率 consultation reply rate"][1] == 0.75
    assert figures["投诉回复及时率 complaints replied in time"][1] == pytest.approx(4 / 6)
    # the key account's complaint (10): satisfied, as its follow-up call's answer says
    key_account = figures["大客户投诉满意率 key-account complaint satisfaction"]
    assert key_account[1:5] == (1, "100.0%", 1, 1)
    assert figures["投诉回访率 complaint customers followed up"][1:5] == (0.75, "75.0%", 3, 4)
    assert figures["新装回访率 new-supply customers followed up"][1:5] == (1, "100.0%", 1, 1)
    assert figures["质检平均分 QA spot-check average"][1] == pytest.approx(80.0)  # 80, 90, 70
    agents = list(book["按坐席 By agent"].iter_rows(min_row=3, values_only=True))
    qa = {r[0]: r[2] for r in agents if r[1] == "质检平均分 QA spot-check average"}
    assert qa == {"1001": pytest.approx(85.0), "1002": pytest.approx(70.0)}
    departments = book["按部门 By department"]
    rows = {(r[0], r[1]): r[2:] for r in departments.iter_rows(min_row=3, values_only=True)}
    # six complaints in November: 5, 8, 10, 11 replied in time; 6 late; 7 never, its deadline past
    assert rows[("customer-service", "合计 all")] == (6, 1.0, 4, 2, 0)
    assert rows[("customer-service", "service")] == (6, 1.0, 4, 2, 0)
    assert rows[("repair", "gas")][:2] == (3, 1.0)
    assert not any(str(name).startswith("尚无重复投诉标记") for name in figures)  # marks stored
    summary = list(book["月度回访报告 Follow-ups"].iter_rows(min_row=3, values_only=True))
    # owed, called, reached, resolved, not resolved, satisfied, dissatisfied, refused,
    # not reached, not called; the rate; met
    assert summary == [
        ("投诉回访率 complaint customers followed up", 4, 4, 3, 2, 1, 2, 1, 0, 1, 0, 0.75,
         "未达标 missed"),
        ("报修回访率 repaired-fault customers followed up", 2, 2, 1, 1, 0, 0, 0, 1, 0, 0, 0.5,
         "未达标 missed"),
        ("新装回访率 new-supply customers followed up", 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1,
         "达标 met"),
    ]  # fmt: skip
    records = {r[0]: r[2:4] for r in book["回访明细 Follow-up records"].iter_rows(
        min_row=3, values_only=True)}  # fmt: skip
    assert records[8] == ("未接通 not reached", 3)
    assert records[13] == ("拒访 refused", 1)
    assert records[5] == ("未解决 not resolved", 1)
    sources = {r[0]: r[1:] for r in book["满意度来源 Satisfaction sources"].iter_rows(
        min_row=3, max_row=5, values_only=True)}  # fmt: skip
    # tickets; survey answers, satisfied; follow-up answers, satisfied; no answer. Ticket 5:
    # its survey said satisfied, its follow-up not: the follow-up's answer counts
    assert sources["投诉满意率 complaint satisfaction"] == (6, 1, 1, 3, 2, 2)
    assert sources["咨询满意率 consultation satisfaction"] == (4, 2, 2, 0, 0, 2)


def test_the_pdf_renders_chinese(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = month_file(tmp_path, "pdf", capsys)
    assert path.read_bytes().startswith(b"%PDF")
    assert shutil.which("pdftoppm"), "poppler-utils (scripts/provision) makes PDF pages images"
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    assert "热线服务月度报告" in text and "接通率" in text and "大客户投诉满意率" in text
    assert "月度回访报告" in text and "满意度来源" in text
    assert "7 行 rows" in text  # the follow-up records: in the workbook and CSV only
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(path),
         str(ARTIFACTS / "monthly-report-pdf-page1")],
        check=True,
    )  # fmt: skip
    assert (ARTIFACTS / "monthly-report-pdf-page1.png").stat().st_size > 10_000


def test_the_csv(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = month_file(tmp_path, "csv", capsys).read_bytes()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["热线服务月度报告 hotline monthly report 2026-11"]
    assert ["接通率 answer rate", "0.4", "40.0%", "4", "10", "≥ 90%", "未达标 missed"] in rows
