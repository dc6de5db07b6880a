"""The metrics oracle: Redis's answer-rate counters against Asterisk's own queue_log.

Real calls (``ivr call``'s Originate) go through a private stack — Asterisk 22, the FastAGI
menu, the ami role, Redis — with short thresholds (6 s for the desks and the emergency queue;
30 s for emergency-backup, so that a call answered there after an overflow is held to its
FIRST queue's 6 s). Each scenario places two waves of calls at once, mixing:

- answered fast (the simulated agent answers after 1 s), just under the threshold (4.5 s)
  and just over it (7.5 s). queue_log has whole seconds, so an exact wait in (6 s, 7 s) may
  read 6 there (answered) while the reducer's exact timestamps say late: the waits are kept
  out of that second. They come out as the agent's delay + ~10 ms, or + 1 s when app_queue
  rechecks (see ``staggered``);
- abandoned in the queue, abandoned in the fallback queue after timing out of the first;
- timed out (Queue()'s timeout, IVR_QUEUE_TIMEOUT = 10 s here, then the fallback queue
  consultation, then give up);
- overflow to a second queue: complaints has no member, so its callers time out into
  consultation and are answered there (wait from the FIRST entry, complaints' threshold);
  in the second wave the emergency crew has nobody, so emergency-DID callers overflow to
  emergency-backup (IVR_EMERGENCY_OVERFLOW_S = 10 s) and are answered or hang up there;
- emergency-DID calls (no menu) and the menu's emergency key; hang-ups in the menu.

The simulated agent answers each call after that call's own delay (``place_call(...,
agent_delay_s=)``: ``__SIM_ANSWER_DELAY``, inherited through the queue's dial), and it is
set to ``ringinuse`` so that it takes any number of calls at once: every wait is the delay
chosen, whatever else is queued. Calls entering the same queue are half a second apart.

The oracle is queue_log (ivr.adapters.metrics.queue_log parses and classifies it with the same
thresholds). After each scenario, for the calls placed in it: the Redis counters of the day
bucket (MetricsStore.summary, what ``ivr metrics`` and the web show; deltas over the
scenario) equal queue_log's, per class and per queue first entered; ``ivr_only`` equals the
menu hang-ups (queue_log never sees them); every call is counted exactly once, none as
``unknown``. Three scenarios: plain, the ami role stopped mid-run and started again after
calls ended and others began and ended while it was down, and Redis stopped and started mid-run.

Wall time: about 70 s per scenario (two waves of ~32 s: an 11.5 s menu, then up to two
10 s queue timeouts), ~3 min 50 s for the file with the stack's start and stop. Per-call
details of every scenario (what queue_log and the listener said of each call, the waits) go
to test-artifacts/metrics-oracle/<scenario>.json, the events the listener stored to
<scenario>-events.jsonl, the stack's logs to stack-logs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from ivr import redis_keys
from ivr.adapters.metrics import queue_log
from ivr.adapters.metrics.store import MetricsStore, reducer_config
from ivr.adapters.sql.call_figures import call_figures
from ivr.adapters.sql.db import CallFactRow
from ivr.adapters.sql.db import settings_engine as sql_engine
from ivr.adapters.telephony.originate import place_call
from ivr.core.call_report import CallReport
from ivr.core.figures import FiguresConfig, Window
from ivr.core.metrics import CallClass
from ivr.devstack.stack import Stack, asterisk_instance, isolated_settings, pid_alive
from ivr.settings import MetricsSettings, Settings
from tests.stack_support import keep_logs, open_around_the_clock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "metrics-oracle"

HOTLINE = "95158"
EMERGENCY_DID = "96777"
AGENT = "Local/agent@sim-agents/n"
QUEUES = ("consultation", "repair", "billing", "complaints", "emergency", "emergency-backup")
THRESHOLD_S = 6.0
BACKUP_THRESHOLD_S = 30.0  # emergency-backup's own: an overflow keeps the first queue's 6 s
METRICS = MetricsSettings(
    default_threshold_s=THRESHOLD_S,
    thresholds=dict.fromkeys(QUEUES, THRESHOLD_S) | {"emergency-backup": BACKUP_THRESHOLD_S},
)
CONFIG = reducer_config(METRICS)

# Dialplan globals for the run. Queue()'s timeout counts from the whole second of the entry,
# so it strikes 9..10 s after it: clear of the slowest answer (7.5 s).
QUEUE_TIMEOUT_S = 10
OVERFLOW_S = 10

# The simulated agent's answer delay per call (s). The wait is the delay + ~10 ms, + 1 s
# when app_queue rechecks (see `staggered`): "just under" stays clear of 6 s even then.
FAST, UNDER, OVER, NEVER = 1.0, 4.5, 7.5, 300.0
MENU_S = 11.5  # greeting, emergency notice, menu: from the call's start to the queue entry
EMERGENCY_JOIN_S = 0.3  # an emergency-DID call enters the emergency queue this soon
JOIN_SPACING_S = 0.5  # between two calls entering the same queue
LONG = 90.0  # a caller who holds on until the call ends by itself

ANSWERED, LATE = CallClass.ANSWERED, CallClass.ANSWERED_LATE
ABANDONED, TIMED_OUT, IVR_ONLY = CallClass.ABANDONED, CallClass.TIMED_OUT, CallClass.IVR_ONLY
QUEUE_CLASSES = (ANSWERED, LATE, ABANDONED, TIMED_OUT)
SCOPE_TOTAL = "(total)"


# --- the calls ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Plan:
    """One call to place: what the caller does, and what queue_log must then say of it."""

    kind: str
    expect: CallClass
    queue: str | None  # the queue first entered; None when it never queues
    did: str = HOTLINE
    keys: tuple[str, ...] = ()
    delay: float | None = None  # the simulated agent's answer delay for this call
    hold_s: float = LONG  # the caller hangs up after this long
    start_s: float = 0.0  # placed this long after the wave starts


def desk(key: str, queue: str, delay: float, expect: CallClass, kind: str, **kw: Any) -> Plan:
    return Plan(kind, expect, queue, keys=(key,), delay=delay, **kw)


def repair(delay: float, expect: CallClass, kind: str, **kw: Any) -> Plan:
    return desk("1", "repair", delay, expect, kind, **kw)


def consultation(delay: float, expect: CallClass, kind: str, **kw: Any) -> Plan:
    return desk("4", "consultation", delay, expect, kind, **kw)


def complaints(delay: float, expect: CallClass, kind: str, **kw: Any) -> Plan:
    """complaints has no member: 10 s there, then the fallback queue consultation."""
    return desk("3", "complaints", delay, expect, kind, **kw)


def emergency(delay: float, expect: CallClass, kind: str, **kw: Any) -> Plan:
    return Plan(kind, expect, "emergency", did=EMERGENCY_DID, delay=delay, **kw)


def menu_hangup(hold_s: float) -> Plan:
    return Plan("menu hang-up", IVR_ONLY, None, keys=(), hold_s=hold_s)


def answered_mix(repeat: int) -> list[Plan]:
    """Fast, just under and just over the threshold, in repair and in consultation."""
    plans: list[Plan] = []
    for _ in range(repeat):
        for desk_queue in (repair, consultation):
            plans += [
                desk_queue(FAST, ANSWERED, "fast"),
                desk_queue(UNDER, ANSWERED, "just under"),
                desk_queue(OVER, LATE, "just over"),
            ]
    return plans


def first_wave() -> list[Plan]:
    """Every desk queue and the emergency crew staffed (complaints excepted). In each queue
    the longest calls come first (see :func:`staggered`)."""
    return [
        repair(NEVER, TIMED_OUT, "timed out of repair, then of the fallback"),
        repair(NEVER, TIMED_OUT, "timed out of repair, then of the fallback"),
        repair(
            NEVER,
            ABANDONED,
            "timed out of repair, abandoned in the fallback",
            hold_s=MENU_S + QUEUE_TIMEOUT_S + 4.5,
        ),
        consultation(NEVER, TIMED_OUT, "timed out of consultation"),
        complaints(NEVER, TIMED_OUT, "overflow complaints -> consultation timed out"),
        complaints(FAST, LATE, "overflow complaints -> consultation answered"),
        complaints(FAST, LATE, "overflow complaints -> consultation answered"),
        emergency(NEVER, ABANDONED, "emergency abandoned after overflow", hold_s=OVERFLOW_S + 4),
        emergency(NEVER, ABANDONED, "emergency DID abandoned", hold_s=4),
        emergency(FAST, ANSWERED, "emergency DID fast"),
        emergency(FAST, ANSWERED, "emergency DID fast"),
        emergency(UNDER, ANSWERED, "emergency DID just under"),
        emergency(OVER, LATE, "emergency DID just over"),
        Plan("menu emergency key", ANSWERED, "emergency", keys=("9",), delay=FAST),
        repair(NEVER, ABANDONED, "abandoned in queue", hold_s=MENU_S + 4),
        repair(NEVER, ABANDONED, "abandoned in queue", hold_s=MENU_S + 4),
        *answered_mix(2),
        consultation(UNDER, ANSWERED, "just under"),
        menu_hangup(5),
        menu_hangup(5),
        menu_hangup(9),
    ]


def second_wave() -> list[Plan]:
    """The emergency crew has nobody: emergency calls overflow to emergency-backup."""
    return [
        repair(NEVER, TIMED_OUT, "timed out of repair, then of the fallback"),
        consultation(NEVER, TIMED_OUT, "timed out of consultation"),
        complaints(FAST, LATE, "overflow complaints -> consultation answered"),
        complaints(FAST, LATE, "overflow complaints -> consultation answered"),
        complaints(UNDER, LATE, "overflow complaints -> consultation answered"),
        emergency(NEVER, ABANDONED, "emergency abandoned after overflow", hold_s=OVERFLOW_S + 4),
        emergency(FAST, LATE, "emergency overflow -> backup answered"),
        emergency(FAST, LATE, "emergency overflow -> backup answered"),
        emergency(FAST, LATE, "emergency overflow -> backup answered"),
        emergency(UNDER, LATE, "emergency overflow -> backup answered"),
        repair(NEVER, ABANDONED, "abandoned in queue", hold_s=MENU_S + 4),
        consultation(NEVER, ABANDONED, "abandoned in queue", hold_s=MENU_S + 4),
        *answered_mix(2),
        repair(FAST, ANSWERED, "fast"),
        consultation(FAST, ANSWERED, "fast"),
        menu_hangup(5),
        menu_hangup(9),
    ]


def staggered(plans: Sequence[Plan]) -> list[Plan]:
    """Delay the starts so that no two calls enter the same queue within JOIN_SPACING_S.

    With ``strategy = ringall`` app_queue lets a caller ring only when every caller ahead
    of it is already ringing; one that checks while the caller ahead is still between its
    entry and its first ring waits a whole second (app_queue's RECHECK), and so does every
    caller behind it. Callers entering together would wait their agent's delay plus 1 s or
    more: "just under" would land inside (6 s, 7 s).
    """
    next_free: dict[str, float] = {}
    out = []
    for plan in plans:
        if plan.queue is None:
            out.append(plan)
            continue
        lead = EMERGENCY_JOIN_S if plan.did == EMERGENCY_DID else MENU_S
        join = max(plan.start_s + lead, next_free.get(plan.queue, 0.0))
        next_free[plan.queue] = join + JOIN_SPACING_S
        out.append(replace(plan, start_s=join - lead))
    return out


# --- the stack ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("oracle")
    settings = isolated_settings(
        base / "run",
        f"toracle{os.getpid()}",
        metrics=METRICS,
        routing_dir=open_around_the_clock(base / "routing"),
    )
    stack = Stack(settings, sim_agents=True)
    stack.up()
    inst = asterisk_instance(settings)  # after up(): it made the AMI secret
    try:
        inst.rx(f"queue set ringinuse yes on {AGENT}")  # any number of calls at once
        inst.rx(f"queue remove member {AGENT} from complaints")  # its callers overflow
        inst.rx(f"dialplan set global IVR_QUEUE_TIMEOUT {QUEUE_TIMEOUT_S}")
        inst.rx(f"dialplan set global IVR_EMERGENCY_OVERFLOW_S {OVERFLOW_S}")
        yield stack
    finally:
        stack.down()
        keep_logs(settings, "oracle-logs")
        inst.remove()


def rx(stack: Stack, command: str) -> Awaitable[str]:
    return asyncio.to_thread(asterisk_instance(stack.settings).rx, command)


async def staff_emergency(stack: Stack, present: bool) -> None:
    staffed = AGENT in await rx(stack, "queue show emergency")
    if present == staffed:
        return
    if present:
        await rx(stack, f"queue add member {AGENT} to emergency")
        await rx(stack, f"queue set ringinuse yes on {AGENT} in emergency")
    else:
        await rx(stack, f"queue remove member {AGENT} from emergency")


async def quiet(stack: Stack, timeout: float = 30.0) -> None:
    """No channel left in Asterisk (a failed scenario must not leak calls into the next)."""
    deadline = time.monotonic() + timeout
    while "0 active channels" not in await rx(stack, "core show channels count"):
        if time.monotonic() > deadline:
            await rx(stack, "channel request hangup all")
            await asyncio.sleep(2)
            return
        await asyncio.sleep(0.5)


# --- disruptions --------------------------------------------------------------------------
async def stop_role(stack: Stack, role: str) -> None:
    """SIGTERM one role and wait until it is gone (the ami role flushes what it holds)."""
    pid = stack.running()[role].pid
    os.kill(pid, signal.SIGTERM)
    while pid_alive(pid):
        await asyncio.sleep(0.05)


async def start_role(stack: Stack, role: str) -> None:
    await asyncio.to_thread(stack.restart_role, role)


Action = tuple[float, Callable[[], Awaitable[None]]]  # (seconds after the wave starts, what)


# --- reading both sides -------------------------------------------------------------------
Tally = Counter[tuple[str, str]]  # (queue first entered or SCOPE_TOTAL, class) -> calls


@dataclass(slots=True)
class RedisSide:
    counts: Tally
    anomalies: dict[str, int]
    resync: dict[str, int]
    dropped: dict[str, int]
    counted: int


async def read_redis(settings: Settings, instants: Sequence[float]) -> RedisSide:
    """The day buckets of ``instants`` (summed): the document ``ivr metrics`` prints, plus
    the ``unknown`` field the document leaves out, and the health hashes."""
    client = aioredis.Redis.from_url(settings.redis.url, **settings.redis_auth(), socket_timeout=5)
    try:
        store = MetricsStore.from_settings(client, settings.metrics, settings.redis.events_maxlen)
        days = {store.buckets(at)["day"]: at for at in instants}
        counts: Tally = Counter()
        for day, at in days.items():
            doc = await store.summary("today", at)
            for klass in CallClass:
                counts[(SCOPE_TOTAL, klass.value)] += doc[klass.value]
                for queue, part in doc["queues"].items():
                    counts[(queue, klass.value)] += part[klass.value]
            unknown = await client.hget(redis_keys.metrics_counts("day", day), "unknown")
            counts[(SCOPE_TOTAL, "unknown")] += int(unknown or 0)
            for raw in await client.smembers(redis_keys.metrics_queues("day", day)):
                queue = raw.decode()
                unknown = await client.hget(redis_keys.metrics_counts("day", day, queue), "unknown")
                counts[(queue, "unknown")] += int(unknown or 0)
        health = await store.health(time.time())
        counted = await client.zcard(redis_keys.METRICS_COUNTED)
    finally:
        await client.aclose()
    return RedisSide(
        +counts, health["anomalies"], health["resync"], health["dropped"], int(counted)
    )


def keys_of(linkedids: Sequence[str]) -> list[str]:
    """The keys a call may be counted under: its Linkedid, or, for a call the listener
    knows only from queue_log (it began and ended while the AMI link was down), its caller
    channel's Uniqueid, the queue_log callid (the hotline's Local ``;2`` half here)."""
    return [key for lid in linkedids for key in (lid, f"{lid}-2")]


async def counted_as(settings: Settings, linkedids: Sequence[str]) -> dict[str, list[str]]:
    """Under which of its keys (:func:`keys_of`) each call is in ``ivr:metrics:counted``."""
    keys = keys_of(linkedids)
    client = aioredis.Redis.from_url(settings.redis.url, **settings.redis_auth(), socket_timeout=5)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zscore(redis_keys.METRICS_COUNTED, key)
            scores = await pipe.execute()
    finally:
        await client.aclose()
    found = {key for key, score in zip(keys, scores, strict=True) if score is not None}
    return {lid: [key for key in (lid, f"{lid}-2") if key in found] for lid in linkedids}


def delta(after: dict[Any, int], before: dict[Any, int]) -> dict[Any, int]:
    keys = set(after) | set(before)
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)
    }


def read_queue_log(path: Path, offset: int) -> queue_log.QueueLog:
    with path.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    return queue_log.parse(text.splitlines())


def oracle_tally(calls: Sequence[queue_log.QueueLogCall]) -> Tally:
    summary = queue_log.summarize(calls)
    tally: Tally = Counter()
    for klass in QUEUE_CLASSES:
        tally[(SCOPE_TOTAL, klass.value)] = getattr(summary.total, klass.value)
        for queue, counters in summary.queues.items():
            tally[(queue, klass.value)] = getattr(counters, klass.value)
    return +tally


async def dump_events(settings: Settings, since: float, target: Path) -> list[dict[str, str]]:
    """The AMI events the listener stored since ``since``; also written out for a
    post-mortem."""
    client = aioredis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), socket_timeout=5, decode_responses=True
    )
    try:
        entries = await client.xrange(redis_keys.AMI_EVENTS, min=f"{int(since * 1000)}-0")
    finally:
        await client.aclose()
    events = [{"id": entry_id, **fields} for entry_id, fields in entries]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
    return events


def listener_outcomes(log: Path, linkedids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """What the ami role logged for each call ("call <id> <class> (queue ..., waited ...)")."""
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("call_id") in linkedids and "state" in entry:
            outcomes.setdefault(entry["call_id"], []).append(
                {"class": entry["state"], "queue": entry.get("queue"), "msg": entry.get("msg")}
            )
    return outcomes


# --- one scenario -------------------------------------------------------------------------
@dataclass(slots=True)
class Placed:
    plan: Plan
    linkedid: str = ""
    report: CallReport | None = None
    error: str = ""


def callers_settings(settings: Settings) -> Settings:
    """The stack's settings for the simulated callers' own AMI links (``place_call``): pings
    relaxed, so that this busy event loop (a few dozen links, each receiving every event)
    cannot drop a caller's link and lose its hang-up. The ami role keeps its 1 s pings."""
    ami = settings.ami.model_copy(update={"ping_interval_s": 5.0, "ping_timeout_s": 10.0})
    return settings.model_copy(update={"ami": ami})


async def place(stack: Stack, plan: Plan, number: int, t0: float) -> Placed:
    await asyncio.sleep(max(0.0, t0 + plan.start_s - time.monotonic()))
    placed = Placed(plan)
    try:
        placed.report = await place_call(
            callers_settings(stack.settings),
            did=plan.did,
            caller=f"1380013{number:04d}",
            keys=plan.keys,
            hold_s=plan.hold_s,
            agent_delay_s=plan.delay,
            timeout_s=90,
        )
        placed.linkedid = placed.report.linkedid
    except Exception as exc:  # reported with the call's plan below
        placed.error = f"{type(exc).__name__}: {exc}"
        placed.linkedid = str(getattr(exc, "details", {}).get("linkedid", ""))
    return placed


async def wave(
    stack: Stack,
    plans: Sequence[Plan],
    actions: Sequence[Action],
    first: int,
    lags: list[float],
) -> list[Placed]:
    t0 = time.monotonic()

    async def at(offset: float, action: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
        await action()

    calls = [place(stack, plan, first + i, t0) for i, plan in enumerate(plans)]
    monitor = asyncio.create_task(watch_loop(lags))
    try:
        results = await asyncio.gather(*calls, *(at(offset, act) for offset, act in actions))
    finally:
        monitor.cancel()
    return [r for r in results if isinstance(r, Placed)]


async def watch_loop(lags: list[float], every: float = 0.1) -> None:
    """How late this event loop runs (the callers' key presses and AMI links ride on it)."""
    while True:
        due = time.monotonic() + every
        await asyncio.sleep(every)
        lags.append(time.monotonic() - due)


async def run_scenario(
    stack: Stack,
    name: str,
    first_actions: Sequence[Action] = (),
    extra_first: Sequence[Plan] = (),
) -> dict[str, Any]:
    """Place the two waves, then check Redis against queue_log; returns the report."""
    settings = stack.settings
    inst = asterisk_instance(settings)
    await quiet(stack)
    await staff_emergency(stack, present=True)
    started = time.time()
    before = await read_redis(settings, [started])
    offset = inst.queue_log.stat().st_size

    lags: list[float] = []
    placed = await wave(stack, staggered([*first_wave(), *extra_first]), first_actions, 0, lags)
    await staff_emergency(stack, present=False)
    try:
        placed += await wave(stack, staggered(second_wave()), (), len(placed), lags)
    finally:
        await staff_emergency(stack, present=True)
    ended = time.time()

    failed = [f"{p.plan.kind}: {p.error}" for p in placed if p.error]
    worst = sorted(lags)[-5:]
    assert not failed, f"calls that did not complete: {failed}; worst loop lags {worst}"
    linkedids = [p.linkedid for p in placed]
    assert len(set(linkedids)) == len(placed) >= 60

    # The listener counts a call once its last channel has hung up: give it a moment.
    deadline = time.monotonic() + 20
    keys = await counted_as(settings, linkedids)
    while not all(keys.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        keys = await counted_as(settings, linkedids)
    await asyncio.sleep(1.0)  # anything counted twice or late would show now
    keys = await counted_as(settings, linkedids)
    counted = {lid for lid, found in keys.items() if found}
    after = await read_redis(settings, [started, ended])

    # The oracle: queue_log's lines of this scenario, classified with the same thresholds.
    log = read_queue_log(inst.queue_log, offset)
    oracle = queue_log.classify_calls(log.records, CONFIG)
    callid = {p.linkedid: f"{p.linkedid}-2" for p in placed}  # the hotline's Local ;2 half
    ours = set(callid.values())

    redis_counts = delta(dict(after.counts), dict(before.counts))
    expected_counts = dict(oracle_tally(list(oracle.values())))
    menu_hangups = sum(p.plan.queue is None for p in placed)
    expected_counts[(SCOPE_TOTAL, IVR_ONLY.value)] = menu_hangups
    anomalies = delta(after.anomalies, before.anomalies)
    outcomes = listener_outcomes(stack.run_dir / "logs" / "ami.log", set(keys_of(linkedids)))

    per_call = []
    disagreements = []
    for p in placed:
        truth = oracle.get(callid[p.linkedid])
        told = [o for key in keys_of([p.linkedid]) for o in outcomes.get(key, [])]
        row = {
            "kind": p.plan.kind,
            "linkedid": p.linkedid,
            "planned": p.plan.expect.value,
            "queue_log": None if truth is None else truth.klass and truth.klass.value,
            "queue_log_queues": None if truth is None else list(truth.queues),
            "queue_log_wait_s": None if truth is None else truth.wait_s,
            "listener": told,
            "counted_as": keys[p.linkedid],
        }
        per_call.append(row)
        truth_class = IVR_ONLY.value if truth is None else row["queue_log"]
        truth_queue = "" if truth is None else truth.queue
        if [(o["class"], o["queue"] or "") for o in told] != [(truth_class, truth_queue)]:
            disagreements.append(row)

    events = await dump_events(settings, started, ARTIFACTS / f"{name}-events.jsonl")
    report = {
        "scenario": name,
        "calls": len(placed),
        "wall_s": round(ended - started, 1),
        "mix": dict(Counter(row["queue_log"] or IVR_ONLY.value for row in per_call)),
        "redis": {f"{q}/{k}": n for (q, k), n in sorted(redis_counts.items())},
        "queue_log": {f"{q}/{k}": n for (q, k), n in sorted(expected_counts.items())},
        "anomalies": anomalies,
        "resync": delta(after.resync, before.resync),
        "dropped": delta(after.dropped, before.dropped),
        "queue_log_garbled": log.garbled,
        # Asterisk publishes AgentComplete without the caller's channel when that channel is
        # already gone; the reducer frees its agent (Queue + Interface), no anomaly.
        "agent_complete_without_channel": sum(
            e.get("Event") == "AgentComplete" and "Linkedid" not in e for e in events
        ),
        "worst_loop_lags_s": [round(x, 3) for x in sorted(lags)[-5:]],
        "disagreements": disagreements,
        "per_call": per_call,
    }
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    where = f"(details: {ARTIFACTS / name}.json)"

    # 1. queue_log saw exactly our calls that asked for a person, each to its end.
    assert {c for c in oracle if c not in ours} == set(), f"strange calls in queue_log {where}"
    unfinished = [c for c, call in oracle.items() if call.klass is None]
    assert unfinished == [], f"calls still queued per queue_log {where}"
    assert log.garbled == 0

    # 2. THE REQUIREMENT: every Redis counter equals queue_log's for the same calls.
    assert redis_counts == expected_counts, (
        f"Redis counters differ from queue_log; calls the listener classified otherwise: "
        f"{[(d['kind'], d['linkedid'], d['queue_log'], d['listener']) for d in disagreements]} "
        f"{where}"
    )

    # 3. Every call counted exactly once: none lost, none twice, none unknown.
    assert counted == set(linkedids), f"calls never counted {where}"
    assert [lid for lid, found in keys.items() if len(found) > 1] == [], "counted twice"
    assert after.counted - before.counted == len(placed)
    assert anomalies.get("duplicate_outcome", 0) == 0

    # 4. The scenario did what it says: each call ended as planned (per queue_log).
    off_plan = [
        (row["kind"], row["linkedid"], row["queue_log"], row["queue_log_wait_s"])
        for row, p in zip(per_call, placed, strict=True)
        if (row["queue_log"] or IVR_ONLY.value) != p.plan.expect.value
        or (row["queue_log_queues"] or [None])[0] != p.plan.queue
    ]
    assert off_plan == [], f"calls that did not go as planned {where}"

    # 5. The call facts in SQL (the ami role's, for the monthly figures): one per call, the
    #    same classes per queue first entered as queue_log and Redis, and the SQL figures of
    #    the scenario's window give queue_log's answer rate and emergency figure.
    facts = await sql_facts(settings, linkedids)
    report["sql_facts"] = {lid: [list(f) for f in found] for lid, found in facts.items()}
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    not_once = {lid: found for lid, found in facts.items() if len(found) != 1}
    assert not_once == {}, f"calls without exactly one call fact in SQL {where}"
    sql_tally: Tally = Counter()
    for ((klass, queue, *_),) in facts.values():
        sql_tally[(SCOPE_TOTAL, klass)] += 1
        if queue and klass != IVR_ONLY.value:
            sql_tally[(queue, klass)] += 1
    assert +sql_tally == expected_counts, f"SQL call facts differ from queue_log {where}"
    connected = (ANSWERED.value, LATE.value)
    agents = {
        lid: (klass in connected, bool(agent)) for lid, ((klass, *_, agent),) in facts.items()
    }
    assert [lid for lid, (talked, named) in agents.items() if talked != named] == [], (
        f"answered calls without the agent who answered, or others with one {where}"
    )
    # The scenario's window, 2 s wider before (a call rebuilt from queue_log after a cut counts
    # from its whole-second entry) and 5 s after; the scenario before ended long before.
    window = Window(
        datetime.fromtimestamp(started - 2, UTC), datetime.fromtimestamp(ended + 5, UTC)
    )
    engine = sql_engine(settings)
    try:
        figures = call_figures(engine, window, FiguresConfig(emergency_s=THRESHOLD_S))[""]
    finally:
        engine.dispose()
    offered = [c for c in oracle.values() if c.klass in QUEUE_CLASSES]
    answered = [c for c in offered if c.klass is ANSWERED]
    urgent = [c for c in offered if c.queue == "emergency"]
    assert (figures["answer_rate"].numerator, figures["answer_rate"].denominator) == (
        len(answered),
        len(offered),
    )
    assert figures["answer_rate"].value == after_rate(redis_counts)
    assert (figures["emergency_in_time"].numerator, figures["emergency_in_time"].denominator) == (
        sum(c.klass is ANSWERED for c in urgent),
        len(urgent),
    )
    return report


async def sql_facts(
    settings: Settings, linkedids: Sequence[str], timeout: float = 20.0
) -> dict[str, list[tuple[str, str, float, str]]]:
    """Each call's facts in SQL (class, queue, wait, agent), under any of its keys
    (:func:`keys_of`); waits until every call has one (the ami role writes them behind)."""
    engine = sql_engine(settings)
    keys = keys_of(linkedids)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(
                        CallFactRow.linkedid, CallFactRow.klass, CallFactRow.queue,
                        CallFactRow.wait_s, CallFactRow.agent,
                    ).where(CallFactRow.linkedid.in_(keys))
                ).all()  # fmt: skip
            found: dict[str, list[tuple[str, str, float, str]]] = {lid: [] for lid in linkedids}
            for key, klass, queue, wait, agent in rows:
                found[key.removesuffix("-2")].append((klass, queue, wait, agent))
            if all(found.values()) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)
    finally:
        engine.dispose()


def after_rate(counts: dict[Any, int]) -> float | None:
    """The answer rate of the scenario's Redis counters (their deltas, in total)."""
    offered = sum(counts.get((SCOPE_TOTAL, k.value), 0) for k in QUEUE_CLASSES)
    return counts.get((SCOPE_TOTAL, ANSWERED.value), 0) / offered if offered else None


# --- the three runs -----------------------------------------------------------------------
@pytest.mark.timeout(300)  # long: ~75 s of calls (+ the stack's start)
async def test_given_mixed_calls_then_redis_counters_equal_queue_log(oracle_stack):
    report = await run_scenario(oracle_stack, "plain")
    anomalies = report["anomalies"]
    assert anomalies.get("duplicate", 0) == 0, anomalies
    # Nothing garbled, not even an AgentComplete Asterisk sent without the caller's channel
    # (report["agent_complete_without_channel"] says how many came: 0 or 1 in a run here).
    assert anomalies.get("garbled", 0) == 0, anomalies


@pytest.mark.timeout(300)  # long: ~80 s of calls
async def test_given_ami_link_cut_and_restored_mid_run_then_still_equal(oracle_stack):
    # The ami role stops 11 s into the first wave and starts again at 26 s. At the cut the
    # emergency-DID callers are answered, talking or overflowing, the menu callers about to
    # queue; while it is away callers queue, are answered, abandon, time out and hang up, and
    # two more emergency calls start and end; others straddle its return. (The menu
    # hang-ups, at most 9 s long, end before the cut: a call that ends in the menu while the
    # link is down leaves nothing in queue_log, and is counted `unknown` by design.)
    async def cut() -> None:
        await stop_role(oracle_stack, "ami")

    async def restore() -> None:
        await start_role(oracle_stack, "ami")

    during = [
        emergency(FAST, ANSWERED, "emergency DID while the AMI link is down", start_s=12),
        emergency(UNDER, ANSWERED, "emergency DID while the AMI link is down", start_s=12),
    ]
    await run_scenario(
        oracle_stack, "ami-link-cut", first_actions=[(11, cut), (26, restore)], extra_first=during
    )


@pytest.mark.timeout(300)  # long: ~80 s of calls
async def test_given_redis_restarted_mid_run_then_still_equal(oracle_stack):
    # Redis stops 14 s into the first wave (callers just queued) and starts again at 22 s,
    # from its append-only file: the listener buffers meanwhile and flushes once it is back.
    async def stop() -> None:
        await stop_role(oracle_stack, "redis")

    async def start() -> None:
        await start_role(oracle_stack, "redis")

    await run_scenario(oracle_stack, "redis-restart", first_actions=[(14, stop), (22, start)])
