"""The answer-rate metrics in Redis: the reducer's effects in, the summary document out.

Write side. :meth:`MetricsStore.submit` turns one AMI event and the effects the reducer drew
from it (:mod:`ivr.core.metrics`) into a *batch*: a small JSON plan of Redis operations with
a sequence number. The flusher (:meth:`run`, or :meth:`flush`) sends batches in order, each
as ONE call of a Lua script, so a batch is applied whole or not at all: the event goes into
the stream ``ivr:ami:events`` together with its effects. The event is stored redacted
(:func:`ivr.adapters.metrics.event_sink.redacted`: no caller's number, keyed digit or account number
in clear), and the stream is bounded twice: about ``events_maxlen`` entries (``XADD MAXLEN
~``), and none older than ``events_max_age_s`` (``XTRIM MINID``, by Redis's clock, which
also dates the entries).

Idempotence, at two levels:

- per batch: the script keeps, per writer (one per process), the last sequence number
  applied, and skips a batch whose number is not above it (a retry after a lost reply, or
  redis-py's own retry). Each batch also names the batch before it: if Redis holds less
  than that (it lost writes: a crash between two fsyncs), the script refuses, and the store
  sends again the batches it still holds (acknowledged in the last ``resend_window_s``)
  before going on; what it no longer holds is counted as lost.
- per call: a call is counted only if ``ZADD NX`` adds its Linkedid to ``ivr:metrics:counted``
  (kept ``Retention.counted_s``, trimmed by closed_at), so whatever path brings a call back
  (a resync, queue_log, a replayed stream) it is never counted twice. A second outcome for a
  counted call only adds to the ``duplicate_outcome`` anomaly.

Buckets: a call counts in the hour, day and month of its **first queue entry** (``entered_at``,
when it started to wait: the hour that owes it an answer), or of its last hang-up for calls
that never queued (``ivr_only``, ``unknown``), in local time of ``tz``. Each bucket has a
hash for the total and one per queue first entered (see :mod:`ivr.redis_keys`); besides the
five classes they count ``unknown`` (``CallUnknown``), which the summary document leaves out.

Redis unreachable (ConnectionError, TimeoutError, LOADING, READONLY, OOM ...): batches wait in
memory, in order, up to ``buffer_max``; beyond it the NEW batches are dropped (the earlier
ones, already waiting, keep the older counts complete) and what they held is counted in
``ivr:metrics:dropped`` once Redis is back. After an outage ``on_recovered`` is called so the
listener can replace the live state (waiting calls, agents) with its own.

Read side: :meth:`summary` reads one bucket and the live keys in one Lua call (a consistent
snapshot) and returns exactly :func:`ivr.core.metrics.metrics_document`'s JSON. Every applied
batch that changed something publishes on ``ivr:metrics:changed`` (for the web's SSE).

Agent states (:mod:`ivr.core.agent_states`): each batch may carry the views of the agents
that changed, written to ``ivr:live:agent_states`` (工号 -> JSON) with their caller masked;
a live reset replaces them all. :meth:`summary` adds them as ``agents``, each as it stands at
``now`` (:func:`ivr.core.agent_states.agent_document`).

Caller numbers are stored unmasked in the live keys while a call waits (supervisors need
them; the web masks by role), masked in the event stream and the agent states, and never
logged. A batch may also carry what its event tells about its call for the agents' screen
pop (the ``IVR_*`` variables and the caller's number, unmasked, in ``ivr:live:call:{linkedid}``,
deleted with the ``Hangup`` of the call's first channel, at most ``redis_keys.CALL_FACTS_TTL_S``
after its last write): written with the event, so it is there before any later event of the
call (an ``AgentCalled``) is in the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from ivr import redis_keys
from ivr.adapters.metrics.event_sink import redacted
from ivr.core.agent_states import AgentView, agent_document
from ivr.core.metrics import (
    AgentRemoved,
    AgentState,
    AgentStateChanged,
    AnomalySeen,
    CallClassified,
    CallUnknown,
    Counters,
    Effect,
    LiveView,
    MetricsConfig,
    Summary,
    WaitingCall,
    WaitingEnded,
    WaitingStarted,
    assemble_live_view,
    metrics_document,
)
from ivr.errors import HotlineError
from ivr.logging_setup import mask_number
from ivr.settings import MetricsSettings

logger = logging.getLogger(__name__)

DAY_S: Final = 86_400
#: ``period`` of the API and the CLI -> the bucket kind in Redis.
PERIODS: Final = {"hour": "hour", "today": "day", "month": "month"}
UNKNOWN_FIELD: Final = "unknown"  # counters field of CallUnknown
DUPLICATE_OUTCOME: Final = "duplicate_outcome"  # anomaly: a second outcome for a counted call
#: Redis error replies that mean "not now" rather than "never": the batch is kept.
TRANSIENT_REPLIES: Final = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN")
DROP_WARNING_INTERVAL_S: Final = 10.0

_US: Final = 1_000_000
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)

_APPLY_BATCH: Final = """
-- KEYS: 1 writer seq, 2 events stream, 3 counted, 4 live waiting, 5 live calls,
--       6 live agents, 7 anomalies, 8 dropped, 9 resync, 10 live agent states
-- ARGV: 1 seq, 2 seq of the batch before, 3 plan (JSON), 4 stream maxlen,
--       5 writer ttl (s), 6 change channel, 7 stream max age (ms)
local seq = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= stored then return {0, stored} end
if stored < tonumber(ARGV[2]) then return {-1, stored} end
local plan = cjson.decode(ARGV[3])
local hashes = {dropped = KEYS[8], resync = KEYS[9]}
local changed = 0
if plan.event then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(plan.event))
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ARGV[7]
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', oldest))
end
for _, op in ipairs(plan.ops) do
  local k = op.k
  if k == 'count' then
    if redis.call('ZADD', KEYS[3], 'NX', op.at, op.id) == 1 then
      for _, key in ipairs(op.keys) do
        redis.call('HINCRBY', key[1], op.f, 1)
        redis.call('EXPIRE', key[1], key[2])
      end
      for _, ix in ipairs(op.index) do
        redis.call('SADD', ix[1], ix[2])
        redis.call('EXPIRE', ix[1], ix[3])
      end
      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. op.horizon)
    else
      redis.call('HINCRBY', KEYS[7], 'duplicate_outcome', 1)
    end
  elseif k == 'wait' then
    redis.call('ZADD', KEYS[4], op.since, op.id)
    redis.call('HSET', KEYS[5], op.id, op.info)
  elseif k == 'unwait' then
    redis.call('ZREM', KEYS[4], op.id)
    redis.call('HDEL', KEYS[5], op.id)
  elseif k == 'agent' then
    redis.call('HSET', KEYS[6], op.f, op.info)
  elseif k == 'unagent' then
    redis.call('HDEL', KEYS[6], op.f)
  elseif k == 'astate' then
    redis.call('HSET', KEYS[10], op.f, op.info)
  elseif k == 'anomaly' then
    redis.call('HINCRBY', KEYS[7], op.kind, 1)
    redis.call('HINCRBY', op.day[1], op.kind, 1)
    redis.call('EXPIRE', op.day[1], op.day[2])
  elseif k == 'reset' then
    redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[10])
  elseif k == 'incr' then
    redis.call('HINCRBY', hashes[op.h], op.f, op.n)
  elseif k == 'facts' then
    redis.call('HSET', op.key, unpack(op.f))
    redis.call('EXPIRE', op.key, op.ttl)
  elseif k == 'unfacts' then
    redis.call('DEL', op.key)
  end
  if k ~= 'facts' and k ~= 'unfacts' then changed = changed + 1 end
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[5])
if changed > 0 then redis.call('PUBLISH', ARGV[6], plan.at) end
return {1, seq}
"""

_READ_SUMMARY: Final = """
-- KEYS: 1 total hash, 2 queue index set, 3 live calls, 4 live agents, 5 live agent states
-- ARGV: 1 queue hash prefix. Reads only: run as EVALSHA_RO.
local per_queue = {}
for _, q in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  per_queue[#per_queue + 1] = q
  per_queue[#per_queue + 1] = redis.call('HGETALL', ARGV[1] .. q)
end
return {redis.call('HGETALL', KEYS[1]), per_queue,
        redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]),
        redis.call('HGETALL', KEYS[5])}
"""


class MetricsUnavailable(HotlineError):
    """Redis could not be read for the metrics."""

    slug = "metrics-unavailable"
    status = 503
    public_message = "the live figures cannot be read right now; try again in a moment"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of key lives (seconds, from its last write)."""

    hour_s: int = 35 * DAY_S
    day_s: int = 400 * DAY_S
    month_s: int = 1830 * DAY_S
    counted_s: int = 35 * DAY_S  # Linkedids remembered as counted: replays older are recounted
    writer_s: int = 30 * DAY_S  # a writer's last sequence number


@dataclass(frozen=True, slots=True)
class LiveReset:
    """The whole live state, replacing what Redis holds (after a resync or an outage)."""

    waiting: tuple[WaitingStarted, ...] = ()
    agents: tuple[AgentStateChanged, ...] = ()
    agent_states: tuple[AgentView, ...] = ()  # one per 工号 (ivr.core.agent_states)


@dataclass(slots=True)
class _Batch:
    seq: int
    plan: str  # JSON for the script
    events: int  # 1 when it carries an AMI event for the stream
    calls: int  # call outcomes (CallClassified, CallUnknown)
    anomalies: int
    control: bool = False  # drop reports and live resets: never dropped themselves
    acked_at: float = 0.0  # monotonic time Redis acknowledged it


def reducer_config(settings: MetricsSettings) -> MetricsConfig:
    """The reducer's configuration from the ``metrics`` settings."""
    return MetricsConfig(
        thresholds=dict(settings.thresholds),
        default_threshold_s=settings.default_threshold_s,
        skew_tolerance_s=settings.skew_tolerance_s,
    )


def retention(settings: MetricsSettings) -> Retention:
    return Retention(
        hour_s=settings.hour_retention_days * DAY_S,
        day_s=settings.day_retention_days * DAY_S,
        month_s=settings.month_retention_days * DAY_S,
        counted_s=settings.dedup_retention_days * DAY_S,
    )


def bucket_names(at: float, tz: ZoneInfo) -> dict[str, str]:
    """The hour, day and month buckets of the instant ``at`` in the zone ``tz``.

    >>> bucket_names(1764518399.5, ZoneInfo("Asia/Shanghai"))  # 23:59:59.5 there
    {'hour': '2025-11-30T23+0800', 'day': '2025-11-30', 'month': '2025-11'}
    >>> bucket_names(1764518400.0, ZoneInfo("Asia/Shanghai"))["month"]
    '2025-12'
    """
    local = datetime.fromtimestamp(at, tz)
    return {
        "hour": local.strftime("%Y-%m-%dT%H%z"),
        "day": local.strftime("%Y-%m-%d"),
        "month": local.strftime("%Y-%m"),
    }


def agent_field(queue: str, interface: str) -> str:
    """The ``ivr:live:agents`` field of one queue member."""
    return json.dumps([queue, interface], ensure_ascii=False)


class MetricsStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        config: MetricsConfig,
        tz: ZoneInfo,
        events_maxlen: int = 100_000,
        events_max_age_s: float = 86_400.0,
        buffer_max: int = 100_000,
        retention: Retention | None = None,
        retry_interval_s: float = 0.5,
        chunk: int = 200,
        resend_window_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.config = config
        self.tz = tz
        self.retention = retention or Retention()
        self.on_recovered: Callable[[], None] | None = None  # set by the listener
        self._events_maxlen = events_maxlen
        self._events_max_age_ms = max(1, int(events_max_age_s * 1000))
        self._buffer_max = buffer_max
        self._retry_interval_s = retry_interval_s
        self._chunk = chunk
        self._resend_window_s = resend_window_s
        self._clock = clock
        self._writer_id = secrets.token_hex(8)
        self._seqs = itertools.count(1)
        self._server_seq = 0  # the last of our batches Redis holds, as far as we know
        self._pending: deque[_Batch] = deque()
        self._acked: deque[_Batch] = deque()  # recently acknowledged, to resend if Redis lost them
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._down_since: float | None = None
        self._stale_live = False  # something live was lost: replace the live state once back
        self._unreported: dict[str, int] = {}
        self._last_drop_warning = float("-inf")
        self._apply_script = client.register_script(_APPLY_BATCH)
        # Sent as EVALSHA in a plain pipeline: redis-py's script pipelines ask SCRIPT EXISTS
        # first (a second round trip per flush). Loaded before the first send and again
        # after Redis answers NOSCRIPT (it restarted and lost its script cache).
        self._apply_loaded = False
        self._read_script = client.register_script(_READ_SUMMARY)
        self._ttl = {"hour": self.retention.hour_s, "day": self.retention.day_s}
        self._ttl["month"] = self.retention.month_s
        self.counters: dict[str, int] = {
            "batches_applied": 0,  # batches Redis applied
            "batches_repeated": 0,  # batches Redis had already applied (retries)
            "stored": 0,  # AMI events written to the stream
            "dropped_batches": 0,  # batches dropped: buffer full, or refused by Redis
            "lost_in_redis": 0,  # acknowledged batches Redis lost and we no longer held
            "resent": 0,  # acknowledged batches sent again after Redis lost them
            "redis_errors": 0,  # failed flushes
        }

    @classmethod
    def from_settings(
        cls,
        client: aioredis.Redis,
        settings: MetricsSettings,
        events_maxlen: int,
        events_max_age_s: float = 86_400.0,
    ) -> MetricsStore:
        return cls(
            client,
            config=reducer_config(settings),
            tz=ZoneInfo(settings.timezone),
            events_maxlen=events_maxlen,
            events_max_age_s=events_max_age_s,
            buffer_max=settings.buffer_max,
            retention=retention(settings),
        )

    # --- state ---------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Batches waiting for Redis."""
        return len(self._pending)

    @property
    def redis_down(self) -> bool:
        return self._down_since is not None

    def stats(self) -> dict[str, int]:
        """Counters for the heartbeat: what was applied, buffered, dropped."""
        return self.counters | {"buffered": self.pending, "redis_down": int(self.redis_down)}

    # --- buckets -------------------------------------------------------------------------
    def buckets(self, at: float) -> dict[str, str]:
        """The hour, day and month buckets (local time) of the instant ``at``."""
        return bucket_names(at, self.tz)

    # --- write side ----------------------------------------------------------------------
    def submit(
        self,
        effects: Sequence[Effect],
        *,
        event: Mapping[str, str] | None = None,
        live: LiveReset | None = None,
        resync: Mapping[str, int] | None = None,
        at: float | None = None,
        agent_states: Sequence[AgentView] = (),
        call_facts: tuple[str, Mapping[str, str]] | None = None,
        call_over: str | None = None,
    ) -> bool:
        """Queue one batch: ``event`` for the stream, its ``effects``, the agents whose state
        changed (``agent_states``), the facts the event tells about its call (``call_facts``:
        Linkedid and fields, unmasked, into the call's hash for the screen pop; ``call_over``:
        the Linkedid of a call that ended, whose hash goes; neither changes anything the
        metrics' readers are told of), and optionally the whole live state (``live``,
        applied after the effects) and resync counters.

        Never blocks and never raises for Redis: returns False when the buffer is full and
        the batch was dropped (counted). ``at``: the batch's time (default: the event's
        ``_received_at``, else now), which dates its anomalies.
        """
        if at is None:
            at = _float((event or {}).get("_received_at"))
        if at is None:
            at = self._clock()
        ops: list[dict[str, Any]] = []
        calls = anomalies = 0
        for effect in effects:
            op = self._op(effect, at)
            if op is None:
                continue
            calls += op["k"] == "count"
            anomalies += op["k"] == "anomaly"
            ops.append(op)
        ops += [_agent_state_op(view) for view in agent_states]
        if call_facts is not None:
            linkedid, facts = call_facts
            ops.append({
                "k": "facts", "key": redis_keys.live_call_facts(linkedid),
                "f": [x for pair in facts.items() for x in pair],
                "ttl": redis_keys.CALL_FACTS_TTL_S,
            })  # fmt: skip
        if call_over is not None:
            ops.append({"k": "unfacts", "key": redis_keys.live_call_facts(call_over)})
        control = live is not None
        if live is not None:
            ops.append({"k": "reset"})
            ops += [self._wait_op(w) for w in live.waiting]
            ops += [self._agent_op(a) for a in live.agents]
            ops += [_agent_state_op(view) for view in live.agent_states]
        for name, count in (resync or {}).items():
            if count:
                ops.append({"k": "incr", "h": "resync", "f": name, "n": count})
        if not ops and event is None:
            return True
        plan: dict[str, Any] = {"at": repr(at), "ops": ops}
        if event is not None:
            plan["event"] = [str(x) for pair in redacted(event).items() for x in pair]
        # ASCII JSON (cjson turns the escapes back into UTF-8): nothing in it can fail to encode
        batch = _Batch(0, json.dumps(plan), int(event is not None), calls, anomalies)
        batch.control = control
        return self._enqueue(batch)

    async def apply(
        self,
        effects: Sequence[Effect],
        *,
        event: Mapping[str, str] | None = None,
        live: LiveReset | None = None,
        at: float | None = None,
    ) -> bool:
        """``submit`` then ``flush``: True when everything submitted so far is in Redis."""
        self.submit(effects, event=event, live=live, at=at)
        return await self.flush()

    async def run(self) -> None:
        """Flush forever: right after each submit, and every ``retry_interval_s`` while
        Redis is unreachable. Cancel it to stop."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(self._retry_interval_s)
                self._wake.set()

    async def flush(self) -> bool:
        """Send every pending batch, in order. False when Redis is unreachable (they wait)."""
        async with self._lock:
            return await self._flush()

    def _enqueue(self, batch: _Batch) -> bool:
        if not batch.control and len(self._pending) >= self._buffer_max:
            self._dropped(batch)
            return False
        batch.seq = next(self._seqs)
        self._pending.append(batch)
        self._wake.set()
        return True

    def _dropped(self, batch: _Batch) -> None:
        self.counters["dropped_batches"] += 1
        self._stale_live = True
        for name, count in (
            ("batches", 1),
            ("events", batch.events),
            ("calls", batch.calls),
            ("anomalies", batch.anomalies),
        ):
            if count:
                self._unreported[name] = self._unreported.get(name, 0) + count
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            logger.warning(
                "metrics buffer full (%d batches): dropping new ones; %d dropped so far",
                self._buffer_max,
                self.counters["dropped_batches"],
            )

    async def _flush(self) -> bool:
        self._report_drops()
        while self._pending or self._came_back():
            chunk = list(itertools.islice(self._pending, self._chunk))
            try:
                results = await self._send(chunk)
            except _UNREACHABLE as exc:
                self._went_down(exc)
                return False
            except RedisError as exc:  # e.g. a refused connection setup: treat as away
                self._went_down(exc)
                return False
            if not self._take_results(chunk, results):
                return False
        return True

    async def _send(self, chunk: Sequence[_Batch]) -> list[Any]:
        keys = [
            redis_keys.metrics_writer(self._writer_id),
            redis_keys.AMI_EVENTS,
            redis_keys.METRICS_COUNTED,
            redis_keys.LIVE_WAITING,
            redis_keys.LIVE_CALLS,
            redis_keys.LIVE_AGENTS,
            redis_keys.METRICS_ANOMALIES,
            redis_keys.METRICS_DROPPED,
            redis_keys.METRICS_RESYNC,
            redis_keys.LIVE_AGENT_STATES,
        ]
        if not self._apply_loaded:
            await self.redis.script_load(_APPLY_BATCH)
            self._apply_loaded = True
        async with self.redis.pipeline(transaction=False) as pipe:
            prev = self._server_seq
            for batch in chunk:
                args: list[str | int] = [
                    batch.seq,
                    prev,
                    batch.plan,
                    self._events_maxlen,
                    self.retention.writer_s,
                    redis_keys.METRICS_CHANGED,
                    self._events_max_age_ms,
                ]
                pipe.evalsha(self._apply_script.sha, len(keys), *keys, *args)
                prev = batch.seq
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results

    def _take_results(self, chunk: Sequence[_Batch], results: Sequence[Any]) -> bool:
        """Acknowledge the batches Redis applied, up to the first one it did not.

        Each batch names the one before it, so after a failure the rest of the chunk was
        refused too: they stay pending. Returns False when Redis is to be left alone a while.
        """
        for batch, result in zip(chunk, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis restarted: its script cache is empty
                self._apply_loaded = False  # the next send loads it first
                return True
            if isinstance(result, ResponseError):
                if str(result).startswith(TRANSIENT_REPLIES):
                    self._went_down(result)
                    return False
                logger.error("metrics batch %d refused by Redis, dropped: %s", batch.seq, result)
                self._pending.popleft()
                self._dropped(batch)
                return True
            if isinstance(result, Exception):
                self._went_down(result)
                return False
            status, stored = (int(_text(x)) for x in result)
            if status == -1:
                self._resend_lost(stored)
                return True
            self._pending.popleft()
            self._server_seq = batch.seq
            if status == 1:
                self.counters["batches_applied"] += 1
                self.counters["stored"] += batch.events
            else:
                self.counters["batches_repeated"] += 1
            self._remember(batch)
        return True

    def _remember(self, batch: _Batch) -> None:
        batch.acked_at = time.monotonic()
        self._acked.append(batch)
        while self._acked and (
            batch.acked_at - self._acked[0].acked_at > self._resend_window_s
            or len(self._acked) > self._buffer_max
        ):
            self._acked.popleft()

    def _resend_lost(self, stored: int) -> None:
        """Redis holds fewer of our batches than it acknowledged: send them again."""
        again = [b for b in self._acked if b.seq > stored]
        self._acked.clear()
        next_seq = again[0].seq if again else (self._pending[0].seq if self._pending else 0)
        lost = max(0, next_seq - stored - 1)
        if lost:
            self.counters["lost_in_redis"] += lost
            self._unreported["lost_in_redis"] = self._unreported.get("lost_in_redis", 0) + lost
            self._stale_live = True
        self.counters["resent"] += len(again)
        self._pending.extendleft(reversed(again))
        self._server_seq = stored
        logger.warning(
            "Redis lost %d acknowledged metrics batches (restarted without its last writes?); "
            "sending %d again, %d beyond recovery",
            len(again) + lost,
            len(again),
            lost,
        )

    def _report_drops(self) -> None:
        if not self._unreported:
            return
        ops = [{"k": "incr", "h": "dropped", "f": k, "n": n} for k, n in self._unreported.items()]
        self._unreported = {}
        plan = json.dumps({"at": repr(self._clock()), "ops": ops})
        self._enqueue(_Batch(0, plan, 0, 0, 0, control=True))

    def _went_down(self, exc: BaseException) -> None:
        self.counters["redis_errors"] += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "Redis unreachable for the metrics (%s); buffering up to %d batches",
                exc,
                self._buffer_max,
            )

    def _came_back(self) -> bool:
        """Everything is flushed: end an outage; True when that queued more (live reset)."""
        if self._down_since is None and not self._stale_live:
            return False
        if self._down_since is not None:
            logger.info(
                "Redis reachable again after %.1f s; buffered metrics flushed",
                time.monotonic() - self._down_since,
            )
        self._down_since = None
        self._stale_live = False
        if self.on_recovered is not None:
            self.on_recovered()
        return bool(self._pending)

    # --- effects -> operations -----------------------------------------------------------
    def _op(self, effect: Effect, at: float) -> dict[str, Any] | None:
        match effect:
            case CallClassified():
                when = effect.entered_at if effect.entered_at is not None else effect.closed_at
                return self._count_op(
                    effect.linkedid, effect.klass.value, effect.queue, when, effect.closed_at
                )
            case CallUnknown():
                return self._count_op(
                    effect.linkedid, UNKNOWN_FIELD, effect.queue, effect.closed_at, effect.closed_at
                )
            case WaitingStarted():
                return self._wait_op(effect)
            case WaitingEnded():
                return {"k": "unwait", "id": effect.linkedid}
            case AgentStateChanged():
                return self._agent_op(effect)
            case AgentRemoved():
                return {"k": "unagent", "f": agent_field(effect.queue, effect.interface)}
            case AnomalySeen():
                day = self.buckets(at)["day"]
                key = redis_keys.metrics_anomalies_day(day)
                return {"k": "anomaly", "kind": effect.kind.value, "day": [key, self._ttl["day"]]}
        return None

    def _count_op(
        self, linkedid: str, field: str, queue: str, when: float, closed_at: float
    ) -> dict[str, Any]:
        keys: list[list[Any]] = []
        index: list[list[Any]] = []
        for period, bucket in self.buckets(when).items():
            ttl = self._ttl[period]
            keys.append([redis_keys.metrics_counts(period, bucket), ttl])
            if queue:
                keys.append([redis_keys.metrics_counts(period, bucket, queue), ttl])
                index.append([redis_keys.metrics_queues(period, bucket), queue, ttl])
        return {
            "k": "count",
            "id": linkedid,
            "at": repr(closed_at),
            "horizon": repr(closed_at - self.retention.counted_s),
            "f": field,
            "keys": keys,
            "index": index,
        }

    @staticmethod
    def _wait_op(effect: WaitingStarted) -> dict[str, Any]:
        info = {
            "queue": effect.queue,
            "since": effect.since,
            "caller": effect.caller,
            "threshold_s": effect.threshold_s,
        }
        return {
            "k": "wait",
            "id": effect.linkedid,
            "since": repr(effect.since),
            "info": json.dumps(info, ensure_ascii=False),
        }

    @staticmethod
    def _agent_op(effect: AgentStateChanged) -> dict[str, Any]:
        info = {
            "queue": effect.queue,
            "interface": effect.interface,
            "state": effect.state.value,
            "name": effect.name,
        }
        return {
            "k": "agent",
            "f": agent_field(effect.queue, effect.interface),
            "info": json.dumps(info, ensure_ascii=False),
        }

    # --- read side -----------------------------------------------------------------------
    async def summary(self, period: str, now: float) -> dict[str, Any]:
        """The document of ``GET /api/metrics/summary?period=`` (hour, today or month) at
        ``now``: that bucket's counters and the live state. Raises ValueError for another
        period and MetricsUnavailable when Redis cannot be read."""
        kind = PERIODS.get(period)
        if kind is None:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
        bucket = self.buckets(now)[kind]
        keys = [
            redis_keys.metrics_counts(kind, bucket),
            redis_keys.metrics_queues(kind, bucket),
            redis_keys.LIVE_CALLS,
            redis_keys.LIVE_AGENTS,
            redis_keys.LIVE_AGENT_STATES,
        ]
        try:
            reply = await self._read_only(keys, [redis_keys.metrics_queue_prefix(kind, bucket)])
        except (RedisError, OSError) as exc:
            raise MetricsUnavailable(f"metrics not readable from Redis: {exc}") from exc
        total, per_queue, calls, agents, agent_states = reply
        queues: dict[str, Counters] = {}
        for name, counts in _pairs(per_queue):
            counters = Counters.from_mapping(dict(_pairs(counts)))
            if counters != Counters():
                queues[_text(name)] = counters
        summary = Summary(Counters.from_mapping(dict(_pairs(total))), queues)
        live = self.live_view(_pairs(calls), _pairs(agents), now)
        document = metrics_document(summary, live, self.config)
        document["agents"] = self.agent_documents((raw for _, raw in _pairs(agent_states)), now)
        return document

    def agent_documents(self, raws: Iterable[Any], now: float) -> list[dict[str, Any]]:
        """The summary's ``agents``, by 工号: each stored agent state as it stands at ``now``
        (a wrap-up run out is idle; counts of another day are 0). Damaged values are left out."""
        views = (AgentView.from_json(_json(raw)) for raw in raws)
        found = sorted((v for v in views if v is not None), key=lambda v: v.work_number)
        return [agent_document(view, now, self.tz, mask_number) for view in found]

    def live_view(
        self, calls: Iterable[tuple[Any, Any]], agents: Iterable[tuple[Any, Any]], now: float
    ) -> LiveView:
        """The reducer's ``snapshot`` rebuilt from the live hashes (same rules)."""
        config = self.config
        now_us = round(now * _US)
        waiting: dict[str, list[WaitingCall]] = {queue: [] for queue in config.thresholds}
        for linkedid, raw in calls:
            info = _json(raw)
            queue = str(info.get("queue", ""))
            since = _float(info.get("since"))
            threshold = _float(info.get("threshold_s"))
            if since is None or threshold is None:
                continue
            waited = max(0, now_us - round(since * _US)) / _US
            entry = WaitingCall(
                _text(linkedid), queue, queue, since, waited, str(info.get("caller", "")), threshold
            )
            waiting.setdefault(queue, []).append(entry)

        members = []
        for _, raw in agents:
            info = _json(raw)
            try:
                state = AgentState(str(info.get("state")))
            except ValueError:
                continue
            members.append((str(info.get("queue", "")), str(info.get("interface", "")), state))
        return assemble_live_view(config, now, waiting, members)

    async def _read_only(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """The summary script as EVALSHA_RO: a reader whose Redis user may only read these
        keys (the web role's) can run it; loaded again when Redis lost its script cache."""
        sha = self._read_script.sha
        try:
            return await self.redis.evalsha_ro(sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.redis.script_load(_READ_SUMMARY)
            return await self.redis.evalsha_ro(sha, len(keys), *keys, *args)

    async def health(self, now: float) -> dict[str, Any]:
        """Anomalies (all time and today), what was dropped or lost, and the resyncs."""
        day = self.buckets(now)["day"]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(redis_keys.METRICS_ANOMALIES)
                pipe.hgetall(redis_keys.metrics_anomalies_day(day))
                pipe.hgetall(redis_keys.METRICS_DROPPED)
                pipe.hgetall(redis_keys.METRICS_RESYNC)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise MetricsUnavailable(f"metrics not readable from Redis: {exc}") from exc
        names = ("anomalies", "anomalies_today", "dropped", "resync")
        return {name: _int_map(reply) for name, reply in zip(names, replies, strict=True)}


# --- small helpers ------------------------------------------------------------------------
def _agent_state_op(view: AgentView) -> dict[str, Any]:
    """One agent's state into ``ivr:live:agent_states``, its caller masked: Redis keeps no
    agent's caller in clear."""
    info = view.to_json() | {"caller": mask_number(view.caller) if view.caller else ""}
    return {"k": "astate", "f": view.work_number, "info": json.dumps(info, ensure_ascii=False)}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(flat: Any) -> list[tuple[Any, Any]]:
    """``[k1, v1, k2, v2]`` (a Lua HGETALL) or a dict -> ``[(k1, v1), (k2, v2)]``."""
    if isinstance(flat, Mapping):
        return list(flat.items())
    items = list(flat or [])
    return list(zip(items[::2], items[1::2], strict=True))


def _json(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(_text(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    try:
        return float(_text(value)) if value is not None else None
    except ValueError:
        return None


def _int_map(reply: Any) -> dict[str, int]:
    result: dict[str, int] = {}
    for key, value in _pairs(reply):
        text = _text(value)
        result[_text(key)] = int(text) if text.lstrip("-").isdigit() else 0
    return dict(sorted(result.items()))
