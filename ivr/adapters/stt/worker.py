"""The speech-to-text worker: jobs from the Redis stream through vosk into SQL and tickets.

``ivr stt-worker --concurrency N`` runs a :class:`WorkerPool`: N child processes (each
``ivr stt-worker --single``), restarted when one dies; SIGTERM is passed on to them and the
pool waits for them (``stt.drain_s`` plus a margin, then SIGKILL). Each child is one
:class:`SttWorker`:

- loads the model once (:meth:`SttEngine.load <ivr.adapters.stt.engine.SttEngine.load>`).
  With no usable model it takes no job: the jobs wait in the stream, shown with the
  status ``no model`` (or ``model error``), and the model is looked for every
  ``stt.model_poll_s``; once it loads, they are shown ``queued`` again and taken;
- every ``stt.sweep_s`` sends unsent jobs (:func:`~ivr.adapters.stt.job_queue.send_pending`),
  re-sends jobs Redis lost (:func:`~ivr.adapters.stt.job_queue.resend_lost`: at start, after
  Redis comes back, when the stream holds fewer entries than unfinished jobs, and every
  minute) and refreshes its status hash ``ivr:stt:worker:<consumer>``;
- takes one job at a time: a due pending entry first (a retry past its backoff, or a job
  whose worker went silent), else a new one; decodes in a thread (the event loop stays free
  for the heartbeat), heart-beating every ``stt.heartbeat_s``;
- stores the result in ONE transaction: the :class:`~ivr.adapters.sql.db.Transcript` (unique
  ``source_key``; a redo finds the one stored before), ``Recording.transcript_id``, the job's
  status (``done``, or ``silent`` when no word was heard) and the ticket note
  (:func:`ivr.adapters.sql.tickets.add_transcript_note`, once per ticket and source). Only then
  is the entry acknowledged, so a worker killed at any point leaves the job to be redone,
  and the redo adds nothing twice;
- failures follow :func:`ivr.core.stt_jobs.decide_failure`: permanent (not audio, too long,
  the file or the source row is gone) -> ``dead`` at once with the reason; transient ->
  ``retrying`` and the entry is parked for its backoff, ``dead`` after ``stt.max_attempts``;
  model trouble -> back in the queue uncounted, and the worker goes looking for the model;
- on SIGTERM stops taking jobs; a running job has ``stt.drain_s`` to finish, else it is
  abandoned at its next block and sent back to the queue uncounted;
- Redis or the database away: logged once, retried with a capped backoff; the worker does
  not exit. A job whose result could not be acknowledged is redone and found finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import CursorResult, Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.processes import memory_mib
from ivr.adapters.sql import tickets
from ivr.adapters.sql.db import (
    Recording,
    RecordingStatus,
    SttJob,
    SttJobStatus,
    Transcript,
    VoiceMessage,
    settings_engine,
    utcnow,
)
from ivr.adapters.sql.schema import require_head
from ivr.adapters.stt import job_queue as stt_queue
from ivr.adapters.stt.engine import ModelCorrupt, ModelMissing, SttEngine, SttError, SttResult
from ivr.adapters.stt.job_queue import FINAL_STATUSES, Delivery, JobQueue
from ivr.adapters.telephony.instance_dirs import messages_dir
from ivr.core.danger import find_danger_words
from ivr.core.stt_jobs import (
    Action,
    Failure,
    FailureKind,
    Start,
    decide_failure,
    decide_start,
    given_up_reason,
)
from ivr.errors import HotlineError, InvalidInput
from ivr.settings import Settings

logger = logging.getLogger(__name__)

BLOCK_MS: Final = 1000  # one XREADGROUP waits this long: SIGTERM is seen within it
RECONCILE_S: Final = 60.0  # lost entries are looked for at least this often
ABANDON_WAIT_S: Final = 5.0  # after the drain time, wait this long for the decode to stop
UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)


class _Abandoned(Exception):
    """Raised in the decode thread (from its progress callback) to stop it on shutdown."""


def consumer_name() -> str:
    """Unique per process: host, pid and a random part (pids are reused after restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class _Work:
    """What :meth:`SttWorker._begin` found: transcribe ``path``, or stop (``start``)."""

    start: Start
    path: Path | None = None
    channel: int | None = None
    failure: Failure | None = None  # the job cannot start: handled as a failed attempt


def failure_of(exc: BaseException) -> Failure:
    """Classify what a decode raised."""
    if isinstance(exc, ModelMissing | ModelCorrupt):
        return Failure(FailureKind.model, exc.message, status=exc.job_status)
    if isinstance(exc, SttError):
        kind = FailureKind.transient if exc.retry else FailureKind.permanent
        return Failure(kind, f"{exc.job_status}: {exc.message}")
    if isinstance(exc, HotlineError):
        return Failure(FailureKind.transient, exc.message)
    return Failure(FailureKind.transient, f"{type(exc).__name__}: {exc}")


class SttWorker:
    """One worker process's loop; :attr:`stop` ends it (set it from a signal handler)."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        engine: Engine,
        *,
        consumer: str | None = None,
    ) -> None:
        self.settings = settings
        self.stt = settings.stt
        self.redis = client
        self.db = engine
        self.queue = JobQueue.from_settings(client, settings.stt)
        self.policy = stt_queue.policy_of(settings.stt)
        self.consumer = consumer or consumer_name()
        self.stop = asyncio.Event()
        self.model: SttEngine | None = None
        self.model_state = "loading"  # "ready", "no model", "model error"
        self.model_reason: str | None = None
        self.jobs_done = 0
        self.jobs_dead = 0
        self.current_job: int | None = None
        self._need_group = True
        self._next_model_try = 0.0
        self._next_sweep = 0.0
        self._next_reconcile = 0.0
        self._outage: str | None = None  # what is away (logged once per outage)

    # --- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        logger.info(
            "stt worker started",
            extra={"consumer": self.consumer, "pid": os.getpid(), "stream": self.stt.stream,
                   "model_path": str(self.stt.model_path)},
        )  # fmt: skip
        delay = 0.5
        while not self.stop.is_set():
            try:
                await self._step()
            except UNREACHABLE as exc:
                self._away("redis", exc)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self._need_group = True  # Redis lost the stream: make it, re-send
                    continue
                self._away("redis", exc)
            except RedisError as exc:
                self._away("redis", exc)
            except SQLAlchemyError as exc:
                self._away("database", exc)
            except Exception:  # a bug: logged, and the worker goes on (its job is redone)
                logger.exception("stt worker step failed", extra={"consumer": self.consumer})
            else:
                if self._outage is not None:
                    logger.info("stt worker reconnected", extra={"was_away": self._outage})
                    self._outage = None
                    self._next_reconcile = 0.0  # whatever Redis lost meanwhile: send again
                delay = 0.5
                continue
            await self._pause(delay)
            delay = min(delay * 2, 10.0)
        await self._goodbye()

    def _away(self, what: str, exc: BaseException) -> None:
        if self._outage != what:
            logger.warning(
                f"stt worker: {what} unavailable, retrying",
                extra={"error": f"{type(exc).__name__}: {exc}", "consumer": self.consumer},
            )
        self._outage = what

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), max(seconds, 0.0))

    async def _step(self) -> None:
        if self._need_group:
            if await self.queue.ensure_group():
                self._next_reconcile = 0.0
            self._need_group = False
        now = time.monotonic()
        if self.model is None and now >= self._next_model_try:
            await self._try_model()
        if now >= self._next_sweep:
            await self._sweep()
        if self.model is None:
            await self._pause(min(self._next_model_try, self._next_sweep) - time.monotonic())
            return
        delivery = await self.queue.claim_due(self.consumer, self.policy)
        if delivery is None:
            delivery = await self.queue.read(self.consumer, BLOCK_MS)
        if delivery is not None and not self.stop.is_set():
            await self._process(delivery)
        elif delivery is not None:  # read just as SIGTERM came: give it back uncounted
            await self._requeue(delivery, "worker stopping: sent back to the queue")

    async def _try_model(self) -> None:
        try:
            self.model = await asyncio.to_thread(
                SttEngine.load, self.stt.model_path, self.stt.language
            )
        except (ModelMissing, ModelCorrupt) as exc:
            self._next_model_try = time.monotonic() + self.stt.model_poll_s
            await self._model_unusable(exc.job_status, exc.message)
            return
        self.model_state, self.model_reason = "ready", None
        await self._publish()
        waiting = await asyncio.to_thread(
            stt_queue.set_waiting_status, self.db, SttJobStatus.queued, None
        )
        logger.info(
            "stt worker ready",
            extra={"consumer": self.consumer, "model": self.model.model_name,
                   "jobs_waiting_for_model": waiting, "rss_mb": round(memory_mib(), 1)},
        )  # fmt: skip

    async def _model_unusable(self, status: str, reason: str) -> None:
        """No job is taken; waiting jobs show why (``no model`` / ``model error``)."""
        self.model = None
        if (status, reason) != (self.model_state, self.model_reason):
            logger.warning(
                "stt worker waits for a model",
                extra={"consumer": self.consumer, "status": status, "reason": reason},
            )
        self.model_state, self.model_reason = status, reason
        job_status = _job_status(status, SttJobStatus.no_model)
        await asyncio.to_thread(stt_queue.set_waiting_status, self.db, job_status, reason)
        await self._publish()

    async def _sweep(self) -> None:
        self._next_sweep = time.monotonic() + self.stt.sweep_s
        await stt_queue.send_pending(self.redis, self.db, self.stt)
        unfinished = await asyncio.to_thread(stt_queue.count_unfinished_sent, self.db)
        if time.monotonic() >= self._next_reconcile or await self.queue.length() < unfinished:
            await stt_queue.resend_lost(self.redis, self.db, self.stt)
            for name in await self.queue.forget_gone_consumers([self.consumer]):
                logger.info("stt consumer of a stopped worker forgotten", extra={"name": name})
            self._next_reconcile = time.monotonic() + RECONCILE_S
        await self._publish()

    async def _publish(self) -> None:
        """The status hash ``ivr status`` and operators read; expires if the worker dies."""
        key = redis_keys.stt_worker(self.consumer)
        ttl = int(max(30.0, 3 * max(self.stt.sweep_s, self.stt.heartbeat_s)))
        fields: dict[Any, str | int | float] = {
            "consumer": self.consumer,
            "pid": os.getpid(),
            "state": self.model_state,
            "model": self.model.model_name if self.model else str(self.stt.model_path),
            "reason": self.model_reason or "",
            "jobs_done": self.jobs_done,
            "jobs_dead": self.jobs_dead,
            "current_job": self.current_job or "",
            "rss_mb": round(memory_mib(), 1),
            "updated_at": round(time.time(), 3),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
            await pipe.execute()

    async def _goodbye(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(redis_keys.stt_worker(self.consumer))
            mine = await self.redis.xpending_range(
                self.stt.stream, self.stt.group, "-", "+", 1, consumername=self.consumer
            )
            if not mine:
                await self.redis.xgroup_delconsumer(self.stt.stream, self.stt.group, self.consumer)
        logger.info(
            "stt worker stopped",
            extra={"consumer": self.consumer, "jobs_done": self.jobs_done,
                   "jobs_dead": self.jobs_dead},
        )  # fmt: skip

    # --- one job ----------------------------------------------------------------------------
    async def _process(self, delivery: Delivery) -> None:
        if delivery.job_id is None:
            logger.warning("stt entry without a job id dropped", extra={"entry": delivery.entry_id})
            await self.queue.finish(delivery.entry_id)
            return
        work = await asyncio.to_thread(self._begin, delivery)
        if work.start is not Start.run:
            if work.start is Start.give_up:
                self.jobs_dead += 1
                logger.warning(
                    "stt job dead: no attempt finished",
                    extra={"job": delivery.job_id, "deliveries": delivery.deliveries},
                )
            await self.queue.finish(delivery.entry_id)
            return
        self.current_job = delivery.job_id
        logger.info(
            "stt job started",
            extra={"job": delivery.job_id, "attempt": delivery.deliveries,
                   "consumer": self.consumer},
        )  # fmt: skip
        try:
            if work.failure is not None:
                await self._failed(delivery, work.failure)
                return
            assert work.path is not None
            outcome = await self._transcribe(delivery, work.path, work.channel)
            if outcome is None:
                await self._requeue(delivery, "worker stopped mid-job: sent back to the queue")
            elif isinstance(outcome, Failure):
                await self._failed(delivery, outcome)
            else:
                await self._succeeded(delivery, outcome)
        finally:
            self.current_job = None

    def _begin(self, delivery: Delivery) -> _Work:
        """Read the row, decide, mark it running (attempts = the delivery count)."""
        with Session(self.db) as session, session.begin():
            job = session.get(SttJob, delivery.job_id)
            if job is None:
                logger.warning("stt entry for a job that does not exist", extra={
                    "entry": delivery.entry_id, "job": delivery.job_id})  # fmt: skip
                return _Work(Start.skip)
            start = decide_start(
                self.policy, finished=job.status in FINAL_STATUSES, deliveries=delivery.deliveries
            )
            if start is Start.skip:
                return _Work(start)
            if start is Start.give_up:
                job.status = SttJobStatus.dead
                job.last_error = given_up_reason(delivery.deliveries, job.last_error)
                job.attempts = delivery.deliveries - 1
                job.updated_at = utcnow()
                return _Work(start)
            job.status = SttJobStatus.running
            job.attempts = delivery.deliveries
            job.updated_at = utcnow()
            try:
                path, channel = self._audio_of(session, job)
            except _SourceProblem as problem:
                return _Work(Start.run, failure=problem.failure)
            return _Work(Start.run, path=path, channel=channel)

    def _audio_of(self, session: Session, job: SttJob) -> tuple[Path, int | None]:
        """The file to decode and its channel: a recording's left (the caller), or the
        whole of a voice message."""
        if job.recording_id is not None:
            rec = session.get(Recording, job.recording_id)
            if rec is None:
                raise _SourceProblem.permanent(f"recording {job.recording_id} no longer exists")
            if rec.file_name is None or rec.status is RecordingStatus.deleted:
                raise _SourceProblem.permanent(
                    f"recording {rec.id} has no audio file (status {rec.status.value})"
                )
            return self.settings.recordings_dir / rec.file_name, 0
        if job.voice_message_id is not None:
            message = session.get(VoiceMessage, job.voice_message_id)
            if message is None:
                raise _SourceProblem.permanent(
                    f"voice message {job.voice_message_id} no longer exists"
                )
            return messages_dir(self.settings) / message.file_name, None
        raise _SourceProblem.permanent(f"{job.source_key}: the source row was deleted")

    async def _transcribe(
        self, delivery: Delivery, path: Path, channel: int | None
    ) -> SttResult | Failure | None:
        """Decode in a thread, heart-beating meanwhile. None: abandoned on shutdown."""
        model = self.model
        assert model is not None
        abandon = threading.Event()

        def progress(_fraction: float) -> None:
            if abandon.is_set():
                raise _Abandoned

        decode = asyncio.ensure_future(
            asyncio.to_thread(
                model.transcribe,
                path,
                channel=channel,
                max_audio_s=self.stt.max_audio_s,
                progress=progress,
            )
        )
        decode.add_done_callback(_retrieve)  # an abandoned decode's error is not left unread
        beat = asyncio.create_task(self._heartbeat(delivery.entry_id))
        stopping = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({decode, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not decode.done():  # SIGTERM: the job may finish within the drain time
                logger.info(
                    "stt worker stopping: letting the running job finish",
                    extra={"job": delivery.job_id, "drain_s": self.stt.drain_s},
                )
                await asyncio.wait({decode}, timeout=self.stt.drain_s)
            if not decode.done():
                abandon.set()
                await asyncio.wait({decode}, timeout=ABANDON_WAIT_S)
                return None
            return decode.result()
        except _Abandoned:
            return None
        except Exception as exc:
            if not isinstance(exc, SttError):
                logger.exception("stt decode raised", extra={"job": delivery.job_id})
            return failure_of(exc)
        finally:
            beat.cancel()
            stopping.cancel()

    async def _heartbeat(self, entry_id: str) -> None:
        taken = False
        while True:
            await asyncio.sleep(self.stt.heartbeat_s)
            try:
                owned = await self.queue.heartbeat(self.consumer, entry_id)
                await self._publish()
            except (RedisError, OSError) as exc:
                logger.debug("stt heartbeat failed", extra={"error": str(exc)})
                continue
            if owned == -1 and not taken:
                taken = True
                logger.warning(
                    "stt job taken over by another worker; finishing it all the same "
                    "(the result is stored once)",
                    extra={"entry": entry_id, "consumer": self.consumer},
                )

    async def _succeeded(self, delivery: Delivery, result: SttResult) -> None:
        assert delivery.job_id is not None
        try:
            status = await asyncio.to_thread(self._store, delivery.job_id, result)
        except Exception as exc:  # the database refused: a transient failure of this attempt
            logger.exception("stt result not stored", extra={"job": delivery.job_id})
            await self._failed(
                delivery, Failure(FailureKind.transient, f"storing the transcript failed: {exc}")
            )
            return
        await self._finish(delivery)
        self.jobs_done += 1
        logger.info(
            "stt job done",
            extra={"job": delivery.job_id, "status": status, "attempt": delivery.deliveries,
                   "audio_s": round(result.audio_s, 2), "decode_s": round(result.decode_s, 2),
                   "rtf": round(result.rtf, 3), "words": len(result.words)},
        )  # fmt: skip

    def _store(self, job_id: int, result: SttResult) -> str:
        """Transcript, recording link, job status and ticket note: one transaction."""
        for attempt in (1, 2):
            try:
                return self._store_once(job_id, result)
            except IntegrityError:
                if attempt == 2:
                    raise
                # another worker redoing this job stored the transcript first: use it
                logger.info("stt transcript stored concurrently", extra={"job": job_id})
        raise AssertionError("unreachable")

    def _store_once(self, job_id: int, result: SttResult) -> str:
        model = self.model
        assert model is not None
        with Session(self.db) as session, session.begin():
            job = session.get(SttJob, job_id)
            if job is None:
                return "gone"
            if job.status in FINAL_STATUSES:
                return job.status.value  # finished by another worker meanwhile
            transcript = session.scalar(
                select(Transcript).where(Transcript.source_key == job.source_key)
            )
            if transcript is None:
                transcript = Transcript(
                    source_key=job.source_key,
                    recording_id=job.recording_id,
                    voice_message_id=job.voice_message_id,
                    language=model.language,
                    model=model.model_name[:120],
                    text=result.text,
                    words=result.words_json(),
                    confidence=result.confidence,
                    audio_s=result.audio_s,
                    decode_s=result.decode_s,
                    danger_words=find_danger_words(
                        result.text, self.stt.danger_words, model.language
                    ),
                    created_at=utcnow(),
                )
                session.add(transcript)
                session.flush()
            if job.recording_id is not None:
                recording = session.get(Recording, job.recording_id)
                if recording is not None:
                    recording.transcript_id = transcript.id
            job.status = SttJobStatus.silent if result.silent else SttJobStatus.done
            job.transcript_id = transcript.id
            job.last_error = None
            job.updated_at = utcnow()
            tickets.add_transcript_note(session, transcript, self.settings)
            return job.status.value

    async def _failed(self, delivery: Delivery, failure: Failure) -> None:
        assert delivery.job_id is not None
        decision = decide_failure(self.policy, delivery.deliveries, failure)
        if decision.action is Action.wait_model:
            await self._requeue(delivery, decision.reason, status=decision.status)
            await self._model_unusable(decision.status or "no model", decision.reason)
            self._next_model_try = time.monotonic() + self.stt.model_poll_s
            return
        status = SttJobStatus.dead if decision.action is Action.dead else SttJobStatus.retrying
        changed = await asyncio.to_thread(
            _mark, self.db, delivery.job_id, status, decision.reason, delivery.deliveries
        )
        if not changed:  # another worker finished the job meanwhile: this entry is spent
            await self._finish(delivery)
            return
        if decision.action is Action.dead:
            self.jobs_dead += 1
            await self._finish(delivery)
            logger.warning(
                "stt job dead",
                extra={"job": delivery.job_id, "attempt": delivery.deliveries,
                       "reason": decision.reason},
            )  # fmt: skip
            return
        try:
            await self.queue.park(self.consumer, delivery.entry_id)
        except (RedisError, OSError) as exc:  # left idle: taken over after claim_idle_s
            logger.warning("stt job not parked", extra={"job": delivery.job_id, "error": str(exc)})
        logger.info(
            "stt job failed, will be tried again",
            extra={"job": delivery.job_id, "attempt": delivery.deliveries,
                   "retry_in_s": decision.delay_s, "reason": decision.reason},
        )  # fmt: skip

    async def _finish(self, delivery: Delivery) -> None:
        try:
            await self.queue.finish(delivery.entry_id)
        except (RedisError, OSError) as exc:  # redelivered later, found finished, acknowledged
            logger.warning(
                "stt entry not acknowledged", extra={"entry": delivery.entry_id, "error": str(exc)}
            )

    async def _requeue(self, delivery: Delivery, reason: str, *, status: str | None = None) -> None:
        """Back to the queue as a new entry, so this delivery is not counted as an attempt."""
        if delivery.job_id is None:  # nothing to send back: just drop the entry
            await self._finish(delivery)
            return
        job_status = _job_status(status, SttJobStatus.queued)
        row = await asyncio.to_thread(_requeue_row, self.db, delivery.job_id, job_status, reason)
        if row is not None:
            entry = await self.queue.add(delivery.job_id, row)
            if not await asyncio.to_thread(
                stt_queue.set_stream_id, self.db, delivery.job_id, delivery.entry_id, entry
            ):
                await self.queue.delete(entry)
        await self._finish(delivery)
        logger.info(
            "stt job sent back to the queue",
            extra={"job": delivery.job_id, "status": job_status.value, "reason": reason},
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _job_status(text: str | None, default: SttJobStatus) -> SttJobStatus:
    """The job status named by an engine error's status text (``no model`` ...)."""
    try:
        return SttJobStatus(text) if text is not None else default
    except ValueError:
        return default


class _SourceProblem(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure

    @classmethod
    def permanent(cls, reason: str) -> _SourceProblem:
        return cls(Failure(FailureKind.permanent, reason))


def _mark(engine: Engine, job_id: int, status: SttJobStatus, reason: str, attempts: int) -> int:
    """Record a failed attempt (unless another worker finished the job meanwhile)."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(SttJob)
            .where(SttJob.id == job_id, SttJob.status.not_in(FINAL_STATUSES))
            .values(status=status, last_error=reason, attempts=attempts, updated_at=utcnow())
        )
        return cast(CursorResult[Any], result).rowcount


def _requeue_row(engine: Engine, job_id: int, status: SttJobStatus, reason: str) -> str | None:
    """Show an unfinished job as waiting again; its source key, or None if finished."""
    with Session(engine) as session, session.begin():
        job = session.get(SttJob, job_id)
        if job is None or job.status in FINAL_STATUSES:
            return None
        job.status = status
        job.last_error = reason
        job.updated_at = utcnow()
        return job.source_key


# --- one process ------------------------------------------------------------------------------
def redis_client(settings: Settings) -> aioredis.Redis:
    # socket_timeout above the XREADGROUP block; one immediate retry for a stale pooled
    # connection, then the worker's own backoff loop takes over.
    return aioredis.Redis.from_url(
        settings.redis.url,
        **settings.redis_auth(),
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 1),
    )


async def run_worker(settings: Settings) -> None:
    """``ivr stt-worker --single``: one worker in this process until SIGTERM/SIGINT."""
    client = redis_client(settings)
    engine = settings_engine(settings)
    require_head(engine)  # refuses a database not at this code's revision, naming the fix
    worker = SttWorker(settings, client, engine)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop.set)
    try:
        await worker.run()
    finally:
        await client.aclose()
        engine.dispose()


# --- N processes ------------------------------------------------------------------------------
PR_SET_PDEATHSIG: Final = 1
RESTART_MAX_S: Final = 30.0
QUICK_EXIT_S: Final = 10.0  # a child that dies sooner than this is restarted with a backoff


def _die_with_parent(parent: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the pool died before prctl took effect
            os._exit(1)

    return setup


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0


class WorkerPool:
    """``ivr stt-worker --concurrency N``: N worker processes, each restarted if it dies."""

    def __init__(
        self, settings: Settings, concurrency: int, command: list[str] | None = None
    ) -> None:
        if concurrency < 1:
            raise InvalidInput(f"--concurrency must be at least 1, not {concurrency}")
        self.settings = settings
        self.slots = [_Slot(i) for i in range(concurrency)]
        self.command = command or [sys.executable, "-m", "ivr", "stt-worker", "--single"]
        self._stopping = False

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _start(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(os.getpid())
        )
        slot.started = time.monotonic()
        logger.info("stt worker process started", extra={"slot": slot.index,
                                                        "pid": slot.process.pid})  # fmt: skip

    def _check(self, slot: _Slot, now: float) -> None:
        process = slot.process
        if process is None:
            if now >= slot.restart_at:
                self._start(slot)
            return
        code = process.poll()
        if code is None:
            return
        lived = now - slot.started
        slot.quick_exits = slot.quick_exits + 1 if lived < QUICK_EXIT_S else 0
        delay = min(RESTART_MAX_S, 0.5 * 2**slot.quick_exits) if slot.quick_exits else 0.0
        slot.process = None
        slot.restart_at = now + delay
        logger.warning(
            "stt worker process exited; restarting it",
            extra={"slot": slot.index, "pid": process.pid, "exit_code": code,
                   "lived_s": round(lived, 1), "restart_in_s": delay},
        )  # fmt: skip

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        logger.info("stt worker pool started", extra={"concurrency": len(self.slots)})
        try:
            while not self._stopping:
                now = time.monotonic()
                for slot in self.slots:
                    self._check(slot, now)
                time.sleep(0.2)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("stt worker pool stopped")
        return 0

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stt.drain_s + ABANDON_WAIT_S + 5.0
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("stt worker process ignored SIGTERM; killing it",
                               extra={"pid": process.pid})  # fmt: skip
                process.kill()
                process.wait()

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None]
