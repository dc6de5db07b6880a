"""``ivr report`` through ``ivr.cli.main`` on a real SQLite file: the definitions, the call
figures of the synthetic month, and the recompute saying whether anything changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.cli import main
from ivr.core.figures import definitions_markdown
from ivr.settings import Settings, load_settings
from tests import figures_month as m


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("IVR_METRICS__QUEUE_LOG_PATH", str(tmp_path / "queue_log"))
    settings = load_settings()
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    store_rows(engine, [outcome_row(o) for o in m.classified_calls() if o.linkedid != "ab3"])
    engine.dispose()
    return settings


def test_definitions_print_the_docs_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "definitions"]) == 0
    assert capsys.readouterr().out == definitions_markdown()


def test_the_month_per_desk_as_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "calls", "--month", "2026-11", "--by", "desk", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert groups["repair"]["answer_rate"] == {"value": 1 / 3, "numerator": 1, "denominator": 3}
    assert groups["emergency"]["emergency_in_time"]["value"] == 0.5


def test_recompute_says_whether_anything_changed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    start = int(m.local(5)) + 5  # ab3's queue entry, missing from SQL
    assert settings.metrics.queue_log_path is not None
    settings.metrics.queue_log_path.write_text(
        f"{start}|ab3|repair|NONE|ENTERQUEUE||13800138000|1\n"
        f"{start + 3}|ab3|repair|NONE|ABANDON|1|1|3\n",
        encoding="utf-8",
    )
    assert main(["report", "recompute", "--month", "2026-11"]) == 0
    assert "changed: 1 calls added from queue_log: ab3" in capsys.readouterr().out
    assert main(["report", "recompute", "--month", "2026-11"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["report", "calls", "--month", "2026-11", "--json"]) == 0
    total = json.loads(capsys.readouterr().out)["groups"][""]
    assert total["short_abandons"]["value"] == 1.0 and total["offered"]["value"] == 10.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--month", "2026-13"], "--month: a month is YYYY-MM, not '2026-13'"),
        (["--from", "2026-11-05", "--to", "2026-11-01"], "the last day is before the first"),
        (["--from", "2026-11-05", "--to", "11/30"], "--from/--to: days are YYYY-MM-DD"),
        ([], "give --month YYYY-MM"),
        (["--month", "2026-11", "--from", "2026-11-01"], "either --month or --from"),
    ],
)
def test_bad_windows_are_usage_errors(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["report", "calls", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_month_per_agent_as_text(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "calls", "--month", "2026-11", "--by", "agent"]) == 0
    out = capsys.readouterr().out
    assert "[1001]" in out and "[(nobody answered, no 工号)]" in out
    assert "接通率 answer rate: 50.0% (1 of 2)" in out  # 1001: a60 in time, a605 late
