"""Redis behind authentication, against the session stack's real redis-server: nothing without
a password, each role's user held to its keys, and no caller's number, keyed digits or account
number left in any key after a real call."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import redis_acl, redis_keys
from ivr.adapters.sql.db import Recording, SttJob, settings_engine
from ivr.devstack.stack import Stack, redis_port
from ivr.settings import Settings

pytestmark = pytest.mark.integration

CALLER = "13800138000"
ACCOUNT = "14002233"


def raw_reply(settings: Settings, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", redis_port(settings)), timeout=5) as conn:
        conn.sendall(command)
        return conn.recv(4096)


def as_user(settings: Settings, user: str, password: str | None = None) -> redis.Redis:
    if password is None:
        secret = settings.redis_password()
        assert secret is not None
        password = redis_acl.role_password(secret, user)
    return redis.Redis.from_url(
        settings.redis.url, username=user, password=password, decode_responses=True
    )


def test_given_no_password_when_pinging_then_noauth(settings):
    assert raw_reply(settings, b"PING\r\n").startswith(b"-NOAUTH Authentication required")
    assert raw_reply(settings, b"KEYS *\r\n").startswith(b"-NOAUTH")
    wrong = raw_reply(settings, b"AUTH default not-the-password\r\n")
    assert wrong.startswith(b"-WRONGPASS")


def test_given_the_stacks_redis_then_protected_mode_on_and_users_from_a_private_acl_file(
    stack: Stack, redis_client
):
    settings = stack.settings
    acl = settings.run_dir / "redis" / "users.acl"
    assert redis_client.config_get("protected-mode") == {"protected-mode": "yes"}
    assert redis_client.config_get("aclfile") == {"aclfile": str(acl)}
    assert redis_client.config_get("requirepass") == {"requirepass": ""}  # users: the ACL file
    assert acl.stat().st_mode & 0o777 == 0o600
    assert settings.redis_secret_file.stat().st_mode & 0o777 == 0o600
    secret = settings.redis_password()
    assert secret and secret not in acl.read_text()  # hashes only
    pid = stack.running()["redis"].pid
    assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.fixture
def probe_keys(redis_client: redis.Redis) -> Iterator[str]:
    """Key names under each role's prefixes, deleted afterwards (as the default user)."""
    tag = f"probe-{os.getpid()}"
    yield tag
    for key in redis_client.scan_iter(match=f"*{tag}*"):
        redis_client.delete(key)


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as info:
        call(*args)
    return str(info.value)


def test_each_role_user_is_held_to_its_keys(settings, probe_keys):
    metrics, jobs = f"ivr:metrics:{probe_keys}", settings.stt.stream
    worker = f"{redis_keys.STT_WORKER_PREFIX}{probe_keys}"
    with as_user(settings, "ami") as ami:
        ami.hset(metrics, "answered", 1)
        ami.xadd(f"ivr:ami:{probe_keys}", {"Event": "Probe"})
        assert refused(ami.xadd, jobs, {"job": "0"})
        assert refused(ami.hgetall, worker)
    with as_user(settings, "web") as web:
        assert web.hgetall(metrics) == {"answered": "1"}
        assert web.hgetall(redis_keys.AMI_STATUS)["connected"] == "1"
        assert refused(web.hset, metrics, "answered", 2)  # reads the metrics, writes none
        assert refused(web.delete, redis_keys.LIVE_CALLS)
        assert refused(web.hgetall, worker)
        web.xrange(redis_keys.AMI_EVENTS, count=1)  # the screen pop follows the stream
        assert refused(web.xadd, redis_keys.AMI_EVENTS, {"Event": "Probe"})
    with as_user(settings, "recorder") as recorder:
        assert refused(recorder.hgetall, metrics)
        assert refused(recorder.hgetall, redis_keys.LIVE_CALLS)
    with as_user(settings, "stt-worker") as worker_user:
        worker_user.hset(worker, "state", "probe")
        assert refused(worker_user.hgetall, redis_keys.LIVE_CALLS)
        assert refused(worker_user.xrange, redis_keys.AMI_EVENTS)
    for role in redis_acl.ROLE_USERS:  # nobody but the operator administers the server
        with as_user(settings, role) as client:
            assert "flushall" in refused(client.flushall)
            assert "config" in refused(client.config_get, "dir")
            assert "keys" in refused(client.keys, "*")
            assert "acl" in refused(client.acl_list)
            assert "script|flush" in refused(client.script_flush)
    with pytest.raises(redis.exceptions.AuthenticationError):
        as_user(settings, "agi", "whatever").ping()  # the agi role has no Redis user
    with pytest.raises(redis.exceptions.AuthenticationError):
        as_user(settings, "web", "not-its-password").ping()


def test_the_roles_connect_as_their_own_users(settings, redis_client, wait_for):
    def users() -> set[str]:
        return {client["user"] for client in redis_client.client_list()}

    seen = wait_for(lambda: {"ami", "web", "stt-worker"} <= users() and users(), 10, "roles")
    assert seen <= {"default", *redis_acl.ROLE_USERS}


def every_value(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(key, text) for every key of every type: the name, and each value in it."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        parts: list[Any] = [key]
        if kind == "string":
            parts.append(client.get(key))
        elif kind == "hash":
            parts += [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "set":
            parts += client.smembers(key)
        elif kind == "zset":
            parts += [x for pair in client.zrange(key, 0, -1, withscores=True) for x in pair]
        elif kind == "stream":
            for entry_id, fields in client.xrange(key, "-", "+"):
                parts += [entry_id, *(x for pair in fields.items() for x in pair)]
            for group in client.xinfo_groups(key):
                parts += [str(v) for v in group.values()]
        else:
            raise AssertionError(f"{key}: a {kind} this test does not read")
        yield key, " ".join(str(p) for p in parts if p is not None)


def test_given_a_call_with_an_account_number_then_neither_it_nor_the_caller_is_in_redis(
    cli_env, redis_client, stored_events, settings, wait_for
):
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "call", "--json", "--from", CALLER,
         "--digits", f"2 {ACCOUNT}# 1"],
        env=os.environ, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["queue"], doc["variables"]["IVR_ACCOUNT"]) == ("billing", ACCOUNT)

    def stored_whole_call() -> list[dict[str, str]] | None:
        events = stored_events(doc["linkedid"])
        names = [e["Event"] for e in events]
        return events if names.count("Hangup") == len(doc["channels"]) else None

    events = wait_for(stored_whole_call, 10, "the listener to store every Hangup")
    names = {e["Event"] for e in events}
    assert {"Newchannel", "QueueCallerJoin", "AgentConnect", "DTMFEnd", "VarSet"} <= names
    assert "138******00" in {e.get("CallerIDNum") for e in events}  # stored, masked
    # the recorder catalogued the call and sent its transcription job: Redis has all of it
    wait_for(lambda: job_sent(settings, doc["linkedid"]), 30, "the call's STT job in Redis")
    found = [
        (key, needle)
        for key, text in every_value(redis_client)
        for needle in (CALLER, ACCOUNT)
        if needle in text
    ]
    assert found == []


def job_sent(settings: Settings, linkedid: str) -> bool:
    engine = settings_engine(settings)
    try:
        with Session(engine) as session:
            sent = session.scalar(
                select(SttJob.stream_id)
                .join(Recording, SttJob.recording_id == Recording.id)
                .where(Recording.linkedid == linkedid)
            )
    finally:
        engine.dispose()
    return sent is not None
