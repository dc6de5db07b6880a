"""The agent desk's screen pop: AgentCalled -> the pop delivered on the agent's SSE stream.

A bench stack (redis-server, Asterisk, the agi, ami and web roles); ``--agents`` agents
(工号 2001...) with web accounts of the role ``agent``, each signed in and holding
``GET /api/agent/events`` (one HTTP client each). SQL holds ``--tickets`` tickets and
recordings of other callers, and two earlier tickets for each caller of the run, so every
pop reads a real history. The calls are written by the ami role's own code in this process
(``MetricsListener.on_event`` -> ``MetricsStore``, into the stack's Redis): for each call the
caller's first channel, the call flow's ``IVR_*`` variables, then ``AgentCalled`` naming
``PJSIP/<工号>``; after the pop, ``AgentRingNoAnswer``.

Latency = the pop's arrival at the client (``time.time()``) - the ``AgentCalled`` entry's
time in ``ivr:ami:events`` (its id, Redis's clock on this host). Baseline, same run, same
entries: a bare ``XREAD BLOCK`` client of the stream in this process (what any reader of the
stream waits, without the web role, SQL and composing). Phases: one agent rung ``--rings``
times, one call at a time; then all agents rung at once, ``--rounds`` times (a burst of
``--agents`` AgentCalled within a few ms: the worst case of 50 agents).

    .venv/bin/python benchmarks/screen_pop.py [--agents 50] [--rings 40] [--rounds 8]
        [--tickets 20000]

Not a test: it prints figures. About 3 minutes on a 2-core machine. Rendering in the
browser is not included here; tests/integration/test_screen_pop.py measures AgentCalled ->
rendered in Chromium for one real call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis
from bench_common import bench_stack
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.metrics.listener import MetricsListener
from ivr.adapters.metrics.store import MetricsStore
from ivr.adapters.sql import agents
from ivr.adapters.sql.db import Recording, Ticket, TicketState, settings_engine
from ivr.adapters.sql.users import create_user
from ivr.core.agents import DeskAssignment
from ivr.devstack.stack import Stack
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

PASSWORD = "bench pop password 2026"


@dataclass
class Phase:
    name: str
    pops: list[float] = field(default_factory=list)  # ms, AgentCalled -> pop delivered
    floor: list[float] = field(default_factory=list)  # ms, AgentCalled -> bare XREAD
    missing: int = 0


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def caller_of(n: int) -> str:
    return f"0311860{n:05d}"  # qiaoxi landlines: the area lookup and its outages run


def seed(settings: Settings, work_numbers: Sequence[str], tickets: int) -> None:
    engine = settings_engine(settings)
    known = agents.known_desks(settings)
    now = datetime.now(UTC)
    try:
        with Session(engine) as db:
            for wn in work_numbers:
                create_user(db, f"pop{wn}", PASSWORD, "agent")
                db.flush()
                agents.add(
                    db, wn, f"坐席{wn}", [DeskAssignment("repair", 0)], known,
                    settings.asterisk.sip_realm, agents.Actor("bench"), user=f"pop{wn}",
                )  # fmt: skip
            db.commit()
            rows: list[Recording | Ticket] = []
            for n in range(tickets):
                caller = f"138{n:08d}" if n >= 2 * 1000 else caller_of(n // 2)
                at = now - timedelta(hours=n % 400)
                linkedid = f"bench-old-{n}"
                rows.append(Recording(linkedid=linkedid, uniqueid=linkedid, started_at=at,
                                      did="95158", caller=caller, caller_reversed=caller[::-1],
                                      file_name=f"old-{n}.wav"))  # fmt: skip
                rows.append(Ticket(linkedid=linkedid, caller=caller, state=TicketState.in_progress,
                                   desk="repair", category="repair", created_at=at))  # fmt: skip
            db.add_all(rows)
            db.commit()
    finally:
        engine.dispose()


def call_events(linkedid: str, caller: str, work_number: str) -> list[dict[str, str]]:
    channel = f"PJSIP/pstn-{linkedid[-8:]}"
    base = {"Channel": channel, "Uniqueid": linkedid, "Linkedid": linkedid}
    flow = {"IVR_LANGUAGE": "zh", "IVR_DESK": "repair", "IVR_CATEGORY": "repair",
            "IVR_KEYS": "1", "IVR_AREA": "qiaoxi", "IVR_PRIORITY": "0", "IVR_REASON": "menu",
            "IVR_QUEUE": "repair", "IVR_NEXT": "queue"}  # fmt: skip
    return [
        {"Event": "Newchannel", **base, "CallerIDNum": caller, "Exten": "95158"},
        *({"Event": "VarSet", **base, "Variable": k, "Value": v} for k, v in flow.items()),
        {
            "Event": "QueueCallerJoin",
            **base,
            "Queue": "repair",
            "CallerIDNum": caller,
            "Position": "1",
            "Count": "1",
        },  # fmt: skip
        {
            "Event": "AgentCalled",
            **base,
            "Queue": "repair",
            "CallerIDNum": caller,
            "Interface": f"PJSIP/{work_number}",
            "MemberName": f"{work_number} 坐席",
            "DestChannel": f"PJSIP/{work_number}-{secrets.token_hex(4)}",
            "DestUniqueid": f"{linkedid}9",
            "DestLinkedid": linkedid,
        },  # fmt: skip
    ]


def no_answer(linkedid: str, work_number: str) -> dict[str, str]:
    return {"Event": "AgentRingNoAnswer", "Channel": "PJSIP/pstn-x", "Uniqueid": linkedid,
            "Linkedid": linkedid, "Queue": "repair", "Interface": f"PJSIP/{work_number}",
            "MemberName": f"{work_number} 坐席", "RingTime": "1"}  # fmt: skip


class Bench:
    def __init__(self, stack: Stack, work_numbers: Sequence[str]) -> None:
        self.settings = stack.settings
        self.base = f"http://{self.settings.web.host}:{self.settings.web.port}"
        self.work_numbers = work_numbers
        self.popped: dict[str, float] = {}  # linkedid -> arrival (epoch s)
        self.seen: dict[str, tuple[float, float]] = {}  # linkedid -> (entry ms, XREAD arrival)
        self.arrived = asyncio.Event()
        self.ready = 0
        self.sign_ins = asyncio.Semaphore(2)

    async def agent_stream(self, work_number: str) -> None:
        timeout = httpx.Timeout(10.0, read=120.0)
        async with httpx.AsyncClient(base_url=self.base, timeout=timeout) as http:
            async with self.sign_ins:  # argon2: the web role checks a few at a time
                login = await http.post(
                    "/api/auth/login",
                    json={"username": f"pop{work_number}", "password": PASSWORD},
                    headers={"Origin": self.base},
                )
            login.raise_for_status()
            async with http.stream("GET", "/api/agent/events") as response:
                response.raise_for_status()
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "current":
                            self.ready += 1
                    elif line.startswith("data: ") and event == "pop":
                        self.popped[json.loads(line[6:])["linkedid"]] = time.time()
                        self.arrived.set()

    async def floor_reader(self, client: aioredis.Redis) -> None:
        last = "$"
        while True:
            reply: Any = await client.xread({redis_keys.AMI_EVENTS: last}, block=1000, count=500)
            arrived = time.time()
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get("Event") == "AgentCalled":
                        ms = float(entry_id.split("-")[0])
                        self.seen[fields["Linkedid"]] = (ms, arrived)

    async def ring(
        self, listener: MetricsListener, store: MetricsStore, phase: Phase, wns: Sequence[str]
    ) -> None:
        calls = {f"bench-{secrets.token_hex(6)}": wn for wn in wns}
        for linkedid, wn in calls.items():
            caller = caller_of(int(wn) - 2000)
            for fields in call_events(linkedid, caller, wn):
                await listener.on_event(AmiMessage(tuple(fields.items())))
        await store.flush()
        deadline = time.monotonic() + 10
        while not set(calls) <= self.popped.keys() and time.monotonic() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        await asyncio.sleep(0.05)
        for linkedid, wn in calls.items():
            if linkedid not in self.popped or linkedid not in self.seen:
                phase.missing += 1
                continue
            entry_ms, floor_at = self.seen[linkedid]
            phase.pops.append(self.popped[linkedid] * 1000 - entry_ms)
            phase.floor.append(floor_at * 1000 - entry_ms)
            await listener.on_event(AmiMessage(tuple(no_answer(linkedid, wn).items())))
        await store.flush()


async def run(stack: Stack, work_numbers: Sequence[str], rings: int, rounds: int) -> list[Phase]:
    s = stack.settings
    bench = Bench(stack, work_numbers)
    client = aioredis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True)
    store_redis = aioredis.Redis.from_url(s.redis.url, **s.redis_auth())
    store = MetricsStore.from_settings(store_redis, s.metrics, s.redis.events_maxlen)
    listener = MetricsListener(store, store.config, None)
    one, burst = Phase("1 agent"), Phase(f"{len(work_numbers)} agents")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(bench.agent_stream(wn)) for wn in work_numbers]
        tasks.append(group.create_task(bench.floor_reader(client)))
        tasks.append(group.create_task(store.run()))
        deadline = time.monotonic() + 60
        while bench.ready < len(work_numbers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        for _ in range(3):  # warm-up: SQL, the routing and prompts loaded on the first pop
            await bench.ring(listener, store, Phase("warm-up"), work_numbers[:1])
        for _ in range(rings):
            await bench.ring(listener, store, one, work_numbers[:1])
            await asyncio.sleep(0.2)
        for _ in range(rounds):
            await bench.ring(listener, store, burst, work_numbers)
            await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
    await client.aclose()
    await store_redis.aclose()
    return [one, burst]


def report(phases: Sequence[Phase], tickets: int) -> None:
    print("\nScreen pop: AgentCalled (stream entry) -> pop delivered on the agent's SSE stream")
    print(f"SQL: {tickets} tickets and recordings of other callers, 2 earlier tickets per caller")
    print(f"{'phase':<10} {'pops':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'floor p50':>10} {'floor p99':>10} {'p50 / floor':>12} {'missing':>8}")  # fmt: skip
    for p in phases:
        if not p.pops:
            print(f"{p.name:<10} no pops ({p.missing} missing)")
            continue
        p50, p99 = pct(p.pops, 0.5), pct(p.pops, 0.99)
        f50, f99 = pct(p.floor, 0.5), pct(p.floor, 0.99)
        ratio = p50 / max(f50, 0.01)
        print(f"{p.name:<10} {len(p.pops):>5} {p50:>8.1f} {p99:>8.1f} {max(p.pops):>8.1f} "
              f"{f50:>10.2f} {f99:>10.2f} {ratio:>11.0f}x {p.missing:>8}")  # fmt: skip
    print(
        "floor: a bare XREAD BLOCK of the same entries in this process; must: <= 300 ms "
        "to the pop rendered (mean of the burst: "
        f"{statistics.fmean(phases[-1].pops) if phases[-1].pops else float('nan'):.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rings", type=int, default=40, help="single-agent calls")
    parser.add_argument("--rounds", type=int, default=8, help="bursts ringing every agent")
    parser.add_argument("--tickets", type=int, default=20_000, help="other callers' tickets")
    args = parser.parse_args()
    work_numbers = [str(2001 + i) for i in range(args.agents)]
    began = time.monotonic()
    with bench_stack("bpop", "") as stack:
        seed(stack.settings, work_numbers, args.tickets)
        phases = asyncio.run(run(stack, work_numbers, args.rings, args.rounds))
    report(phases, args.tickets)
    print(f"({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
