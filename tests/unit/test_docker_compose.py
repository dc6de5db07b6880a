"""docker/compose.yaml as Debian's docker-compose (1.29) resolves it: `docker-compose config`
needs no engine. Every role of the stack has its service, running the same command as its
systemd unit, with settings the service accepts; migrations first; volumes where the code
looks for them. (Nothing here builds or runs a container: see docker/README.md.)"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ivr.adapters.telephony.asterisk import outbound_trunk_of
from ivr.adapters.telephony.routing_files import load_routing
from ivr.cli import ROLES
from ivr.settings import Settings, _check_environment, load_settings
from ivr.units import render, role_unit
from tests.units_support import EXAMPLE_INSTALL

REPO = Path(__file__).resolve().parents[2]
DB_PASSWORD = secrets.token_hex(8)
# What docker/.env holds besides the project name: compose substitutes these.
SECRETS = {
    "HOTLINE_DB_PASSWORD": DB_PASSWORD,
    "HOTLINE_REDIS_PASSWORD": secrets.token_hex(12),
    "HOTLINE_AMI_SECRET": secrets.token_hex(12),
    "HOTLINE_AMI_ACTIONS_SECRET": secrets.token_hex(12),
}


def compose_config(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of docker/ (with an ivr.env made from the example),
    so that nothing is written beside an operator's own docker/ivr.env."""
    docker = tmp / "docker"
    docker.mkdir(exist_ok=True)
    shutil.copy(REPO / "docker" / "compose.yaml", docker)
    shutil.copy(REPO / "docker" / "ivr.env.example", docker / "ivr.env")
    return subprocess.run(
        ["docker-compose", "-f", str(docker / "compose.yaml"), "config"],
        cwd=docker, env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = compose_config(tmp_path_factory.mktemp("compose"), SECRETS)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (volume, mode) of a service's named volumes."""
    out = {}
    for entry in service.get("volumes", []):  # 1.29 writes "volume:/path:mode"
        volume, path, *mode = entry.split(":")
        out[path] = (volume, mode[0] if mode else "rw")
    return out


def service_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the service's container starts with (its whole environment)."""
    for key in list(os.environ):
        if key.upper().startswith("IVR_"):
            monkeypatch.delenv(key)
    environment = {k: str(v) for k, v in service["environment"].items()}
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    _check_environment(environment)  # an unknown IVR_* key: ConfigError naming it
    overrides: dict[str, Any] = {"_env_file": None}
    return load_settings(**overrides)


def test_every_role_has_a_service_running_the_same_command_as_its_systemd_unit(compose):
    services = compose["services"]
    units = render(EXAMPLE_INSTALL)
    for role in ROLES:
        assert role in services, f"no service for the role {role}"
        assert services[role]["command"] == ["ivr", role]
        unit_cmd = next(
            line.removeprefix("ExecStart=").split()
            for line in units[role_unit(role)].splitlines()
            if line.startswith("ExecStart=")
        )
        assert [Path(unit_cmd[0]).name, *unit_cmd[1:]] == services[role]["command"]
    others = {"redis", "postgres", "asterisk", "migrate", "prompts"}
    assert set(services) == set(ROLES) | others  # nothing runs a role that the stack lacks


@pytest.mark.parametrize("name", [*ROLES, "migrate"])
def test_each_app_service_has_only_known_settings_that_load(name, compose, monkeypatch):
    settings = service_settings(compose["services"][name], monkeypatch)
    assert settings.database.url == (
        f"postgresql+psycopg://hotline:{DB_PASSWORD}@postgres:5432/hotline"
    )
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.redis_auth() == {"password": SECRETS["HOTLINE_REDIS_PASSWORD"]}


def test_each_secret_reaches_only_the_services_that_use_it(compose):
    services = compose["services"]
    example = (REPO / "docker" / "ivr.env.example").read_text()
    assert not [line for line in example.splitlines()
                if line.startswith(("IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET",
                                    "IVR_REDIS__PASSWORD"))]  # fmt: skip
    holders = {
        name: {key for key, value in services[name].get("environment", {}).items()
               if any(secret in str(value) for secret in SECRETS.values())}
        for name in services
    }  # fmt: skip
    assert holders["asterisk"] == {"IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET"}
    assert holders["ami"] == {"IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET",  # 回访 calls
                              "IVR_REDIS__PASSWORD", "IVR_DATABASE__URL"}  # fmt: skip
    for name in ("agi", "web", "recorder", "stt-worker", "migrate", "prompts"):
        assert holders[name] == {"IVR_REDIS__PASSWORD", "IVR_DATABASE__URL"}, name
    assert holders["redis"] == {"REDISCLI_AUTH"}
    assert holders["postgres"] == {"POSTGRES_PASSWORD"}


def test_redis_wants_its_password_with_protected_mode_on_and_none_on_its_command_line(compose):
    redis = compose["services"]["redis"]
    script = redis["command"][-1]
    assert "requirepass" in script and "--protected-mode yes" in script
    assert SECRETS["HOTLINE_REDIS_PASSWORD"] not in script  # read from the environment
    assert "umask 077" in script and "exec docker-entrypoint.sh redis-server" in script
    assert "--appendonly yes" in script and "--appendfsync everysec" in script
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -qx PONG"]


def test_migrations_run_once_postgres_is_healthy_and_every_role_waits_for_them(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["ivr", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["migrate"]["restart"] == "no"
    for role in ROLES:
        assert services[role]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, role
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert postgres["environment"]["POSTGRES_PASSWORD"] == DB_PASSWORD
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert mounts(postgres)["/var/lib/postgresql/data"][0] == "postgres-data"


def test_volumes_are_shared_where_the_code_looks_for_them(compose, monkeypatch):
    services = compose["services"]
    asterisk = mounts(services["asterisk"])
    monitor_volume, _ = asterisk["/var/spool/asterisk/monitor"]
    messages_volume, _ = asterisk["/var/spool/asterisk/voicemessages"]
    logs_volume, _ = asterisk["/var/log/asterisk"]

    recorder = service_settings(services["recorder"], monkeypatch)
    assert mounts(services["recorder"])[str(recorder.recordings.monitor_dir)] == (
        monitor_volume, "rw"  # the recorder removes the legs it catalogued
    )  # fmt: skip
    recordings_volume, mode = mounts(services["recorder"])[str(recorder.recordings_dir)]
    assert mode == "rw"
    for reader in ("web", "stt-worker"):
        settings = service_settings(services[reader], monkeypatch)
        assert mounts(services[reader])[str(settings.recordings_dir)][0] == recordings_volume

    from ivr.adapters.stt.worker import messages_dir

    stt = service_settings(services["stt-worker"], monkeypatch)
    stt_mounts = mounts(services["stt-worker"])
    assert stt_mounts[str(messages_dir(stt))][0] == messages_volume
    models_volume, mode = stt_mounts[str(stt.stt.models_dir)]
    assert mode == "rw" and models_volume in compose["volumes"]  # install-model writes there
    assert PurePosixPath(stt.stt.model_path).parent == PurePosixPath(stt.stt.models_dir)

    ami = service_settings(services["ami"], monkeypatch)
    assert ami.metrics.queue_log_path is not None
    assert mounts(services["ami"])[str(ami.metrics.queue_log_path.parent)][0] == logs_volume


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_without_a_secret_config_fails_naming_it(tmp_path, missing):
    result = compose_config(tmp_path, {k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr


def ignore_patterns(path: Path) -> set[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_the_context_root_dockerignore_keeps_out_what_each_dockerfiles_own_does():
    # docker-compose 1.29 (no BuildKit) reads only <context>/.dockerignore: without it the
    # context would carry .venv, .git and docker/.env (every secret) to the engine.
    root = ignore_patterns(REPO / ".dockerignore")
    for own in sorted((REPO / "docker").glob("*.Dockerfile.dockerignore")):
        assert ignore_patterns(own) == root, own.name
    assert {".git", ".venv", "docker/.env", "docker/ivr.env"} <= root


def test_published_ports_are_on_loopback_and_follow_docker_env(tmp_path):
    ports = {"HOTLINE_SIP_PORT": "25060", "HOTLINE_WEB_PORT": "28080",
             "HOTLINE_RTP_START": "31000", "HOTLINE_RTP_END": "31019"}  # fmt: skip
    result = compose_config(tmp_path, SECRETS | ports)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    rtp = [f"127.0.0.1:{port}:{port}/udp" for port in range(31000, 31020)]  # 1.29 expands it
    assert {name: ports for name, ports in published.items() if ports} == {
        "asterisk": ["127.0.0.1:25060:5060/udp", *rtp],
        "web": ["127.0.0.1:28080:8080/tcp"],
    }
    environment = services["asterisk"]["environment"]
    assert (environment["ASTERISK_RTP_START"], environment["ASTERISK_RTP_END"]) == (
        "31000",
        "31019",
    )


def test_the_compose_stack_renders_the_outbound_trunk_as_the_dev_stack_does(compose):
    """The prompts one-shot prints the outbound trunk of routing/ (`ivr outbound-trunk-conf`)
    and the Asterisk entrypoint appends it to pjsip_generated.conf, beside the transport
    `transport-udp` it names: the same lines `ivr up` renders there."""
    command = " ".join(compose["services"]["prompts"]["command"])
    assert "ivr outbound-trunk-conf > /var/lib/hotline/prompts/pjsip_outbound_generated.conf" in (
        command
    )
    script = (REPO / "docker" / "asterisk-entrypoint.sh").read_text(encoding="utf-8")
    assert 'cat "$prompts/pjsip_outbound_generated.conf" >> "$etc/pjsip_generated.conf"' in script
    assert "[transport-udp]" in script
    routing = load_routing(REPO / "routing")
    printed = outbound_trunk_of(routing)
    assert printed.startswith("\n; the outbound trunk") and "context = outbound-refused" in printed
    trunk = routing.hotline.followup.trunk  # type: ignore[union-attr]
    assert f"contact = sip:{trunk.host}:{trunk.port}" in printed
