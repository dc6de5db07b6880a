"""Least privilege without touching the machine: the AMI accounts as rendered, secret files
created with their final mode, each role's environment, the Redis ACL file.

The same things against the real peers: tests/integration/test_ami_privileges.py (Asterisk)
and tests/integration/test_redis_auth.py (redis-server)."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ivr import redis_acl
from ivr.adapters.private_files import create_private, write_private
from ivr.adapters.telephony.asterisk import (
    ACTIONS,
    FORBIDDEN_WRITE,
    LISTENER,
    AmiAccount,
    AmiAccountClasses,
    AsteriskInstance,
    ami_accounts,
)
from ivr.devstack.stack import APP_ROLES, asterisk_instance, settings_env
from ivr.errors import StackError
from ivr.settings import Settings

LISTENER_SECRET = "listener-secret-0123456789"
ACTIONS_SECRET = "actions-secret-0123456789"
REDIS_SECRET = "redis-secret-0123456789"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("IVR_")]:
        monkeypatch.delenv(key)
    return Settings(
        run_dir=tmp_path / "run",
        ami={"secret": LISTENER_SECRET, "actions_secret": ACTIONS_SECRET},
        redis={"password": REDIS_SECRET},
        auth={"session_secret": "session-secret-0123456789"},
        web={"metrics_token": "m" * 40},
    )


# --- AMI accounts -----------------------------------------------------------------------------
def test_no_kind_of_account_may_write_system_command_or_config():
    for classes in (LISTENER, ACTIONS):
        assert not set(classes.write) & FORBIDDEN_WRITE, classes.purpose
    # what each needs, as measured on Asterisk 22 (ivr/adapters/telephony/asterisk.py)
    # CoreShowChannels (reporting); the agents' membership (agent); Ping, QueueStatus need none
    assert LISTENER.write == ("reporting", "agent")
    assert set(ACTIONS.write) == {"call", "agent", "originate"}


def test_given_both_secrets_then_two_accounts_rendered_each_with_its_classes(settings):
    accounts = ami_accounts(settings)
    assert [(a.username, a.classes) for a in accounts] == [
        ("hotline-listener", LISTENER),
        ("hotline-actions", ACTIONS),
    ]
    conf = _with_accounts(settings, accounts)._manager_conf()  # what render() writes
    assert "[hotline-listener]\nsecret = listener-secret-0123456789\n" in conf
    assert "[hotline-actions]\nsecret = actions-secret-0123456789\n" in conf
    writes = [line for line in conf.splitlines() if line.startswith("write = ")]
    assert writes == ["write = reporting,agent", "write = call,agent,originate"]
    assert conf.count("permit = 127.0.0.1/255.255.255.255") == 2


def test_given_no_actions_secret_then_only_the_listener_is_rendered(settings):
    settings.ami.actions_secret = None
    assert [a.username for a in ami_accounts(settings)] == ["hotline-listener"]


@pytest.mark.parametrize(
    ("account", "said"),
    [
        (AmiAccount("hotline\n[evil]", "secret-0123", LISTENER), "account name"),
        (AmiAccount("ok", "secret\nwrite = system", LISTENER), "8 to 256 of"),
        (AmiAccount("ok", "short", LISTENER), "8 to 256 of"),
        (
            AmiAccount("ok", "secret-0123", AmiAccountClasses("x", ("call",), ("system",))),
            "write class system",
        ),
    ],
)
def test_an_account_that_would_break_manager_conf_or_run_programs_is_refused(account, said):
    with pytest.raises(StackError, match=said):
        account.check()


def _with_accounts(settings: Settings, accounts: tuple[AmiAccount, ...]) -> AsteriskInstance:
    return replace(asterisk_instance(settings), ami_accounts=accounts)


# --- files with secrets -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_a_private_file_is_created_with_its_final_mode_whatever_the_umask(
    tmp_path, mode, monkeypatch
):
    seen: list[tuple[int, int]] = []
    real_open = os.open

    def spying_open(path: Any, flags: int, file_mode: int = 0o777, *args: Any) -> int:
        seen.append((flags, file_mode))
        return real_open(path, flags, file_mode, *args)

    monkeypatch.setattr(os, "open", spying_open)
    old = os.umask(0)  # the loosest umask: the mode alone keeps others out
    try:
        target = tmp_path / "secret.conf"
        target.write_text("old")
        target.chmod(0o644)
        write_private(target, "new", mode)
    finally:
        os.umask(old)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == mode
    ((flags, created_mode),) = seen
    assert flags & os.O_CREAT and flags & os.O_EXCL and created_mode == mode
    assert [p.name for p in tmp_path.iterdir()] == ["secret.conf"]  # no temporary left


def test_a_generated_secret_file_is_never_replaced(tmp_path):
    path = tmp_path / "ami.secret"
    old = os.umask(0)
    try:
        assert create_private(path, "first\n")
        assert not create_private(path, "second\n")
    finally:
        os.umask(old)
    assert path.read_text() == "first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- each role's environment ------------------------------------------------------------------
SECRET_NAMES = ("IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET", "IVR_AUTH__SESSION_SECRET",
                "IVR_WEB__METRICS_TOKEN")  # fmt: skip


def test_each_role_gets_only_its_own_secrets_and_redis_user(settings):
    env = {role: settings_env(settings, role) for role in APP_ROLES}
    have = {role: {n for n in SECRET_NAMES if n in env[role]} for role in APP_ROLES}
    assert have == {
        "agi": set(),
        "ami": {"IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET"},  # the 回访 calls: Originate
        "recorder": set(),
        "web": {"IVR_AUTH__SESSION_SECRET", "IVR_WEB__METRICS_TOKEN"},
        "stt-worker": set(),
    }
    assert env["ami"]["IVR_AMI__SECRET"] == LISTENER_SECRET
    assert env["web"]["IVR_WEB__METRICS_TOKEN"] == "m" * 40  # the value, not **********
    for role in ("ami", "web", "recorder", "stt-worker"):
        assert env[role]["IVR_REDIS__USERNAME"] == role
        assert env[role]["IVR_REDIS__PASSWORD"] == redis_acl.role_password(REDIS_SECRET, role)
    assert "IVR_REDIS__PASSWORD" not in env["agi"] and "IVR_REDIS__USERNAME" not in env["agi"]
    assert env["ami"]["IVR_AMI__ACTIONS_SECRET"] == ACTIONS_SECRET
    for role in APP_ROLES:  # no secret of another, not even masked
        text = "\n".join(f"{k}={v}" for k, v in env[role].items())
        assert (ACTIONS_SECRET in text) == (role == "ami") and REDIS_SECRET not in text
        assert "**********" not in text


def test_the_operator_environment_has_every_secret(settings):
    env = settings_env(settings)
    assert env["IVR_AMI__SECRET"] == LISTENER_SECRET
    assert env["IVR_AMI__ACTIONS_SECRET"] == ACTIONS_SECRET
    assert env["IVR_REDIS__PASSWORD"] == REDIS_SECRET
    assert "IVR_REDIS__USERNAME" not in env  # Redis's default user


def test_a_role_environment_loads_as_that_role_would(settings, monkeypatch):
    for key, value in settings_env(settings, "web").items():
        monkeypatch.setenv(key, value)
    from ivr.settings import load_settings

    loaded = load_settings()
    assert loaded.redis_auth() == {
        "username": "web",
        "password": redis_acl.role_password(REDIS_SECRET, "web"),
    }
    assert loaded.ami.secret is None and loaded.ami.actions_secret is None


def test_without_a_redis_password_no_role_gets_redis_credentials(settings):
    settings.redis.password = None
    for role in APP_ROLES:
        assert "IVR_REDIS__PASSWORD" not in settings_env(settings, role)


def test_with_a_redis_user_of_ones_own_the_roles_share_it(settings):
    settings.redis.username = "hotline"
    settings.redis.password = SecretStr("own-password-0123")
    assert "IVR_REDIS__PASSWORD" not in settings_env(settings, "web")  # not derived
    assert settings_env(settings)["IVR_REDIS__USERNAME"] == "hotline"


# --- the Redis ACL file -----------------------------------------------------------------------
def test_the_acl_file_holds_hashes_and_one_user_per_role():
    passwords = redis_acl.stack_passwords(REDIS_SECRET)
    text = redis_acl.acl_file(passwords, "ivr:stt:jobs")
    assert REDIS_SECRET not in text
    assert not any(p in text for p in passwords.values())
    users = {line.split()[1]: line for line in text.splitlines()}
    assert set(users) == {"default", "ami", "web", "recorder", "stt-worker"}
    assert users["default"].endswith("~* &* +@all")
    for role in redis_acl.ROLE_USERS:
        assert " resetkeys resetchannels " in users[role]
        assert " -@all +@all -@dangerous " in users[role]
    assert "%R~ivr:metrics:*" in users["web"] and " ~ivr:metrics:*" not in users["web"]
    assert " ~ivr:stt:jobs" in users["recorder"] and "metrics" not in users["recorder"]


def test_role_passwords_differ_and_depend_on_the_secret():
    one = redis_acl.stack_passwords(REDIS_SECRET)
    other = redis_acl.stack_passwords(REDIS_SECRET + "x")
    assert len(set(one.values())) == len(one)
    assert all(one[user] != other[user] for user in one)


def test_an_acl_file_without_a_default_password_is_refused():
    with pytest.raises(ValueError, match="default user"):
        redis_acl.acl_file({"web": "x"}, "ivr:stt:jobs")


def test_ivr_up_generates_each_missing_secret_once_with_mode_0600(settings):
    from ivr.devstack.stack import Stack

    settings.ami.secret = settings.ami.actions_secret = settings.redis.password = None
    Stack(settings)._ensure_secrets()
    files = [settings.ami_secret_file, settings.ami_actions_secret_file, settings.redis_secret_file]
    first = [path.read_text() for path in files]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert len(set(first)) == 3
    assert settings.ami_secret() == first[0].strip()  # known to these settings from now on
    settings.ami.secret = settings.ami.actions_secret = settings.redis.password = None
    Stack(settings)._ensure_secrets()
    assert [path.read_text() for path in files] == first  # kept, never replaced


def test_ivr_up_refuses_a_redis_user_of_ones_own(settings):
    from ivr.devstack.stack import Stack

    settings.redis.username = "hotline"
    with pytest.raises(StackError, match="a user per role"):
        Stack(settings)._ensure_secrets()
