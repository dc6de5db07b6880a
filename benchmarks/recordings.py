"""Recordings for QA: catalog search, concurrent replays and mp3 conversion, on this machine.

1. Search latency over 100,000 catalog rows in SQLite (a year of calls: 30,000 repeat
   callers, five desks, 40 agents, 30 % with a transcript, 5,000 reviews), through
   :func:`ivr.adapters.recordings.query.search` exactly as the web role runs it (the page's
   rows, the total, the page's review counts), a fresh session per query, p50 and p99.
   Baseline in the same run: one primary-key lookup. Then the same queries over HTTP against
   the real web role (uvicorn, ``python -m ivr web``), baseline ``GET /api/recordings/{id}``.
2. Replays: 20 signed-in QA users at once against that web role, each fetching whole
   recordings (2-minute stereo wavs, 3.8 MB) in a loop, one after the other, each request a
   new replay with its audit row; then 256 KiB ranges at random offsets (seeks). The web role
   is pinned to one core, the clients to the other. Baselines in the same run: reading the
   same files from the page cache in this process (MB/s), and ``GET /api/auth/me`` (the
   session and role check every request pays) by the same 20 clients (requests/s).
3. mp3 conversion (:func:`ivr.adapters.recordings.audio_convert.to_mp3`: pydub and ffmpeg in a child
   process) of 1, 5 and 15 minutes of stereo 8 kHz audio, seconds per minute of audio;
   baseline: the ffmpeg command line alone on the same file, and a cache hit.

    .venv/bin/python benchmarks/recordings.py [--rows 100000] [--queries 200]
        [--http-queries 100] [--replay-seconds 15] [--minutes 1,5,15]

Not a test: it prints figures. About 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_common import cpu_seconds
from pydantic import SecretStr
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from ivr.adapters.recordings import query as catalog
from ivr.adapters.recordings.audio_convert import file_sha256, to_mp3
from ivr.adapters.sql.db import (
    AuditEntry,
    Recording,
    RecordingStatus,
    Review,
    Role,
    Transcript,
    User,
    settings_engine,
)
from ivr.adapters.sql.schema import upgrade
from ivr.adapters.sql.users import hash_password
from ivr.core.recording_search import build_filter
from ivr.devstack.ports import free_port
from ivr.devstack.stack import settings_env
from ivr.settings import (
    AmiSettings,
    RecordingsSettings,
    RedisSettings,
    Settings,
    WebSettings,
)

ZONE = "Asia/Shanghai"
DESKS = ("repair", "billing", "consultation", "complaints", "emergency")
REPLAY_FILES = 20
REPLAY_ROWS = 100  # rows 1..100 are playable, spread over the 20 files
REPLAY_SECONDS = 120
RANGE_BYTES = 256 * 1024
PASSWORD = "benchmark password 1"
END = datetime(2026, 5, 1, tzinfo=UTC)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(values: Sequence[float]) -> str:
    return f"p50 {1000 * pct(values, 0.5):7.2f} ms  p99 {1000 * pct(values, 0.99):7.2f} ms"


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True, timeout=600)


def call_audio(path: Path, seconds: float) -> Path:
    """Stereo 8 kHz 16-bit: noise with a tone on the left, a quieter tone on the right."""
    sox("-n", "-r", "8000", "-c", "2", "-b", "16", str(path),
        "synth", f"{seconds}", "pinknoise", "sine", "440", "remix", "1,2v0.3", "2v0.5",
        "vol", "0.4")  # fmt: skip
    return path


# --- the catalog ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Catalog:
    rows: int
    callers: list[str]
    agents: list[str]
    known_caller: str  # the caller of one of the rows
    build_s: float


def fill_catalog(engine: Engine, rows: int, seed: int = 7) -> Catalog:
    began = time.monotonic()
    rng = random.Random(seed)
    upgrade(engine)
    callers = [f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}" for _ in range(30_000)]
    agents = [f"agent-{n:02d}" for n in range(40)]
    known_caller = ""
    transcripts = int(rows * 0.3)
    with engine.begin() as conn:
        conn.execute(
            insert(Transcript),
            [
                {"source_key": f"bench:{n}", "language": "zh", "model": "bench", "text": "",
                 "words": [], "audio_s": 60.0, "decode_s": 1.0, "danger_words": []}
                for n in range(1, transcripts + 1)
            ],
        )  # fmt: skip
        batch: list[dict[str, Any]] = []
        with_transcript = rng.sample(range(1, rows + 1), transcripts)
        transcript_of = dict(zip(with_transcript, range(1, transcripts + 1), strict=True))
        for n in range(1, rows + 1):
            started = END - timedelta(seconds=rng.uniform(0, 365 * 86400))
            desk = rng.choices(DESKS, weights=(40, 20, 20, 10, 10))[0]
            caller = rng.choice(callers)
            if n == rows // 2:
                known_caller = caller
            duration = round(rng.lognormvariate(4.6, 0.8), 1)
            wait = round(rng.expovariate(1 / 20), 1)
            playable = n <= REPLAY_ROWS
            status = (
                RecordingStatus.ok
                if playable
                else rng.choices(list(RecordingStatus), weights=(85, 1, 1, 3, 10))[0]
            )
            batch.append(
                {
                    "linkedid": f"bench-{n}",
                    "uniqueid": f"bench-{n}.1",
                    "started_at": started,
                    "answered_at": started + timedelta(seconds=wait),
                    "ended_at": started + timedelta(seconds=wait + duration),
                    "did": "95158",
                    "caller": caller,
                    "caller_reversed": caller[::-1],
                    "account": f"{rng.randrange(10**10):010d}" if rng.random() < 0.6 else None,
                    "category": desk,
                    "desk": desk,
                    "queue": desk,
                    "agent": rng.choice(agents),
                    "emergency": desk == "emergency",
                    "wait_s": wait,
                    "duration_s": duration,
                    "file_name": f"replay-{n % REPLAY_FILES:02d}.wav" if playable else f"{n}.wav",
                    "format": "wav",
                    "size_bytes": int(duration * 32_000) + 44,
                    "sha256": None,
                    "audio_s": duration,
                    "status": status,
                    "transcript_id": transcript_of.get(n),
                    "catalogued_at": started + timedelta(seconds=wait + duration + 2),
                }
            )
            if len(batch) == 10_000:
                conn.execute(insert(Recording), batch)
                batch = []
        if batch:
            conn.execute(insert(Recording), batch)
        conn.execute(
            insert(Review),
            [
                {"recording_id": rng.randrange(1, rows + 1), "reviewer": "qa", "items": {},
                 "total": 90.0, "comment": "", "created_at": END}
                for _ in range(5000)
            ],
        )  # fmt: skip
    return Catalog(rows, callers, agents, known_caller, time.monotonic() - began)


def queries(cat: Catalog) -> list[tuple[str, dict[str, Any], int]]:
    """(label, search parameters, page) of typical QA searches."""
    known = cat.known_caller
    return [
        ("newest calls, page 1 (no filter)", {}, 1),
        ("one local day", {"start": "2026-03-10", "end": "2026-03-10"}, 1),
        ("a whole caller number", {"caller": known}, 1),
        ("the caller's last 4 digits", {"caller": known[-4:]}, 1),
        ("the caller's last 6 digits, one month", {"caller": known[-6:], "start": "2026-02-01",
                                                   "end": "2026-02-28"}, 1),
        ("desk + one week", {"desk": "complaints", "start": "2026-04-01", "end": "2026-04-07"}, 1),
        ("agent + duration >= 5 min", {"agent": cat.agents[7], "min_duration_s": 300.0}, 1),
        ("emergency with a transcript", {"emergency": True, "has_transcript": True}, 1),
        ("newest calls, page 200", {}, 200),
    ]  # fmt: skip


def http_params(params: dict[str, Any], page: int) -> dict[str, Any]:
    names = {"start": "from", "end": "to", "min_duration_s": "min_duration"}
    out = {
        names.get(k, k): (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()
    }
    return out | {"page": page, "size": 25}


def time_sql(engine: Engine, cat: Catalog, n: int) -> list[tuple[str, list[float], int]]:
    rng = random.Random(1)
    results: list[tuple[str, list[float], int]] = []

    def pk() -> int:
        with Session(engine) as db:
            found = db.get(Recording, rng.randrange(1, cat.rows + 1))
            return 1 if found is not None else 0

    samples = timed(pk, n)
    results.append(("primary-key lookup (baseline)", samples[0], samples[1]))
    for label, params, page in queries(cat):
        wanted = build_filter(timezone=ZONE, **params)

        def search(wanted: Any = wanted, page: int = page) -> int:
            with Session(engine) as db:
                return catalog.search(db, wanted, offset=(page - 1) * 25, limit=25).total

        samples = timed(search, n)
        results.append((label, samples[0], samples[1]))
    return results


def timed(run: Callable[[], int], n: int) -> tuple[list[float], int]:
    for _ in range(3):
        run()  # warm the page cache and the statement cache
    out: list[float] = []
    found = 0
    for _ in range(n):
        t0 = time.perf_counter()
        found = run()
        out.append(time.perf_counter() - t0)
    return out, found


def plans(engine: Engine, cat: Catalog) -> list[tuple[str, str]]:
    out = []
    with engine.connect() as conn:
        for label, params, _ in queries(cat):
            statement = catalog.search_statement(build_filter(timezone=ZONE, **params), offset=0,
                                                 limit=25)  # fmt: skip
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            out.append((label, "; ".join(str(r[-1]) for r in rows)))
    return out


# --- the web role -----------------------------------------------------------------------------
@contextmanager
def web_role(settings: Settings, cpu: int | None) -> Iterator[tuple[str, int]]:
    log = (settings.run_dir / "web.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr", "web"],
        env=os.environ | settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    base = f"http://127.0.0.1:{settings.web.port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = Path(log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the web role did not start:\n{tail}")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def add_bench_users(engine: Engine, count: int) -> list[str]:
    password_hash = hash_password(PASSWORD)
    names = [f"qa-bench-{n:02d}" for n in range(count)]
    with Session(engine) as db:
        for name in names:
            if db.scalar(select(User).where(User.username == name)) is None:
                db.add(User(username=name, password_hash=password_hash, role=Role.qa))
        db.commit()
    return names


async def signed_in(base: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=60)
    response = await client.post("/api/auth/login", json={"username": username,
                                 "password": PASSWORD}, headers={"Origin": base})  # fmt: skip
    response.raise_for_status()
    return client


def time_http(base: str, cat: Catalog, n: int) -> list[tuple[str, list[float], int]]:
    async def run() -> list[tuple[str, list[float], int]]:
        client = await signed_in(base, "qa-bench-00")
        rng = random.Random(2)
        results: list[tuple[str, list[float], int]] = []
        try:

            async def measure(url: Callable[[], str], params: dict[str, Any]) -> list[float]:
                out = []
                for i in range(n + 3):
                    t0 = time.perf_counter()
                    response = await client.get(url(), params=params)
                    response.raise_for_status()
                    if i >= 3:
                        out.append(time.perf_counter() - t0)
                return out

            samples = await measure(lambda: f"/api/recordings/{rng.randrange(1, cat.rows)}", {})
            results.append(("GET /api/recordings/{id} (baseline)", samples, 1))
            for label, params, page in queries(cat):
                samples = await measure(lambda: "/api/recordings", http_params(params, page))
                results.append((label, samples, 0))
        finally:
            await client.aclose()
        return results

    return asyncio.run(run())


@dataclass
class Load:
    label: str
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0  # the web role's, from /proc

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu_s / max(self.requests, 1)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def mbps(self) -> float:
        return self.bytes / self.seconds / 1e6


async def load(
    base: str,
    names: list[str],
    label: str,
    seconds: float,
    request: Callable[..., Any],
    server_pid: int,
) -> Load:
    clients = [await signed_in(base, name) for name in names]
    result = Load(label)
    cpu_before = cpu_seconds(server_pid)
    stop = time.monotonic() + seconds

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(index)
        turn = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            status, size = await request(client, index, turn, rng)
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            result.bytes += size
            result.statuses[status] = result.statuses.get(status, 0) + 1
            turn += 1

    began = time.monotonic()
    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    finally:
        result.seconds = time.monotonic() - began
        result.server_cpu_s = cpu_seconds(server_pid) - cpu_before
        for client in clients:
            await client.aclose()
    return result


async def fetch(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[int, int]:
    size = 0
    async with client.stream("GET", url, headers=headers) as response:
        async for chunk in response.aiter_raw():
            size += len(chunk)
    return response.status_code, size


def replay_id(index: int, turn: int) -> int:
    return (index * 5 + turn) % REPLAY_ROWS + 1  # each user walks through the 100 rows


async def replays(
    base: str, names: list[str], seconds: float, file_size: int, pid: int
) -> list[Load]:
    async def whole(client: httpx.AsyncClient, index: int, turn: int, _: random.Random) -> Any:
        return await fetch(client, f"/api/recordings/{replay_id(index, turn)}/audio", {})

    async def seek(client: httpx.AsyncClient, index: int, turn: int, rng: random.Random) -> Any:
        start = rng.randrange(1, file_size - RANGE_BYTES)
        headers = {"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}
        return await fetch(client, f"/api/recordings/{replay_id(index, turn)}/audio", headers)

    async def me(client: httpx.AsyncClient, *_: Any) -> Any:
        response = await client.get("/api/auth/me")
        return response.status_code, len(response.content)

    return [
        await load(base, names, "GET /api/auth/me (baseline)", seconds / 2, me, pid),
        await load(base, names, "whole-file replays", seconds, whole, pid),
        await load(base, names, "256 KiB ranges at random offsets", seconds, seek, pid),
    ]


def plain_read_mbps(files: list[Path], rounds: int = 5) -> float:
    for path in files:
        path.read_bytes()  # into the page cache
    t0 = time.perf_counter()
    total = 0
    for _ in range(rounds):
        for path in files:
            with path.open("rb") as source:
                while chunk := source.read(256 * 1024):
                    total += len(chunk)
    return total / (time.perf_counter() - t0) / 1e6


# --- mp3 --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Conversion:
    minutes: float
    wav_mb: float
    mp3_kb: float
    ours_s: float
    ffmpeg_s: float
    hit_s: float


def conversions(folder: Path, minutes: Sequence[float], rounds: int = 3) -> list[Conversion]:
    out = []
    for length in minutes:
        wav = call_audio(folder / f"conv-{length:g}.wav", length * 60)
        digest = file_sha256(wav)
        ours, plain, hits = [], [], []
        size = 0
        for _ in range(rounds):
            cache = Path(tempfile.mkdtemp(dir=folder))
            t0 = time.perf_counter()
            mp3 = to_mp3(wav, cache, digest=digest)
            ours.append(time.perf_counter() - t0)
            size = mp3.stat().st_size
            t0 = time.perf_counter()
            to_mp3(wav, cache, digest=digest)
            hits.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "32k",
                            "-f", "mp3", str(cache / "direct.mp3")], check=True)  # fmt: skip
            plain.append(time.perf_counter() - t0)
            shutil.rmtree(cache)
        out.append(
            Conversion(length, wav.stat().st_size / 1e6, size / 1e3,
                       statistics.median(ours), statistics.median(plain), statistics.median(hits))
        )  # fmt: skip
        wav.unlink()
    return out


# --- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="catalog rows")
    parser.add_argument("--queries", type=int, default=200, help="SQL samples per query")
    parser.add_argument("--http-queries", type=int, default=100, help="HTTP samples per query")
    parser.add_argument("--replay-seconds", type=float, default=15.0, help="per load phase")
    parser.add_argument("--minutes", default="1,5,15", help="mp3 conversion lengths")
    args = parser.parse_args()
    began = time.monotonic()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2
    with tempfile.TemporaryDirectory(prefix="hotline-bench-rec-") as tmp:
        root = Path(tmp)
        settings = Settings(
            run_dir=root / "run",
            log_level="WARNING",
            redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"),  # not used here
            web=WebSettings(port=free_port()),
            ami=AmiSettings(secret=SecretStr(secrets.token_urlsafe(16))),  # settings_env needs one
            recordings=RecordingsSettings(dir=root / "recordings", conversion_dir=root / "cache"),
        )
        settings.run_dir.mkdir(parents=True)
        settings.recordings_dir.mkdir(parents=True)
        engine = settings_engine(settings)
        cat = fill_catalog(engine, args.rows)
        db_mb = (settings.run_dir / "hotline.db").stat().st_size / 1e6
        sql_results = time_sql(engine, cat, args.queries)
        query_plans = plans(engine, cat)
        names = add_bench_users(engine, 20)
        engine.dispose()

        first = call_audio(settings.recordings_dir / "replay-00.wav", REPLAY_SECONDS)
        files = [first]
        for n in range(1, REPLAY_FILES):
            files.append(Path(shutil.copy(first, settings.recordings_dir / f"replay-{n:02d}.wav")))
        read_mbps = plain_read_mbps(files)
        file_bytes = first.stat().st_size
        with web_role(settings, cpus[0] if pinned else None) as (base, web_pid):
            if pinned:
                os.sched_setaffinity(0, {cpus[1]})
            http_results = time_http(base, cat, args.http_queries)
            loads = asyncio.run(replays(base, names, args.replay_seconds, file_bytes, web_pid))
            if pinned:
                os.sched_setaffinity(0, cpus)
        engine = settings_engine(settings)
        with Session(engine) as db:
            audited = db.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == catalog.REPLAY_ACTION)
            )
        engine.dispose()
        minutes = [float(m) for m in args.minutes.split(",")]
        converted = conversions(root, minutes)

    report(args, cat, db_mb, sql_results, query_plans, http_results, loads, read_mbps,
           file_bytes, audited, converted, pinned, time.monotonic() - began)  # fmt: skip


def report(
    args: argparse.Namespace,
    cat: Catalog,
    db_mb: float,
    sql_results: list[tuple[str, list[float], int]],
    query_plans: list[tuple[str, str]],
    http_results: list[tuple[str, list[float], int]],
    loads: list[Load],
    read_mbps: float,
    file_bytes: int,
    audited: int | None,
    converted: list[Conversion],
    pinned: bool,
    total_s: float,
) -> None:
    print(
        f"1. search over {cat.rows:,} catalog rows in SQLite ({db_mb:.0f} MB, built in "
        f"{cat.build_s:.0f} s), {args.queries} samples each, the adapter as the web role runs it"
    )
    base = pct(sql_results[0][1], 0.5)
    print(f"   {'query':<44}{'matches':>8}   {'latency':<34}{'p50 ratio':>10}")
    for label, samples, matches in sql_results:
        print(f"   {label:<44}{matches:>8}   {ms(samples):<34}{pct(samples, 0.5) / base:>9.1f}x")
    print("   query plans (SQLite):")
    for label, plan in query_plans:
        print(f"     {label}: {plan}")
    base = pct(http_results[0][1], 0.5)
    print(f"   over HTTP (web role, uvicorn), {args.http_queries} samples each:")
    for label, samples, _ in http_results:
        print(f"   {label:<44}{'':>8}   {ms(samples):<34}{pct(samples, 0.5) / base:>9.1f}x")
    me, whole, ranged = loads
    pin = "web role on one core, clients on the other" if pinned else "not pinned"
    print(
        f"2. 20 concurrent QA users against the web role ({pin}); files "
        f"{REPLAY_SECONDS} s stereo 8 kHz = {file_bytes / 1e6:.1f} MB"
    )
    print(f"   {'load':<36}{'req/s':>8}{'MB/s':>8}{'CPU ms/req':>11}   {'latency':<34}statuses")
    for run in loads:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(run.statuses.items()))
        print(
            f"   {run.label:<36}{run.rate:>8.1f}{run.mbps:>8.1f}{run.cpu_ms:>11.1f}   "
            f"{ms(run.latencies):<34}{statuses}"
        )
    streams = whole.bytes / whole.seconds / 32_000
    print(
        f"   whole files: {whole.mbps:.0f} MB/s = {streams:,.0f} real-time streams; "
        f"{whole.mbps / read_mbps:.3f}x a plain read of the same files here ({read_mbps:,.0f} "
        f"MB/s); ranges: {ranged.rate / me.rate:.2f}x the requests/s of /api/auth/me; replay "
        f"audit rows written: {audited}"
    )
    print("3. mp3 (32 kb/s) of stereo 8 kHz audio, median of 3:")
    print(f"   {'minutes':>8}{'wav MB':>8}{'mp3 kB':>8}{'to_mp3 s':>10}{'s/min':>7}"
          f"{'ffmpeg s':>10}{'ratio':>7}{'cache hit ms':>14}")  # fmt: skip
    for c in converted:
        print(f"   {c.minutes:>8g}{c.wav_mb:>8.1f}{c.mp3_kb:>8.0f}{c.ours_s:>10.2f}"
              f"{c.ours_s / c.minutes:>7.2f}{c.ffmpeg_s:>10.2f}{c.ours_s / c.ffmpeg_s:>7.2f}"
              f"{1000 * c.hit_s:>14.2f}")  # fmt: skip
    print(f"   (whole run {total_s:.0f} s)")


if __name__ == "__main__":
    main()
