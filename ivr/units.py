"""systemd units for an installed hotline: every role, Asterisk in its root, the migrations.

``ivr install-units`` (ivr/cli_units.py) fills an :class:`Install` with this machine's paths
and writes what :func:`render` returns:

``hotline-migrate.service``
    one-shot ``ivr db upgrade`` as the service user (the roles refuse a database that is not
    at the newest revision); creates the run dir first. Stays "active" once done.
``hotline-asterisk.service``
    ``ivr asterisk prepare`` renders the instance's configuration and prompts into the root
    (as ``ivr up`` does) and hands its directories to Asterisk's own user; then Asterisk runs
    in the root (``chroot``), dropping to that user (``-U``/``-G``); the unit is started
    once ``ivr asterisk wait`` sees it fully booted.
``hotline-<role>.service``
    ``ivr <role>`` as the service user, for every role of ``ivr up``. Each requires the
    migrations (and is ordered after them), wants Redis and Asterisk when it talks to them.
``hotline.target``
    wants all of the above: ``systemctl enable --now hotline.target``.

Every service runs with ``UMask=0027`` (:data:`ivr.adapters.service_user.SERVICE_UMASK`, as
under ``ivr up``): recordings, the SQLite file, logs and Asterisk's spools keep no bit for
others.

Every unit is restarted on failure, without a limit on attempts (a hotline keeps trying; each
failure is in the journal), and is part of the target (stopping it stops them all). The
settings come from one environment file (``EnvironmentFile=``), which systemd reads as root;
the few ``Environment=`` lines the units carry (the run dir, paths inside Asterisk's root)
give way to the same key set in that file. Asterisk's root is one of them: the units name it
(``ExecStart=``, the paths inside it), so every command they run uses that root.

Secrets are not in the settings file: each unit that has some also reads its own file from
the secrets directory (``<secrets_dir>/<name>.env``, 0600 root, read by systemd only), so a
role's environment holds its own secrets and nobody else's: ``asterisk.env`` (both AMI
accounts, to render them), ``ami.env`` (the listener's and the actions secret: the 回访
calls; its Redis user), ``web.env``,
``recorder.env``, ``stt-worker.env`` (their Redis users); the agi role and the migrations
read none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ivr.adapters.service_user import SERVICE_UMASK

TARGET = "hotline.target"
MIGRATE_UNIT = "hotline-migrate.service"
ASTERISK_UNIT = "hotline-asterisk.service"
RESTART_SEC = 2
# Characters a path in a unit must not hold: systemd would split, unquote or expand them.
_UNSAFE = frozenset(" \t\n\r\"'\\%$;")


def role_unit(role: str) -> str:
    return f"hotline-{role}.service"


@dataclass(frozen=True, slots=True)
class RoleUnit:
    what: str
    asterisk: bool  # talks to Asterisk or reads its spool: wants it, started after it
    redis: bool  # uses Redis: wants the local Redis unit (if any), started after it


#: The units that read a secrets file of their own (<secrets_dir>/<name>.env).
SECRET_FILES = ("asterisk", "ami", "recorder", "stt-worker", "web")

ROLE_UNITS = {
    "agi": RoleUnit("the FastAGI server (the call flow)", asterisk=True, redis=False),
    "ami": RoleUnit("the AMI listener (live metrics into Redis)", asterisk=True, redis=True),
    "recorder": RoleUnit("catalogues call recordings, applies retention", True, True),
    "stt-worker": RoleUnit("speech-to-text workers (vosk) on the Redis queue", True, True),
    "web": RoleUnit("the web app (supervisors, QA, tickets, APIs)", asterisk=False, redis=True),
}


@dataclass(frozen=True, slots=True)
class Install:
    """What the units need to know about this install."""

    ivr: Path  # the virtualenv's `ivr` script
    repo: Path  # the checkout (documentation link only: the settings name every directory)
    env_file: Path  # the settings (IVR_*), EnvironmentFile= of every unit
    run_dir: Path  # IVR_RUN_DIR: SQLite database, recordings, caches; owned by `user`
    user: str  # the roles run as this system user and group
    group: str
    asterisk_user: str  # Asterisk drops to this user and group of its root (-U/-G)
    asterisk_group: str
    redis_unit: str | None  # the local Redis server's unit; None: Redis is elsewhere
    asterisk_root: Path  # the Debian sid root with Asterisk
    asterisk_config: PurePosixPath  # the instance's asterisk.conf, inside the root
    queue_log: Path  # Asterisk's queue_log on the host (read by the ami role)
    monitor_dir: Path  # where MixMonitor writes, on the host (the recorder's input)
    agi_stop_s: int  # the agi role lets calls finish for this long on stop
    stt_stop_s: int  # a running transcription may finish for this long on stop
    chroot: Path = Path("/usr/sbin/chroot")
    install_bin: Path = Path("/usr/bin/install")
    secrets_dir: Path = Path("/etc/hotline/secrets")  # <name>.env per unit that has secrets

    def secrets_file(self, name: str) -> Path:
        return self.secrets_dir / f"{name}.env"

    def check(self) -> None:
        """Refuse paths systemd would split or expand (no quoting games in the units)."""
        for name in ("ivr", "env_file", "run_dir", "asterisk_root", "queue_log", "monitor_dir",
                     "asterisk_config", "chroot", "install_bin", "secrets_dir"):  # fmt: skip
            value = str(getattr(self, name))
            bad = sorted(set(value) & _UNSAFE)
            if bad or not value.startswith("/"):
                why = f"holds {' '.join(repr(c) for c in bad)}" if bad else "is not absolute"
                raise ValueError(f"{name} {value!r} {why}: choose a plain absolute path")
        for name in ("user", "group", "asterisk_user", "asterisk_group"):
            value = getattr(self, name)
            if not value or set(value) & _UNSAFE or value.startswith("-"):
                raise ValueError(f"{name} {value!r} is not a user or group name")


def render(install: Install) -> dict[str, str]:
    """The unit files, name -> text."""
    install.check()
    units = {MIGRATE_UNIT: _migrate(install), ASTERISK_UNIT: _asterisk(install)}
    for role in ROLE_UNITS:
        units[role_unit(role)] = _role(install, role)
    units[TARGET] = _target(install, [name for name in units if name != TARGET])
    return units


def _header(install: Install) -> list[str]:
    return [
        f"# Written by `{install.ivr} install-units`: run it again rather than editing this",
        f"# file. Settings: {install.env_file}. See {install.repo}/README.md (systemd).",
    ]


def _unit_section(
    install: Install,
    description: str,
    wants: Sequence[str],
    after: Sequence[str],
    requires: Sequence[str] = (),
) -> list[str]:
    lines = ["[Unit]", f"Description=hotline: {description}",
             f"Documentation=file://{install.repo}/README.md"]  # fmt: skip
    if requires:
        lines.append("Requires=" + " ".join(requires))
    if wants:
        lines.append("Wants=" + " ".join(wants))
    if after:
        lines.append("After=" + " ".join(after))
    return [*lines, f"PartOf={TARGET}", "StartLimitIntervalSec=0"]


def _environment(install: Install, extra: dict[str, str], secrets: str | None = None) -> list[str]:
    lines = [f"EnvironmentFile={install.env_file}"]
    if secrets is not None:  # after the settings file: its values win
        lines.append(f"EnvironmentFile={install.secrets_file(secrets)}")
    lines += [f"Environment=IVR_RUN_DIR={install.run_dir}",
              # the root the units name (ExecStart=, the paths): `ivr asterisk prepare` and the
              # roles must use the same one, also when it came from install-units' environment
              f"Environment=IVR_ASTERISK__ROOT={install.asterisk_root}"]  # fmt: skip
    lines += [f"Environment={key}={value}" for key, value in extra.items()]
    return lines


def _service_user(install: Install) -> list[str]:
    return [f"User={install.user}", f"Group={install.group}", _umask()]


def _umask() -> str:
    """What the units' processes create keeps no bit for others (as under ``ivr up``)."""
    return f"UMask={SERVICE_UMASK:04o}"


def _restart(stop_s: int) -> list[str]:
    return [
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        # SIGTERM to the main process only (it stops its children), the rest killed at the end
        "KillMode=mixed",
        f"TimeoutStopSec={stop_s}",
    ]


def _install_section() -> list[str]:
    return ["", "[Install]", f"WantedBy={TARGET}", ""]


def _migrate(install: Install) -> str:
    after = ["network-online.target", "postgresql.service"]
    wants = ["network-online.target"]
    return "\n".join([
        *_header(install),
        *_unit_section(install, "database migrations (ivr db upgrade)", wants, after),
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        *_service_user(install),
        *_environment(install, {}),
        # as root ('+'): the run dir, owned by the service user (like StateDirectory=, which
        # works only under /var/lib and re-owns whatever it finds there)
        f"ExecStartPre=+{install.install_bin} -d -o {install.user} -g {install.group} "
        f"-m 0750 {install.run_dir}",
        f"WorkingDirectory=-{install.run_dir}",  # '-': it exists only once the line above ran
        f"ExecStart={install.ivr} db upgrade",
        *_install_section(),
    ])  # fmt: skip


def _asterisk(install: Install) -> str:
    config = install.asterisk_config
    run = (f"{install.chroot} {install.asterisk_root} /usr/sbin/asterisk -f -n "
           f"-U {install.asterisk_user} -G {install.asterisk_group} -C {config}")  # fmt: skip
    return "\n".join([
        *_header(install),
        *_unit_section(install, f"Asterisk 22 in its root {install.asterisk_root}",
                       ["network-online.target"], ["network-online.target"]),
        f"AssertPathExists={install.asterisk_root}/usr/sbin/asterisk",
        "",
        "[Service]",
        "Type=exec",
        # root until Asterisk drops to its own user: chroot, and the rendering into the root
        _umask(),
        *_environment(install, {}, secrets="asterisk"),
        f"ExecStartPre={install.ivr} asterisk prepare --user {install.asterisk_user} "
        f"--group {install.asterisk_group} --share-group {install.group}",
        f"ExecStart={run}",
        f"ExecStartPost={install.ivr} asterisk wait --pid ${{MAINPID}}",
        "TimeoutStartSec=90",
        *_restart(30),
        *_install_section(),
    ])  # fmt: skip


def _role(install: Install, role: str) -> str:
    spec = ROLE_UNITS[role]
    wants: list[str] = []
    after = [MIGRATE_UNIT]
    if spec.asterisk:
        wants.append(ASTERISK_UNIT)
        after.append(ASTERISK_UNIT)
    if spec.redis and install.redis_unit:
        wants.append(install.redis_unit)
        after.append(install.redis_unit)
    extra = {}
    if role == "ami":  # the listener's resync reads Asterisk's own queue_log
        extra["IVR_METRICS__QUEUE_LOG_PATH"] = str(install.queue_log)
    if role == "recorder":  # the legs MixMonitor leaves in Asterisk's spool
        extra["IVR_RECORDINGS__MONITOR_DIR"] = str(install.monitor_dir)
    stop_s = {"agi": install.agi_stop_s, "stt-worker": install.stt_stop_s}.get(role, 30)
    return "\n".join([
        *_header(install),
        *_unit_section(install, f"{role}, {spec.what}", wants, after, requires=[MIGRATE_UNIT]),
        "",
        "[Service]",
        "Type=exec",
        *_service_user(install),
        *_environment(install, extra, secrets=role if role in SECRET_FILES else None),
        f"WorkingDirectory={install.run_dir}",
        f"ExecStart={install.ivr} {role}",
        *_restart(stop_s),
        *_install_section(),
    ])  # fmt: skip


def _target(install: Install, units: list[str]) -> str:
    return "\n".join([
        *_header(install),
        "[Unit]",
        "Description=hotline: the IVR stack (Asterisk, migrations and every role)",
        f"Documentation=file://{install.repo}/README.md",
        "Wants=" + " ".join(units),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])  # fmt: skip
