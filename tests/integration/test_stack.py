"""`ivr up` / `ivr down` / `ivr status` on real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ivr.adapters.sql import schema
from ivr.adapters.sql.db import settings_engine
from ivr.cli import main
from ivr.devstack.stack import ROLE_ORDER, Stack, asterisk_instance, pid_alive, role_check
from ivr.errors import StackError
from tests.stack_support import wait_for

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_given_stack_up_when_status_then_every_role_ok(cli_env, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    for role in ROLE_ORDER:
        assert f"ok   {role}" in out


def test_given_stack_up_when_up_again_then_says_already_up(cli_env, capsys):
    assert main(["up"]) == 0
    assert "already up" in capsys.readouterr().out


def test_given_stack_up_then_up_brought_its_database_to_head(stack):
    assert stack.database is not None and stack.database.head == schema.head()
    engine = settings_engine(stack.settings)
    try:
        assert schema.current(engine).state is schema.SchemaState.current
    finally:
        engine.dispose()


def test_given_database_newer_than_the_code_when_up_then_refused_before_anything_starts(
    tmp_path, make_settings
):
    settings = make_settings(tmp_path / "run", "tnewer")
    engine = settings_engine(settings)
    try:
        schema.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        engine.dispose()
    stack = Stack(settings)

    with pytest.raises(schema.SchemaNewer, match="a newer version of hotline upgraded it"):
        stack.up()

    assert stack.running() == {} and not stack.state_file.exists()
    assert not stack.logs.exists()  # no role was started


def test_given_busy_port_when_up_then_names_port_key_and_owner(tmp_path, make_settings):
    settings = make_settings(tmp_path / "run", "tbusy")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.web.port))
        sock.listen()
        with pytest.raises(StackError) as err:
            Stack(settings).up()
    message = err.value.message
    assert f"port {settings.web.port}/tcp (web.port) is taken by" in message
    assert "(pid " in message


def test_given_asterisk_that_cannot_boot_when_up_then_log_tail_shown_and_nothing_left(
    tmp_path, make_settings
):
    dialplan = tmp_path / "dialplan"
    shutil.copytree(REPO / "dialplan", dialplan)
    with (dialplan / "modules.conf").open("a") as f:
        f.write("require = res_does_not_exist.so\n")
    settings = make_settings(tmp_path / "run", "tnoboot", dialplan_dir=dialplan)
    stack = Stack(settings)
    try:
        with pytest.raises(StackError) as err:
            stack.up()
        assert "res_does_not_exist" in err.value.message
        assert not stack.state_file.exists()
        assert stack.running() == {}
    finally:
        inst = asterisk_instance(settings)
        inst.remove()


def test_given_stack_when_down_then_exactly_its_pids_stop(tmp_path, make_settings):
    settings = make_settings(tmp_path / "run", "tdown")
    stack = Stack(settings, sim_agents=False)
    decoy = subprocess.Popen(["sleep", "60"])
    try:
        stack.up()
        pids = {name: rec.pid for name, rec in stack.running().items()}
        assert set(pids) == set(ROLE_ORDER)
        lines = stack.down()
        assert len(lines) == len(ROLE_ORDER)
        assert not any(pid_alive(pid) for pid in pids.values())
        assert decoy.poll() is None
        assert main_status_exit(settings) == 1
    finally:
        stack.down()
        decoy.kill()
        decoy.wait()
        inst = asterisk_instance(settings)
        inst.remove()


def main_status_exit(settings) -> int:
    return 0 if all(s.ok for s in Stack(settings).status()) else 1


def test_given_stack_up_then_front_page_and_health_report_the_listener(settings):
    base = f"http://{settings.web.host}:{settings.web.port}"
    page = httpx.get(f"{base}/", timeout=5)  # signed out: the sign-in form
    assert page.status_code == 200 and 'action="/api/auth/login"' in page.text
    health = httpx.get(f"{base}/health", timeout=5).json()
    assert health["status"] == "ok" and health["redis"] is True
    assert health["ami_listener"]["connected"] is True
    assert health["ami_listener"]["events"] > 0


def test_given_a_role_killed_when_status_then_it_names_it_and_ivr_restart_brings_it_back(
    stack, cli_env, capsys
):
    web = stack.running()["web"]
    os.kill(web.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(web.pid), 10, "the web role to die")

    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert f"DOWN web        pid {web.pid} is gone" in out
    assert "bring it back: " in out and "ivr restart web" in out
    assert "ok   agi" in out  # the others are fine and say nothing more
    assert out.count("bring it back") == 1
    assert main(["status", "--json"]) == 1
    doc = {s["role"]: s for s in json.loads(capsys.readouterr().out)}
    assert doc["web"]["fix"].endswith("ivr restart web") and doc["agi"]["fix"] is None

    assert main(["restart", "web"]) == 0
    said = capsys.readouterr().out
    new = stack.running()["web"]
    assert new.pid != web.pid and f"web: running again and ready, pid {new.pid}" in said
    assert main(["status"]) == 0
    assert "DOWN" not in capsys.readouterr().out


def test_given_a_running_role_when_ivr_restart_then_a_new_process_ready(stack, cli_env, capsys):
    old = stack.running()["recorder"]
    assert main(["restart", "recorder"]) == 0
    assert "recorder: running again and ready" in capsys.readouterr().out
    new = stack.running()["recorder"]
    assert new.pid != old.pid and not pid_alive(old.pid)
    assert role_check(stack.settings, "recorder", new.pid)[0]


def test_given_no_stack_when_restart_then_says_to_run_up(tmp_path, make_settings, capsys):
    settings = make_settings(tmp_path / "run", "tnostack")
    with pytest.raises(StackError) as err:
        Stack(settings).restart_role("web")
    assert "ivr up" in err.value.message
    statuses = Stack(settings).status()
    assert {s.fix.rsplit(" ", 1)[-1] for s in statuses if s.fix} == {"up"}
