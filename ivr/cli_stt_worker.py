"""``ivr stt-worker``: the speech-to-text role, and ``ivr stt jobs``: what its queue holds.

::

    ivr stt-worker [--concurrency N]      N worker processes (default stt.concurrency)
    ivr stt jobs [--status S] [--limit N] [--json]
                                          jobs, most recently changed first; --status dead
                                          is the dead-letter list, with the reasons

``cli.py`` wires ``stt-worker`` in (:func:`register` / :func:`run`); ``ivr/cli_stt.py`` adds
``jobs`` to its ``stt`` command with :func:`register_jobs` / :func:`run_jobs`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql.db import SttJobStatus
from ivr.adapters.sql.schema import require_head
from ivr.adapters.stt import job_queue as stt_queue
from ivr.settings import Settings

STATUS_NAMES = [s.value for s in SttJobStatus]


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stt-worker", help="role: speech-to-text workers (vosk) on the Redis job queue"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="worker processes, each with its own model (default: stt.concurrency)",
    )
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # a child


def run(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.stt.worker import WorkerPool, run_worker

    if args.single:
        asyncio.run(run_worker(settings))
        return 0
    concurrency = args.concurrency if args.concurrency is not None else settings.stt.concurrency
    engine = sql.settings_engine(settings)
    try:  # refuse here, rather than restart worker processes that each refuse
        require_head(engine)
    finally:
        engine.dispose()
    return WorkerPool(settings, concurrency).run()


def register_jobs(stt_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = stt_subparsers.add_parser("jobs", help="speech-to-text jobs and their status")
    jobs.add_argument("--status", choices=STATUS_NAMES, help="only jobs with this status")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true", help="one JSON object")


def run_jobs(settings: Settings, args: argparse.Namespace) -> int:
    engine = sql.settings_engine(settings)
    try:
        require_head(engine)
        with Session(engine) as session:
            status = SttJobStatus(args.status) if args.status else None
            rows = stt_queue.list_jobs(session, status=status, limit=args.limit)
            counts = stt_queue.status_counts(session)
            jobs = [stt_queue.job_json(job) for job in rows]
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps({"jobs": jobs, "counts": counts}, ensure_ascii=False))
        return 0
    _out("  ".join(f"{name} {n}" for name, n in counts.items() if n) or "no jobs")
    if not jobs:
        return 0
    _out(f"{'ID':>6} {'SOURCE':<22} {'STATUS':<12} {'TRIES':>5}  {'UPDATED (UTC)':<16}  LAST ERROR")
    for job in jobs:
        updated = (job["updated_at"] or "")[:16].replace("T", " ")
        _out(
            f"{job['id']:>6} {job['source_key']:<22} {job['status']:<12} {job['attempts']:>5}  "
            f"{updated:<16}  {job['last_error'] or ''}"
        )
    return 0
