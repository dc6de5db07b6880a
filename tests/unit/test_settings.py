"""load_settings(): defaults, env vars, refusals that name the key, and the AMI secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.settings import load_settings

SECRET = "s3cret-from-env-never-shown"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No IVR_* variables from the caller, no .env in the working dir, an empty run_dir."""
    for key in [k for k in os.environ if k.startswith("IVR_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("IVR_RUN_DIR", str(run_dir))
    return run_dir


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    return info.value.message


def test_given_no_configuration_when_loaded_then_everything_on_loopback(clean_env):
    settings = load_settings()

    assert settings.fastagi.host == "127.0.0.1"
    assert settings.web.host == "127.0.0.1"
    assert settings.ami.host == "127.0.0.1"
    assert settings.redis.url.startswith("redis://127.0.0.1:")
    assert settings.allow_public_bind is False
    assert settings.fastagi.port == 4573
    assert settings.run_dir == clean_env


def test_given_nested_env_vars_when_loaded_then_applied(monkeypatch):
    monkeypatch.setenv("IVR_WEB__PORT", "8181")
    monkeypatch.setenv("IVR_FASTAGI__HEADER_TIMEOUT_S", "0.5")
    monkeypatch.setenv("IVR_LOG_LEVEL", "DEBUG")

    settings = load_settings()

    assert settings.web.port == 8181
    assert settings.fastagi.header_timeout_s == 0.5
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize("section", ["web", "fastagi"])
def test_given_public_host_when_loaded_then_refused_naming_the_key(monkeypatch, section):
    monkeypatch.setenv(f"IVR_{section.upper()}__HOST", "0.0.0.0")

    message = config_error()

    assert f"{section}.host" in message
    assert "'0.0.0.0' is not a loopback address" in message
    assert "IVR_ALLOW_PUBLIC_BIND=true" in message


def test_given_public_host_and_public_bind_allowed_when_loaded_then_accepted(monkeypatch):
    monkeypatch.setenv("IVR_WEB__HOST", "0.0.0.0")
    monkeypatch.setenv("IVR_ALLOW_PUBLIC_BIND", "true")

    assert load_settings().web.host == "0.0.0.0"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2", "::1"])
def test_given_other_loopback_host_when_loaded_then_accepted(monkeypatch, host):
    monkeypatch.setenv("IVR_WEB__HOST", host)

    assert load_settings().web.host == host


def test_given_hostname_when_loaded_then_refused_as_not_loopback(monkeypatch):
    monkeypatch.setenv("IVR_FASTAGI__HOST", "ivr.example.org")

    assert "fastagi.host" in config_error()


def test_given_port_not_a_number_when_loaded_then_error_names_key_and_env_var(monkeypatch):
    monkeypatch.setenv("IVR_WEB__PORT", "abc")

    message = config_error()

    assert "web.port (IVR_WEB__PORT)" in message
    assert "valid integer" in message


def test_given_two_bad_values_when_loaded_then_both_named(monkeypatch):
    monkeypatch.setenv("IVR_WEB__PORT", "abc")
    monkeypatch.setenv("IVR_FASTAGI__PORT", "0")

    message = config_error()

    assert "web.port (IVR_WEB__PORT)" in message
    assert "fastagi.port (IVR_FASTAGI__PORT)" in message


def test_given_misspelt_ivr_env_var_when_loaded_then_refused_with_a_hint(monkeypatch):
    # pydantic-settings alone ignores unknown variables; a typo such as IVR_AMI_SECRET (one
    # underscore) would leave the service without its secret and nobody told why.
    monkeypatch.setenv("IVR_AMI_SECRET", SECRET)
    monkeypatch.setenv("IVR_WEB__BOGUS", "1")

    message = config_error()

    assert "unknown setting IVR_AMI_SECRET (did you mean IVR_AMI__SECRET?)" in message
    assert "IVR_WEB__BOGUS" in message
    assert SECRET not in message


def test_given_provisioning_variables_when_loaded_then_accepted(monkeypatch):
    monkeypatch.setenv("IVR_CACHE_DIR", "/tmp/cache")
    monkeypatch.setenv("IVR_VENV", "/tmp/venv")

    assert load_settings().web.host == "127.0.0.1"


def test_given_unknown_key_in_env_file_when_loaded_then_refused_naming_it(tmp_path):
    env_file = tmp_path / "ivr.env"
    env_file.write_text("IVR_WEB__PORT=8181\nIVR_BOGUS=1\n")

    message = config_error(_env_file=env_file)

    assert "ivr_bogus (IVR_BOGUS): Extra inputs are not permitted" in message


def test_given_env_file_when_loaded_then_values_used_and_env_vars_win(tmp_path, monkeypatch):
    env_file = tmp_path / "ivr.env"
    env_file.write_text("IVR_WEB__PORT=8181\nIVR_FASTAGI__PORT=4600\n")
    monkeypatch.setenv("IVR_FASTAGI__PORT", "4700")

    settings = load_settings(_env_file=env_file)

    assert (settings.web.port, settings.fastagi.port) == (8181, 4700)


def test_given_no_ami_secret_when_asked_then_config_error_naming_env_var():
    settings = load_settings()

    with pytest.raises(ConfigError, match="IVR_AMI__SECRET") as info:
        settings.ami_secret()

    assert "ami.secret" in info.value.message
    assert str(settings.ami_secret_file) in info.value.message


def test_given_empty_ami_secret_when_asked_then_config_error(monkeypatch):
    monkeypatch.setenv("IVR_AMI__SECRET", "")

    with pytest.raises(ConfigError, match="IVR_AMI__SECRET"):
        load_settings().ami_secret()


def test_given_secret_override_when_asked_then_returned():
    assert load_settings(ami={"secret": SECRET}).ami_secret() == SECRET


def test_given_secret_file_in_run_dir_when_loaded_then_picked_up(clean_env):
    clean_env.mkdir()
    (clean_env / "ami.secret").write_text("from-the-file\n")

    assert load_settings().ami_secret() == "from-the-file"


def test_given_secret_file_and_env_var_when_loaded_then_env_var_wins(clean_env, monkeypatch):
    clean_env.mkdir()
    (clean_env / "ami.secret").write_text("from-the-file\n")
    monkeypatch.setenv("IVR_AMI__SECRET", SECRET)

    assert load_settings().ami_secret() == SECRET


def test_given_secret_when_settings_shown_then_secret_hidden(monkeypatch):
    monkeypatch.setenv("IVR_AMI__SECRET", SECRET)

    settings = load_settings()

    assert settings.ami_secret() == SECRET
    for text in (repr(settings), str(settings), repr(settings.ami), settings.model_dump_json()):
        assert SECRET not in text
    assert "**********" in repr(settings)


def test_given_secret_from_file_when_settings_shown_then_secret_hidden(clean_env):
    clean_env.mkdir()
    (clean_env / "ami.secret").write_text(SECRET)

    settings = load_settings()

    assert settings.ami_secret() == SECRET
    assert SECRET not in repr(settings)


def test_given_placeholder_ami_secret_when_loaded_then_refused(monkeypatch):
    monkeypatch.setenv("IVR_AMI__SECRET", "change-me")

    message = config_error()

    assert "IVR_AMI__SECRET is still the example placeholder" in message


def test_given_actions_secret_file_in_run_dir_when_asked_then_picked_up_apart(clean_env):
    clean_env.mkdir()
    (clean_env / "ami-actions.secret").write_text("actions-from-file\n")
    settings = load_settings()

    assert settings.ami_actions_secret() == "actions-from-file"
    with pytest.raises(ConfigError, match="IVR_AMI__SECRET"):
        settings.ami_secret()  # the listener's is another secret
    assert settings.has_ami_actions_secret()


def test_given_no_actions_secret_when_asked_then_config_error_naming_env_var():
    settings = load_settings(ami={"secret": SECRET})

    with pytest.raises(ConfigError, match="IVR_AMI__ACTIONS_SECRET"):
        settings.ami_actions_secret()
    assert not settings.has_ami_actions_secret()


def test_given_secret_file_when_loaded_then_read_only_when_asked(clean_env):
    """A role that never asks for a secret (the web) never reads the file."""
    clean_env.mkdir()
    secret_file = clean_env / "ami.secret"
    secret_file.write_text("from-the-file\n")
    settings = load_settings()
    secret_file.write_text("changed-later\n")

    assert settings.ami.secret is None
    assert settings.ami_secret() == "changed-later"


def test_given_one_name_for_both_ami_accounts_when_loaded_then_refused(monkeypatch):
    monkeypatch.setenv("IVR_AMI__ACTIONS_USERNAME", "hotline-listener")

    assert "two accounts" in config_error()


@pytest.mark.parametrize("name", ["IVR_AMI__ACTIONS_SECRET", "IVR_REDIS__PASSWORD"])
def test_given_placeholder_secret_when_loaded_then_refused_naming_it(monkeypatch, name):
    monkeypatch.setenv(name, "change-me")

    assert f"{name} is still the example placeholder" in config_error()


def test_given_redis_url_with_credentials_when_loaded_then_kept_apart_and_hidden(monkeypatch):
    monkeypatch.setenv("IVR_REDIS__URL", f"redis://web:{SECRET}@127.0.0.1:6390/2")

    settings = load_settings()

    assert settings.redis.url == "redis://127.0.0.1:6390/2"
    assert settings.redis_auth() == {"username": "web", "password": SECRET}
    for text in (repr(settings), settings.model_dump_json()):
        assert SECRET not in text


def test_given_redis_password_only_when_loaded_then_auth_as_default_user(monkeypatch):
    monkeypatch.setenv("IVR_REDIS__URL", f"redis://:{SECRET}@redis:6379/0")

    settings = load_settings()

    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.redis_auth() == {"password": SECRET}


def test_given_redis_secret_file_in_run_dir_then_default_user_password(clean_env):
    assert load_settings().redis_auth() == {}  # no password anywhere: none sent
    clean_env.mkdir()
    (clean_env / "redis.secret").write_text("redis-from-file\n")

    assert load_settings().redis_auth() == {"password": "redis-from-file"}
    # an ACL user of one's own choosing does not get the default user's password
    assert load_settings(redis={"username": "web"}).redis_auth() == {"username": "web"}


def test_given_credentials_in_url_and_in_password_when_loaded_then_refused(monkeypatch):
    monkeypatch.setenv("IVR_REDIS__URL", "redis://:one@127.0.0.1:6390/0")
    monkeypatch.setenv("IVR_REDIS__PASSWORD", "another-one")

    assert "credentials both in the URL and in username/password" in config_error()


def test_given_event_stream_younger_than_the_replay_window_when_loaded_then_refused(monkeypatch):
    monkeypatch.setenv("IVR_REDIS__EVENTS_MAX_AGE_S", "3600")

    message = config_error()

    assert "redis.events_max_age_s (3600) is below metrics.replay_window_s (21600)" in message


def test_given_asterisk_root_in_env_then_a_private_test_stack_uses_it(monkeypatch, tmp_path):
    from ivr.devstack.stack import isolated_settings

    monkeypatch.setenv("IVR_ASTERISK__ROOT", "/var/lib/hotline/other-root")

    settings = isolated_settings(tmp_path / "run", "t1")

    assert settings.asterisk.root == Path("/var/lib/hotline/other-root")
    assert (settings.asterisk.instance, settings.asterisk.sip_port != 5060) == ("t1", True)


def test_given_settings_and_secrets_files_in_ivr_env_file_then_both_read_later_wins(tmp_path):
    """Operators under systemd: IVR_ENV_FILE=<settings file>:<secrets/operator.env>."""
    import subprocess
    import sys

    settings_file, secrets_file = tmp_path / "ivr.env", tmp_path / "operator.env"
    settings_file.write_text("IVR_WEB__PORT=8181\nIVR_AMI__ACTIONS_SECRET=old-one-123\n")
    secrets_file.write_text(f"IVR_AMI__ACTIONS_SECRET={SECRET}\n")
    env = {"PATH": os.environ["PATH"], "IVR_ENV_FILE": f"{settings_file}:{secrets_file}",
           "IVR_RUN_DIR": str(tmp_path / "run")}  # fmt: skip
    code = "from ivr.settings import load_settings as l; s = l(); " \
           "print(s.web.port, s.ami_actions_secret())"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.split() == ["8181", SECRET]


@pytest.mark.parametrize("realm", ["", "hot line", 'hot"line', "hot:line", "x" * 65])
def test_given_a_sip_realm_a_digest_header_cannot_carry_then_refused_naming_the_key(
    monkeypatch, realm
):
    monkeypatch.setenv("IVR_ASTERISK__SIP_REALM", realm)

    assert "asterisk.sip_realm (IVR_ASTERISK__SIP_REALM)" in config_error()


def test_the_sip_realm_defaults_to_hotline_and_takes_a_domain(clean_env, monkeypatch):
    assert load_settings().asterisk.sip_realm == "hotline"
    monkeypatch.setenv("IVR_ASTERISK__SIP_REALM", "pbx.gas-utility.example")
    assert load_settings().asterisk.sip_realm == "pbx.gas-utility.example"
