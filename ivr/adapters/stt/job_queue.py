"""The speech-to-text job queue: SQL rows are the record, a Redis stream carries them.

Record and carrier
    One :class:`~ivr.adapters.sql.db.SttJob` row per recording or voice message (``source_key``
    unique) is the system of record: status, attempts, the last error. The stream
    ``stt.stream`` carries job ids to the workers through the consumer group ``stt.group``;
    it holds only unfinished jobs (a finished entry is acknowledged and deleted at once).

Life of an entry (Redis Streams commands only; the decisions are :mod:`ivr.core.stt_jobs`)::

    send_pending    XADD                            row.stream_id = the entry id
    a worker        XREADGROUP ... >                delivery 1 (the entry is now pending)
      running       XCLAIM ... JUSTID to itself     every stt.heartbeat_s: idle time back to 0
      finished      XACK + XDEL (MULTI)             after the row is done/silent/dead
      failed        XCLAIM ... JUSTID to "(retry)"  parked; its idle time counts the backoff
    another worker  XPENDING IDLE + XCLAIM          a "(retry)" entry idle >= its backoff, or
                                                    any other idle >= stt.claim_idle_s (its
                                                    worker was killed): delivery n + 1
    no model, or    XADD anew, XACK + XDEL old      back to the queue, the attempt uncounted
    SIGTERM

The delivery count of the pending entry is the attempt number. XCLAIM's own min-idle check
makes a takeover atomic: a heartbeat or another worker in between makes it fail.

Nothing is lost
    :func:`send_pending` sends rows with no ``stream_id`` (created while Redis was away, or by
    a process that does not talk to Redis: the workers call it every ``stt.sweep_s``).
    :func:`resend_lost` sends again unfinished rows whose entry Redis no longer has (flushed,
    or restarted without its data) or holds orphaned (delivered, not pending: a consumer
    deleted under it). Both XADD first, then set ``stream_id`` only if it is still what was
    read; whoever loses that race deletes its entry. A duplicate delivered meanwhile is
    harmless: the worker reads the row first, and results are idempotent.

The Redis client must decode responses (``decode_responses=True``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, SttJob, SttJobStatus, VoiceMessage, utcnow
from ivr.core.stt_jobs import RetryPolicy, is_due, takeover_idle_s
from ivr.errors import HotlineError
from ivr.settings import SttSettings

logger = logging.getLogger(__name__)

#: The pseudo-consumer that owns entries waiting for their retry (no worker reads as it).
RETRY_CONSUMER: Final = "(retry)"
FINAL_STATUSES: Final = frozenset({SttJobStatus.done, SttJobStatus.silent, SttJobStatus.dead})
#: Statuses of a job waiting for a worker (rewritten while no worker has a usable model).
WAITING_STATUSES: Final = (SttJobStatus.queued, SttJobStatus.no_model, SttJobStatus.model_error)
SCAN: Final = 100  # pending entries looked at per XPENDING call
SEND_BATCH: Final = 500  # rows sent (or checked) per SQL read
#: A consumer with nothing pending and idle this long is a worker that has gone: forgotten.
CONSUMER_FORGET_S: Final = 3600.0

# Move a pending entry to ARGV[4] (XCLAIM JUSTID: no delivery counted, idle time reset),
# only while ARGV[2] owns it. 1 moved, 0 not pending any more, -1 another consumer owns it.
_MOVE_IF_OWNER: Final = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 then return 0 end
if p[1][2] ~= ARGV[2] then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[3], 'JUSTID')
return 1
"""


# --- errors -----------------------------------------------------------------------------------
class SttJobNotFound(HotlineError):
    """No speech-to-text job has this id."""

    slug = "stt-job-not-found"
    status = 404


class SttJobNotDead(HotlineError):
    """Only a dead job can be sent again by hand; the others are on their way."""

    slug = "stt-job-not-dead"
    status = 409


class InvalidJobQuery(HotlineError):
    """An unknown status or a bad limit in a job listing."""

    slug = "invalid-job-query"
    status = 422


def parse_status(value: str) -> SttJobStatus:
    try:
        return SttJobStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in SttJobStatus)
        raise InvalidJobQuery(f"unknown job status {value!r}; statuses: {known}") from None


# --- SQL: the record ---------------------------------------------------------------------------
def source_key(
    *, recording: Recording | None = None, voice_message: VoiceMessage | None = None
) -> str:
    if (recording is None) == (voice_message is None):
        raise ValueError("a job is for exactly one recording or one voice message")
    if recording is not None:
        return f"recording:{recording.id}"
    assert voice_message is not None
    return f"voice_message:{voice_message.id}"


def create_job(
    session: Session,
    *,
    recording: Recording | None = None,
    voice_message: VoiceMessage | None = None,
) -> SttJob:
    """The job for one recording or voice message, in the caller's transaction (not sent:
    :func:`send_pending` does that after the commit). Idempotent by source: a second call
    returns the existing row."""
    source = recording if recording is not None else voice_message
    if source is not None and source.id is None:
        session.flush()  # the source row needs its id for the key
    key = source_key(recording=recording, voice_message=voice_message)
    existing = session.scalar(select(SttJob).where(SttJob.source_key == key))
    if existing is not None:
        return existing
    job = SttJob(
        source_key=key,
        recording_id=recording.id if recording is not None else None,
        voice_message_id=voice_message.id if voice_message is not None else None,
        status=SttJobStatus.queued,
    )
    session.add(job)
    session.flush()
    return job


def _unsent(engine: Engine, limit: int) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(SttJob.id, SttJob.source_key)
            .where(SttJob.stream_id.is_(None), SttJob.status.not_in(FINAL_STATUSES))
            .order_by(SttJob.id)
            .limit(limit)
        )
        return [(job_id, key) for job_id, key in rows]


def _unfinished_sent(engine: Engine, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(SttJob.id, SttJob.source_key, SttJob.stream_id)
            .where(
                SttJob.id > after_id,
                SttJob.stream_id.is_not(None),
                SttJob.status.not_in(FINAL_STATUSES),
            )
            .order_by(SttJob.id)
            .limit(limit)
        )
        return [(job_id, key, str(entry)) for job_id, key, entry in rows]


def count_unfinished_sent(engine: Engine) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(SttJob)
                .where(SttJob.stream_id.is_not(None), SttJob.status.not_in(FINAL_STATUSES))
            )
            or 0
        )


def set_stream_id(engine: Engine, job_id: int, expected: str | None, entry_id: str) -> bool:
    """Record the job's new entry if its ``stream_id`` is still ``expected`` and it is not
    finished; False: someone else sent it meanwhile (or it finished)."""
    with Session(engine) as session, session.begin():
        current = SttJob.stream_id.is_(None) if expected is None else SttJob.stream_id == expected
        result = session.execute(
            update(SttJob)
            .where(SttJob.id == job_id, current, SttJob.status.not_in(FINAL_STATUSES))
            .values(stream_id=entry_id, updated_at=utcnow())
        )
        return cast(CursorResult[Any], result).rowcount == 1


def set_waiting_status(engine: Engine, status: SttJobStatus, reason: str | None) -> int:
    """Show every waiting job as ``status`` (queued, no model, model error): the workers
    call it when the model goes or comes back. Returns the rows changed."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(SttJob)
            .where(SttJob.status.in_(WAITING_STATUSES), SttJob.status != status)
            .values(status=status, last_error=reason, updated_at=utcnow())
        )
        return cast(CursorResult[Any], result).rowcount


def list_jobs(
    session: Session, *, status: SttJobStatus | None = None, limit: int = 100
) -> list[SttJob]:
    """Jobs, most recently changed first; ``status=dead`` is the dead-letter list."""
    query = select(SttJob).order_by(SttJob.updated_at.desc(), SttJob.id.desc()).limit(limit)
    if status is not None:
        query = query.where(SttJob.status == status)
    return list(session.scalars(query))


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(SttJob.status, func.count()).group_by(SttJob.status))
    counts = {s.value: 0 for s in SttJobStatus}
    counts.update({SttJobStatus(status).value: int(n) for status, n in rows})
    return counts


def retry_dead(session: Session, job_id: int) -> SttJob:
    """Put a dead job back in line (status queued, attempts from 0, not yet sent); the
    caller commits, then calls :func:`send_pending` (or leaves it to the workers' sweep)."""
    job = session.get(SttJob, job_id)
    if job is None:
        raise SttJobNotFound(f"no speech-to-text job {job_id}", job_id=job_id)
    if job.status is not SttJobStatus.dead:
        raise SttJobNotDead(
            f"job {job_id} is {job.status.value}, not dead: only dead jobs are retried by hand",
            job_id=job_id,
            status=job.status.value,
        )
    job.status = SttJobStatus.queued
    job.attempts = 0
    job.last_error = None
    job.stream_id = None
    job.updated_at = utcnow()
    return job


def job_json(job: SttJob) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": job.id,
        "source_key": job.source_key,
        "recording_id": job.recording_id,
        "voice_message_id": job.voice_message_id,
        "status": job.status.value,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "stream_id": job.stream_id,
        "transcript_id": job.transcript_id,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


# --- Redis: the carrier ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry handed to this worker: its job, and how often it has been delivered."""

    entry_id: str
    job_id: int | None  # None: an entry without a usable job id (dropped on sight)
    deliveries: int  # the attempt number


def policy_of(stt: SttSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=stt.max_attempts,
        backoff_initial_s=stt.backoff_initial_s,
        backoff_max_s=stt.backoff_max_s,
        claim_idle_s=stt.claim_idle_s,
    )


def _job_id(fields: Any) -> int | None:
    try:
        return int((fields or {}).get("job", ""))
    except ValueError:
        return None


class JobQueue:
    """The stream and its consumer group, for one Redis client (``decode_responses=True``)."""

    def __init__(self, client: aioredis.Redis, stream: str, group: str) -> None:
        self.redis = client
        self.stream = stream
        self.group = group
        self._move = client.register_script(_MOVE_IF_OWNER)

    @classmethod
    def from_settings(cls, client: aioredis.Redis, stt: SttSettings) -> JobQueue:
        return cls(client, stt.stream, stt.group)

    async def ensure_group(self) -> bool:
        """Create the stream and group if missing (from the start: every entry is a job
        not finished). True if it was created (a new or flushed Redis)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        logger.info("stt consumer group created", extra={"stream": self.stream})
        return True

    async def add(self, job_id: int, key: str) -> str:
        entry = await self.redis.xadd(self.stream, {"job": str(job_id), "source": key})
        return str(entry)

    async def delete(self, entry_id: str) -> None:
        await self.redis.xdel(self.stream, entry_id)

    async def read(self, consumer: str, block_ms: int) -> Delivery | None:
        """The next never-delivered entry (XREADGROUP >), waiting up to ``block_ms``."""
        reply: Any = await self.redis.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=1, block=block_ms
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return Delivery(str(entry_id), _job_id(fields), 1)
        return None

    async def claim_due(self, consumer: str, policy: RetryPolicy) -> Delivery | None:
        """Take over one pending entry that is due: waiting for its retry and past its
        backoff, or left by a worker that stopped heart-beating ``claim_idle_s`` ago."""
        min_idle_ms = int(1000 * min(policy.claim_idle_s, policy.backoff_initial_s))
        start = "-"
        while True:
            rows = await self.redis.xpending_range(
                self.stream, self.group, start, "+", SCAN, idle=min_idle_ms
            )
            for row in rows:
                waiting = row["consumer"] == RETRY_CONSUMER
                deliveries = int(row["times_delivered"])
                idle_s = int(row["time_since_delivered"]) / 1000
                if not is_due(policy, waiting_retry=waiting, deliveries=deliveries, idle_s=idle_s):
                    continue
                needed = takeover_idle_s(policy, waiting_retry=waiting, deliveries=deliveries)
                entry_id = str(row["message_id"])
                claimed: Any = await self.redis.xclaim(
                    self.stream, self.group, consumer, int(needed * 1000), [entry_id]
                )
                for got_id, fields in claimed:
                    # A worker stopped mid-job is logged by whoever takes its job over.
                    if not waiting:
                        logger.warning(
                            "stt job taken over from a silent worker",
                            extra={"entry": entry_id, "from": row["consumer"],
                                   "idle_s": round(idle_s, 1), "delivery": deliveries + 1},
                        )  # fmt: skip
                    return Delivery(str(got_id), _job_id(fields), deliveries + 1)
            if len(rows) < SCAN:
                return None
            start = "(" + str(rows[-1]["message_id"])

    async def heartbeat(self, consumer: str, entry_id: str) -> int:
        """Reset the idle time of an entry this consumer runs: 1 done, 0 no longer pending,
        -1 another consumer owns it now."""
        return int(
            await self._move(keys=[self.stream], args=[self.group, consumer, entry_id, consumer])
        )

    async def park(self, consumer: str, entry_id: str) -> int:
        """Hand a failed entry to the retry pseudo-consumer; its idle time is the backoff
        clock. Same return values as :meth:`heartbeat`."""
        return int(
            await self._move(
                keys=[self.stream], args=[self.group, consumer, entry_id, RETRY_CONSUMER]
            )
        )

    async def finish(self, entry_id: str) -> None:
        """Acknowledge and delete: the stream keeps only unfinished jobs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def length(self) -> int:
        return int(await self.redis.xlen(self.stream))

    async def lost(self, entry_ids: Sequence[str]) -> set[str]:
        """Which of these entries no longer carry their job: gone from the stream, or
        delivered (at or before the group's last delivered id) but not pending."""
        if not entry_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xrange(self.stream, entry_id, entry_id, count=1)
            present = await pipe.execute()
        gone = {e for e, found in zip(entry_ids, present, strict=True) if not found}
        if len(gone) == len(entry_ids):
            return gone  # (the stream itself may be gone: nothing to ask the group)
        groups = await self.redis.xinfo_groups(self.stream)
        last = next((str(g["last-delivered-id"]) for g in groups if g["name"] == self.group), "0-0")
        delivered = [e for e in entry_ids if e not in gone and _id_le(e, last)]
        if delivered:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry_id in delivered:
                    pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
                pending = await pipe.execute()
            gone |= {e for e, rows in zip(delivered, pending, strict=True) if not rows}
        return gone

    async def forget_gone_consumers(self, keep: Iterable[str]) -> list[str]:
        """Delete consumers with nothing pending, idle for ``CONSUMER_FORGET_S`` (workers
        that stopped; each process reads under a new name)."""
        kept = {RETRY_CONSUMER, *keep}
        removed = []
        for info in await self.redis.xinfo_consumers(self.stream, self.group):
            name = str(info["name"])
            if name in kept or int(info["pending"]) or int(info["idle"]) < CONSUMER_FORGET_S * 1000:
                continue
            await self.redis.xgroup_delconsumer(self.stream, self.group, name)
            removed.append(name)
        return removed


def _id_le(a: str, b: str) -> bool:
    """Stream id ``a`` <= ``b`` (``ms-seq``)."""
    a_ms, _, a_seq = a.partition("-")
    b_ms, _, b_seq = b.partition("-")
    return (int(a_ms), int(a_seq or 0)) <= (int(b_ms), int(b_seq or 0))


# --- send and re-send --------------------------------------------------------------------------
async def _send(
    queue: JobQueue, engine: Engine, job_id: int, key: str, expected: str | None
) -> bool:
    entry = await queue.add(job_id, key)
    if await asyncio.to_thread(set_stream_id, engine, job_id, expected, entry):
        return True
    await queue.delete(entry)  # someone else sent it first, or it finished meanwhile
    return False


async def send_pending(client: aioredis.Redis, engine: Engine, stt: SttSettings) -> int:
    """Send every unfinished job that has no entry yet (``stream_id`` None); returns how
    many this call sent. Raises redis errors: the rows stay unsent for the next call."""
    queue = JobQueue.from_settings(client, stt)
    sent = 0
    while True:
        rows = await asyncio.to_thread(_unsent, engine, SEND_BATCH)
        for job_id, key in rows:
            sent += await _send(queue, engine, job_id, key, None)
        if len(rows) < SEND_BATCH:
            break
    if sent:
        logger.info("stt jobs sent", extra={"jobs": sent, "stream": stt.stream})
    return sent


async def resend_lost(client: aioredis.Redis, engine: Engine, stt: SttSettings) -> int:
    """Send again every unfinished job whose entry Redis lost (see the module docstring);
    returns how many. The old entry, if any, is deleted."""
    queue = JobQueue.from_settings(client, stt)
    resent = 0
    after = 0
    while True:
        rows = await asyncio.to_thread(_unfinished_sent, engine, after, SEND_BATCH)
        lost = await queue.lost([entry for _, _, entry in rows])
        for job_id, key, entry in rows:
            if entry in lost:
                if await _send(queue, engine, job_id, key, entry):
                    resent += 1
                    await queue.delete(entry)
        if len(rows) < SEND_BATCH:
            break
        after = rows[-1][0]
    if resent:
        logger.warning(
            "stt jobs sent again: Redis had lost their entries",
            extra={"jobs": resent, "stream": stt.stream},
        )
    return resent
