"""The metrics store (ivr.adapters.metrics.store) and listener against a real redis-server.

Each test gets its own redis-server (AOF on, ``appendfsync everysec`` as in the stack) on a
free loopback port with its data in tmp_path, so it can be stopped, killed and restarted on
the same port and data. The last test goes through the session stack: a real call, then
``ivr metrics --json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ivr import redis_acl, redis_keys
from ivr.adapters.metrics.listener import RESYNC_EVENT, MetricsListener
from ivr.adapters.metrics.store import LiveReset, MetricsStore, bucket_names
from ivr.adapters.telephony.originate import place_call
from ivr.cli import main
from ivr.core.metrics import (
    AgentRemoved,
    AgentState,
    AgentStateChanged,
    AnomalyKind,
    AnomalySeen,
    CallClass,
    CallClassified,
    CallUnknown,
    Effect,
    MetricsConfig,
    MetricsState,
    WaitingEnded,
    WaitingStarted,
    apply,
    metrics_document,
    snapshot,
    summarize,
)
from ivr.devstack.ports import free_port
from ivr.errors import AmiError
from ivr.protocols.ami import AmiMessage

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
CONFIG = MetricsConfig(thresholds={"emergency": 15.0, "emergency-backup": 15.0})
BASE = 1763866500.0  # 2025-11-23 10:55:00 in Shanghai
DELAY = 0.002  # each event is received this long after Asterisk stamped it
AGENT = "PJSIP/agent-1001"
DOCUMENT_FIELDS = {
    "offered", "answered", "answered_late", "abandoned", "timed_out", "ivr_only",
    "answer_rate", "threshold_s", "waiting_now", "longest_wait_s", "over_threshold_now",
}  # fmt: skip


# --- a redis-server of our own ------------------------------------------------------------
class RedisServer:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        data.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        cmd = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.data), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes", "--daemonize", "no",
        ]  # fmt: skip
        log = (self.data.parent / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                    client.ping()
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(
        redis_server.url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
    )
    try:
        yield connection
    finally:
        await connection.aclose()


def make_store(client: aioredis.Redis, **options: Any) -> MetricsStore:
    return MetricsStore(client, config=CONFIG, tz=TZ, **options)


# --- what Asterisk 22 writes, through the reducer -----------------------------------------
def ev(name: str, t: float, linkedid: str, uid: str | None = None, **fields: str) -> dict:
    uid = uid or linkedid
    return {
        "Event": name,
        "Privilege": "call,all",
        "Timestamp": f"{BASE + t:.6f}",
        "Channel": f"PJSIP/trunk-{uid}",
        "CallerIDNum": "13912345678",
        "CallerIDName": "张三",
        "Uniqueid": uid,
        "Linkedid": linkedid,
        **fields,
    }


def answered(lid: str, t0: float, wait: float, queue: str = "consultation") -> list[dict]:
    agent = f"{lid}-agent"
    member = {"Queue": queue, "Interface": AGENT, "MemberName": "李四"}
    dest = {"DestUniqueid": agent, "DestLinkedid": lid}
    joined = t0 + 1
    return [
        ev("Newchannel", t0, lid),
        ev("AGIExecStart", t0 + 0.1, lid, Command="ANSWER"),
        ev("VarSet", t0 + 0.9, lid, Variable="IVR_QUEUE", Value=queue),
        ev("QueueCallerJoin", joined, lid, Queue=queue, Position="1", Count="1"),
        ev("Newchannel", joined + wait - 0.5, lid, agent),
        ev("AgentCalled", joined + wait - 0.5, lid, **member, **dest),
        ev("QueueCallerLeave", joined + wait, lid, Queue=queue, Position="1", Count="0"),
        ev("AgentConnect", joined + wait, lid, **member, **dest, HoldTime=f"{wait:.0f}"),
        ev("AgentComplete", joined + wait + 20, lid, **member, **dest),
        ev("Hangup", joined + wait + 20, lid, agent),
        ev("Hangup", joined + wait + 20.01, lid),
    ]


def abandoned(lid: str, t0: float, after: float, queue: str = "repair") -> list[dict]:
    return [
        ev("Newchannel", t0, lid),
        ev("QueueCallerJoin", t0 + 1, lid, Queue=queue, Position="1", Count="1"),
        ev("QueueCallerAbandon", t0 + 1 + after, lid, Queue=queue, Position="1"),
        ev("QueueCallerLeave", t0 + 1 + after, lid, Queue=queue, Position="1", Count="0"),
        ev("Hangup", t0 + 1 + after, lid),
    ]


def timed_out(lid: str, t0: float, after: float, queue: str = "billing") -> list[dict]:
    return [
        ev("Newchannel", t0, lid),
        ev("QueueCallerJoin", t0 + 1, lid, Queue=queue, Position="1", Count="1"),
        ev("QueueCallerAbandon", t0 + 1 + after, lid, Queue=queue, Position="1"),
        ev("QueueCallerLeave", t0 + 1 + after, lid, Queue=queue, Position="1", Count="0"),
        ev("VarSet", t0 + 1 + after, lid, Variable="QUEUESTATUS", Value="TIMEOUT"),
        ev("Hangup", t0 + 2 + after, lid),
    ]


def ivr_only(lid: str, t0: float) -> list[dict]:
    return [ev("Newchannel", t0, lid), ev("AGIExecStart", t0 + 0.1, lid), ev("Hangup", t0 + 9, lid)]


def waiting(lid: str, t0: float, queue: str) -> list[dict]:
    return [
        ev("Newchannel", t0, lid),
        ev("QueueCallerJoin", t0 + 1, lid, Queue=queue, Position="1", Count="1"),
    ]


def scenario() -> list[dict]:
    """Ten calls of every kind, interleaved in time order, and two agents."""
    calls = [
        answered("a.1", 0, 5),
        answered("a.2", 3, 75),  # late
        answered("e.1", 6, 20, "emergency"),  # late for the emergency queue
        abandoned("b.1", 1, 40),
        timed_out("t.1", 2, 30),
        ivr_only("i.1", 4),
        ivr_only("i.2", 5),
        [ev("QueueCallerJoin", 7, "m.1", Queue="repair"), ev("Hangup", 30, "m.1")],  # unseen start
        waiting("w.1", 100, "consultation"),  # waits 100 s at the summary
        waiting("w.2", 180, "emergency"),  # waits 20 s: over its 15 s
    ]
    members = [
        {"Event": "QueueMemberStatus", "Queue": "billing", "Interface": "PJSIP/agent-1002",
         "MemberName": "王五", "Status": "1", "Paused": "0", "Timestamp": f"{BASE:.6f}"},
        {"Event": "QueueMemberPause", "Queue": "repair", "Interface": "PJSIP/agent-1003",
         "MemberName": "赵六", "Status": "1", "Paused": "1", "Timestamp": f"{BASE + 1:.6f}"},
    ]  # fmt: skip
    events = [e for call in calls for e in call] + members
    return sorted(events, key=lambda e: float(e["Timestamp"]))


NOW = BASE + 200  # 10:58:20, the same hour, day and month as every call


def reduce(events: list[dict]) -> tuple[MetricsState, list[tuple[dict, list[Effect]]]]:
    state = MetricsState(CONFIG)
    batches = []
    for event in events:
        received = float(event["Timestamp"]) + DELAY
        _, effects = apply(state, event, received)
        batches.append(({**event, "_received_at": f"{received:.6f}"}, effects))
    return state, batches


def outcomes(batches: list[tuple[dict, list[Effect]]]) -> list[CallClassified]:
    return [fx for _, effects in batches for fx in effects if isinstance(fx, CallClassified)]


def classified(
    lid: str,
    klass: CallClass,
    *,
    entered: float | None,
    closed: float,
    queue: str = "repair",
    wait: float = 5.0,
) -> CallClassified:
    queue = "" if klass is CallClass.IVR_ONLY else queue
    return CallClassified(
        lid, queue, klass, wait, CONFIG.threshold_s(queue), entered, closed, "13912345678"
    )


async def counters(client: aioredis.Redis, period: str, bucket: str) -> dict[str, int]:
    raw = await client.hgetall(redis_keys.metrics_counts(period, bucket))
    return {k.decode(): int(v) for k, v in raw.items()}


# --- idempotence and the document ---------------------------------------------------------
async def test_given_whole_effect_stream_applied_when_summarized_then_reducers_document(client):
    state, batches = reduce(scenario())
    store = make_store(client)
    for event, effects in batches:
        assert store.submit(effects, event=event)
    assert await store.flush()

    doc = await store.summary("today", NOW)
    expected = metrics_document(summarize(outcomes(batches)), snapshot(state, NOW), CONFIG)
    assert doc == expected | {"agents": []}  # the scenario's members are not agents (no 工号)
    assert (doc["offered"], doc["answered"], doc["answered_late"]) == (5, 1, 2)
    assert (doc["abandoned"], doc["timed_out"], doc["ivr_only"]) == (1, 1, 2)
    assert doc["answer_rate"] == pytest.approx(0.2)
    assert (doc["waiting_now"], doc["longest_wait_s"]) == (2, 99.0 - DELAY)
    assert [w["linkedid"] for w in doc["over_threshold_now"]] == ["w.1", "w.2"]
    assert doc["queues"]["emergency"]["over_threshold_now"][0]["caller"] == "13912345678"
    assert (doc["agents_free"], doc["agents_paused"]) == (2, 1)  # agent-1001 free again
    assert await client.xlen(redis_keys.AMI_EVENTS) == len(batches)
    (_, first), *_ = await client.xrange(redis_keys.AMI_EVENTS, count=1)
    assert first[b"CallerIDNum"].decode() == "139******78"  # stored masked (event_sink.redacted)
    assert first[b"CallerIDName"].decode() == "**"
    assert first[b"_received_at"] == batches[0][0]["_received_at"].encode()
    called = [
        f for _, f in await client.xrange(redis_keys.AMI_EVENTS) if f[b"Event"] == b"AgentCalled"
    ]
    assert called[0][b"MemberName"].decode() == "李四"  # UTF-8 through the script's JSON
    agents = await client.hgetall(redis_keys.LIVE_AGENTS)
    assert {json.loads(v)["name"] for v in agents.values()} == {"李四", "王五", "赵六"}
    day = await counters(client, "day", "2025-11-23")
    assert day["unknown"] == 1  # m.1: not in the document, kept in Redis
    health = await store.health(NOW)
    assert health["anomalies"] == {"unknown_outcome": 1, "unseen_channel": 1}


async def test_given_same_effects_replayed_by_a_restarted_writer_then_counters_unchanged(client):
    _, batches = reduce(scenario())
    store = make_store(client)
    for event, effects in batches:
        store.submit(effects, event=event)
    assert await store.flush()
    before = {p: await store.summary(p, NOW) for p in ("hour", "today", "month")}

    again = make_store(client)  # a new process: another writer, new batch numbers
    for event, effects in batches:
        again.submit([fx for fx in effects if not isinstance(fx, AnomalySeen)], event=event)
    assert await again.flush()
    assert {p: await again.summary(p, NOW) for p in ("hour", "today", "month")} == before
    counted = await client.zcard(redis_keys.METRICS_COUNTED)
    assert counted == 8  # every closed call once, the unknown one included
    health = await again.health(NOW)
    assert health["anomalies"]["duplicate_outcome"] == 8


async def test_given_reply_lost_after_redis_applied_then_batches_resent_and_applied_once(
    client, monkeypatch
):
    _, batches = reduce(scenario())
    store = make_store(client)
    real_send = store._send
    sends = 0

    async def reply_lost_once(chunk):
        nonlocal sends
        sends += 1
        results = await real_send(chunk)
        if sends == 1:
            raise RedisConnectionError("connection reset before the reply")
        return results

    monkeypatch.setattr(store, "_send", reply_lost_once)
    for event, effects in batches:
        store.submit(effects, event=event)
    assert not await store.flush()
    assert store.redis_down and store.pending == len(batches)
    assert await store.flush()
    assert store.counters["batches_repeated"] == len(batches)
    assert store.counters["batches_applied"] == 0
    assert await client.xlen(redis_keys.AMI_EVENTS) == len(batches)  # each event once
    doc = await store.summary("today", NOW)
    assert (doc["offered"], doc["ivr_only"]) == (5, 2)
    assert "duplicate_outcome" not in (await store.health(NOW))["anomalies"]


async def test_given_big_batch_when_read_concurrently_then_never_seen_half_applied(
    client, redis_server
):
    calls = [
        classified(f"c.{i}", CallClass.ANSWERED, entered=BASE + i / 10, closed=BASE + 60)
        for i in range(400)
    ]
    store = make_store(client)
    reader = make_store(aioredis.Redis.from_url(redis_server.url))
    seen: set[int] = set()
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            seen.add((await reader.summary("today", NOW))["offered"])

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.05)
    store.submit(calls, event={"Event": "Hangup", "Linkedid": "c.0"})
    assert await store.flush()
    await asyncio.sleep(0.05)
    done.set()
    await watcher
    await reader.redis.aclose()
    assert seen == {0, 400}
    assert await client.xlen(redis_keys.AMI_EVENTS) == 1


async def test_given_change_applied_then_published_for_the_live_page(client):
    store = make_store(client)
    pubsub = client.pubsub()
    await pubsub.subscribe(redis_keys.METRICS_CHANGED)
    assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"
    await store.apply([WaitingStarted("w.9", "repair", BASE, "13912345678", 60.0)])
    await store.apply([], event={"Event": "Newstate", "Linkedid": "x"})  # nothing to publish
    await store.apply([WaitingEnded("w.9")])
    messages = []
    while (message := await pubsub.get_message(timeout=0.5)) is not None:
        messages.append(message)
    await pubsub.aclose()
    assert len(messages) == 2


# --- buckets ------------------------------------------------------------------------------
async def test_given_calls_around_midnight_and_month_end_then_local_buckets(client):
    midnight = datetime(2025, 12, 1, tzinfo=TZ).timestamp()  # 2025-11-30 16:00 UTC
    morning = midnight + 7.5 * 3600
    store = make_store(client)
    await store.apply(
        [
            # waited from 23:59:59.5, answered after midnight: counts on the 30th (entry time)
            classified("n.1", CallClass.ANSWERED, entered=midnight - 0.5, closed=midnight + 90),
            classified("d.1", CallClass.ABANDONED, entered=midnight + 0.5, closed=midnight + 60),
            # never queued: counts when it ended
            classified("n.2", CallClass.IVR_ONLY, entered=None, closed=midnight - 1),
            classified("d.2", CallClass.IVR_ONLY, entered=None, closed=midnight + 30),
            # 07:30 in Shanghai is still the 30th in UTC: local day wins
            classified("d.3", CallClass.TIMED_OUT, entered=morning, closed=morning + 60),
            CallUnknown("d.4", "repair", midnight + 5, "the start of the call was not seen"),
        ]
    )  # fmt: skip
    before, after = midnight - 0.1, midnight + 8 * 3600
    for period in ("hour", "today", "month"):
        doc = await store.summary(period, before)
        assert (doc["answered"], doc["ivr_only"], doc["abandoned"]) == (1, 1, 0), period
        assert doc["queues"]["repair"]["answered"] == 1
    assert (await store.summary("today", after))["abandoned"] == 1
    assert (await store.summary("today", after))["timed_out"] == 1
    assert (await store.summary("hour", after))["timed_out"] == 0  # 07:30 is not 08:00
    december = await store.summary("month", after)
    assert (december["offered"], december["ivr_only"]) == (2, 1)
    assert await counters(client, "hour", "2025-11-30T23+0800") == {"answered": 1, "ivr_only": 1}
    assert await counters(client, "hour", "2025-12-01T00+0800") == {
        "abandoned": 1, "ivr_only": 1, "unknown": 1,
    }  # fmt: skip
    assert await counters(client, "day", "2025-12-01") == {
        "abandoned": 1, "ivr_only": 1, "timed_out": 1, "unknown": 1,
    }  # fmt: skip
    assert await counters(client, "month", "2025-11") == {"answered": 1, "ivr_only": 1}
    queues = await client.smembers(redis_keys.metrics_queues("month", "2025-12"))
    assert queues == {b"repair"}  # ivr_only calls belong to no queue
    ttl = await client.ttl(redis_keys.metrics_counts("hour", "2025-12-01T00+0800"))
    assert 34 * 86400 < ttl <= 35 * 86400


def test_given_configured_zone_with_dst_then_repeated_hour_kept_apart():
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2025, 10, 26, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 02:30 CEST
    second = first + 3600  # 02:30 again, CET
    assert bucket_names(first, paris)["hour"] == "2025-10-26T02+0200"
    assert bucket_names(second, paris)["hour"] == "2025-10-26T02+0100"
    assert bucket_names(first, paris)["day"] == bucket_names(second, paris)["day"] == "2025-10-26"


# --- the document -------------------------------------------------------------------------
async def test_given_nothing_offered_then_answer_rate_none_and_every_field(client):
    store = make_store(client)
    empty = await store.summary("today", NOW)
    assert DOCUMENT_FIELDS <= set(empty)
    assert empty["answer_rate"] is None and empty["offered"] == 0
    assert set(empty["queues"]) == {"emergency", "emergency-backup"}  # configured queues
    assert empty["queues"]["emergency"]["threshold_s"] == 15.0
    assert DOCUMENT_FIELDS <= set(empty["queues"]["emergency"])
    await store.apply([classified("i.1", CallClass.IVR_ONLY, entered=None, closed=BASE)])
    menu_only = await store.summary("today", NOW)
    assert (menu_only["ivr_only"], menu_only["offered"], menu_only["answer_rate"]) == (1, 0, None)
    with pytest.raises(ValueError, match="period must be one of"):
        await store.summary("week", NOW)


async def test_given_waiting_calls_and_agents_then_live_fields(client):
    store = make_store(client)
    await store.apply(
        [
            WaitingStarted("w.1", "repair", NOW - 61.25, "13900000001", 60.0),
            WaitingStarted("w.2", "repair", NOW - 10, "13900000002", 60.0),
            WaitingStarted("w.3", "emergency-backup", NOW - 16, "13900000003", 15.0),
            AgentStateChanged("repair", AGENT, AgentState.BUSY, "李四"),
            AgentStateChanged("billing", AGENT, AgentState.FREE, "李四"),
            AgentStateChanged("repair", "PJSIP/agent-1002", AgentState.PAUSED, "王五"),
            AgentStateChanged("repair", "PJSIP/agent-1003", AgentState.UNAVAILABLE, "赵六"),
        ]
    )
    doc = await store.summary("today", NOW)
    assert (doc["waiting_now"], doc["longest_wait_s"]) == (3, 61.25)
    assert doc["over_threshold_now"] == [
        {"linkedid": "w.1", "queue": "repair", "waited_s": 61.25, "caller": "13900000001"},
        {"linkedid": "w.3", "queue": "emergency-backup", "waited_s": 16.0, "caller": "13900000003"},
    ]
    assert (doc["agents_busy"], doc["agents_free"], doc["agents_paused"]) == (1, 0, 1)
    repair = doc["queues"]["repair"]
    assert (repair["waiting_now"], repair["agents_busy"], repair["agents_paused"]) == (2, 1, 1)
    assert doc["queues"]["billing"]["agents_free"] == 1
    await store.apply([WaitingEnded("w.1"), AgentRemoved("repair", AGENT)])
    doc = await store.summary("today", NOW)
    assert [w["linkedid"] for w in doc["over_threshold_now"]] == ["w.3"]
    assert (doc["agents_busy"], doc["agents_free"]) == (0, 1)
    await store.apply([], live=LiveReset(waiting=(), agents=()))
    assert (await store.summary("today", NOW))["waiting_now"] == 0


async def test_given_anomalies_then_counted_all_time_and_per_local_day(client):
    store = make_store(client)
    at = datetime(2025, 11, 23, 23, 59, tzinfo=TZ).timestamp()
    await store.apply([AnomalySeen(AnomalyKind.GARBLED, "Hangup without Linkedid")], at=at)
    await store.apply([AnomalySeen(AnomalyKind.CLOCK_SKEW, "offset +30 s")], at=at + 120)
    assert (await store.health(at))["anomalies_today"] == {"garbled": 1}
    health = await store.health(at + 120)
    assert health["anomalies"] == {"clock_skew": 1, "garbled": 1}
    assert health["anomalies_today"] == {"clock_skew": 1}


# --- Redis away, restarted, or losing writes ----------------------------------------------
async def test_given_redis_stopped_when_effects_arrive_then_buffered_and_flushed_on_return(
    client, redis_server
):
    store = make_store(client, buffer_max=30)
    recovered: list[int] = []
    store.on_recovered = lambda: recovered.append(store.pending)
    first = [
        classified(f"a.{i}", CallClass.ANSWERED, entered=BASE, closed=BASE + 9) for i in range(3)
    ]
    assert await store.apply(first)
    redis_server.stop()

    accepted = [
        store.submit([classified(f"b.{i}", CallClass.ABANDONED, entered=BASE, closed=BASE + 9)])
        for i in range(40)
    ]
    assert accepted == [True] * 30 + [False] * 10  # the NEW ones are dropped
    assert not await store.flush()
    assert store.redis_down and store.stats()["redis_down"] == 1
    assert store.counters["dropped_batches"] == 10

    redis_server.start()
    assert await store.flush()
    assert not store.redis_down and store.pending == 0 and recovered == [0]
    doc = await store.summary("today", NOW)
    assert (doc["answered"], doc["abandoned"]) == (3, 30)  # none of the buffered lost
    assert (await store.health(NOW))["dropped"] == {"batches": 10, "calls": 10}


async def test_given_flushes_then_one_round_trip_each_and_a_flushed_script_cache_reloaded(
    client,
):
    store = make_store(client)
    await client.config_resetstat()
    for i in range(5):
        call = classified(f"rt.{i}", CallClass.ANSWERED, entered=BASE, closed=BASE + 9)
        assert await store.apply([call])
    stats = await client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 5
    assert "cmdstat_script|exists" not in stats  # no SCRIPT EXISTS before each pipeline
    assert stats["cmdstat_script|load"]["calls"] == 1

    await client.script_flush()  # as after a restart without the script cache
    assert await store.apply([classified("rt.5", CallClass.ANSWERED, entered=BASE, closed=BASE)])
    stats = await client.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 2  # NOSCRIPT, loaded, sent again
    assert (await store.summary("today", NOW))["answered"] == 6


async def test_given_many_and_old_events_then_the_stream_is_bounded_in_length_and_age(client):
    store = make_store(client, events_maxlen=100, events_max_age_s=1.0)
    for i in range(600):
        store.submit([], event={"Event": "Newchannel", "Linkedid": f"n.{i}"})
    assert await store.flush()
    assert 100 <= await client.xlen(redis_keys.AMI_EVENTS) < 300  # MAXLEN ~: whole nodes
    await asyncio.sleep(1.2)
    assert await store.apply([], event={"Event": "Hangup", "Linkedid": "n.last"})
    entries = await client.xrange(redis_keys.AMI_EVENTS)
    assert [f[b"Linkedid"] for _, f in entries] == [b"n.last"]  # the older ones: past 1 s


async def test_given_the_roles_redis_users_then_the_ami_user_writes_and_the_web_user_reads(
    client, redis_server
):
    """The ACL users of ivr/redis_acl.py run the store's own scripts: the batch (XADD, XTRIM
    MINID, TIME, PUBLISH) as the ami role, the summary (EVALSHA_RO) as the web role."""
    passwords = {"default": "unused", "ami": "ami-pass", "web": "web-pass"}
    for line in redis_acl.acl_file(passwords, "ivr:stt:jobs").splitlines()[1:]:
        await client.execute_command("ACL", "SETUSER", *line.split()[1:])

    def as_user(user: str) -> aioredis.Redis:
        return aioredis.Redis.from_url(redis_server.url, username=user, password=passwords[user])

    ami, web = as_user("ami"), as_user("web")
    try:
        writer, reader = make_store(ami), make_store(web)
        _, batches = reduce(scenario())
        for event, effects in batches:
            writer.submit(effects, event=event)
        assert await writer.flush()
        assert (await reader.summary("today", NOW))["offered"] == 5
        assert (await reader.health(NOW))["anomalies"]["unseen_channel"] == 1
        reader.submit([classified("x.1", CallClass.ANSWERED, entered=BASE, closed=BASE)])
        await reader.flush()  # the web role cannot write the metrics: Redis refuses (NOPERM)
        assert reader.counters["dropped_batches"] == 1 and reader.counters["batches_applied"] == 0
    finally:
        await ami.aclose()
        await web.aclose()


async def test_given_redis_restarted_then_aof_kept_everything(client, redis_server):
    _, batches = reduce(scenario())
    store = make_store(client)
    for event, effects in batches:
        store.submit(effects, event=event)
    assert await store.flush()
    before = await store.summary("month", NOW)
    counted = await client.zrange(redis_keys.METRICS_COUNTED, 0, -1)

    redis_server.stop()
    redis_server.start()
    assert await store.summary("month", NOW) == before
    assert await client.zrange(redis_keys.METRICS_COUNTED, 0, -1) == counted
    assert await client.xlen(redis_keys.AMI_EVENTS) == len(batches)
    for event, effects in batches:  # the counted set survived too: a replay changes nothing
        store.submit([fx for fx in effects if isinstance(fx, CallClassified)], event=event)
    assert await store.flush()
    assert (await store.summary("month", NOW))["offered"] == before["offered"]


async def test_given_redis_lost_acknowledged_writes_then_store_sends_them_again(
    client, redis_server
):
    store = make_store(client)
    await store.apply([classified("a.1", CallClass.ANSWERED, entered=BASE, closed=BASE + 9)])
    redis_server.stop()
    saved = redis_server.data.parent / "saved"
    shutil.copytree(redis_server.data, saved)
    redis_server.start()
    lost = [
        classified(f"l.{i}", CallClass.TIMED_OUT, entered=BASE, closed=BASE + 9) for i in range(5)
    ]
    for call in lost:
        assert await store.apply([call], event={"Event": "Hangup", "Linkedid": call.linkedid})
    # a crash that loses the last writes (appendfsync everysec): back to the saved AOF
    redis_server.stop(signal.SIGKILL)
    shutil.rmtree(redis_server.data)
    shutil.copytree(saved, redis_server.data)
    redis_server.start()
    assert (await store.summary("today", NOW))["timed_out"] == 0

    assert await store.apply([classified("a.2", CallClass.ANSWERED, entered=BASE, closed=BASE + 9)])
    assert store.counters["resent"] == 5 and store.counters["lost_in_redis"] == 0
    doc = await store.summary("today", NOW)
    assert (doc["answered"], doc["timed_out"]) == (2, 5)
    assert await client.xlen(redis_keys.AMI_EVENTS) == 5


# --- the listener: resync after a login, and replay after a restart -----------------------
class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(**fields: str) -> AmiMessage:
    return AmiMessage(tuple(fields.items()))


class FakeAmi:
    """Answers CoreShowChannels and QueueStatus like Asterisk would."""

    def __init__(
        self, linkedids: list[str], members: list[dict[str, str]], queues_loaded: bool = True
    ) -> None:
        self.linkedids = linkedids
        self.members = members
        self.queues_loaded = queues_loaded
        self.connected = True
        self.counters = {"events": 0, "logins": 1, "reconnects": 0}

    async def send_list_action(self, action: str, fields=None, *, timeout=None):
        if action == "CoreShowChannels":
            return [
                message(Event="CoreShowChannel", Channel=f"PJSIP/trunk-{lid}", Uniqueid=lid,
                        Linkedid=lid, Application="Queue", Duration="00:01:00")
                for lid in self.linkedids
            ]  # fmt: skip
        assert action == "QueueStatus"
        if not self.queues_loaded:
            reply = {"Response": "Error", "Message": "Invalid/unknown command: QueueStatus."}
            raise AmiError(f"AMI QueueStatus failed: {reply['Message']}", response=reply)
        return [message(Event="QueueParams", Queue="consultation", Calls="1")] + [
            message(Event="QueueMember", **m) for m in self.members
        ]


async def feed(listener: MetricsListener, clock: FakeClock, events: list[dict]) -> None:
    for event in events:
        clock.now = float(event["Timestamp"]) + DELAY
        await listener.on_event(message(**event))


async def test_given_calls_ended_while_link_down_when_login_then_queue_log_or_unknown(
    client, tmp_path
):
    store = make_store(client)
    clock = FakeClock(BASE)
    queue_log = tmp_path / "queue_log"
    listener = MetricsListener(store, CONFIG, queue_log, clock=clock)
    seen = answered("q.1", 0, 5)[:4] + ivr_only("u.1", 1)[:2] + waiting("live.1", 2, "repair")
    await feed(listener, clock, sorted(seen, key=lambda e: float(e["Timestamp"])))
    # the link drops; q.1 is answered after 5 s and ends, u.1 ends in the menu
    queue_log.write_text(
        f"{BASE + 1:.0f}|q.1|consultation|NONE|ENTERQUEUE||13912345678|1\n"
        f"{BASE + 6:.0f}|q.1|consultation|李四|CONNECT|5|q.1-agent|1\n"
        f"{BASE + 26:.0f}|q.1|consultation|李四|COMPLETECALLER|5|20|1\n"
        f"{BASE + 3:.0f}|live.1|repair|NONE|ENTERQUEUE||13912345678|1\n",
        encoding="utf-8",
    )
    clock.now = BASE + 60
    ami = FakeAmi(
        ["live.1"],
        [
            {"Queue": "consultation", "Name": "李四", "Location": AGENT, "Status": "1",
             "Paused": "0", "InCall": "0"},
            {"Queue": "repair", "Name": "王五", "Location": "PJSIP/agent-1002", "Status": "1",
             "Paused": "1", "InCall": "0"},
        ],
    )  # fmt: skip
    await listener.on_login(ami)
    assert await store.flush()

    doc = await store.summary("today", NOW)
    assert doc["queues"]["consultation"]["answered"] == 1  # from queue_log: 5 s
    assert doc["ivr_only"] == 0 and doc["offered"] == 1
    assert await counters(client, "day", "2025-11-23") == {"answered": 1, "unknown": 1}
    health = await store.health(NOW)
    assert health["anomalies"] == {"unknown_outcome": 1}  # u.1 only
    assert health["resync"] == {
        "closed": 2, "closed_from_queue_log": 1, "closed_unknown": 1, "resyncs": 1,
    }  # fmt: skip
    assert [w["linkedid"] for w in doc["queues"]["repair"]["over_threshold_now"]] == ["live.1"]
    assert doc["queues"]["repair"]["waiting_now"] == 1
    assert (doc["agents_free"], doc["agents_paused"]) == (1, 1)
    entries = await client.xrange(redis_keys.AMI_EVENTS)
    markers = [f for _, f in entries if f[b"Event"] == RESYNC_EVENT.encode()]
    assert [m[b"Closed"] for m in markers] == [b"q.1 u.1"]
    assert listener.status(ami)["closed_from_queue_log"] == 1

    # the ami role restarts: the new one rebuilds its state from the stream
    clock.now = BASE + 100
    restarted = MetricsListener(make_store(client), CONFIG, queue_log, clock=clock)
    assert await restarted.replay(window_s=10 * 365 * 86400) == len(entries)
    assert restarted.state.open_linkedids() == {"live.1"}
    rest = [
        ev("QueueCallerAbandon", 110, "live.1", Queue="repair"),
        ev("QueueCallerLeave", 110, "live.1", Queue="repair"),
        ev("Hangup", 110, "live.1"),
    ]
    # live.1 lived through the outage, so its end is read from queue_log (events may be lost)
    with queue_log.open("a", encoding="utf-8") as log:
        log.write(f"{BASE + 110:.0f}|live.1|repair|NONE|ABANDON|1|1|107\n")
    await feed(restarted, clock, rest)
    await restarted.on_login(FakeAmi([], []))
    assert await restarted.store.flush()
    doc = await store.summary("today", NOW)
    assert (doc["offered"], doc["answered"], doc["abandoned"]) == (2, 1, 1)
    assert (doc["waiting_now"], doc["agents_free"], doc["agents_paused"]) == (0, 0, 0)
    assert "duplicate_outcome" not in (await store.health(NOW))["anomalies"]


async def test_given_app_queue_not_loaded_yet_when_login_then_calls_resynced_link_kept(client):
    store = make_store(client)
    clock = FakeClock(BASE)
    listener = MetricsListener(store, CONFIG, None, members_wait_s=0.6, clock=clock)
    member = {"Event": "QueueMemberStatus", "Queue": "repair", "Interface": AGENT,
              "MemberName": "李四", "Status": "1", "Paused": "0"}  # fmt: skip
    await feed(listener, clock, [*waiting("w.1", 0, "repair"), {**member, "Timestamp": f"{BASE}"}])
    clock.now = BASE + 30
    await listener.on_login(FakeAmi([], [], queues_loaded=False))  # no exception: link kept
    assert await store.flush()
    doc = await store.summary("today", BASE + 31)
    assert (doc["waiting_now"], doc["agents_free"]) == (0, 1)  # agents kept until next login
    assert await counters(client, "day", "2025-11-23") == {"unknown": 1}


async def test_given_events_the_listener_does_not_keep_then_skipped(client):
    store = make_store(client)
    listener = MetricsListener(store, CONFIG, None, clock=FakeClock(BASE))
    await listener.on_event(message(Event="Newexten", Linkedid="x", Uniqueid="x"))
    await listener.on_event(message(Event="VarSet", Variable="BRIDGEPEER", Value="x"))
    await listener.on_event(message(Event="VarSet", Variable="__IVR_QUEUE", Value="repair",
                                    Linkedid="x", Uniqueid="x"))  # fmt: skip
    await listener.on_event(message(Event="VarSet", Variable="QUEUESTATUS", Value="TIMEOUT",
                                    Linkedid="x", Uniqueid="x"))  # fmt: skip
    assert await store.flush()
    assert (listener.counters["skipped"], listener.counters["kept"]) == (2, 2)
    assert await client.xlen(redis_keys.AMI_EVENTS) == 2


# --- through the real stack ---------------------------------------------------------------
def test_given_answered_call_when_ivr_metrics_json_then_counted_once_in_consultation(
    stack, cli_env, capsys, redis_client, wait_for
):
    def document() -> dict[str, Any]:
        assert main(["metrics", "--period", "today", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    def answered_in(doc: dict[str, Any], queue: str) -> int:
        part = doc["queues"].get(queue, {})
        return part.get("answered", 0) + part.get("answered_late", 0)

    before = document()
    report = asyncio.run(
        place_call(stack.settings, did="95158", caller="13800138020", keys=["4"], hold_s=30)
    )
    assert report.queue == "consultation"
    assert report.event_counts.get("AgentConnect", 0) >= 1

    def counted() -> dict[str, Any] | None:
        doc = document()
        return (
            doc if answered_in(doc, "consultation") > answered_in(before, "consultation") else None
        )

    after = wait_for(counted, 10, "the call in `ivr metrics`")
    assert after["offered"] >= 1
    assert after["offered"] == before["offered"] + 1
    assert answered_in(after, "consultation") == answered_in(before, "consultation") + 1
    assert after["answered"] == before["answered"] + 1  # the simulated agent answers in 1 s
    assert redis_client.zscore(redis_keys.METRICS_COUNTED, report.linkedid) is not None
    time.sleep(1.0)
    assert document()["offered"] == after["offered"]  # counted once, and stays so
    assert main(["metrics", "--period", "today"]) == 0
    table = capsys.readouterr().out
    assert "consultation" in table and "13800138020" not in table


# --- agent states (ivr.core.agent_states) through the listener and the store ---------------
async def test_given_agent_events_then_agent_states_in_redis_masked_resynced_and_replayed(
    client, redis_server
):
    store = make_store(client)
    clock = FakeClock(BASE)
    listener = MetricsListener(store, CONFIG, None, clock=clock)
    member = {"Queue": "repair", "Interface": "PJSIP/1001", "MemberName": "1001 张三"}
    call = {**member, "DestUniqueid": "c.1-agent", "DestLinkedid": "c.1", "Privilege": "agent,all"}
    events = [
        {"Event": "QueueMemberAdded", **member, "Status": "1", "Paused": "0", "Wrapuptime": "5",
         "Timestamp": f"{BASE:.6f}"},
        *answered("c.1", 1, 3, "repair")[:4],
        ev("AgentCalled", 4.5, "c.1", **call),
    ]  # fmt: skip
    await feed(listener, clock, events)
    assert await store.flush()
    stored = json.loads(await client.hget(redis_keys.LIVE_AGENT_STATES, "1001"))
    assert (stored["state"], stored["caller"]) == ("ringing", "139******78")
    await feed(listener, clock, [ev("AgentConnect", 5, "c.1", **call, HoldTime="4")])
    # the phone's own state (not kept in the stream) reaches the agents only
    clock.now = BASE + 6
    await listener.on_event(message(Event="DeviceStateChange", Device="PJSIP/1001", State="INUSE"))
    clock.now = BASE + 25
    await listener.on_event(
        message(Event="DeviceStateChange", Device="PJSIP/1001", State="NOT_INUSE")
    )
    await feed(listener, clock, [ev("AgentComplete", 25, "c.1", **call, TalkTime="20")])
    assert await store.flush()
    doc = await store.summary("today", BASE + 27)
    assert doc["agents"] == [
        {"work_number": "1001", "name": "张三", "state": "wrapup", "label": "后处理",
         "reason": "", "since": round(BASE + 25 + DELAY, 3), "until": BASE + 30 + DELAY,
         "caller_masked": "", "calls_today": 1, "mean_handle_s": 25.0, "queues": ["repair"]},
    ]  # fmt: skip
    later = (await store.summary("today", BASE + 40))["agents"][0]
    assert (later["state"], later["since"]) == ("idle", round(BASE + 30 + DELAY, 3))
    assert b"13912345678" not in b"".join(
        (await client.hgetall(redis_keys.LIVE_AGENT_STATES)).values()
    )
    assert not any(
        f[b"Event"] == b"DeviceStateChange" for _, f in await client.xrange(redis_keys.AMI_EVENTS)
    )

    # the web role reads them, and cannot write them
    passwords = {"default": "unused", "ami": "ami-pass", "web": "web-pass"}
    for line in redis_acl.acl_file(passwords, "ivr:stt:jobs").splitlines()[1:]:
        await client.execute_command("ACL", "SETUSER", *line.split()[1:])
    web = aioredis.Redis.from_url(redis_server.url, username="web", password="web-pass")
    try:
        assert (await make_store(web).summary("today", BASE + 40))["agents"][0]["calls_today"] == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            await web.hset(redis_keys.LIVE_AGENT_STATES, "1001", "{}")
    finally:
        await web.aclose()

    # a resync: QueueStatus wins (paused 小休), a member it does not list is gone (离线)
    other = {"Event": "QueueMemberAdded", "Queue": "billing", "Interface": "PJSIP/1002",
             "MemberName": "1002 李四", "Status": "1", "Timestamp": f"{BASE + 41:.6f}"}  # fmt: skip
    await feed(listener, clock, [other])
    clock.now = BASE + 50
    listed = [{"Queue": "repair", "Name": "1001 张三", "Location": "PJSIP/1001",
               "Status": "1", "Paused": "1", "PausedReason": "小休", "InCall": "0"}]  # fmt: skip
    await listener.on_login(FakeAmi([], listed))
    assert await store.flush()
    agents = {a["work_number"]: a for a in (await store.summary("today", BASE + 51))["agents"]}
    assert (agents["1001"]["state"], agents["1001"]["reason"]) == ("paused", "小休")
    assert (agents["1002"]["state"], agents["1002"]["queues"]) == ("offline", [])
    assert listener.status(FakeAmi([], []))["agents"] == 2

    # the ami role restarts: today's calls come back from the stream's replay
    restarted = MetricsListener(make_store(client), CONFIG, None, clock=clock)
    await restarted.replay(window_s=10 * 365 * 86400)
    assert restarted.agents.agents["1001"].calls == 1
