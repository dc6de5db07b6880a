"""The systemd units of `ivr install-units`: checked by `systemd-analyze verify`, and each
unit's command lines run as systemd would run them against a private stack, until the role
they start is ready (the readiness checks of `ivr up`), so the units cannot rot."""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.adapters.telephony.asterisk import root_group_id, root_user_id
from ivr.cli import ROLES, build_parser, main
from ivr.devstack.stack import asterisk_instance, isolated_settings, redis_port, role_check
from ivr.devstack.stack import wait_until_ready as role_ready
from ivr.settings import Settings
from ivr.units import ASTERISK_UNIT, MIGRATE_UNIT, TARGET, role_unit
from tests.stack_support import wait_for
from tests.units_support import read_env_file, read_unit, run_to_end, start

pytestmark = pytest.mark.integration


def _ivr_path() -> Path:
    """The `ivr` the units name: the one beside this Python (install-units' own rule)."""
    return Path(sys.executable).parent / "ivr"


@pytest.fixture
def service_user() -> Iterator[str]:
    """A system user of this test's own for the roles (install-units creates it)."""
    name = f"hotline-t{os.getpid()}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


def install(base: Path, env_lines: list[str], user: str, *extra: str) -> Path:
    env_file = base / "ivr.env"
    if env_lines:
        env_file.write_text("\n".join(env_lines) + "\n")
    dest = base / "units"
    code = main(["install-units", "--dest", str(dest), "--env-file", str(env_file),
                 "--run-dir", str(base / "run"), "--user", user, *extra])  # fmt: skip
    assert code == 0
    return dest


def verify(dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in dest.iterdir())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_given_install_units_then_a_unit_per_role_and_systemd_analyze_verify_passes(
    tmp_path, service_user, capsys
):
    dest = install(tmp_path, [], service_user)
    out = capsys.readouterr().out
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted([*map(role_unit, ROLES), MIGRATE_UNIT, ASTERISK_UNIT, TARGET])
    for name in names:
        assert f"wrote {dest / name}" in out
    assert "systemctl daemon-reload" in out and f"systemctl enable --now {TARGET}" in out
    assert f"created system user {service_user}" in out

    # a new settings file, without secrets, readable by root and the roles' group only
    env_file = tmp_path / "ivr.env"
    assert "SECRET" not in env_file.read_text() and "PASSWORD=" not in env_file.read_text()
    assert env_file.stat().st_mode & 0o777 == 0o640
    assert grp.getgrgid(env_file.stat().st_gid).gr_name == service_user
    # one secrets file per unit that has secrets, root's alone, each with what it uses
    secrets_dir = tmp_path / "secrets"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    files = {p.name: p for p in secrets_dir.iterdir()}
    assert set(files) == {"asterisk.env", "ami.env", "web.env", "recorder.env",
                          "stt-worker.env", "operator.env"}  # fmt: skip
    for path in files.values():
        assert (path.stat().st_mode & 0o777, path.stat().st_uid) == (0o600, 0), path
        assert f"wrote {path} (0600 root)" in out
    env = {name: read_env_file(path) for name, path in files.items()}
    listener, actions = (
        env["asterisk.env"]["IVR_AMI__SECRET"],
        env["asterisk.env"]["IVR_AMI__ACTIONS_SECRET"],
    )
    assert env["ami.env"]["IVR_AMI__SECRET"] == listener and listener != actions
    assert env["operator.env"]["IVR_AMI__ACTIONS_SECRET"] == actions
    for role in ("ami", "web", "recorder", "stt-worker"):  # a local Redis: a user per role
        assert env[f"{role}.env"]["IVR_REDIS__USERNAME"] == role
        assert ("IVR_AMI__ACTIONS_SECRET" in env[f"{role}.env"]) == (role == "ami")  # 回访
        if role != "ami":
            assert "IVR_AMI__SECRET" not in env[f"{role}.env"]
    acl = tmp_path / "redis-users.acl"
    assert (acl.stat().st_mode & 0o777, grp.getgrgid(acl.stat().st_gid).gr_name) == (0o640, "redis")
    assert env["operator.env"]["IVR_REDIS__PASSWORD"] not in acl.read_text()
    assert f"aclfile {acl}" in out

    result = verify(dest)
    assert result.returncode == 0, result.stdout + result.stderr

    for role in ROLES:
        unit = read_unit(dest / role_unit(role))
        env = unit.environment()
        ((_, argv),) = unit.command("ExecStart", env)
        assert argv == [str(_ivr_path()), role]
        assert unit.value("Service", "User") == service_user
        assert unit.value("Service", "Restart") == "on-failure"
        assert MIGRATE_UNIT in unit.words("Unit", "Requires")
        assert MIGRATE_UNIT in unit.words("Unit", "After")
        assert unit.value("Unit", "PartOf") == TARGET
        assert env["IVR_RUN_DIR"] == str(tmp_path / "run")
    for role in ("agi", "ami"):  # Asterisk first
        assert ASTERISK_UNIT in read_unit(dest / role_unit(role)).words("Unit", "After")
    assert "redis-server.service" in read_unit(dest / role_unit("ami")).words("Unit", "Wants")

    asterisk = read_unit(dest / ASTERISK_UNIT)
    assert asterisk.environment()["IVR_AMI__ACTIONS_SECRET"] == actions  # both rendered
    ((_, argv),) = asterisk.command("ExecStart", asterisk.environment())
    root = os.environ.get("IVR_ASTERISK__ROOT", "/var/lib/hotline/sid-root")
    assert argv[1:3] == [root, "/usr/sbin/asterisk"]
    assert asterisk.environment()["IVR_ASTERISK__ROOT"] == root  # what prepare renders into
    assert argv[argv.index("-U") + 1] == "asterisk" and argv[argv.index("-G") + 1] == "asterisk"
    assert asterisk.value("Service", "User") is None  # root until Asterisk drops to its user
    assert asterisk.value("Service", "Restart") == "on-failure"

    target = read_unit(dest / TARGET)
    assert sorted(target.words("Unit", "Wants")) == sorted(n for n in names if n != TARGET)

    for role in ROLES:  # what systemd gives each role: its own secrets, nobody else's
        role_env = read_unit(dest / role_unit(role)).environment()
        assert ("IVR_AMI__SECRET" in role_env) == (role == "ami"), role
        assert ("IVR_AMI__ACTIONS_SECRET" in role_env) == (role == "ami"), role  # 回访 calls
        assert role_env.get("IVR_REDIS__USERNAME") == (None if role == "agi" else role), role

    # again: the settings file and the secrets are kept, the units written anew
    install(tmp_path, [], service_user)
    again = capsys.readouterr().out
    assert f"kept {env_file}" in again and f"kept {files['asterisk.env']}" in again
    assert read_env_file(files["asterisk.env"])["IVR_AMI__SECRET"] == listener


def test_given_install_units_then_the_migration_unit_runs_ivr_db_upgrade_before_the_roles(
    tmp_path, service_user
):
    dest = install(tmp_path, [], service_user)
    unit = read_unit(dest / MIGRATE_UNIT)
    env = unit.environment()
    ((_, argv),) = unit.command("ExecStart", env)
    assert argv == [str(_ivr_path()), "db", "upgrade"]
    assert unit.value("Service", "Type") == "oneshot"
    assert unit.value("Service", "RemainAfterExit") == "yes"
    assert unit.value("Service", "User") == service_user
    ((flags, pre),) = unit.command("ExecStartPre", env)  # the run dir, owned by the user
    assert flags == "+" and pre[-1] == str(tmp_path / "run") and service_user in pre


def test_given_a_unit_edited_to_a_wrong_path_when_verified_then_it_fails_naming_it(
    tmp_path, service_user
):
    dest = install(tmp_path, [], service_user)
    web = dest / role_unit("web")
    web.write_text(web.read_text().replace(f"ExecStart={_ivr_path()}", "ExecStart=/opt/no/ivr"))
    result = verify(dest)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "hotline-web.service" in said and "/opt/no/ivr" in said


def _has_command(name: str) -> bool:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return name in sub.choices


def _check_spools_shared(settings: Settings, user: str) -> None:
    """What Asterisk's user leaves in its spools, the roles' user reads and the recorder
    removes; Asterisk's log (queue_log) is readable. With system tools, as those users."""
    inst = asterisk_instance(settings)
    ast_uid = root_user_id(settings.asterisk.root, "asterisk")
    ast_gid = root_group_id(settings.asterisk.root, "asterisk")
    for spool in (inst.monitor_dir, inst.messages_dir):
        leg = spool / "probe-r.wav"
        subprocess.run(["sh", "-c", f"echo leg > {leg}"], user=ast_uid, group=ast_gid,
                       extra_groups=[], check=True)  # fmt: skip
        read = subprocess.run(["cat", str(leg)], capture_output=True, **_as(user))
        assert read.stdout == b"leg\n", (read.stderr, _modes(leg))
    assert (
        subprocess.run(["rm", str(inst.monitor_dir / "probe-r.wav")], **_as(user)).returncode == 0
    )
    (inst.messages_dir / "probe-r.wav").unlink()
    assert _can(user, "-r", str(inst.queue_log)) or not inst.queue_log.exists()
    assert _can(user, "-x", str(inst.log_dir))
    # the SIP directory: the roles' user writes the accounts, reads Asterisk's contacts
    directory = inst.sip_directory
    for sql, path in (
        ("INSERT INTO sip_failures VALUES ('192.0.2.1', 1, 0)", directory),
        ("DELETE FROM sip_failures", directory),
        ("SELECT count(*) FROM astdb", directory.with_name("astdb.sqlite3")),
    ):
        done = subprocess.run(["sqlite3", str(path), sql], capture_output=True, **_as(user))
        assert done.returncode == 0, (sql, done.stderr, _modes(path))


def _modes(path: Path) -> list[str]:
    return [f"{p} {oct(p.stat().st_mode)} {p.stat().st_uid}:{p.stat().st_gid}"
            for p in [*reversed(path.parents), path]]  # fmt: skip


def _as(user: str) -> dict[str, Any]:
    """Run as the user and its own group only, as systemd's User=/Group= do."""
    return {"user": user, "group": user, "extra_groups": [], "check": False}


def _can(user: str, flag: str, path: str) -> bool:
    return subprocess.run(["test", flag, path], **_as(user)).returncode == 0


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.timeout(300)
def test_given_generated_units_when_each_command_line_runs_then_every_role_gets_ready(
    service_user, capsys
):
    # Readable by the service user all the way (pytest's own temp dirs are closed to others).
    base = Path(tempfile.mkdtemp(prefix="hotline-units-", dir="/tmp"))
    base.chmod(0o755)
    logs = base / "logs"
    logs.mkdir()
    instance = f"tu{os.getpid()}"
    secret = secrets.token_urlsafe(18)
    settings: Settings = isolated_settings(base / "run", instance, ami={"secret": secret})
    env_lines = [  # what an operator puts in the settings file: this private stack
        f"IVR_AMI__SECRET={secret}",
        f"IVR_AMI__PORT={settings.ami.port}",
        "IVR_AMI__PING_INTERVAL_S=1.0",
        f"IVR_FASTAGI__PORT={settings.fastagi.port}",
        f"IVR_WEB__PORT={settings.web.port}",
        f"IVR_REDIS__URL={settings.redis.url}",
        f"IVR_ASTERISK__INSTANCE={instance}",
        f"IVR_ASTERISK__SIP_PORT={settings.asterisk.sip_port}",
        f"IVR_ASTERISK__HTTP_PORT={settings.asterisk.http_port}",
    ]
    with (logs / "redis.log").open("wb") as redis_log:
        redis_server = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port(settings)),
             "--save", "", "--appendonly", "no", "--dir", str(base)],
            stdout=redis_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        wait_for(lambda: role_check(settings, "redis", 0)[0], 10, "the private redis-server")
        dest = install(base, env_lines, service_user, "--redis-unit", "")
        user_uid = pwd.getpwnam(service_user).pw_uid
        # The roles run as the unit's User= when that user can run this virtualenv's Python.
        # Where it cannot (a virtualenv built on a Python under /root), install-units says so
        # and the roles run as root here: their command lines and settings are still the units'.
        python = os.path.realpath(sys.executable)
        as_user = _can(service_user, "-x", python)
        if not as_user:
            said = capsys.readouterr().out
            assert f"the user {service_user} cannot execute {python}" in said

        migrate = read_unit(dest / MIGRATE_UNIT)
        env = migrate.environment()
        run_to_end(migrate, "ExecStartPre", env, logs / "migrate.log", 30, as_user)
        assert (base / "run").stat().st_uid == user_uid
        if _has_command("db"):  # `ivr db upgrade` (issue 10, part 2) once it is there
            run_to_end(migrate, "ExecStart", env, logs / "migrate.log", 120, as_user)

        for role in ("asterisk", "agi", "ami", "recorder", "stt-worker", "web"):
            unit = read_unit(dest / (ASTERISK_UNIT if role == "asterisk" else role_unit(role)))
            env = unit.environment()
            log = logs / f"{role}.log"
            run_to_end(unit, "ExecStartPre", env, log, 180, as_user)
            proc = start(unit, env, log, as_user)
            running.append((role, proc))
            run_to_end(unit, "ExecStartPost", env | {"MAINPID": str(proc.pid)}, log, 90, as_user)
            role_ready(settings, role, proc.pid, log, timeout=60)
            ok, detail = role_check(settings, role, proc.pid)
            assert ok, f"{role}: {detail}"
            if role == "asterisk":  # dropped to the root's `asterisk` user
                assert _uid(proc.pid) == root_user_id(settings.asterisk.root, "asterisk")
                _check_spools_shared(settings, service_user)
            else:
                assert _uid(proc.pid) == (user_uid if as_user else 0)
    finally:
        for role, proc in reversed(running):
            if role == "asterisk":
                asterisk_instance(settings).stop(proc.pid)
            elif proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        redis_server.terminate()
        redis_server.wait()
        artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "units-logs"
        shutil.rmtree(artifacts, ignore_errors=True)
        shutil.copytree(logs, artifacts)
        asterisk_instance(settings).remove()
        shutil.rmtree(base, ignore_errors=True)
