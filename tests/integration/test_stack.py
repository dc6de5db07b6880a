"""`ivr up` / `ivr down` / `ivr status` on real processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from ivr.cli import main
from ivr.errors import StackError
from ivr.stack import ROLE_ORDER, Stack, asterisk_instance, pid_alive

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


def test_given_stack_up_then_status_page_and_health_report_the_listener(settings):
    base = f"http://{settings.web.host}:{settings.web.port}"
    page = httpx.get(f"{base}/", timeout=5)
    assert page.status_code == 200 and "hotline" in page.text
    health = httpx.get(f"{base}/health", timeout=5).json()
    assert health["status"] == "ok" and health["redis"] is True
    assert health["ami_listener"]["connected"] is True
    assert health["ami_listener"]["events"] > 0
