"""The live metrics under load: AMI events -> reducer -> Redis -> the supervisors' SSE stream.

0. Record: a bench stack (redis-server, Asterisk, the agi, ami and web roles) takes a wave
   of real SIP calls (sipp) that ends in every class: answered (three queues with simulated
   agents, the menu with key 1, the emergency line), answered late (emergency, 15 s),
   abandoned, timed out, IVR only. The stream ``ivr:ami:events`` then holds every AMI event
   the ami role kept, in order, with the time it received each: that is the recording
   (written to ``test-artifacts/ami_stream.jsonl``). It is tiled into a longer stream:
   copies with new ``Linkedid``/``Uniqueid`` values (and channel names), each shifted
   ``every_s`` later, so that about ``--concurrent`` calls are open at once.
1. Replay throughput (the first ``--replay-events`` of the tiled stream, as ``AmiMessage``s;
   ``--rounds`` rounds in alternating order, the fastest of each path kept), Python pinned
   to one core, a fresh redis-server of our own (AOF everysec, like the stack's) on the
   other: the ami role's path as ``run_ami`` wires it (a bounded queue like the AmiClient's,
   ``MetricsListener.on_event``, ``MetricsStore.run``) until Redis holds everything.
   Baseline, same events: the pure reducer (``ivr.core.metrics.apply``) alone. Between
   them: the listener with the store's batches built but never sent.
2. The same updates unbatched: the store flushed after every event (its Lua script by
   EVALSHA, one round trip per flush); the same changes as plain commands (XADD, HINCRBY,
   EXPIRE, ZADD, HSET ... PUBLISH) in one pipeline per event (one round trip); and those
   commands each awaited. Every Redis run
   ends with its counters checked against the reducer's classes and the stream's length.
3. Event-to-SSE latency, with the stack's web role: a supervisor signs in and holds
   ``GET /api/metrics/stream``; a listener and store in this process (the ami role's code)
   write to the stack's Redis. Latency = time the first SSE document counting a call
   arrives - time the event that classified it reached the listener. Baseline: isolated
   calls (one every 0.4 s, nothing else happening). Under load: the tiled stream paced in
   real time (its first part, up to the steady state, is written at full speed first and
   not measured), ``--sse-seconds`` of it.

    .venv/bin/python benchmarks/metrics.py [--concurrent 200] [--sse-seconds 40]
        [--replay-events 20000] [--rounds 2] [--idle-calls 30]

Not a test: it prints figures. About 4 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import redis
import redis.asyncio as aioredis
from bench_common import REPO, bench_stack, cpu_seconds
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.metrics.event_sink import is_kept
from ivr.adapters.metrics.listener import RESYNC_EVENT, MetricsListener
from ivr.adapters.metrics.store import MetricsStore, agent_field, reducer_config, retention
from ivr.adapters.sql.db import settings_engine
from ivr.adapters.sql.users import create_user
from ivr.core.metrics import (
    AgentRemoved,
    AgentStateChanged,
    AnomalySeen,
    CallClass,
    CallClassified,
    CallUnknown,
    Effect,
    MetricsState,
    WaitingEnded,
    WaitingStarted,
    apply,
)
from ivr.devstack.ports import free_port
from ivr.devstack.sipp import SippResult, run_caller
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.protocols.ami import AmiMessage
from ivr.settings import MetricsSettings, Settings
from ivr.web.routes.metrics import StreamTiming

ARTIFACT = REPO / "test-artifacts" / "ami_stream.jsonl"
CLASSES = tuple(klass.value for klass in CallClass)
ID_FIELDS = ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "Channel", "DestChannel")

BENCH_DIALPLAN = """
[from-pstn](+)
exten = 81001,1,NoOp(bench: straight into repair, simulated agents answer)
same = n,Answer()
same = n,Set(IVR_QUEUE=repair)
same = n,Queue(repair,,,,120)
same = n,Hangup()

exten = 81002,1,NoOp(bench: straight into billing, simulated agents answer)
same = n,Answer()
same = n,Set(IVR_QUEUE=billing)
same = n,Queue(billing,,,,120)
same = n,Hangup()

exten = 81003,1,NoOp(bench: straight into consultation, simulated agents answer)
same = n,Answer()
same = n,Set(IVR_QUEUE=consultation)
same = n,Queue(consultation,,,,120)
same = n,Hangup()

exten = 81004,1,NoOp(bench: into the emptied complaints queue; the caller gives up)
same = n,Answer()
same = n,Set(IVR_QUEUE=complaints)
same = n,Queue(complaints,,,,120)
same = n,Hangup()

exten = 81005,1,NoOp(bench: into the emptied complaints queue, let go after 4 s)
same = n,Answer()
same = n,Set(IVR_QUEUE=complaints)
same = n,Queue(complaints,,,,4)
same = n,Hangup()

exten = 81006,1,NoOp(bench: served without a person)
same = n,Answer()
same = n,Wait(3)
same = n,Hangup()

[bench-agents]
exten = _bXX,1,NoOp(bench agent ${EXTEN})
same = n,Wait(1)
same = n,Answer()
same = n,Wait(2)
same = n,Hangup()
"""
SIM_AGENT = "Local/agent@sim-agents/n"
BENCH_AGENT_QUEUES = ("repair", "billing", "consultation")
BENCH_AGENTS_PER_QUEUE = 5  # besides each queue's simulated agent


@dataclass(frozen=True, slots=True)
class Wave:
    name: str
    did: str
    calls: int
    hold_s: float  # the caller hangs up after the speech (7.2 s) and this, if still there
    digits: str = ""
    digits_after_s: float = 7.2


WAVES = (
    Wave("answered: repair", "81001", 20, 90),
    Wave("answered: billing", "81002", 20, 90),
    Wave("answered: consultation", "81003", 20, 90),
    Wave("abandoned: caller hangs up", "81004", 30, 2),
    Wave("timed out: queue timeout 4 s", "81005", 30, 60),
    Wave("ivr only", "81006", 20, 60),
    Wave("emergency line, one agent", "96777", 8, 90),
    Wave("menu, key 1 -> repair", "95158", 12, 90, "1", 11.0),
)


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # app clock: when the ami role received it (``_received_at``)
    fields: dict[str, str]  # the AMI fields, without ``_received_at``


# --- 0. recording ---------------------------------------------------------------------------
def record(
    stack: Stack, waves: Sequence[Wave]
) -> tuple[list[Event], list[SippResult], dict[str, str]]:
    """Run the waves of calls at once; the stream the ami role kept, its status."""
    inst = asterisk_instance(stack.settings)
    inst.rx(f"queue remove member {SIM_AGENT} from complaints")  # nobody answers there
    n = 0
    for queue in BENCH_AGENT_QUEUES:
        for _ in range(BENCH_AGENTS_PER_QUEUE):
            n += 1
            inst.rx(f"queue add member Local/b{n:02d}@bench-agents/n to {queue}")
    target = f"127.0.0.1:{stack.settings.asterisk.sip_port}"

    def run(wave: Wave) -> SippResult:
        return run_caller(
            stack.settings.asterisk.root,
            inst.base / "sipp" / f"wave-{wave.did}",
            target=target,
            did=wave.did,
            digits=wave.digits,
            digits_after_s=wave.digits_after_s,
            calls=wave.calls,
            concurrency=wave.calls,
            rate_per_s=10,
            hold_s=wave.hold_s,
            timeout_s=180,
        )

    with ThreadPoolExecutor(len(waves)) as pool:
        results = list(pool.map(run, waves))
    settings = stack.settings
    with redis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True
    ) as client:
        deadline = time.monotonic() + 30
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = client.hgetall(redis_keys.AMI_STATUS)
            if status.get("open_calls") == "0" and status.get("buffered") == "0":
                break
            time.sleep(0.5)
        entries = client.xrange(redis_keys.AMI_EVENTS, "-", "+")
    events: list[Event] = []
    for _, fields in entries:
        if fields.get("Event") == RESYNC_EVENT:
            continue
        received = float(fields.pop("_received_at"))
        events.append(Event(received, fields))
    return events, results, status


def write_artifact(events: Iterable[Event]) -> None:
    ARTIFACT.parent.mkdir(exist_ok=True)
    with ARTIFACT.open("w", encoding="utf-8") as out:
        for ev in events:
            out.write(json.dumps({"_received_at": f"{ev.at:.6f}", **ev.fields}, ensure_ascii=False))
            out.write("\n")


# --- tiling ---------------------------------------------------------------------------------
def call_spans(events: Iterable[Event]) -> dict[str, tuple[float, float]]:
    """Linkedid -> (first, last) event time."""
    spans: dict[str, tuple[float, float]] = {}
    for ev in events:
        linkedid = ev.fields.get("Linkedid")
        if linkedid:
            first, _ = spans.get(linkedid, (ev.at, ev.at))
            spans[linkedid] = (first, ev.at)
    return spans


def open_calls(spans: Iterable[tuple[float, float]], start: float, end: float) -> list[int]:
    """Calls open at each 0.5 s from ``start`` to ``end``."""
    edges = sorted(spans)
    samples: list[int] = []
    t = start
    while t <= end:
        samples.append(sum(1 for first, last in edges if first <= t <= last))
        t += 0.5
    return samples


def tile(recorded: Sequence[Event], copies: int, every_s: float, tag: str) -> list[Event]:
    """``copies`` copies of the recording, copy k shifted ``k * every_s`` seconds (event time
    and ``Timestamp``) with ``-{tag}{k}`` appended to its ids and channel names; merged in
    time order."""
    out: list[tuple[float, int, int, Event]] = []
    for k in range(copies):
        shift = k * every_s
        suffix = f"-{tag}{k}"
        for i, ev in enumerate(recorded):
            fields = dict(ev.fields)
            for key in ID_FIELDS:
                if key in fields:
                    fields[key] += suffix
            if "Timestamp" in fields:
                fields["Timestamp"] = f"{float(fields['Timestamp']) + shift:.6f}"
            out.append((ev.at + shift, k, i, Event(ev.at + shift, fields)))
    out.sort(key=lambda item: item[:3])
    return [item[3] for item in out]


def shifted(ev: Event, shift: float) -> Event:
    fields = dict(ev.fields)
    if "Timestamp" in fields:
        fields["Timestamp"] = f"{float(fields['Timestamp']) + shift:.6f}"
    return Event(ev.at + shift, fields)


def message(ev: Event) -> AmiMessage:
    return AmiMessage(tuple(ev.fields.items()))


# --- 1 and 2. replay throughput ---------------------------------------------------------------
class ReplayClock:
    """The app clock the listener reads: the recorded time of the event being replayed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    py_cpu_s: float
    redis_cpu_s: float = 0.0
    check: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def expected_counts(events: Sequence[Event], config_settings: MetricsSettings) -> Counter[str]:
    """The classes the reducer gives the stream (what Redis must end up counting)."""
    state = MetricsState(reducer_config(config_settings))
    counts: Counter[str] = Counter()
    for ev in events:
        for effect in apply(state, {**ev.fields, "_received_at": f"{ev.at:.6f}"}, ev.at)[1]:
            if isinstance(effect, CallClassified):
                counts[effect.klass.value] += 1
            elif isinstance(effect, CallUnknown):
                counts["unknown"] += 1
    return counts


class RedisServer:
    """A redis-server of our own on a free port, configured like the stack's."""

    def __init__(self, cpu: int | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-bench-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--protected-mode", "yes", "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            if cpu is not None:
                os.sched_setaffinity(self.proc.pid, {cpu})
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        with redis.Redis.from_url(self.url) as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def store_client(url: str, **auth: Any) -> aioredis.Redis:
    """As ``run_ami`` makes it; ``auth``: the stack's ACL user (``Settings.redis_auth``)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 1), **auth
    )


async def day_totals(client: aioredis.Redis) -> Counter[str]:
    totals: Counter[str] = Counter()
    async for key in client.scan_iter(match="ivr:metrics:day:*:total"):
        for name, value in (await client.hgetall(key)).items():
            totals[name.decode() if isinstance(name, bytes) else name] += int(value)
    return totals


@dataclass(frozen=True, slots=True)
class Replay:
    """One replay's input, built before any timing: the reducer's dicts (as the listener
    hands them over) and the AmiMessages (as the AmiClient hands them over)."""

    events: Sequence[Event]
    dicts: list[dict[str, str]]
    messages: list[tuple[float, AmiMessage]]
    expected: Counter[str]  # the reducer's classes: what Redis must count

    @classmethod
    def of(cls, events: Sequence[Event], settings: MetricsSettings) -> Replay:
        dicts = [{**ev.fields, "_received_at": f"{ev.at:.6f}"} for ev in events]
        messages = [(ev.at, message(ev)) for ev in events]
        return cls(events, dicts, messages, expected_counts(events, settings))


def bench_reducer(replay: Replay, settings: Settings) -> Run:
    state = MetricsState(reducer_config(settings.metrics))
    cpu, start = time.process_time(), time.perf_counter()
    for fields, ev in zip(replay.dicts, replay.events, strict=True):
        apply(state, fields, ev.at)
    took = time.perf_counter() - start
    return Run("reducer alone (baseline)", len(replay.dicts), took, time.process_time() - cpu)


async def bench_listener_no_redis(replay: Replay, settings: Settings) -> Run:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # never connected
    m = settings.metrics
    store = MetricsStore(  # holds every batch: nothing is sent
        client,
        config=reducer_config(m),
        tz=ZoneInfo(m.timezone),
        events_maxlen=settings.redis.events_maxlen,
        buffer_max=len(replay.messages) + 10,
        retention=retention(m),
    )
    clock = ReplayClock()
    listener = MetricsListener(store, store.config, None, clock=clock)
    cpu, start = time.process_time(), time.perf_counter()
    for at, msg in replay.messages:
        clock.now = at
        await listener.on_event(msg)
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu
    built = store.pending
    await client.aclose()
    name = "listener + store, batches not sent"
    return Run(name, len(replay.messages), took, cpu, check=f"{built} batches")


async def bench_store(
    replay: Replay, settings: Settings, server: RedisServer, *, per_event: bool
) -> Run:
    """run_ami's path (per_event False) or the store flushed after every event (True)."""
    client = store_client(server.url)
    await client.flushall()
    store = MetricsStore.from_settings(client, settings.metrics, settings.redis.events_maxlen)
    clock = ReplayClock()
    listener = MetricsListener(store, store.config, None, clock=clock)
    cpu, redis_cpu, start = time.process_time(), server.cpu(), time.perf_counter()
    if per_event:
        for at, msg in replay.messages:
            clock.now = at
            await listener.on_event(msg)
            await store.flush()
    else:
        await run_like_ami(replay.messages, clock, listener.on_event, store, settings)
    took = time.perf_counter() - start
    cpu, redis_cpu = time.process_time() - cpu, server.cpu() - redis_cpu
    check = await verify(client, replay, store.counters["stored"])
    await client.aclose()
    name = "store flushed after each event" if per_event else "listener + store -> Redis (run_ami)"
    return Run(name, len(replay.messages), took, cpu, redis_cpu, check)


async def run_like_ami(
    messages: Sequence[tuple[float, AmiMessage]],
    clock: ReplayClock,
    handler: Callable[[AmiMessage], Awaitable[None]],
    store: MetricsStore,
    settings: Settings,
) -> None:
    """Events through a bounded queue to one consumer (the AmiClient's shape), the store's
    flusher running beside it; returns once Redis holds everything."""
    queue: asyncio.Queue[tuple[float, AmiMessage]] = asyncio.Queue(settings.ami.event_queue_size)

    async def consume() -> None:
        while True:
            at, msg = await queue.get()
            clock.now = at
            await handler(msg)
            queue.task_done()

    async with asyncio.TaskGroup() as group:
        flusher = group.create_task(store.run())
        consumer = group.create_task(consume())
        for item in messages:
            await queue.put(item)
        await queue.join()
        while store.pending:
            await store.flush()
        consumer.cancel()
        flusher.cancel()


async def verify(client: aioredis.Redis, replay: Replay, stored: int | None) -> str:
    """ "ok" when Redis counts what the reducer classified and the stream has every event."""
    totals = await day_totals(client)
    in_stream = await client.xlen(redis_keys.AMI_EVENTS)
    wanted = {k: v for k, v in replay.expected.items() if v}
    got = {k: v for k, v in totals.items() if v}
    events = len(replay.messages)
    if got == wanted and in_stream == events and stored in (events, None):
        return "ok"
    return f"MISMATCH: Redis {got}, stream {in_stream}; reducer {wanted}, events {events}"


class NaiveWriter:
    """The store's changes as plain Redis commands, no script. ``client`` a connection: each
    command is one round trip; a pipeline: the caller sends them all at once."""

    def __init__(self, store: MetricsStore, maxlen: int) -> None:
        self.store = store
        self.maxlen = maxlen
        r = store.retention
        self.ttl = {"hour": r.hour_s, "day": r.day_s, "month": r.month_s}

    async def write(
        self,
        r: aioredis.Redis,
        event: Mapping[str, str],
        effects: Sequence[Effect],
        at: float,
        *,
        pipelined: bool,
    ) -> None:
        entry: dict[Any, Any] = dict(event)
        await r.xadd(redis_keys.AMI_EVENTS, entry, maxlen=self.maxlen, approximate=True)
        for effect in effects:
            match effect:
                case CallClassified():
                    when = effect.closed_at if effect.entered_at is None else effect.entered_at
                    await self._count(r, effect.linkedid, effect.klass.value, effect.queue, when,
                                      effect.closed_at, pipelined)  # fmt: skip
                case CallUnknown():
                    await self._count(r, effect.linkedid, "unknown", effect.queue,
                                      effect.closed_at, effect.closed_at, pipelined)  # fmt: skip
                case WaitingStarted():
                    info = {
                        "queue": effect.queue,
                        "since": effect.since,
                        "caller": effect.caller,
                        "threshold_s": effect.threshold_s,
                    }
                    await r.zadd(redis_keys.LIVE_WAITING, {effect.linkedid: effect.since})
                    await r.hset(
                        redis_keys.LIVE_CALLS, effect.linkedid, json.dumps(info, ensure_ascii=False)
                    )
                case WaitingEnded():
                    await r.zrem(redis_keys.LIVE_WAITING, effect.linkedid)
                    await r.hdel(redis_keys.LIVE_CALLS, effect.linkedid)
                case AgentStateChanged():
                    info = {
                        "queue": effect.queue,
                        "interface": effect.interface,
                        "state": effect.state.value,
                        "name": effect.name,
                    }
                    await r.hset(
                        redis_keys.LIVE_AGENTS,
                        agent_field(effect.queue, effect.interface),
                        json.dumps(info, ensure_ascii=False),
                    )
                case AgentRemoved():
                    await r.hdel(
                        redis_keys.LIVE_AGENTS, agent_field(effect.queue, effect.interface)
                    )
                case AnomalySeen():
                    day = redis_keys.metrics_anomalies_day(self.store.buckets(at)["day"])
                    await r.hincrby(redis_keys.METRICS_ANOMALIES, effect.kind.value, 1)
                    await r.hincrby(day, effect.kind.value, 1)
                    await r.expire(day, self.ttl["day"])
        if effects:
            await r.publish(redis_keys.METRICS_CHANGED, repr(at))

    async def _count(
        self, r: aioredis.Redis, linkedid: str, name: str, queue: str, when: float,
        closed_at: float, pipelined: bool,
    ) -> None:  # fmt: skip
        """Count a call once (``ZADD NX`` decides; pipelined, it cannot: counted anyway)."""
        added = await r.zadd(redis_keys.METRICS_COUNTED, {linkedid: closed_at}, nx=True)
        if not pipelined and not added:
            await r.hincrby(redis_keys.METRICS_ANOMALIES, "duplicate_outcome", 1)
            return
        for period, bucket in self.store.buckets(when).items():
            keys = [redis_keys.metrics_counts(period, bucket)]
            if queue:
                keys.append(redis_keys.metrics_counts(period, bucket, queue))
            for key in keys:
                await r.hincrby(key, name, 1)
                await r.expire(key, self.ttl[period])
            if queue:
                index = redis_keys.metrics_queues(period, bucket)
                await r.sadd(index, queue)
                await r.expire(index, self.ttl[period])
        horizon = closed_at - self.store.retention.counted_s
        await r.zremrangebyscore(redis_keys.METRICS_COUNTED, "-inf", f"({horizon!r}")


async def bench_naive(
    replay: Replay, settings: Settings, server: RedisServer, *, pipelined: bool
) -> Run:
    """The listener's steps (kept? -> dict -> reducer) then plain commands: each awaited, or
    one pipeline per event (one round trip; not a MULTI/EXEC, which only adds to it)."""
    client = store_client(server.url)
    await client.flushall()
    store = MetricsStore.from_settings(client, settings.metrics, settings.redis.events_maxlen)
    writer = NaiveWriter(store, settings.redis.events_maxlen)
    state = MetricsState(store.config)
    cpu, redis_cpu, start = time.process_time(), server.cpu(), time.perf_counter()
    for at, msg in replay.messages:
        if not is_kept(msg):
            continue
        fields = msg.to_dict()
        fields["_received_at"] = f"{at:.6f}"
        _, effects = apply(state, fields, at)
        if pipelined:
            async with client.pipeline(transaction=False) as pipe:
                await writer.write(pipe, fields, effects, at, pipelined=True)
                await pipe.execute()
        else:
            await writer.write(client, fields, effects, at, pipelined=False)
    took = time.perf_counter() - start
    cpu, redis_cpu = time.process_time() - cpu, server.cpu() - redis_cpu
    check = await verify(client, replay, None)
    await client.aclose()
    name = (
        "one pipeline per event (1 round trip)"
        if pipelined
        else "one command per change, each awaited"
    )
    return Run(name, len(replay.messages), took, cpu, redis_cpu, check)


def bench_rounds(replay: Replay, settings: Settings, rounds: int) -> dict[str, Run]:
    """Each path ``rounds`` times, in alternating order, Python pinned to one core and a
    redis-server of our own on another; the fastest run of each (checks: all of them)."""
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) > 1
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    server = RedisServer(cpus[1] if pinned else None)
    paths: list[tuple[str, Callable[[], Run]]] = [
        ("reducer", lambda: bench_reducer(replay, settings)),
        ("no_redis", lambda: asyncio.run(bench_listener_no_redis(replay, settings))),
        ("store", lambda: asyncio.run(bench_store(replay, settings, server, per_event=False))),
        ("per_event", lambda: asyncio.run(bench_store(replay, settings, server, per_event=True))),
        ("multi", lambda: asyncio.run(bench_naive(replay, settings, server, pipelined=True))),
        ("naive", lambda: asyncio.run(bench_naive(replay, settings, server, pipelined=False))),
    ]
    best: dict[str, Run] = {}
    failed: dict[str, str] = {}
    gc.collect()
    gc.freeze()  # the inputs: scaffolding, not the collector's work in the real process
    try:
        for rnd in range(rounds):
            for key, bench in paths if rnd % 2 == 0 else paths[::-1]:
                gc.collect()
                run = bench()
                if run.check.startswith("MISMATCH"):
                    failed[key] = run.check
                if key not in best or run.rate > best[key].rate:
                    best[key] = run
    finally:
        gc.unfreeze()
        server.stop()
        if pinned:
            os.sched_setaffinity(0, cpus)
    for key, check in failed.items():
        best[key].check = check
    return best


# --- 3. event-to-SSE latency --------------------------------------------------------------
class TimedStore(MetricsStore):
    """The store, noting when each call outcome was handed to it (monotonic clock)."""

    outcomes: list[float]

    def submit(self, effects: Sequence[Effect], **kwargs: Any) -> bool:
        now = time.monotonic()
        self.outcomes.extend(now for e in effects if isinstance(e, CallClassified))
        return super().submit(effects, **kwargs)


@dataclass
class SseResult:
    idle: list[float] = field(default_factory=list)  # seconds
    loaded: list[float] = field(default_factory=list)
    documents: int = 0  # under load
    window_s: float = 0.0
    events: int = 0  # paced in the window
    warmup_events: int = 0
    slack_s: float = 0.0  # time left between the end of the warm-up and the window
    missing: int = 0  # outcomes no document showed before the end


def supervisor_account(settings: Settings) -> tuple[str, str]:
    username, password = f"bench-{secrets.token_hex(3)}", f"bench {secrets.token_hex(8)}"
    engine = settings_engine(settings)
    try:
        with Session(engine) as db:
            create_user(db, username, password, "supervisor")
            db.commit()
    finally:
        engine.dispose()
    return username, password


def counted(document: Mapping[str, Any]) -> int:
    return sum(int(document.get(name) or 0) for name in CLASSES)


async def sse_latency(
    stack: Stack, stream: Sequence[Event], window: tuple[float, float], idle_calls: int
) -> SseResult:
    settings = stack.settings
    username, password = supervisor_account(settings)
    base = f"http://{settings.web.host}:{settings.web.port}"
    result = SseResult()
    client = store_client(settings.redis.url, **settings.redis_auth())
    store = TimedStore.from_settings(client, settings.metrics, settings.redis.events_maxlen)
    assert isinstance(store, TimedStore)
    store.outcomes = []
    clock = ReplayClock()
    listener = MetricsListener(store, store.config, None, clock=clock)
    docs: list[tuple[float, int]] = []  # (arrival, calls counted)
    got_doc = asyncio.Event()
    timeout = httpx.Timeout(10.0, read=60.0)
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as http:
        login = await http.post(
            "/api/auth/login",
            json={"username": username, "password": password},
            headers={"Origin": base},
        )
        login.raise_for_status()

        async def read_stream() -> None:
            async with http.stream("GET", "/api/metrics/stream") as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        docs.append((time.monotonic(), counted(json.loads(line[6:]))))
                        got_doc.set()

        async def wait_counted(n: int, timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while (not docs or docs[-1][1] - base_count < n) and time.monotonic() < deadline:
                got_doc.clear()
                try:
                    await asyncio.wait_for(got_doc.wait(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break

        async with asyncio.TaskGroup() as group:
            reader = group.create_task(read_stream())
            flusher = group.create_task(store.run())
            await asyncio.wait_for(got_doc.wait(), 10)
            base_count = docs[0][1]
            await asyncio.sleep(1.0)  # past the first document's coalescing interval

            # baseline: isolated calls (Newchannel, Hangup: ivr_only), nothing else going on
            for i in range(idle_calls):
                now = time.time()
                uid = f"bench-idle-{secrets.token_hex(4)}.{i}"
                for name in ("Newchannel", "Hangup"):
                    clock.now = time.time()
                    fields = {"Event": name, "Timestamp": f"{now:.6f}", "Uniqueid": uid}
                    fields |= {"Linkedid": uid, "Channel": f"PJSIP/bench-{i:08x}"}
                    await listener.on_event(AmiMessage(tuple(fields.items())))
                await asyncio.sleep(0.4)
            await wait_counted(len(store.outcomes), 5)
            idle_docs = list(docs)
            result.idle = latencies(store.outcomes, idle_docs, base_count, 0)

            # warm-up, not measured: the stream up to the window, at full speed, on a clock
            # that ends where the paced part begins
            start, end = window
            warmup = [ev for ev in stream if ev.at < start]
            paced = [ev for ev in stream if start <= ev.at < end]
            shift = time.time() + 3.0 + len(warmup) / 3000 - start
            for ev in warmup:
                moved = shifted(ev, shift)
                clock.now = moved.at
                await listener.on_event(message(moved))
            while store.pending:
                await store.flush()
            first_measured = len(store.outcomes)
            await wait_counted(first_measured, 5)
            result.slack_s = start + shift - time.time()
            loaded_from = len(docs)

            # the window, paced in real time
            for ev in paced:
                moved = shifted(ev, shift)
                delay = moved.at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                clock.now = time.time()
                await listener.on_event(message(moved))
            await wait_counted(len(store.outcomes), 3)
            result.loaded = latencies(store.outcomes, docs, base_count, first_measured)
            result.missing = len(store.outcomes) - first_measured - len(result.loaded)
            result.documents = len(docs) - loaded_from
            result.window_s = end - start
            result.events = len(paced)
            result.warmup_events = len(warmup)
            reader.cancel()
            flusher.cancel()
    await client.aclose()
    return result


def latencies(
    submitted: Sequence[float], docs: Sequence[tuple[float, int]], base: int, first: int
) -> list[float]:
    """For outcome j (from ``first``): the first document counting it minus its submit time."""
    out: list[float] = []
    d = 0
    for j in range(first, len(submitted)):
        while d < len(docs) and docs[d][1] - base < j + 1:
            d += 1
        if d == len(docs):
            break
        out.append(docs[d][0] - submitted[j])
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- main -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    recorded: list[Event]
    sipp: list[SippResult]
    ami_status: dict[str, str]
    record_s: float
    every_s: float
    copies: int
    stream: list[Event]
    in_window: list[int]  # calls open in the SSE window, every 0.5 s
    sse: SseResult
    runs: dict[str, Run] = field(default_factory=dict)
    stack_s: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=200, help="calls open at once")
    parser.add_argument("--sse-seconds", type=float, default=40.0, help="paced window")
    parser.add_argument("--idle-calls", type=int, default=30, help="SSE baseline samples")
    parser.add_argument(
        "--replay-events", type=int, default=20_000, help="the first N of the synthesized stream"
    )
    parser.add_argument("--rounds", type=int, default=2, help="replay rounds (best kept)")
    args = parser.parse_args()
    began = time.monotonic()

    with bench_stack("bmet", BENCH_DIALPLAN) as stack:
        settings = stack.settings
        t0 = time.monotonic()
        recorded, sipp, status = record(stack, WAVES)
        record_s = time.monotonic() - t0
        write_artifact(recorded)
        first, last = recorded[0].at, recorded[-1].at
        call_seconds = sum(b - a for a, b in call_spans(recorded).values())
        every_s = call_seconds / args.concurrent
        window = (last, last + args.sse_seconds)  # every copy begun before it is whole
        copies = math.floor((window[1] - first) / every_s) + 1
        stream = tile(recorded, copies, every_s, "c")
        in_window = open_calls(call_spans(stream).values(), *window)
        sse_stream = tile(recorded, copies, every_s, "s")  # ids the stack has not counted
        sse = asyncio.run(sse_latency(stack, sse_stream, window, args.idle_calls))
        del sse_stream
    out = Outcome(recorded, sipp, status, record_s, every_s, copies, stream, in_window, sse)
    out.stack_s = time.monotonic() - began

    replay = Replay.of(stream[: args.replay_events], settings.metrics)
    out.runs = bench_rounds(replay, settings, args.rounds)
    report(args, out, time.monotonic() - began)


def report(args: argparse.Namespace, out: Outcome, total_s: float) -> None:
    spans = call_spans(out.recorded)
    ok = sum(r.successful for r in out.sipp)
    failed = sum(r.failed for r in out.sipp)
    classes = expected_counts(out.recorded, MetricsSettings())
    received = out.ami_status.get("events", "?")
    print(
        f"0. recorded: {len(spans)} real SIP calls (sipp: {ok} ok, {failed} failed) in "
        f"{out.record_s:.0f} s; the ami role got {received} AMI events and kept "
        f"{len(out.recorded)} (-> {ARTIFACT.relative_to(REPO)})"
    )
    print("   classes: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    w = out.in_window
    print(
        f"   synthesized: {out.copies} copies of the recording with new Linkedid/Uniqueid, "
        f"one every {out.every_s:.1f} s: {len(out.stream)} events, "
        f"{len(call_spans(out.stream))} calls; open in the SSE window: "
        f"mean {statistics.mean(w):.0f} (min {min(w)}, max {max(w)})"
    )
    runs = out.runs
    base = runs["reducer"]
    print(
        f"1. replay of the first {base.events} events as fast as it goes, best of {args.rounds} "
        "rounds; Python pinned to one core, redis-server (AOF everysec) on the other"
    )
    print(
        f"   {'path':<40}{'events/s':>9}{'ratio':>8}{'py us/ev':>10}{'redis us/ev':>12}"
        "  Redis = reducer"
    )
    for key in ("reducer", "no_redis", "store"):
        print(row(runs[key], base))
    print("2. the same updates, unbatched")
    for key in ("per_event", "multi", "naive"):
        print(row(runs[key], base))
    store = runs["store"]
    print(
        f"   batched (run_ami) / one round trip per event: "
        f"{store.rate / runs['multi'].rate:.1f}x; / store flushed per event: "
        f"{store.rate / runs['per_event'].rate:.1f}x; / one command per change: "
        f"{store.rate / runs['naive'].rate:.1f}x"
    )
    sse = out.sse
    print(
        "3. event -> SSE, web role (one document per change, bursts coalesced to one per "
        f"{StreamTiming().coalesce_s:g} s): outcome handed to the store -> first document "
        "counting it"
    )
    if sse.idle:
        print(f"   {'idle, one call every 0.4 s (baseline)':<50}{spread(sse.idle)}")
    if sse.loaded:
        label = (
            f"{args.concurrent} calls' worth, {sse.events / sse.window_s:.0f} events/s "
            f"for {sse.window_s:.0f} s"
        )
        print(f"   {label:<50}{spread(sse.loaded)}, {sse.documents} documents")
        if sse.idle:
            p50 = pct(sse.loaded, 0.5) / pct(sse.idle, 0.5)
            p99 = pct(sse.loaded, 0.99) / pct(sse.idle, 0.99)
            print(f"   loaded / idle: p50 {p50:.1f}x, p99 {p99:.1f}x; outcomes never shown: "
                  f"{sse.missing}; warm-up {sse.warmup_events} events at full speed, "
                  f"{sse.slack_s:.1f} s to spare")  # fmt: skip
    print(f"   (stack part {out.stack_s:.0f} s, whole run {total_s:.0f} s)")


def spread(values: Sequence[float]) -> str:
    return (
        f"n {len(values):>4}  p50 {1000 * pct(values, 0.5):6.1f} ms  "
        f"p99 {1000 * pct(values, 0.99):6.1f} ms"
    )


def row(run: Run, base: Run) -> str:
    redis_us = f"{1e6 * run.redis_cpu_s / run.events:12.1f}" if run.redis_cpu_s else " " * 12
    return (
        f"   {run.name:<40}{run.rate:>9.0f}{run.rate / base.rate:>8.3f}"
        f"{1e6 * run.py_cpu_s / run.events:>10.1f}{redis_us}  {run.check}"
    )


if __name__ == "__main__":
    main()
