"""The STT job queue on a real redis-server and a SQLite file: sending, re-sending what
Redis lost, claiming stale and retry-due entries, and the jobs API / CLI (dead letters).
What reads or writes the job rows runs on a real PostgreSQL server too (``on_sql_backends``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import users
from ivr.adapters.sql.db import AuditEntry, Recording, Role, SttJob, SttJobStatus
from ivr.adapters.stt import job_queue as stt_queue
from ivr.adapters.stt.job_queue import RETRY_CONSUMER, JobQueue
from ivr.cli import main
from ivr.core.stt_jobs import RetryPolicy
from ivr.devstack.ports import free_port
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.pg_support import on_sql_backends
from tests.stt_queue_support import RedisServer, add_call, job, stt_settings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def settings(tmp_path: Path, redis_server: RedisServer, database_url: str) -> Settings:
    with redis_server.client() as client:
        client.flushall()
    return stt_settings(tmp_path, redis_server.url, database_url=database_url)


@pytest.fixture
async def aredis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def sredis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as client:
        yield client


def jobs_with(engine: Engine, n: int, settings: Settings, tmp_path: Path) -> list[int]:
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    return [add_call(engine, settings, wav) for _ in range(n)]


def stream_ids(sredis: redis.Redis, settings: Settings) -> dict[int, str]:
    """job id -> entry id, for every entry in the stream (fails on a duplicate)."""
    found: dict[int, str] = {}
    for entry_id, fields in sredis.xrange(settings.stt.stream, "-", "+"):
        job_id = int(fields["job"])
        assert job_id not in found, f"job {job_id} has two entries"
        found[job_id] = entry_id
    return found


# --- record and send ------------------------------------------------------------------------
@on_sql_backends
def test_given_recording_when_job_created_twice_then_one_unsent_row(engine, settings, tmp_path):
    (job_id,) = jobs_with(engine, 1, settings, tmp_path)
    with Session(engine) as session, session.begin():
        rec = session.scalars(select(Recording)).one()
        again = stt_queue.create_job(session, recording=rec)
        assert again.id == job_id
    row = job(engine, job_id)
    assert (row.source_key, row.status, row.stream_id) == (
        f"recording:{row.recording_id}", SttJobStatus.queued, None,
    )  # fmt: skip


async def test_given_redis_down_when_enqueued_then_row_waits_and_is_sent_once_redis_is_back(
    engine, settings, tmp_path, aredis, sredis
):
    (job_id,) = jobs_with(engine, 1, settings, tmp_path)
    nowhere = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    with pytest.raises(redis.ConnectionError):
        await stt_queue.send_pending(nowhere, engine, settings.stt)
    await nowhere.aclose()
    assert job(engine, job_id).stream_id is None

    assert await stt_queue.send_pending(aredis, engine, settings.stt) == 1
    assert stream_ids(sredis, settings) == {job_id: job(engine, job_id).stream_id}
    assert await stt_queue.send_pending(aredis, engine, settings.stt) == 0


@on_sql_backends
async def test_given_two_senders_at_once_when_sending_then_each_job_has_exactly_one_entry(
    engine, settings, tmp_path, sredis
):
    ids = jobs_with(engine, 30, settings, tmp_path)
    clients = [aioredis.Redis.from_url(settings.redis.url, decode_responses=True) for _ in "ab"]
    try:
        sent = await asyncio.gather(
            *(stt_queue.send_pending(c, engine, settings.stt) for c in clients)
        )
    finally:
        for c in clients:
            await c.aclose()
    assert sum(sent) == 30
    entries = stream_ids(sredis, settings)
    assert sorted(entries) == ids
    assert {i: job(engine, i).stream_id for i in ids} == entries


@on_sql_backends
async def test_given_redis_flushed_when_resend_lost_then_unfinished_jobs_sent_again(
    engine, settings, tmp_path, aredis, sredis
):
    ids = jobs_with(engine, 3, settings, tmp_path)
    await stt_queue.send_pending(aredis, engine, settings.stt)
    with Session(engine) as session, session.begin():
        session.execute(update(SttJob).where(SttJob.id == ids[0]).values(status="done"))
    before = {i: job(engine, i).stream_id for i in ids}
    sredis.flushall()
    queue = JobQueue.from_settings(aredis, settings.stt)
    assert await queue.ensure_group() is True

    assert await stt_queue.resend_lost(aredis, engine, settings.stt) == 2

    entries = stream_ids(sredis, settings)
    assert sorted(entries) == ids[1:]
    assert all(job(engine, i).stream_id == entries[i] != before[i] for i in ids[1:])
    assert job(engine, ids[0]).stream_id == before[ids[0]]  # done: left alone
    assert await stt_queue.resend_lost(aredis, engine, settings.stt) == 0


async def test_given_pending_entry_when_resend_lost_then_kept_but_orphaned_one_is_sent_again(
    engine, settings, tmp_path, aredis, sredis
):
    ids = jobs_with(engine, 2, settings, tmp_path)
    queue = JobQueue.from_settings(aredis, settings.stt)
    await queue.ensure_group()
    await stt_queue.send_pending(aredis, engine, settings.stt)
    first = await queue.read("w1", 100)
    second = await queue.read("w2", 100)
    assert first is not None and second is not None
    # w2's consumer deleted under it: its entry stays in the stream but is no longer pending
    sredis.xgroup_delconsumer(settings.stt.stream, settings.stt.group, "w2")

    assert await stt_queue.resend_lost(aredis, engine, settings.stt) == 1

    entries = stream_ids(sredis, settings)
    assert entries[first.job_id] == first.entry_id  # pending with w1: untouched
    assert entries[second.job_id] != second.entry_id  # a new, undelivered entry
    again = await queue.read("w3", 100)
    assert again is not None and (again.job_id, again.deliveries) == (second.job_id, 1)
    assert sorted(entries) == ids


# --- claiming ---------------------------------------------------------------------------------
async def test_given_running_entry_when_heart_beating_then_taken_over_only_once_silent(
    engine, settings, tmp_path, aredis
):
    jobs_with(engine, 1, settings, tmp_path)
    policy = RetryPolicy(max_attempts=3, backoff_initial_s=0.5, backoff_max_s=4, claim_idle_s=2.0)
    queue = JobQueue.from_settings(aredis, settings.stt)
    await queue.ensure_group()
    await stt_queue.send_pending(aredis, engine, settings.stt)
    mine = await queue.read("w1", 100)
    assert mine is not None and mine.deliveries == 1

    for _ in range(10):  # 2.5 s of heartbeats: never idle for claim_idle_s
        await asyncio.sleep(0.25)
        assert await queue.heartbeat("w1", mine.entry_id) == 1
        assert await queue.claim_due("w2", policy) is None
    await asyncio.sleep(2.1)  # w1 goes silent (as if SIGKILLed)
    taken = await queue.claim_due("w2", policy)

    assert taken is not None
    assert (taken.entry_id, taken.job_id, taken.deliveries) == (mine.entry_id, mine.job_id, 2)
    assert await queue.heartbeat("w1", mine.entry_id) == -1  # w1 learns it lost the job
    await queue.finish(taken.entry_id)
    assert await queue.heartbeat("w2", mine.entry_id) == 0
    assert await queue.length() == 0


async def test_given_parked_entry_when_its_backoff_elapses_then_due_with_the_next_delivery(
    engine, settings, tmp_path, aredis, sredis
):
    jobs_with(engine, 1, settings, tmp_path)
    policy = RetryPolicy(max_attempts=5, backoff_initial_s=0.6, backoff_max_s=4, claim_idle_s=30)
    queue = JobQueue.from_settings(aredis, settings.stt)
    await queue.ensure_group()
    await stt_queue.send_pending(aredis, engine, settings.stt)
    delivery = await queue.read("w1", 100)
    assert delivery is not None

    for attempt, backoff in ((1, 0.6), (2, 1.2)):
        assert await queue.park("w1" if attempt == 1 else "w2", delivery.entry_id) == 1
        (pending,) = sredis.xpending_range(settings.stt.stream, settings.stt.group, "-", "+", 10)
        assert (pending["consumer"], pending["times_delivered"]) == (RETRY_CONSUMER, attempt)
        parked_at = time.monotonic()
        while (taken := await queue.claim_due("w2", policy)) is None:
            await asyncio.sleep(0.05)
        waited = time.monotonic() - parked_at
        assert backoff - 0.05 <= waited < backoff + 1.0
        assert (taken.entry_id, taken.deliveries) == (delivery.entry_id, attempt + 1)


# --- the jobs API and CLI (dead letters) -------------------------------------------------------
def _users(engine: Engine) -> None:
    hashed = users.hash_password(PASSWORD)
    with Session(engine) as session, session.begin():
        for name, role in (("qa1", Role.qa), ("sup1", Role.supervisor), ("admin1", Role.admin)):
            session.add(sql.User(username=name, password_hash=hashed, role=role))


def _kill(engine: Engine, job_id: int, reason: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(SttJob)
            .where(SttJob.id == job_id)
            .values(status=SttJobStatus.dead, last_error=reason, attempts=3, stream_id="1-1")
        )


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    _users(engine)
    with TestClient(create_app(settings)) as client:
        yield client


def _login(client: TestClient, username: str) -> None:
    response = client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}, headers=ORIGIN
    )
    assert response.status_code == 200


def test_given_no_session_or_role_when_listing_jobs_then_401_or_403(api):
    assert api.get("/api/stt/jobs").status_code == 401
    assert api.get("/api/stt/jobs").json()["error"] == "not-authenticated"
    _login(api, "qa1")
    assert api.get("/api/stt/jobs?status=dead").status_code == 403


@on_sql_backends
def test_given_dead_jobs_when_supervisor_lists_dead_then_reasons_shown(
    api, engine, settings, tmp_path
):
    ids = jobs_with(engine, 3, settings, tmp_path)
    _kill(engine, ids[1], "not audio: call-2.wav has no audio stream")
    _login(api, "sup1")

    dead = api.get("/api/stt/jobs", params={"status": "dead"})
    everything = api.get("/api/stt/jobs")

    assert dead.status_code == 200
    assert [(j["id"], j["status"], j["last_error"]) for j in dead.json()["jobs"]] == [
        (ids[1], "dead", "not audio: call-2.wav has no audio stream")
    ]
    assert dead.json()["counts"]["dead"] == 1 and dead.json()["counts"]["queued"] == 2
    assert sorted(j["id"] for j in everything.json()["jobs"]) == ids
    assert api.get(f"/api/stt/jobs/{ids[1]}").json()["last_error"].startswith("not audio")
    bad = api.get("/api/stt/jobs", params={"status": "exploded"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid-job-query")
    assert api.get("/api/stt/jobs", params={"limit": "0"}).status_code == 422
    assert api.get("/api/stt/jobs/999999").status_code == 404
    assert api.get("/api/stt/jobs/abc").json()["error"] == "stt-job-not-found"


@on_sql_backends
def test_given_dead_job_when_admin_retries_then_requeued_sent_and_audited(
    api, engine, settings, tmp_path, sredis
):
    ids = jobs_with(engine, 2, settings, tmp_path)
    _kill(engine, ids[0], "failed 3 times; last error: decode error")
    _login(api, "sup1")
    assert api.post(f"/api/stt/jobs/{ids[0]}/retry", headers=ORIGIN).status_code == 403
    _login(api, "admin1")
    assert api.post(f"/api/stt/jobs/{ids[0]}/retry").status_code == 403  # no Origin: CSRF

    response = api.post(f"/api/stt/jobs/{ids[0]}/retry", headers=ORIGIN)

    assert response.status_code == 202
    body = response.json()
    assert body["sent"] is True
    assert (body["job"]["status"], body["job"]["attempts"], body["job"]["last_error"]) == (
        "queued", 0, None,
    )  # fmt: skip
    assert stream_ids(sredis, settings)[ids[0]] == body["job"]["stream_id"]
    again = api.post(f"/api/stt/jobs/{ids[1]}/retry", headers=ORIGIN)
    assert (again.status_code, again.json()["error"]) == (409, "stt-job-not-dead")
    assert api.post("/api/stt/jobs/424242/retry", headers=ORIGIN).status_code == 404
    with Session(engine) as session:
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "stt.retry"))
        assert [(a.actor, a.target) for a in audits] == [("admin1", f"stt_job:{ids[0]}")]


@on_sql_backends
def test_given_redis_down_when_admin_retries_then_requeued_unsent_for_the_sweep(
    engine, tmp_path, redis_server, database_url
):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = stt_settings(tmp_path, nowhere, database_url=database_url)
    (job_id,) = jobs_with(engine, 1, settings, tmp_path)
    _kill(engine, job_id, "failed 3 times")
    _users(engine)
    with TestClient(create_app(settings)) as client:
        _login(client, "admin1")
        response = client.post(f"/api/stt/jobs/{job_id}/retry", headers=ORIGIN)
    assert response.status_code == 202
    assert response.json()["sent"] is False
    assert (job(engine, job_id).status, job(engine, job_id).stream_id) == ("queued", None)


@on_sql_backends
def test_given_jobs_when_cli_lists_dead_ones_then_reasons_printed(
    engine, settings, tmp_path, monkeypatch, capsys
):
    from ivr.devstack.stack import settings_env

    ids = jobs_with(engine, 2, settings, tmp_path)
    _kill(engine, ids[0], "too long: call.wav is 7200 s long; the most is 3600 s")
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)

    assert main(["stt", "jobs", "--status", "dead", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert main(["stt", "jobs"]) == 0
    table = capsys.readouterr().out

    assert [(j["id"], j["last_error"]) for j in doc["jobs"]] == [
        (ids[0], "too long: call.wav is 7200 s long; the most is 3600 s")
    ]
    assert doc["counts"]["dead"] == 1 and doc["counts"]["queued"] == 1
    assert "dead 1" in table and "too long: call.wav is 7200 s long" in table
