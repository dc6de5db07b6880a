"""``ivr up`` / ``ivr down`` / ``ivr status``: the whole stack on 127.0.0.1, from one run dir.

``up`` first brings the database to head (``ivr db upgrade``: the roles refuse any other
revision), then starts, in order, Redis (AOF on, data in ``<run_dir>/redis``), Asterisk (in
the sid root, configured from ``dialplan/``), then the ``agi``, ``ami``, ``recorder``,
``web`` and ``stt-worker`` roles as ``python -m ivr <role>``, waiting for each to be ready
before the next. PIDs go in ``<run_dir>/stack.json`` and logs in ``<run_dir>/logs/``.
``down`` stops exactly those PIDs (after checking each PID is still the process it started),
in reverse order.

No root at run time: ``up`` runs as root only to create the service user
(:mod:`ivr.adapters.service_user`, the systemd units' own), hand it the run dir, let it reach
the checkout (:mod:`ivr.devstack.access`), migrate, and start Asterisk in its root, which then
drops to the root's ``asterisk`` user. Redis and every role run as the service user with
umask 027; what they and Asterisk write (recordings, the SQLite file, Redis's data, logs)
has no permission bits for others. The SQLite file is created as the service user's (0640)
before the migration, so the ``-wal``/``-shm`` files a root process opens later are given
the same owner and mode by SQLite itself.

Secrets: unless configured, ``up`` generates the AMI listener's (``ami.secret``), the AMI
actions account's (``ami-actions.secret``) and Redis's (``redis.secret``) into the run dir,
each created with mode 0600. Redis runs with an ACL file (``<run_dir>/redis/users.acl``,
hashes only) holding one user per role (:mod:`ivr.redis_acl`). Each role gets only what it
uses (:func:`settings_env`): the ami role the listener's secret and its Redis user, the web,
recorder and stt-worker roles their Redis users, the agi role nothing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from pydantic import SecretStr
from sqlalchemy.engine import make_url

import ivr
from ivr import redis_acl, redis_keys
from ivr.adapters.private_files import create_private, write_private
from ivr.adapters.processes import pid_alive, spawn_detached
from ivr.adapters.recordings.recorder import heartbeat_path, heartbeat_status
from ivr.adapters.service_user import (
    ASTERISK_USER,
    SERVICE_UMASK,
    SERVICE_USER,
    Account,
    account,
    ensure_user,
)
from ivr.adapters.sql.db import database_url, settings_engine
from ivr.adapters.sql.schema import Upgrade, upgrade
from ivr.adapters.sql.users import ensure_dev_user
from ivr.adapters.telephony import prompts

# The instance builders live beside AsteriskInstance (systemd's `ivr asterisk` uses them too);
# tests and benchmarks still import them from here.
from ivr.adapters.telephony.asterisk import asterisk_instance as asterisk_instance
from ivr.adapters.telephony.asterisk import configured_instance as configured_instance
from ivr.adapters.telephony.config_check import load_checked
from ivr.adapters.telephony.sip_directory import registrations
from ivr.core import front_door
from ivr.devstack import demo_agents as demos
from ivr.devstack import sipp
from ivr.devstack.access import check_reach, hand_over_run_dir, open_the_way
from ivr.devstack.ports import free_port, is_free, port_owner
from ivr.errors import ConfigError, SipDirectoryError, StackError
from ivr.settings import (
    AmiSettings,
    FastAgiSettings,
    RedisSettings,
    Settings,
    WebSettings,
)

logger = logging.getLogger(__name__)

APP_ROLES = ("agi", "ami", "recorder", "web", "stt-worker")
ROLE_ORDER = ("redis", "asterisk", *APP_ROLES)
READY_TIMEOUT_S = 30.0
QUEUES_WITH_SIM_AGENT = ("consultation", "repair", "billing", "complaints", "emergency",
                         "emergency-backup")  # fmt: skip


@dataclass(frozen=True, slots=True)
class RoleRecord:
    name: str
    pid: int
    marker: str  # a word /proc/<pid>/cmdline must contain for the PID to still be ours
    log: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class RoleStatus:
    name: str
    ok: bool
    detail: str
    fix: str | None = None  # the command that brings a role that is down back


def redis_port(settings: Settings) -> int:
    return urlsplit(settings.redis.url).port or 6379


# Which roles get which secret in their environment (the operator's, role None: all of them).
ROLE_SECRETS: dict[str, frozenset[str]] = {
    "IVR_AMI__SECRET": frozenset({"ami"}),  # the listener's account
    "IVR_AMI__ACTIONS_SECRET": frozenset({"ami"}),  # the 回访 calls (and `ivr call`)
    "IVR_AUTH__SESSION_SECRET": frozenset({"web"}),
    "IVR_WEB__METRICS_TOKEN": frozenset({"web"}),
}
_SECRET_VARIABLES = frozenset({*ROLE_SECRETS, "IVR_REDIS__USERNAME", "IVR_REDIS__PASSWORD"})


def settings_env(settings: Settings, role: str | None = None) -> dict[str, str]:
    """The settings as IVR_* variables, so a role runs with exactly what `up` resolved.

    ``role``: only the secrets that role uses (:data:`ROLE_SECRETS`) and its own Redis user
    (:mod:`ivr.redis_acl`; none for the agi role); None (an operator's shell, the tests):
    every secret known, and Redis's default user."""
    env: dict[str, str] = {}

    def flatten(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                flatten(f"{prefix}__{key.upper()}" if prefix else key.upper(), sub)
        elif value is not None:
            env[f"IVR_{prefix}"] = str(value).lower() if isinstance(value, bool) else str(value)

    flatten("", settings.model_dump(mode="json"))
    for name in (*ROLE_SECRETS, "IVR_REDIS__USERNAME", "IVR_REDIS__PASSWORD"):
        env.pop(name, None)  # model_dump shows secrets as **********: set below, or not at all
    secrets_now = {
        "IVR_AMI__SECRET": _known(settings.ami_secret),
        "IVR_AMI__ACTIONS_SECRET": _known(settings.ami_actions_secret),
        "IVR_AUTH__SESSION_SECRET": _value(settings.auth.session_secret),
        "IVR_WEB__METRICS_TOKEN": _value(settings.web.metrics_token),
    }
    for name, value in secrets_now.items():
        if value is not None and (role is None or role in ROLE_SECRETS[name]):
            env[name] = value
    env.update(_redis_user_env(settings, role))
    return env


def _redis_user_env(settings: Settings, role: str | None) -> dict[str, str]:
    password = settings.redis_password()
    if role is None:
        user = {"IVR_REDIS__USERNAME": settings.redis.username}
        return {k: v for k, v in user.items() if v} | (
            {"IVR_REDIS__PASSWORD": password} if password else {}
        )
    if settings.redis.username is not None or password is None:
        return {}  # Redis without authentication, or a user of the operator's own choosing
    if role not in redis_acl.ROLE_USERS:
        return {}  # the agi role: no Redis at all
    return {"IVR_REDIS__USERNAME": role,
            "IVR_REDIS__PASSWORD": redis_acl.role_password(password, role)}  # fmt: skip


def _run_dir_secret(path: Path) -> str:
    """The secret kept in ``path``: generated the first time, created with mode 0600."""
    create_private(path, secrets.token_urlsafe(24) + "\n")
    text = path.read_text().strip()
    if not text:
        raise StackError(f"{path} is empty: delete it and `ivr up` makes a new one")
    return text


def _known(read: Callable[[], str]) -> str | None:
    try:
        return read()
    except ConfigError:
        return None


def _value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def isolated_settings(run_dir: Path, instance: str, **extra: Any) -> Settings:
    """Settings for a private stack on free ports (tests, benchmarks), beside any other.

    The AMI link is checked every second so a dead link is noticed within about 2 s. The
    instance name and the SIP port are private; the rest of ``asterisk`` (the root) comes
    from the environment (IVR_ASTERISK__ROOT), as for any other settings.
    """
    ami = AmiSettings.model_validate(
        {"port": free_port(), "ping_interval_s": 1.0, "ping_timeout_s": 1.0, "backoff_max_s": 2.0}
        | extra.pop("ami", {})
    )
    # A dict, not a model: pydantic-settings merges the environment's asterisk.* keys into it.
    asterisk = {
        "instance": instance,
        "sip_port": _free_sip_port(),
        "http_port": free_port(),
    } | extra.pop("asterisk", {})
    sections: dict[str, Any] = {"asterisk": asterisk}
    return Settings(
        run_dir=run_dir,
        fastagi=FastAgiSettings(port=free_port()),
        ami=ami,
        redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"),
        web=WebSettings(port=free_port()),
        **sections,
        **extra,
    )


def _free_sip_port() -> int:
    """A port free for both UDP and TCP (the SIP transports share the number)."""
    for _ in range(50):
        port = free_port("udp")
        if is_free(port, "tcp"):
            return port
    raise StackError("no port free for both UDP and TCP for SIP after 50 tries")


class Stack:
    def __init__(
        self, settings: Settings, *, sim_agents: bool = True, demo_agents: bool = False
    ) -> None:
        self.settings = settings
        self.sim_agents = sim_agents
        self.demo_agents = demo_agents
        self.demo: demos.Prepared | None = None
        self.run_dir = settings.run_dir
        self.state_file = self.run_dir / "stack.json"
        self.logs = self.run_dir / "logs"
        self.dev_password: str | None = None
        self.database: Upgrade | None = None
        self.access_notes: list[str] = []  # the service user created, directories opened

    # --- state file ------------------------------------------------------------------
    def _records(self) -> dict[str, RoleRecord]:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {name: RoleRecord(**rec) for name, rec in data.get("roles", {}).items()}

    def _save(self, records: dict[str, RoleRecord]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"roles": {n: asdict(r) for n, r in records.items()}}, indent=1))
        tmp.replace(self.state_file)

    def running(self) -> dict[str, RoleRecord]:
        return {n: r for n, r in self._records().items() if _is_ours(r)}

    # --- up --------------------------------------------------------------------------
    def up(self) -> list[str]:
        if self.running():
            raise StackAlreadyUp(
                f"the stack is already up (run dir {self.run_dir}); see `ivr status`, "
                "or `ivr down` first"
            )
        if os.geteuid() != 0:
            raise StackError(
                "ivr up must run as root: it creates the service user, starts Asterisk in a "
                "chroot, and drops to unprivileged users for everything that runs (sudo ivr up)"
            )
        self.state_file.unlink(missing_ok=True)
        s = self.settings  # refuse to start on a bad routing file, prompt or queue name
        routing, catalog = load_checked(s.routing_dir, s.prompts_dir, s.dialplan_dir)
        self._check_ports()
        self._prepare_service_user()
        self.database = self._upgrade_database()  # the roles refuse any other revision
        self._ensure_secrets()
        prompts.build(catalog, s.prompts_dir, s.prompts_build_dir)
        self.dev_password = self._ensure_dev_user()
        if self.demo_agents:
            self.demo = demos.ensure(s)
        records: dict[str, RoleRecord] = {}
        try:
            for role in self._order(records):
                records[role] = self._start(role)
                self._save(records)
                self._wait_ready(role, records[role])
            if self.demo is not None:  # every phone has registered: the agents log in
                demos.log_in(s, self.demo.phones)
        except BaseException:
            self.down()
            raise
        return self._summary(routing.hotline.dids[0])

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [
            ("redis.url", redis_port(s), "tcp"),
            ("asterisk.sip_port", s.asterisk.sip_port, "udp"),
            ("asterisk.sip_port", s.asterisk.sip_port, "tcp"),  # agents' desk phones over TCP
            ("asterisk.http_port", s.asterisk.http_port, "tcp"),  # browsers' WebSocket
            ("ami.port", s.ami.port, "tcp"),
            ("fastagi.port", s.fastagi.port, "tcp"),
            ("web.port", s.web.port, "tcp"),
        ]
        busy = [
            f"port {port}/{proto} ({key}) is taken by {port_owner(port, proto)}"
            for key, port, proto in wanted
            if not is_free(port, proto)
        ]
        if busy:
            raise StackError("cannot start: " + "; ".join(busy))

    def _service_account(self) -> Account:
        return account(SERVICE_USER)

    def _prepare_service_user(self) -> None:
        """The service user (created when missing) owns the run dir and the SQLite file and
        can reach everything the roles read; what was done goes into the summary."""
        self.access_notes = ensure_user(SERVICE_USER, SERVICE_USER)
        user = self._service_account()
        s = self.settings
        secrets_files = (s.ami_secret_file, s.ami_actions_secret_file, s.redis_secret_file)
        hand_over_run_dir(self.run_dir, user, secrets_files)
        sqlite_file = _sqlite_file(database_url(s))
        if sqlite_file is not None:
            _create_owned(sqlite_file, user)
        python = Path(sys.executable)
        package = Path(ivr.__file__).parent
        needed = [python, Path(os.path.realpath(python)), package,
                  Path(sysconfig.get_paths()["purelib"]), s.routing_dir, s.prompts_dir,
                  s.stt.models_dir, s.stt.model_path, self.run_dir, s.recordings_dir,
                  s.conversion_dir, *([sqlite_file.parent] if sqlite_file else [])]  # fmt: skip
        opened = open_the_way(user, needed)
        if opened:
            self.access_notes.append(
                f"let the user {user.user} pass through (ACL u:{user.user}:x): "
                + ", ".join(map(str, opened))
            )
        check_reach(user, [
            ("-x", Path(os.path.realpath(python)), "the virtualenv's Python"),
            ("-r", package / "__init__.py", "the ivr package"),
            ("-r", s.routing_dir / "hotline.yaml", "routing/"),
            ("-w", self.run_dir, "the run dir"),
        ])  # fmt: skip

    def _upgrade_database(self) -> Upgrade:
        """``ivr db upgrade`` on the dev database, before any role checks it."""
        engine = settings_engine(self.settings)
        try:
            return upgrade(engine)
        finally:
            engine.dispose()

    def _ensure_dev_user(self) -> str | None:
        """The dev stack's web account: created once with a random password, shown once."""
        engine = settings_engine(self.settings)
        try:
            return ensure_dev_user(engine)
        finally:
            engine.dispose()

    def _ensure_secrets(self) -> None:
        """The AMI accounts' and Redis's secrets: configured, else kept in the run dir
        (generated once, mode 0600), and known to these settings from now on."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        if s.ami.secret is None:
            s.ami.secret = SecretStr(_run_dir_secret(s.ami_secret_file))
        if s.ami.actions_secret is None:
            s.ami.actions_secret = SecretStr(_run_dir_secret(s.ami_actions_secret_file))
        if s.redis.username is not None:
            raise StackError(
                "redis.username (IVR_REDIS__USERNAME) is set: `ivr up` starts its own Redis with "
                "a user per role, and IVR_REDIS__PASSWORD, if set, is its default user's"
            )
        if s.redis.password is None:
            s.redis.password = SecretStr(_run_dir_secret(s.redis_secret_file))

    def _redis_acl(self) -> Path:
        """The ACL file of `up`'s Redis (hashes of every user's password), mode 0600."""
        s = self.settings
        password = s.redis_password()
        if password is None:  # a stack started before Redis had a password
            raise StackError(
                f"no Redis password ({s.redis_secret_file} is missing): `ivr down`, then "
                "`ivr up` makes one"
            )
        path = self.run_dir / "redis" / "users.acl"
        write_private(path, redis_acl.acl_file(redis_acl.stack_passwords(password), s.stt.stream))
        self._service_account().own(path)  # redis-server runs as the service user
        return path

    def _order(self, records: dict[str, RoleRecord]) -> tuple[str, ...]:
        """The roles in start order: the fixed ones, then the demo agents' phones (those
        ``up`` starts now, and those the state file lists)."""
        phones = [demos.role_name(a) for a in (self.demo.phones if self.demo else ())]
        phones += [r for r in records if r.startswith(demos.ROLE_PREFIX)]
        return (*ROLE_ORDER, *dict.fromkeys(phones))

    def _start(self, role: str) -> RoleRecord:
        s = self.settings
        user = self._service_account()
        _own_folder(self.logs, user)
        log = self.logs / f"{role}.log"
        if role.startswith(demos.ROLE_PREFIX):
            agent = demos.by_role(role)
            port = free_port("udp")
            cmd = demos.phone_command(
                s, agent, _phone_workdir(s, role), port, run_as=(user.uid, user.gid)
            )
            endpoint = f"sip:{agent.work_number}@{agent.address}:{port}"
            return RoleRecord(role, spawn_detached(cmd, log), demos.MARKER, str(log), endpoint)
        if role == "asterisk":
            inst = configured_instance(s)
            inst.render()
            # Asterisk's spools and logs shared with the roles' group; it drops to its own user
            inst.hand_over(ASTERISK_USER, ASTERISK_USER, user.gid)
            open_the_way(user, [inst.monitor_dir, inst.messages_dir, inst.log_dir])
            pid = inst.start(log, ASTERISK_USER, ASTERISK_USER)
            return RoleRecord(
                role, pid, "asterisk", str(log), f"sip:127.0.0.1:{s.asterisk.sip_port}"
            )
        if role == "redis":
            data = self.run_dir / "redis"
            _own_folder(data, user)
            # Users and passwords from the ACL file (hashes): none on the command line.
            cmd = [
                "redis-server", "--bind", "127.0.0.1", "--port", str(redis_port(s)),
                "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--protected-mode", "yes", "--daemonize", "no",
                "--aclfile", str(self._redis_acl()),
            ]  # fmt: skip
            endpoint = f"redis://127.0.0.1:{redis_port(s)}"
            pid = spawn_detached(cmd, log, as_user=user, umask=SERVICE_UMASK)
            return RoleRecord(role, pid, "redis-server", str(log), endpoint)
        cmd = [sys.executable, "-m", "ivr", role]
        # The caller's IVR_* secrets are not passed on: each role gets only its own.
        inherited = {k: v for k, v in os.environ.items() if k not in _SECRET_VARIABLES}
        env = inherited | settings_env(s, role)
        if role == "ami" and s.metrics.queue_log_path is None:  # resync reads Asterisk's own
            env["IVR_METRICS__QUEUE_LOG_PATH"] = str(asterisk_instance(s).queue_log)
        monitor = s.recordings.monitor_dir or asterisk_instance(s).monitor_dir
        if role == "recorder":  # the legs MixMonitor leaves in Asterisk's own spool
            env["IVR_RECORDINGS__MONITOR_DIR"] = str(monitor)
        endpoints = {
            "agi": f"agi://{s.fastagi.host}:{s.fastagi.port}",
            "ami": f"{s.ami.host}:{s.ami.port} -> {s.redis.url}",
            "web": f"http://{s.web.host}:{s.web.port}/",
            "recorder": f"{monitor} -> {s.recordings_dir}",
            "stt-worker": f"{s.stt.stream} on {s.redis.url} x{s.stt.concurrency}",
        }
        pid = spawn_detached(cmd, log, env, as_user=user, umask=SERVICE_UMASK)
        return RoleRecord(role, pid, "ivr", str(log), endpoints[role])

    def _wait_ready(self, role: str, rec: RoleRecord) -> None:
        if role.startswith(demos.ROLE_PREFIX):
            _wait_registered(self.settings, rec)
            return
        wait_until_ready(self.settings, role, rec.pid, Path(rec.log))
        if role == "asterisk" and self.sim_agents:
            inst = asterisk_instance(self.settings)
            for queue in QUEUES_WITH_SIM_AGENT:
                inst.rx(f"queue add member Local/agent@sim-agents/n to {queue}")

    def _summary(self, did: str) -> list[str]:
        s = self.settings
        ivr = ivr_command()
        lines = ["hotline stack is up (all on 127.0.0.1):"]
        for rec in self._records().values():
            lines.append(f"  {rec.name:<10} pid {rec.pid:<7} {rec.endpoint}  log {rec.log}")
        lines.append(f"  running as: the user {SERVICE_USER} (redis and the roles, umask 027), "
                     f"Asterisk as its root's {ASTERISK_USER}")  # fmt: skip
        lines += [f"  {note}" for note in self.access_notes]
        lines += [
            "",
            f"  web: http://{s.web.host}:{s.web.port}/  sign in there; it links the pages "
            "your role opens:",
            *(f"      {p.path:<12} {p.zh} {p.en}" for p in front_door.PAGES),
            "  place a test call (Local channel, prints what happened):",
            f"      {ivr} call --did {did} --from 13800138000 --digits 1",
            f"  or from a SIP phone on this machine: sip:{did}@127.0.0.1:{s.asterisk.sip_port}"
            " (trunk 'pstn', no auth)",
        ]
        if self.database is not None:
            done = self.database
            how = (
                "adopted (tables from before migrations)" if done.adopted
                else f"applied {', '.join(done.applied)}" if done.applied
                else "already there"
            )  # fmt: skip
            lines.append(f"  database: {done.before.where} at revision {done.head} ({how})")
        if self.sim_agents:
            lines.append("  each desk queue has a simulated agent (answers after 1 s)")
        if self.demo is not None:
            lines += self._demo_summary(did)
        if self.dev_password:
            lines.append(
                f"  web sign-in: supervisor / {self.dev_password}  (admin; shown only now — "
                f"change it with: {ivr} users set-password supervisor)"
            )
        if not s.stt.model_path.is_dir():
            lines.append(
                f"  speech-to-text: no model at {s.stt.model_path}; transcription jobs wait "
                f"with status 'no model' until one is installed ({ivr} stt install-model ZIP, "
                "see models/README.md)"
            )
        lines.append(f"  stop everything: {ivr} down    health: {ivr} status")
        return lines

    def _demo_summary(self, did: str) -> list[str]:
        assert self.demo is not None
        lines = [f"  {note}" for note in self.demo.notes]
        for agent in self.demo.phones:
            lines.append(
                f"  demo agent {agent.work_number} {agent.name} ({', '.join(agent.desks)}): "
                f"phone registered from {agent.address} (sipp, answers after "
                f"{demos.RING_S:g} s); SIP password in "
                f"{demos.password_file(self.settings, agent)}"
            )
        if self.demo.phones:
            first = self.demo.phones[0]
            lines.append(
                f"  the demo agents are logged in to their desks: {ivr_command()} call --did "
                f"{did} --from 13800138000 --digits 1 reaches {first.work_number} "
                f"{first.name} and the report shows the 工号 announcement; pause one with "
                f"{ivr_command()} agents pause {first.work_number} --reason 小休"
            )
        return lines

    # --- status ----------------------------------------------------------------------
    def status(self) -> list[RoleStatus]:
        """Each role's health; a role that is down says which command brings it back."""
        records = self._records()
        ivr = ivr_command()
        out = []
        for role in self._order(records):
            rec = records.get(role)
            restart = f"{ivr} restart {role}"
            if not records:
                out.append(RoleStatus(role, False, "not started", f"{ivr} up"))
            elif rec is None:
                out.append(RoleStatus(role, False, "not started", restart))
            elif not _is_ours(rec):
                out.append(
                    RoleStatus(role, False, f"pid {rec.pid} is gone; see {rec.log}", restart)
                )
            else:
                ok, detail = role_check(self.settings, role, rec.pid)
                fix = None if ok else restart
                out.append(RoleStatus(role, ok, f"pid {rec.pid}: {detail}", fix))
        return out

    def restart_role(self, role: str) -> RoleRecord:
        """Stop one role (if it runs) and start it again, waiting until it is ready."""
        records = self._records()
        if role not in self._order(records):
            raise StackError(f"unknown role {role!r}; roles: {', '.join(self._order(records))}")
        if not records:
            raise StackError("the stack is not up; run `ivr up`")
        old = records.get(role)
        if old is not None and _is_ours(old):
            self._stop(old)
        records[role] = self._start(role)
        self._save(records)
        self._wait_ready(role, records[role])
        return records[role]

    def _stop(self, rec: RoleRecord) -> None:
        if rec.name == "asterisk":
            asterisk_instance(self.settings).stop(rec.pid)
        else:
            _terminate(rec.pid)

    # --- down ------------------------------------------------------------------------
    def down(self) -> list[str]:
        records = self._records()
        lines = []
        for role in reversed(self._order(records)):
            rec = records.get(role)
            if rec is None:
                continue
            if not _is_ours(rec):
                lines.append(f"{role}: pid {rec.pid} already gone")
                continue
            self._stop(rec)
            lines.append(f"{role}: stopped pid {rec.pid}")
        self.state_file.unlink(missing_ok=True)
        return lines or ["nothing was running"]


class StackAlreadyUp(StackError):
    """``ivr up`` found the stack running already (the command says so and exits 0)."""

    slug = "stack-already-up"


# --- helpers ------------------------------------------------------------------------------
def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or one in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _own_folder(folder: Path, user: Account) -> None:
    """``folder`` (created when missing) is ``user``'s, 0750."""
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    user.own(folder)
    folder.chmod(0o750)


def _create_owned(path: Path, user: Account) -> None:
    """``path`` made ``user``'s with no bits for others; created (empty: SQLite takes an
    empty file for a new database) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o640)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, os.fstat(fd).st_mode & 0o7770)
    finally:
        os.close(fd)


def _is_ours(rec: RoleRecord) -> bool:
    """The PID is alive and still the program we started (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{rec.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return pid_alive(rec.pid) and rec.marker.encode() in cmdline


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    logger.warning("pid %d ignored SIGTERM; killing it", pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        time.sleep(0.05)


def ivr_command() -> str:
    """How to run ``ivr`` here (on PATH, else beside this Python), for the hints we print."""
    return shutil.which("ivr") or str(Path(sys.executable).parent / "ivr")


def role_check(settings: Settings, role: str, pid: int) -> tuple[bool, str]:
    """Is ``role`` (process ``pid``) ready? The readiness test of ``ivr up`` and ``ivr status``,
    also used on roles that systemd (or a test) started."""
    if role == "recorder":  # this process swept lately (its heartbeat file)
        fresh = max(10.0, 5 * settings.recordings.scan_interval_s)
        return heartbeat_status(heartbeat_path(settings), pid, fresh)
    if role.startswith(demos.ROLE_PREFIX):
        return _phone_registered(settings, demos.by_role(role))
    if role == "asterisk":
        try:
            out = asterisk_instance(settings).rx("core show uptime", timeout=5)
        except (StackError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return True, out.strip().splitlines()[0] if out.strip() else "up"
    checks: dict[str, Callable[[], tuple[bool, str]]] = {
        "redis": lambda: _redis_ping(settings),
        "agi": lambda: _tcp_open(settings.fastagi.host, settings.fastagi.port),
        "ami": lambda: _ami_listener(settings),
        "web": lambda: _http_ok(f"http://{settings.web.host}:{settings.web.port}/health"),
        "stt-worker": lambda: _stt_workers(settings),
    }
    return checks[role]()


def wait_until_ready(
    settings: Settings, role: str, pid: int, log: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    """Wait until ``role`` (process ``pid``, logging to ``log``) is ready, else StackError
    with the tail of its log. Asterisk: fully booted, within ``asterisk.boot_timeout_s``."""
    if role == "asterisk":
        asterisk_instance(settings).wait_booted(pid, settings.asterisk.boot_timeout_s)
        return
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise StackError(f"{role} exited during start-up; last lines of {log}:\n" + _tail(log))
        ok, last = role_check(settings, role, pid)
        if ok:
            return
        time.sleep(0.1)
    raise StackError(
        f"{role} not ready after {timeout:.0f} s ({last}); last lines of {log}:\n" + _tail(log)
    )


def _phone_workdir(settings: Settings, role: str) -> PurePosixPath:
    return asterisk_instance(settings).base / "sipp" / role


def _phone_registered(
    settings: Settings, agent: demos.DemoAgent, contact: str | None = None
) -> tuple[bool, str]:
    """Is ``agent`` registered from its phone's address (``contact``: exactly that URI, not
    a registration left from an earlier run)?"""
    try:
        found = [r for r in registrations(settings) if r.username == agent.work_number]
    except SipDirectoryError as exc:
        return False, str(exc)
    mine = [
        r for r in found if (r.contact == contact if contact else f"@{agent.address}:" in r.contact)
    ]
    if not mine:
        return False, f"{agent.work_number} not registered from {contact or agent.address}"
    return True, f"{agent.work_number} {agent.name} registered: {mine[0].contact}"


def _wait_registered(settings: Settings, rec: RoleRecord, timeout: float = 10.0) -> None:
    """Wait until a demo agent's phone has registered, else StackError saying why not."""
    agent = demos.by_role(rec.name)
    workdir = settings.asterisk.root / _phone_workdir(settings, rec.name).relative_to("/")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not pid_alive(rec.pid):
            raise StackError(
                f"the phone of demo agent {agent.work_number} did not register: "
                f"{sipp.phone_result(workdir)}. Its password is in "
                f"{demos.password_file(settings, agent)} (delete it and `ivr up` sets a "
                f"new one); sipp's output: {rec.log}, {workdir}/errors.log",
                work_number=agent.work_number,
            )
        ok, last = _phone_registered(settings, agent, rec.endpoint)
        if ok:
            return
        time.sleep(0.2)
    raise StackError(
        f"the phone of demo agent {agent.work_number} not registered after {timeout:.0f} s "
        f"({last}); see {rec.log} and {workdir}/errors.log",
        work_number=agent.work_number,
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), socket_timeout=2, socket_connect_timeout=2,
        decode_responses=True,
    )  # fmt: skip


def _redis_ping(settings: Settings) -> tuple[bool, str]:
    try:
        client = _redis(settings)
        with client:
            client.ping()
    except redis.RedisError as exc:
        return False, f"no PING reply: {exc}"
    return True, "PONG"


def _ami_listener(settings: Settings) -> tuple[bool, str]:
    try:
        with _redis(settings) as client:
            status = client.hgetall(redis_keys.AMI_STATUS)
    except redis.RedisError as exc:
        return False, f"Redis unreachable: {exc}"
    if not status:
        return False, "no heartbeat in Redis"
    if status.get("connected") != "1":
        return False, f"not logged in to AMI (reconnects {status.get('reconnects', '?')})"
    return True, f"logged in, {status.get('events', '0')} events seen"


def _stt_workers(settings: Settings) -> tuple[bool, str]:
    """Up when a worker process refreshes its status hash (with or without a model)."""
    try:
        with _redis(settings) as client:
            keys = sorted(client.scan_iter(match=redis_keys.STT_WORKER_PREFIX + "*", count=100))
            states = [client.hget(key, "state") or "?" for key in keys]
    except redis.RedisError as exc:
        return False, f"Redis unreachable: {exc}"
    if not states:
        return False, "no worker has reported in Redis"
    return True, f"{len(states)} worker(s): {', '.join(sorted(set(states)))}"


def _tcp_open(host: str, port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, "accepting connections"
    except OSError as exc:
        return False, str(exc)


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        return False, str(exc)
    return response.status_code == 200, f"HTTP {response.status_code}"
