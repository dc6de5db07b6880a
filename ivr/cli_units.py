"""``ivr install-units`` (the roles under systemd), ``ivr asterisk …`` (what the Asterisk unit
runs) and ``ivr restart ROLE`` (the dev stack of ``ivr up``).

::

    ivr install-units [--dest DIR] [--env-file FILE] [--secrets-dir DIR] [--run-dir DIR]
                      [--user U] [--group G] [--asterisk-user U] [--asterisk-group G]
                      [--redis-unit UNIT]
    ivr asterisk prepare [--user U --group G --share-group G]   render the instance, hand it over
    ivr asterisk wait --pid PID                                 until Asterisk is fully booted
    ivr restart ROLE                                            dev stack: stop, start, wait ready

``cli.py`` wires these in with :func:`register` and :func:`run`; the units themselves are
written by ivr/units.py.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ivr import redis_acl, units
from ivr.adapters.private_files import create_private, write_private
from ivr.adapters.service_user import ASTERISK_USER, SERVICE_USER, ensure_user
from ivr.errors import ConfigError, StackError
from ivr.settings import REPO_DIR, Settings, load_settings

COMMANDS = frozenset({"install-units", "asterisk", "restart"})
SYSTEM_UNITS_DIR = Path("/etc/systemd/system")
DEFAULT_ENV_FILE = Path("/etc/hotline/ivr.env")
DEFAULT_RUN_DIR = Path("/var/lib/hotline-ivr")
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"  # Debian's redis-server.service
REDIS_ACL_NAME = "redis-users.acl"  # beside the settings file: Debian's redis must read it
# Secrets that must not sit in the settings file every unit reads.
SECRET_KEYS = ("IVR_AMI__SECRET", "IVR_AMI__ACTIONS_SECRET", "IVR_REDIS__PASSWORD",
               "IVR_AUTH__SESSION_SECRET", "IVR_WEB__METRICS_TOKEN")  # fmt: skip


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ivr.devstack.demo_agents import DEMO_AGENTS, role_name
    from ivr.devstack.stack import ROLE_ORDER

    install = subparsers.add_parser(
        "install-units",
        help="write systemd units for every role, Asterisk and the migrations (as root)",
    )
    install.add_argument("--dest", type=Path, default=SYSTEM_UNITS_DIR,
                         help=f"where the unit files go (default {SYSTEM_UNITS_DIR})")  # fmt: skip
    install.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                         help="the settings of every unit (no secrets); created when missing "
                              f"(default {DEFAULT_ENV_FILE})")  # fmt: skip
    install.add_argument("--secrets-dir", type=Path, default=None,
                         help="a secrets file per unit that has secrets (0600 root), made "
                              "when missing (default: secrets/ beside --env-file)")  # fmt: skip
    install.add_argument("--run-dir", type=Path, default=None,
                         help="IVR_RUN_DIR of the roles (default: the env file's, else "
                              f"{DEFAULT_RUN_DIR})")  # fmt: skip
    install.add_argument("--user", default=SERVICE_USER,
                         help="system user the roles run as; created when missing")  # fmt: skip
    install.add_argument("--group", default=None, help="their group (default: as --user)")
    install.add_argument("--asterisk-user", default=ASTERISK_USER,
                         help="user of Asterisk's root that Asterisk drops to")  # fmt: skip
    install.add_argument("--asterisk-group", default=None,
                         help="its group in the root (default: as --asterisk-user)")  # fmt: skip
    install.add_argument("--redis-unit", default="redis-server.service",
                         help="the local Redis server's unit; '' when IVR_REDIS__URL names a "
                              "Redis elsewhere")  # fmt: skip

    asterisk = subparsers.add_parser(
        "asterisk", help="Asterisk in its root, as hotline-asterisk.service runs it"
    )
    asterisk_sub = asterisk.add_subparsers(dest="asterisk_command", required=True)
    prepare = asterisk_sub.add_parser(
        "prepare", help="check routing/, build the prompts, render the instance into the root"
    )
    prepare.add_argument("--user", default=None,
                         help="hand the instance over to this user of the root")  # fmt: skip
    prepare.add_argument("--group", default=None, help="and this group of the root")
    prepare.add_argument("--share-group", default=None,
                         help="host group that may read the spools (the roles' group)")  # fmt: skip
    wait = asterisk_sub.add_parser("wait", help="wait until Asterisk (PID) is fully booted")
    wait.add_argument("--pid", type=int, required=True)

    restart = subparsers.add_parser(
        "restart", help="dev stack (ivr up): stop one role and start it again, until ready"
    )
    restart.add_argument("role", choices=[*ROLE_ORDER, *map(role_name, DEMO_AGENTS)])


def run(settings: Settings, args: argparse.Namespace) -> int:
    match args.command:
        case "install-units":
            return install_units(args)
        case "asterisk" if args.asterisk_command == "prepare":
            return asterisk_prepare(settings, args)
        case "asterisk":
            return asterisk_wait(settings, args)
        case _:
            return restart(settings, args)


# --- ivr restart ------------------------------------------------------------------------
def restart(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.devstack.stack import Stack

    rec = Stack(settings).restart_role(args.role)
    _out(f"{rec.name}: running again and ready, pid {rec.pid}, {rec.endpoint}  log {rec.log}")
    return 0


# --- ivr asterisk prepare / wait ----------------------------------------------------------
def asterisk_prepare(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.telephony import prompts
    from ivr.adapters.telephony.asterisk import configured_instance
    from ivr.adapters.telephony.config_check import load_checked

    s = settings
    _, catalog = load_checked(s.routing_dir, s.prompts_dir, s.dialplan_dir)
    prompts.build(catalog, s.prompts_dir, s.prompts_build_dir)
    inst = configured_instance(s)
    inst.render()
    where = inst.host_path(inst.base)
    if args.user is None:
        _out(f"asterisk instance {inst.name} rendered into {where}")
        return 0
    group = args.group or args.user
    share = args.share_group or group
    try:
        share_gid = grp.getgrnam(share).gr_gid
    except KeyError:
        raise ConfigError(f"--share-group {share}: no such group on this host") from None
    inst.hand_over(args.user, group, share_gid)
    _out(f"asterisk instance {inst.name} rendered into {where}, owned by {args.user}:{group} "
         f"of the root; spools shared with the group {share}")  # fmt: skip
    return 0


def asterisk_wait(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.telephony.asterisk import asterisk_instance

    asterisk_instance(settings).wait_booted(args.pid, settings.asterisk.boot_timeout_s)
    _out(f"asterisk (pid {args.pid}) fully booted")
    return 0


# --- ivr install-units --------------------------------------------------------------------
def install_units(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise StackError(
            "ivr install-units must run as root: it creates the service user and the settings "
            f"file and writes into {SYSTEM_UNITS_DIR} (sudo {sys.argv[0]} install-units)"
        )
    group = args.group or args.user
    asterisk_group = args.asterisk_group or args.asterisk_user
    for line in ensure_user(args.user, group):
        _out(line)
    env_file: Path = args.env_file.absolute()
    secrets_dir: Path = (args.secrets_dir or env_file.parent / "secrets").absolute()
    redis_local = bool(args.redis_unit)
    _out(_ensure_env_file(env_file, group, redis_local=redis_local))
    secret_notes = _ensure_secrets(env_file, secrets_dir, redis_local=redis_local)
    for line in secret_notes:
        _out(line)
    settings = _install_settings(env_file, secrets_dir)
    run_dir = _run_dir(settings, args.run_dir, env_file)

    from ivr.adapters.telephony.asterisk import asterisk_instance

    inst = asterisk_instance(settings)
    install = units.Install(
        ivr=Path(sys.executable).parent / "ivr",
        repo=REPO_DIR,
        env_file=env_file,
        run_dir=run_dir.absolute(),
        user=args.user,
        group=group,
        asterisk_user=args.asterisk_user,
        asterisk_group=asterisk_group,
        redis_unit=args.redis_unit or None,
        asterisk_root=settings.asterisk.root,
        asterisk_config=inst.config_file,
        queue_log=settings.metrics.queue_log_path or inst.queue_log,
        monitor_dir=settings.recordings.monitor_dir or inst.monitor_dir,
        agi_stop_s=int(settings.fastagi.command_timeout_s) + 10,
        stt_stop_s=int(settings.stt.drain_s) + 20,
        chroot=Path(shutil.which("chroot") or "/usr/sbin/chroot"),
        install_bin=Path(shutil.which("install") or "/usr/bin/install"),
        secrets_dir=secrets_dir,
    )
    if not install.ivr.exists():
        raise StackError(f"{install.ivr} does not exist: run ivr from the install's virtualenv")
    try:
        files = units.render(install)
    except ValueError as exc:
        raise ConfigError(f"cannot write units: {exc}") from None

    from ivr.adapters.telephony.asterisk import root_group_id, root_user_id

    root_uid = root_user_id(settings.asterisk.root, args.asterisk_user)
    root_group_id(settings.asterisk.root, asterisk_group)  # exists, or say so now
    warnings = (
        _secrets_in(env_file)
        + _uid_clash(root_uid, args.asterisk_user)
        + _closed_to(
            args.user,
            group,
            [
                ("-x", Path(os.path.realpath(sys.executable)), "the virtualenv's Python"),
                ("-x", install.ivr, "ivr"),
                ("-r", settings.routing_dir, "routing/"),
                ("-r", settings.prompts_dir, "prompts/"),
                ("-r", settings.stt.models_dir, "the speech models"),
                ("-x", install.run_dir.parent, "the run dir's parent"),
            ],
        )
    )

    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = dest / name
        path.write_text(text)
        path.chmod(0o644)
        _out(f"wrote {path}")
    for warning in warnings:
        _out(f"warning: {warning}")
    _out("next:")
    if redis_local:
        acl = env_file.parent / REDIS_ACL_NAME
        _out(f"  echo 'aclfile {acl}' >> /etc/redis/redis.conf && systemctl restart "
             f"{args.redis_unit}    (once: then Redis wants passwords)")  # fmt: skip
    if dest.resolve() != SYSTEM_UNITS_DIR:
        _out(f"  cp {dest}/hotline* {SYSTEM_UNITS_DIR}/    (or: systemctl link {dest}/*)")
    _out("  systemctl daemon-reload")
    _out(f"  systemctl enable --now {units.TARGET}")
    _out("  systemctl status 'hotline*'      logs: journalctl -u 'hotline*' -f")
    return 0


def _ensure_env_file(path: Path, group: str, *, redis_local: bool) -> str:
    """The settings file of the units, without secrets (0640 root:group: systemd reads it as
    root, the service user may read it for operator commands)."""
    if path.exists():
        return f"kept {path} (the units' settings)"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Settings of the hotline systemd units (EnvironmentFile=): IVR_* variables, one per",
        "# line, as in docker/ivr.env.example. Written by `ivr install-units`; edit freely,",
        "# then `systemctl restart hotline.target`. No secrets here: every unit reads this",
        f"# file; each unit's own are in {path.parent / 'secrets'}/<unit>.env (0600 root).",
    ]
    if redis_local:
        lines.append(f"IVR_REDIS__URL={LOCAL_REDIS_URL}")
    lines.append("# PostgreSQL instead of SQLite in the run dir (driver: psycopg):")
    lines.append("# IVR_DATABASE__URL=postgresql+psycopg://hotline:PASSWORD@127.0.0.1/hotline")
    if not create_private(path, "\n".join(lines) + "\n", 0o640):
        return f"kept {path} (the units' settings)"
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    return f"wrote {path} (0640 root:{group})"


def _read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an environment file (comments and blank lines skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def _ensure_secrets(env_file: Path, secrets_dir: Path, *, redis_local: bool) -> list[str]:
    """One secrets file per unit that needs some (``units.SECRET_FILES``), 0600 root, in a
    0700 directory; missing ones are written, existing ones kept. Values already in a file
    (or, from an older install, in the settings file) are reused, so that Asterisk and the
    ami role keep agreeing. With a local Redis, its users (one per role, the passwords
    derived from the default user's) and the ACL file Redis reads (hashes only)."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    known = _read_env(env_file)
    for name in (*units.SECRET_FILES, "operator"):
        known |= _read_env(secrets_dir / f"{name}.env")
    listener = known.get("IVR_AMI__SECRET") or secrets.token_urlsafe(24)
    actions = known.get("IVR_AMI__ACTIONS_SECRET") or secrets.token_urlsafe(24)
    files: dict[str, list[str]] = {
        "asterisk": [f"IVR_AMI__SECRET={listener}", f"IVR_AMI__ACTIONS_SECRET={actions}"],
        "ami": [f"IVR_AMI__SECRET={listener}", f"IVR_AMI__ACTIONS_SECRET={actions}"],  # 回访
        "web": [],
        "recorder": [],
        "stt-worker": [],
        "operator": [f"IVR_AMI__ACTIONS_SECRET={actions}"],  # ivr call, ivr metrics ...
    }
    notes = []
    if redis_local:
        redis_default = _operator_redis_password(secrets_dir) or secrets.token_hex(24)
        for role in redis_acl.ROLE_USERS:
            password = redis_acl.role_password(redis_default, role)
            files[role] += [f"IVR_REDIS__USERNAME={role}", f"IVR_REDIS__PASSWORD={password}"]
        files["operator"].append(f"IVR_REDIS__PASSWORD={redis_default}")
        overrides: dict[str, Any] = {"_env_file": env_file}
        stream = load_settings(**overrides).stt.stream  # the job stream's key, as configured
        notes.append(_write_redis_acl(env_file.parent / REDIS_ACL_NAME, redis_default, stream))
    for name, lines in files.items():
        path = secrets_dir / f"{name}.env"
        head = [f"# Secrets of hotline-{name}.service (EnvironmentFile=), written by "
                "`ivr install-units`."]  # fmt: skip
        if name == "operator":
            head = ["# For operator commands as root: IVR_ENV_FILE=<settings file>:<this file>"]
        if create_private(path, "\n".join(head + lines) + "\n", 0o600):
            os.chown(path, 0, 0)
            notes.append(f"wrote {path} (0600 root)")
        else:
            notes.append(f"kept {path}")
    return notes


def _operator_redis_password(secrets_dir: Path) -> str | None:
    return _read_env(secrets_dir / "operator.env").get("IVR_REDIS__PASSWORD")


def _write_redis_acl(path: Path, default_password: str, stt_stream: str) -> str:
    """The local Redis's users (hashes of their passwords), readable by Redis's group."""
    passwords = redis_acl.stack_passwords(default_password)
    text = redis_acl.acl_file(passwords, stt_stream)
    try:
        gid = grp.getgrnam("redis").gr_gid
    except KeyError:
        write_private(path, text, 0o600)
        return f"wrote {path} (0600 root; no group redis here: Redis must be able to read it)"
    write_private(path, text, 0o640)
    os.chown(path, 0, gid)
    return f"wrote {path} (0640 root:redis, password hashes only)"


def _secrets_in(env_file: Path) -> list[str]:
    found = sorted(set(_read_env(env_file)) & set(SECRET_KEYS))
    if not found:
        return []
    return [
        f"{env_file} holds {', '.join(found)}: every unit reads that file, so every role gets "
        "them; they now live in the secrets directory (one file per unit): delete them there"
    ]


def _install_settings(env_file: Path, secrets_dir: Path) -> Settings:
    """The settings the units will run with: the settings file and Asterisk's secrets."""
    overrides: dict[str, Any] = {"_env_file": (env_file, secrets_dir / "asterisk.env")}
    settings = load_settings(**overrides)
    try:
        settings.ami_secret()
    except ConfigError:
        raise ConfigError(f"{secrets_dir / 'asterisk.env'} sets no IVR_AMI__SECRET") from None
    return settings


def _run_dir(settings: Settings, wanted: Path | None, env_file: Path) -> Path:
    if "run_dir" not in settings.model_fields_set:
        return wanted or DEFAULT_RUN_DIR
    if wanted is not None and wanted.absolute() != settings.run_dir.absolute():
        raise ConfigError(
            f"--run-dir {wanted} differs from IVR_RUN_DIR={settings.run_dir} in {env_file}"
        )
    return settings.run_dir


def _uid_clash(uid: int, name: str) -> list[str]:
    """Asterisk's user is looked up in its root, but the kernel knows only the number."""
    try:
        host = pwd.getpwuid(uid).pw_name
    except KeyError:
        return []
    if host == name:
        return []
    return [
        f"Asterisk's user {name} has UID {uid} in its root, which is the user {host!r} on this "
        f"host: Asterisk's processes can signal {host}'s (give {name} a UID of its own in the "
        "root, or a host user of the same name and UID)"
    ]


def _closed_to(user: str, group: str, checks: list[tuple[str, Path, str]]) -> list[str]:
    """What the service user cannot reach (``test -x``/``-r`` run as that user): a unit
    would fail at every start."""
    out = []
    for flag, path, what in checks:
        if not path.exists():
            continue
        result = subprocess.run(
            ["test", flag, str(path)], user=user, group=group, extra_groups=[], check=False
        )
        if result.returncode != 0:
            verb = "execute" if flag == "-x" else "read"
            out.append(
                f"the user {user} cannot {verb} {path} ({what}): the roles will not start; "
                "every directory on the way must be open to it (a virtualenv for the units "
                "is best built on a Python outside /root, e.g. Debian's /usr/bin/python3.11)"
            )
    return out
