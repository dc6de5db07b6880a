"""Helpers for tests that run processes of their own: polling until something holds,
routing that does not depend on the hour, a private stack, keeping its logs, its CLI and an
AMI session on it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from ivr.adapters.telephony.ami_client import AmiClient
from ivr.devstack.stack import (
    Stack,
    asterisk_instance,
    isolated_settings,
    ivr_command,
    settings_env,
)
from ivr.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def open_around_the_clock(
    target: Path, *, closed_on: tuple[str, date] | None = None, survey: bool = False
) -> Path:
    """routing/ copied to ``target`` with every desk open around the clock: the same menu
    whatever the hour a test runs at (the hours are unit-tested). ``closed_on=(desk, day)``
    leaves that desk its hours and closes it all that day (a holiday): the after-hours path.
    The post-call survey is off on every desk unless ``survey``: a call then ends when the
    simulated agent hangs up (the survey's own tests: tests/integration/test_survey_calls.py)."""
    shutil.copytree(REPO / "routing", target)
    desks = yaml.safe_load((target / "desks.yaml").read_text(encoding="utf-8"))
    for entry in desks["desks"]:
        if not survey:
            entry["survey"] = False
        if closed_on is not None and entry["id"] == closed_on[0]:
            entry["holidays"] = [*entry.get("holidays", []), closed_on[1]]
            continue
        entry["always_open"] = True
        for key in ("hours", "holidays", "closed_prompt"):
            entry.pop(key, None)
    (target / "desks.yaml").write_text(yaml.safe_dump(desks, allow_unicode=True))
    followup_off(target)
    return target


def followup_off(target: Path, *, trunk_port: int | None = None, ring_s: int | None = None) -> None:
    """The ami role places no 回访 calls from this routing (tests that close tickets must not
    call out; the 回访 tests run the loop themselves, with their clock: test_followup_calls.py);
    ``trunk_port``: the outbound trunk's port on 127.0.0.1 (where a test's sipp resident is);
    ``ring_s``: how long a 回访 call rings before it is ``no answer``."""
    path = target / "hotline.yaml"
    hotline = yaml.safe_load(path.read_text(encoding="utf-8"))
    hotline["hotline"]["followup"]["enabled"] = False
    if trunk_port is not None:
        hotline["hotline"]["followup"]["trunk"]["port"] = trunk_port
    if ring_s is not None:
        hotline["hotline"]["followup"]["trunk"]["ring_s"] = ring_s
    path.write_text(yaml.safe_dump(hotline, allow_unicode=True))


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    every: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), else fail naming
    ``what``; exceptions of the ``ignore`` types count as "not yet" (a server starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ignore:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def keep_logs(settings: Settings, folder: str) -> Path:
    """Copy the stack's role logs and Asterisk's logs to ``test-artifacts/<folder>/``
    (emptied first), for reading after the run; returns the folder."""
    target = ARTIFACTS / folder
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    asterisk_logs = asterisk_instance(settings).log_dir
    for src in [*(settings.run_dir / "logs").glob("*.log"), *asterisk_logs.glob("*")]:
        if src.is_file():
            shutil.copy(src, target / src.name)
    return target


@contextmanager
def private_stack(
    base: Path,
    name: str,
    logs: str,
    *,
    sim_agents: bool = True,
    demo_agents: bool = False,
    **fields: Any,
) -> Iterator[Stack]:
    """A whole stack of its own (``ivr up`` on free ports, Asterisk instance
    ``<name><pid>``, settings ``fields``; the demo agents' phones only when asked), taken
    down afterwards with its logs kept in ``test-artifacts/<logs>/``."""
    settings = isolated_settings(base / "run", f"{name}{os.getpid()}", **fields)
    stack = Stack(settings, sim_agents=sim_agents, demo_agents=demo_agents)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
        keep_logs(settings, logs)
        asterisk_instance(settings).remove()


def ivr_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``ivr ARGS`` as a person would run it beside the stack of ``settings``."""
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [ivr_command(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@asynccontextmanager
async def ami_session(settings: Settings, account: str = "listener") -> AsyncIterator[AmiClient]:
    """A logged-in AMI client of the stack (``listener`` or ``actions``), events off."""
    if account == "listener":
        client = AmiClient(settings.ami, settings.ami_secret(), events="off")
    else:
        client = AmiClient(
            settings.ami, settings.ami_actions_secret(), username=settings.ami.actions_username,
            events="off",
        )  # fmt: skip
    runner = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10)
        yield client
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
