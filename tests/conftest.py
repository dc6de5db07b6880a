"""Shared fixtures. Integration tests run against a real stack (`ivr up` machinery) on free
loopback ports: redis-server, Asterisk 22 in the sid root, and the agi/ami/web roles.
``scripts/test`` provisions everything first; nothing here skips for a missing component.

The SQL tests run on SQLite and on a private PostgreSQL server (``tests/pg_support.py``):
a test that takes ``database_url`` gets a database of its own on its ``sql_backend``:
SQLite unless the test (``on_sql_backends``) or its module (a ``sql_backend`` fixture with
``params=SQL_BACKENDS``) asks for both.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import yaml
from sqlalchemy import Engine

from ivr import redis_keys
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, users
from ivr.devstack.stack import Stack, isolated_settings
from ivr.settings import Settings
from tests.pg_support import PostgresServer
from tests.stack_support import open_around_the_clock, private_stack
from tests.stack_support import wait_for as stack_wait_for
from tests.web_support import PASSWORD

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
_TEMP_SLOT_LOCK: list[int] = []  # held open for the session: the slot stays ours


def _temp_root_of_our_own() -> None:
    """pytest's temporary folders in a slot no other session uses at the same time.

    The stacks' roles run as the service user, which `ivr up` lets pass through pytest's
    0700 folders by an ACL entry (README: No root at run time). Every pytest session strips
    the group and other bits of its ``pytest-of-<user>`` folder at start, which also masks
    that ACL entry: a session starting beside ours would cut our running roles off their run
    dir. So each session takes a free slot (an flock) under ``<tmp>/hotline-tests`` as its
    temporary root; pytest keeps its usual retention within the slot."""
    if "PYTEST_DEBUG_TEMPROOT" in os.environ:
        return
    top = Path(tempfile.gettempdir()) / "hotline-tests"
    top.mkdir(exist_ok=True)
    top.chmod(0o755)
    for number in range(64):
        slot = top / f"slot-{number}"
        slot.mkdir(exist_ok=True)
        slot.chmod(0o755)
        lock = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        _TEMP_SLOT_LOCK.append(lock)
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(slot)
        return
    raise RuntimeError(f"64 test sessions hold every slot of {top}")


_temp_root_of_our_own()


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """``make_settings(run_dir, instance, **overrides)``: settings for a private stack."""
    return isolated_settings


TODAY_CLOSED_DESK = "complaints"  # closed all day in the test stack: the after-hours path
OUTAGE_AREA = "qiaoxi"  # has a planned outage being announced now in the test stack


def routing_for_tests(target: Path, *, survey: bool = False) -> Path:
    """routing/ with every desk open around the clock except complaints, which is closed
    today (a holiday), and the qiaoxi outage announced now: the menu, the after-hours and
    the outage paths at any hour. The post-call survey as shipped only with ``survey``
    (else off on every desk)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    open_around_the_clock(target, closed_on=(TODAY_CLOSED_DESK, today), survey=survey)
    outages = yaml.safe_load((target / "outages.yaml").read_text(encoding="utf-8"))
    for outage in outages["outages"]:
        if outage["area"] == OUTAGE_AREA:
            outage["announce_from"] = f"{today - timedelta(days=1)} 00:00:00"
            outage["starts"] = f"{today} 00:00:00"
            outage["ends"] = f"{today + timedelta(days=1)} 23:00:00"
    (target / "outages.yaml").write_text(yaml.safe_dump(outages, allow_unicode=True))
    return target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    with private_stack(
        base,
        "t",
        "stack-logs",
        routing_dir=routing_for_tests(base / "routing"),
        # repair held to 6 s so a test call crosses the threshold quickly (the supervisor page)
        metrics={"thresholds": {"emergency": 15.0, "emergency-backup": 15.0, "repair": 6.0}},
    ) as st:
        yield st


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return stack.settings


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a person would have after `ivr up` for this stack."""
    from ivr.devstack.stack import settings_env

    env = settings_env(stack.settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True
    )
    with client:
        yield client


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout, what)``: poll until truthy, else fail naming ``what``."""
    return stack_wait_for


@pytest.fixture
def stored_events(redis_client: redis.Redis) -> Callable[[str], list[dict[str, str]]]:
    """``stored_events(linkedid)``: the events the AMI listener stored in Redis for a call."""

    def events(linkedid: str) -> list[dict[str, str]]:
        return [
            fields
            for _, fields in redis_client.xrange(redis_keys.AMI_EVENTS, "-", "+")
            if fields.get("Linkedid") == linkedid
        ]

    return events


# --- SQL backends -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the session (started only if a test asks for it)."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sql_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless parametrized (``on_sql_backends``, or a module's own override)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(request: pytest.FixtureRequest, sql_backend: str, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of a database of this test's own on ``sql_backend``: a new SQLite
    file, or a PostgreSQL database already at the migrations' head with no rows (the tests
    still call ``schema.upgrade``, which finds nothing to do; wiped for the next test
    afterwards)."""
    if sql_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
        return
    assert sql_backend == "postgresql", sql_backend
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.take_database()
    try:
        yield server.url(name)
    finally:
        server.give_back(name)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (a disk that is full at once); the test runs as root to mount it."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"this test mounts a tmpfs and needs root: {done.stderr.decode()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


# --- SQL: one way to make a test's database -------------------------------------------------
@pytest.fixture(scope="session")
def password_hash() -> str:
    """PASSWORD hashed once for the whole session (argon2 is slow on purpose)."""
    return users.hash_password(PASSWORD)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine on the test's database (its module's ``settings``), brought to head."""
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    yield engine
    engine.dispose()
