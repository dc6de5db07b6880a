"""``ivr agents`` through ``ivr.cli.main`` on a real SQLite file: the password shown once (and
only its HA1 kept), the list and its registrations hook, changes, disabling, the history,
and the bad input of issue #13 answered clearly with exit 1 and nothing changed."""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import cli_agents
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.db import Agent, AgentChange, AuditEntry
from ivr.adapters.sql.users import create_user
from ivr.cli import main
from ivr.core.sip_accounts import Registration, digest_ha1
from ivr.settings import Settings, load_settings
from tests.web_support import PASSWORD

ACTOR = f"cli:{getpass.getuser()}"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("IVR_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("IVR_ASTERISK__SIP_REALM", "pbx.example")
    # no Asterisk beside these commands, whatever instances this machine has
    monkeypatch.setenv("IVR_ASTERISK__ROOT", str(tmp_path / "no-asterisk-root"))
    found = load_settings()
    engine = sql.settings_engine(found)
    try:
        schema.upgrade(engine)
        with Session(engine) as db:
            create_user(db, "alice", PASSWORD, "agent")
            create_user(db, "qa1", PASSWORD, "qa")
            db.commit()
    finally:
        engine.dispose()
    return found


def rows(settings: Settings, model: Any) -> list[Any]:
    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            return list(db.scalars(select(model).order_by(model.id)))
    finally:
        engine.dispose()


def agents_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["agents", "list", "--json"]) == 0
    found: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return found


def test_add_prints_the_password_once_with_the_phone_settings_and_keeps_only_its_ha1(
    settings, capsys
):
    argv = ["agents", "add", "1001", "--name", "张三", "--desk", "repair:1", "--desk", "billing:2"]
    assert main([*argv, "--user", "alice"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "agent 1001 (张三) added: desks billing (penalty 2), repair (penalty 1), web account alice"
    )
    password = out[2].strip()
    assert len(password) == 20 and password.isalnum()
    assert "username and auth ID 1001" in out[3] and "realm pbx.example" in out[3]
    assert "port 5060" in out[3]
    (agent,) = rows(settings, Agent)
    assert agent.sip_ha1 == digest_ha1("1001", "pbx.example", password)
    assert password not in Path(settings.database.url.removeprefix("sqlite:///")).read_bytes(
    ).decode(errors="replace")  # fmt: skip
    (change,) = rows(settings, AgentChange)
    assert (change.actor, change.action) == (ACTOR, "add")
    assert [(e.actor, e.action, e.target) for e in rows(settings, AuditEntry)] == [
        (ACTOR, "agent.add", "agent:1001")
    ]


def test_add_as_json_gives_the_agent_the_password_and_the_phone_settings(settings, capsys):
    assert main(["agents", "add", "7", "--name", "李四", "--desk", "emergency", "--json"]) == 0

    doc = json.loads(capsys.readouterr().out)
    assert doc["agent"]["work_number"] == "7" and doc["agent"]["registered"] is None
    assert doc["agent"]["desks"] == [{"desk": "emergency", "penalty": 0}]
    assert doc["phone"] == {"username": "7", "auth_id": "7", "realm": "pbx.example",
                            "sip_port": 5060}  # fmt: skip
    assert rows(settings, Agent)[0].sip_ha1 == digest_ha1("7", "pbx.example", doc["sip_password"])


@pytest.mark.parametrize(
    ("argv", "said"),
    [(["1001", "--name", "李四", "--desk", "repair"], "an agent with 工号 1001 exists already"),
     (["1002", "--name", "李四", "--desk", "meter:1"], "unknown desk 'meter'; the desks are: "
      "billing, complaints, consultation, emergency, repair"),
     (["1002", "--name", "李四"], "an agent needs at least one desk"),
     (["1002", "--name", "李四", "--desk", "repair:99"], "penalty 99: a whole number"),
     (["1002", "--name", "李四", "--desk", "repair", "--user", "qa1"], "has the role qa"),
     (["1002", "--name", "李四", "--desk", "repair", "--user", "nobody"], "no web account"),
     (["10-2", "--name", "李四", "--desk", "repair"], "1 to 12 digits")],
    ids=["duplicate", "unknown-desk", "no-desk", "penalty", "user-role", "no-user", "work-number"],
)  # fmt: skip
def test_bad_input_exits_1_saying_why_and_changes_nothing(settings, capsys, argv, said):
    assert main(["agents", "add", "1001", "--name", "张三", "--desk", "repair"]) == 0
    capsys.readouterr()
    before = agents_json(capsys)

    assert main(["agents", "add", *argv]) == 1

    assert said in capsys.readouterr().err
    assert agents_json(capsys) == before
    assert len(rows(settings, AgentChange)) == 1


def test_list_as_a_table_and_with_registrations_from_the_hook(settings, capsys):
    assert main(["agents", "add", "1001", "--name", "张三", "--desk", "repair:1"]) == 0
    assert main(["agents", "add", "1002", "--name", "李四", "--desk", "billing"]) == 0
    assert main(["agents", "disable", "1002"]) == 0
    capsys.readouterr()

    assert main(["agents", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "工号",
        "NAME",
        "STATE",
        "WEB",
        "USER",
        "DESK:PENALTY",
        "REGISTERED",
    ]
    assert lines[1].split() == ["1001", "张三", "active", "-", "repair:1", "?"]
    assert lines[2].split() == ["1002", "李四", "disabled", "-", "billing:0", "?"]

    parser = argparse.ArgumentParser()
    cli_agents.register(parser.add_subparsers(dest="command"))
    since = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    contact = Registration("1001", "sip:1001@10.0.0.5:5062", "Yealink T46U", since, None)
    for as_json in ([], ["--json"]):
        args = parser.parse_args(["agents", "list", *as_json])
        assert cli_agents.run(settings, args, registrations={"1001": [contact]}) == 0
    table, listed = capsys.readouterr().out.split("\n[", 1)
    assert "sip:1001@10.0.0.5:5062 Yealink T46U since 2026-12-06 08:00" in table
    assert table.splitlines()[2].split()[-1] == "no"
    docs = json.loads("[" + listed)
    assert docs[0]["registered"] == [{"contact": "sip:1001@10.0.0.5:5062",
                                      "user_agent": "Yealink T46U",
                                      "since": since.isoformat(), "expires": None}]  # fmt: skip
    assert docs[1]["registered"] == []


def test_set_disable_enable_and_the_history_old_to_new(settings, capsys):
    assert main(["agents", "add", "1001", "--name", "张三", "--desk", "repair:1",
                 "--user", "alice"]) == 0  # fmt: skip
    first = rows(settings, Agent)[0].sip_ha1
    capsys.readouterr()

    assert main(["agents", "set", "1001", "--desk", "billing:0", "--desk", "repair:3",
                 "--no-user"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == (
        "agent 1001 (张三) changed: desks billing (penalty 0), repair (penalty 3)"
    )
    assert main(["agents", "set", "1001", "--name", "张三"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["agents", "set", "1001", "--reset-password"]) == 0
    password = capsys.readouterr().out.splitlines()[2].strip()
    assert rows(settings, Agent)[0].sip_ha1 == digest_ha1("1001", "pbx.example", password) != first
    assert main(["agents", "disable", "1001"]) == 0
    assert main(["agents", "disable", "1001"]) == 1
    assert "agent 1001 is disabled already" in capsys.readouterr().err
    assert main(["agents", "enable", "1001"]) == 0
    capsys.readouterr()

    assert main(["agents", "history", "1001", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(h["actor"], h["action"]) for h in history] == [
        (ACTOR, "add"), (ACTOR, "set"), (ACTOR, "reset-password"), (ACTOR, "disable"),
        (ACTOR, "enable"),
    ]  # fmt: skip
    assert history[1]["changes"]["user"] == {"old": "alice", "new": None}
    assert history[2]["changes"] == {"password": "set"}
    assert main(["agents", "history", "1001"]) == 0
    text = capsys.readouterr().out
    assert 'user: "alice" -> null' in text and "active: false -> true" in text
    assert password not in text


def test_set_without_a_change_is_a_usage_error_and_an_unknown_agent_is_named(settings, capsys):
    assert main(["agents", "set", "1001"]) == 2
    assert "say what to change" in capsys.readouterr().err
    for argv in (["set", "1009", "--name", "x"], ["disable", "1009"], ["history", "1009"]):
        assert main(["agents", *argv]) == 1
        assert "no agent with 工号 '1009'" in capsys.readouterr().err


def test_after_the_realm_changed_the_list_says_which_passwords_to_reset(
    settings, capsys, monkeypatch
):
    assert main(["agents", "add", "1001", "--name", "张三", "--desk", "repair"]) == 0
    monkeypatch.setenv("IVR_ASTERISK__SIP_REALM", "hotline-2")
    capsys.readouterr()

    assert main(["agents", "list"]) == 0
    assert "active (reset password: realm changed)" in capsys.readouterr().out
    assert agents_json(capsys)[0]["password_reset_needed"] is True
    assert main(["agents", "set", "1001", "--reset-password"]) == 0
    password = capsys.readouterr().out.splitlines()[2].strip()
    assert rows(settings, Agent)[0].sip_ha1 == digest_ha1("1001", "hotline-2", password)
    assert agents_json(capsys)[0]["password_reset_needed"] is False


def test_login_chooses_the_device_that_rings_the_desk_phone_unless_told(settings, capsys):
    assert main(["agents", "add", "1001", "--name", "张三", "--desk", "repair:1"]) == 0
    capsys.readouterr()
    assert main(["agents", "login", "1001"]) == 0
    assert "已登录 logged in on the desk" in capsys.readouterr().out
    assert main(["agents", "login", "1001", "--device", "browser"]) == 0
    assert "on the browser" in capsys.readouterr().out
    assert rows(settings, Agent)[0].device == "browser"
    with pytest.raises(SystemExit):  # argparse: not a device
        main(["agents", "login", "1001", "--device", "fax"])
    assert main(["agents", "logout", "1001"]) == 0
    assert capsys.readouterr().out.startswith("agent 1001: 未登录 logged out (")
