"""How ``ivr`` reports bad input: an InvalidInput names the option, and the exit code is 2
(a usage error, as argparse's own), with nothing on stdout and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.stt.worker import WorkerPool
from ivr.cli import main
from ivr.errors import InvalidInput
from ivr.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    settings = load_settings()
    engine = sql.settings_engine(settings)  # at head, as `ivr db upgrade` leaves it
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return settings


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["recordings", "list", "--limit", "0"], "ivr recordings: --limit must be at least 1"),
        (["tickets", "list", "--limit", "0"], "ivr tickets: --limit must be at least 1"),
        (
            ["recordings", "retention", "--days", "0"],
            "ivr recordings: retention days must be at least 1, got 0",
        ),
        (["call", "--digits", "1;Hangup"], "ivr call: --digits: '1;Hangup': each group holds"),
        (["call", "--did", "95158;x"], "ivr call: --did must be digits, got '95158;x'"),
        (["call", "--from", "138 0013"], "ivr call: --from must be a phone number"),
    ],
)
def test_given_a_bad_option_value_when_run_then_exit_2_and_one_line_naming_it(
    settings, capsys, argv, said
):
    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(said) and err.count("\n") == 1
    assert out == ""


def test_given_no_worker_when_starting_the_pool_then_invalid_input(settings):
    with pytest.raises(InvalidInput, match="--concurrency must be at least 1, not 0"):
        WorkerPool(settings, 0)


def test_given_a_domain_error_that_is_not_bad_input_then_exit_1(settings, capsys):
    code = main(["tickets", "move", "99", "处理中"])

    assert code == 1
    assert capsys.readouterr().err == "ivr tickets: no ticket 99\n"
