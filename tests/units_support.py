"""Reading the systemd units `ivr install-units` writes, as systemd would, and running their
command lines the way systemd runs them (environment, working directory, user), so that a
test starts exactly what the unit file says."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ivr.units import Install

# What systemd gives a service before Environment=/EnvironmentFile= (no shell variables).
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8"}  # fmt: skip
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")

# An install with made-up paths, for rendering units without touching the machine.
EXAMPLE_INSTALL = Install(
    ivr=Path("/opt/hotline/.venv/bin/ivr"),
    repo=Path("/opt/hotline"),
    env_file=Path("/etc/hotline/ivr.env"),
    run_dir=Path("/var/lib/hotline-ivr"),
    user="hotline",
    group="hotline",
    asterisk_user="asterisk",
    asterisk_group="asterisk",
    redis_unit="redis-server.service",
    asterisk_root=Path("/var/lib/hotline/sid-root"),
    asterisk_config=PurePosixPath("/srv/hotline-hotline/etc/asterisk.conf"),
    queue_log=Path("/var/lib/hotline/sid-root/srv/hotline-hotline/log/queue_log"),
    monitor_dir=Path("/var/lib/hotline/sid-root/srv/hotline-hotline/spool/monitor"),
    agi_stop_s=130,
    stt_stop_s=30,
)


@dataclass
class Unit:
    name: str
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def value(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None

    def words(self, section: str, key: str) -> list[str]:
        """A space-separated list setting (After=, Wants=, Requires=), all its lines."""
        return [w for v in self.values(section, key) for w in v.split()]

    def environment(self) -> dict[str, str]:
        """Environment= lines, then EnvironmentFile= files on top (they win, as in systemd)."""
        env = dict(BASE_ENV)
        for line in self.values("Service", "Environment"):
            for item in shlex.split(line):
                key, _, value = item.partition("=")
                env[key] = value
        for name in self.values("Service", "EnvironmentFile"):
            optional = name.startswith("-")
            path = Path(name.lstrip("-"))
            if optional and not path.exists():
                continue
            env.update(read_env_file(path))
        return env

    def command(self, key: str, env: dict[str, str]) -> list[tuple[str, list[str]]]:
        """Each ``Exec<key>=`` line: (its prefix flags, the argv with ${VAR}/$VAR expanded)."""
        out = []
        for line in self.values("Service", key):
            flags = ""
            while line[:1] in ("+", "-", "@", "!", ":"):
                flags, line = flags + line[0], line[1:]
            argv = [_VAR.sub(lambda m: env[m.group(1) or m.group(2)], w) for w in shlex.split(line)]
            out.append((flags, argv))
        return out


def read_unit(path: Path) -> Unit:
    unit = Unit(path.name)
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            continue
        key, _, value = line.partition("=")
        unit.sections[section].append((key.strip(), value.strip()))
    return unit


def read_env_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile= format: KEY=VALUE lines, # and ; comments, quotes."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        words = shlex.split(value) if value.strip() else [""]
        env[key.strip()] = " ".join(words)
    return env


def run_as(unit: Unit, flags: str, as_user: bool = True) -> dict[str, object]:
    """Popen keyword arguments for User=/Group=/WorkingDirectory= ('+' runs as root; so does
    everything when ``as_user`` is false)."""
    kwargs: dict[str, object] = {}
    user = unit.value("Service", "User")
    if user and as_user and "+" not in flags:
        kwargs["user"] = user
        kwargs["group"] = unit.value("Service", "Group") or user
        kwargs["extra_groups"] = []
    workdir = unit.value("Service", "WorkingDirectory")
    if workdir:
        optional = workdir.startswith("-")
        path = workdir.lstrip("-")
        if os.path.isdir(path) or not optional:
            kwargs["cwd"] = path
    return kwargs


def run_to_end(
    unit: Unit, key: str, env: dict[str, str], log: Path, timeout: float, as_user: bool = True
) -> None:
    """Run every ``Exec<key>=`` line of the unit to its end; fail naming the line."""
    for flags, argv in unit.command(key, env):
        with log.open("ab") as out:
            result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=timeout,
                                    **run_as(unit, flags, as_user), check=False)  # type: ignore[call-overload]  # fmt: skip
        assert result.returncode == 0, (
            f"{unit.name} {key}={flags}{shlex.join(argv)} exited {result.returncode}:\n"
            + log.read_text(errors="replace")[-3000:]
        )


def start(
    unit: Unit, env: dict[str, str], log: Path, as_user: bool = True
) -> subprocess.Popen[bytes]:
    """The unit's ExecStart= as its main process (own session, output to ``log``)."""
    ((flags, argv),) = unit.command("ExecStart", env)
    with log.open("ab") as out:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **run_as(unit, flags, as_user),
        )  # fmt: skip
