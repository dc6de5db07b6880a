"""Per-call CPU of the FastAGI ``inbound`` route against the same greeting in dialplan alone.

Starts a private stack on free loopback ports, adds two bench numbers through the site
hook ``extensions-local.conf`` (in a temporary copy of dialplan/):

- 80001: Answer, the FastAGI ``inbound`` route (greeting + the call flow's variables), Hangup
- 80002: the floor: Answer, Playback(greeting), the same Set()s, Hangup — no Python

and places N calls to each through sipp (PCMA audio), alternating rounds so drift on this
noisy machine hits both alike. CPU is Asterisk's plus the agi role's (utime+stime from
/proc), sipp excluded. Prints per-call CPU and the ratio against the floor of the same run.

    .venv/bin/python benchmarks/agi_vs_dialplan.py [--calls 100] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ivr.adapters.sipp import SippResult, run_caller
from ivr.stack import Stack, asterisk_instance, isolated_settings

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")

BENCH_DIALPLAN = """
[from-pstn](+)
exten = 80001,1,NoOp(bench: greeting through FastAGI)
same = n,Answer()
same = n,AGI(${IVR_AGI_URL}/inbound,${IVR_PROMPTS})
same = n,Hangup()

exten = 80002,1,NoOp(bench floor: the same greeting in the dialplan alone)
same = n,Answer()
same = n,Playback(${IVR_PROMPTS}/zh/greeting)
same = n,Set(IVR_LANGUAGE=zh)
same = n,Set(IVR_QUEUE=consultation)
same = n,Set(IVR_NEXT=queue)
same = n,Hangup()
"""


@dataclass
class Phase:
    name: str
    did: str
    calls: int = 0
    failed: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def per_call_ms(self) -> float:
        return 1000 * self.cpu_s / max(self.calls, 1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per path (total)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        dialplan = Path(tmp) / "dialplan"
        shutil.copytree(REPO / "dialplan", dialplan)
        (dialplan / "extensions-local.conf").write_text(BENCH_DIALPLAN)
        settings = isolated_settings(
            Path(tmp) / "run", "bench", dialplan_dir=dialplan, log_level="WARNING"
        )
        stack = Stack(settings, sim_agents=False)
        stack.up()
        inst = asterisk_instance(settings)
        try:
            running = stack.running()
            pids = [running["asterisk"].pid, running["agi"].pid]
            phases = {"fastagi": Phase("FastAGI inbound", "80001"),
                      "floor": Phase("dialplan only (floor)", "80002")}  # fmt: skip
            per_round = max(1, args.calls // args.rounds)
            for rnd in range(args.rounds):
                for key in ("floor", "fastagi") if rnd % 2 == 0 else ("fastagi", "floor"):
                    phase = phases[key]
                    before = sum(cpu_seconds(p) for p in pids)
                    start = time.monotonic()
                    result = run_caller(
                        settings.asterisk.root,
                        inst.base / "sipp" / f"{key}-{rnd}",
                        target=f"127.0.0.1:{settings.asterisk.sip_port}",
                        did=phase.did,
                        calls=per_round,
                        concurrency=args.concurrency,
                        rate_per_s=25,
                        hold_s=60,
                        timeout_s=600,
                    )
                    time.sleep(1.0)  # let hang-ups finish before reading CPU
                    phase.wall_s += time.monotonic() - start
                    phase.cpu_s += sum(cpu_seconds(p) for p in pids) - before
                    _account(phase, result)
        finally:
            stack.down()
            shutil.rmtree(inst.host_path(inst.base), ignore_errors=True)

    floor = phases["floor"]
    print(f"per-call CPU (Asterisk + Python), {args.calls} calls per path, "
          f"concurrency {args.concurrency}, {args.rounds} alternating rounds")  # fmt: skip
    print(f"{'path':<24}{'calls':>7}{'failed':>8}{'CPU s':>9}{'ms/call':>10}{'ratio':>8}")
    for phase in phases.values():
        ratio = phase.per_call_ms / floor.per_call_ms if floor.per_call_ms else float("nan")
        print(f"{phase.name:<24}{phase.calls:>7}{phase.failed:>8}{phase.cpu_s:>9.2f}"
              f"{phase.per_call_ms:>10.2f}{ratio:>8.2f}")  # fmt: skip


def _account(phase: Phase, result: SippResult) -> None:
    phase.calls += result.successful
    phase.failed += result.failed


if __name__ == "__main__":
    main()
