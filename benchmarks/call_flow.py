"""The call flow under load, on this machine, through sipp (PCMA audio, RFC 2833 keys).

1. Per-call CPU of the same menu call (greeting, emergency notice, menu, key 1 -> repair's
   variables, hang-up) three ways, in alternating rounds so drift hits all alike:
   the dialplan alone (the floor: Playback + Read + Set), our FastAGI route, and the same
   core as process AGI (agi_scripts/inbound.py, one Python per call). CPU = Asterisk (with
   its reaped AGI children) + the agi role, from /proc; sipp excluded.
2. N concurrent menu calls on the real path (greeting, key 1, queue repair): failed calls
   (sipp) and callers that reached the queue (queue_log ENTERQUEUE).
3. The emergency line: time from the call's arrival (the PJSIP channel's Newchannel) to
   QueueCallerJoin, from Asterisk's own event timestamps, p50 and p99.

    .venv/bin/python benchmarks/call_flow.py [--calls 100] [--concurrent 200] [--emergency 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench_common import Phase, bench_stack, children_cpu_seconds, cpu_seconds

from ivr import redis_keys
from ivr.devstack.sipp import run_caller
from ivr.devstack.stack import Stack, asterisk_instance

MENU_SECONDS = 11.0  # greeting + emergency notice: the key is pressed into the menu prompt

BENCH_DIALPLAN = """
[from-pstn](+)
exten = 80011,1,NoOp(bench: the menu through FastAGI)
same = n,Answer()
same = n,AGI(${IVR_AGI_URL}/inbound,${IVR_PROMPTS},${IVR_MESSAGES})
same = n,Hangup()

exten = 80012,1,NoOp(bench: the menu as process AGI)
same = n,Answer()
same = n,AGI(${IVR_PROCESS_AGI},${IVR_PROMPTS},${IVR_MESSAGES})
same = n,Hangup()

exten = 80013,1,NoOp(bench floor: the same menu in the dialplan alone)
same = n,Answer()
same = n,Playback(${IVR_PROMPTS}/zh/greeting&${IVR_PROMPTS}/zh/emergency-notice)
same = n,Read(KEY,${IVR_PROMPTS}/zh/menu,1,,1,3)
same = n,Set(IVR_LANGUAGE=zh)
same = n,Set(IVR_QUEUE=repair)
same = n,Set(IVR_PRIORITY=0)
same = n,Set(IVR_CATEGORY=repair)
same = n,Set(IVR_REASON=menu)
same = n,Set(IVR_NEXT=queue)
same = n,Hangup()
"""


def per_call_cpu(stack: Stack, calls: int, concurrency: int, rounds: int) -> list[Phase]:
    inst = asterisk_instance(stack.settings)
    running = stack.running()
    asterisk, agi = running["asterisk"].pid, running["agi"].pid
    phases = [
        Phase("dialplan only (floor)", "80013"),
        Phase("FastAGI (ivr agi)", "80011"),
        Phase("process AGI (pyst2)", "80012"),
    ]

    def cpu() -> float:
        return cpu_seconds(asterisk) + children_cpu_seconds(asterisk) + cpu_seconds(agi)

    for rnd in range(rounds):
        for phase in phases if rnd % 2 == 0 else reversed(phases):
            before = cpu()
            result = run_caller(
                stack.settings.asterisk.root,
                inst.base / "sipp" / f"cpu-{phase.did}-{rnd}",
                target=f"127.0.0.1:{stack.settings.asterisk.sip_port}",
                did=phase.did,
                digits="1",
                digits_after_s=MENU_SECONDS,
                calls=max(1, calls // rounds),
                concurrency=concurrency,
                rate_per_s=20,
                hold_s=60,
                timeout_s=900,
            )
            time.sleep(1.0)
            phase.cpu_s += cpu() - before
            phase.calls += result.successful
            phase.failed += result.failed
    return phases


def concurrent_menu(stack: Stack, calls: int) -> tuple[int, int, int, float]:
    """(successful, failed, reached the queue, seconds) for ``calls`` calls all at once."""
    inst = asterisk_instance(stack.settings)
    before = inst.queue_log.read_text().count("|ENTERQUEUE|") if inst.queue_log.exists() else 0
    start = time.monotonic()
    result = run_caller(
        stack.settings.asterisk.root,
        inst.base / "sipp" / "concurrent",
        target=f"127.0.0.1:{stack.settings.asterisk.sip_port}",
        did="95158",
        digits="1",
        digits_after_s=MENU_SECONDS,
        calls=calls,
        concurrency=calls,
        rate_per_s=40,
        hold_s=4,  # in the queue for a moment, then the caller hangs up
        timeout_s=900,
    )
    took = time.monotonic() - start
    time.sleep(1.0)
    reached = inst.queue_log.read_text().count("|ENTERQUEUE|") - before
    return result.successful, result.failed, reached, took


def emergency_latency(stack: Stack, calls: int) -> list[float]:
    """Seconds from the PJSIP channel's creation to QueueCallerJoin, per emergency call."""
    import redis

    inst = asterisk_instance(stack.settings)
    result = run_caller(
        stack.settings.asterisk.root,
        inst.base / "sipp" / "emergency",
        target=f"127.0.0.1:{stack.settings.asterisk.sip_port}",
        did="96777",
        calls=calls,
        concurrency=10,
        rate_per_s=10,
        hold_s=3,
        timeout_s=600,
    )
    if result.failed:
        print(f"emergency calls failed: {result.failed}")
    time.sleep(1.0)
    created: dict[str, float] = {}
    joined: dict[str, float] = {}
    settings = stack.settings
    with redis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True
    ) as client:
        for _, ev in client.xrange(redis_keys.AMI_EVENTS, "-", "+"):
            if not ev.get("Channel", "").startswith("PJSIP/pstn-") or "Timestamp" not in ev:
                continue
            if ev.get("Event") == "Newchannel" and ev.get("Exten") == "96777":
                created[ev["Uniqueid"]] = float(ev["Timestamp"])
            elif ev.get("Event") == "QueueCallerJoin":
                joined.setdefault(ev["Uniqueid"], float(ev["Timestamp"]))
    return sorted(joined[u] - created[u] for u in created if u in joined)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per path for CPU")
    parser.add_argument("--concurrency", type=int, default=50, help="for the CPU rounds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrent", type=int, default=200, help="simultaneous menu calls")
    parser.add_argument("--emergency", type=int, default=100, help="emergency calls")
    args = parser.parse_args()

    # what Asterisk and the agi role can carry is measured, not the trunk's call limit
    trunk = {"trunk_max_calls": args.concurrent + 1000, "trunk_emergency_reserve": 100}
    with bench_stack("bench", BENCH_DIALPLAN, asterisk=trunk) as stack:
        phases = per_call_cpu(stack, args.calls, args.concurrency, args.rounds)
        ok, failed, reached, took = concurrent_menu(stack, args.concurrent)
        waits = emergency_latency(stack, args.emergency)

    floor = phases[0].per_call_ms
    print(f"1. per-call CPU (Asterisk + Python), menu call with key 1, {args.calls} calls per "
          f"path, {args.concurrency} concurrent, {args.rounds} alternating rounds")  # fmt: skip
    print(f"   {'path':<24}{'calls':>7}{'failed':>8}{'CPU s':>9}{'ms/call':>10}{'ratio':>8}")
    for p in phases:
        print(f"   {p.name:<24}{p.calls:>7}{p.failed:>8}{p.cpu_s:>9.2f}"
              f"{p.per_call_ms:>10.2f}{p.per_call_ms / floor:>8.2f}")  # fmt: skip
    print(
        f"2. {args.concurrent} concurrent menu calls (greeting, key 1, queue): "
        f"{ok} successful, {failed} failed, {reached} reached the queue, {took:.0f} s"
    )
    if waits:
        p50 = statistics.median(waits)
        p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))]
        print(f"3. emergency line, call arrival -> QueueCallerJoin over {len(waits)} calls: "
              f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
