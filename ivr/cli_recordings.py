"""``ivr recorder`` (the role) and ``ivr recordings …`` (operator commands).

::

    ivr recorder                              role: catalogue ended calls, apply retention
    ivr recordings sweep [--json]             catalogue what has ended, now (the role's code)
    ivr recordings retention [--days N] [--json]   delete old files, mark their rows deleted
    ivr recordings list [--limit N] [--status S] [--json] [--show-numbers]

The role sweeps the monitor directory every ``recordings.scan_interval_s`` and applies
retention every ``recordings.retention_interval_s``; after each sweep it writes its
heartbeat (``<run_dir>/recorder.json``) for ``ivr status``. On SIGTERM it finishes the call
in hand and exits. Numbers are masked in listings unless ``--show-numbers`` is given.

``cli.py`` wires this in: :func:`register` adds the subcommands, :func:`run_role` and
:func:`run` execute them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.disk import DiskWatch
from ivr.adapters.recordings.recorder import (
    Recorder,
    apply_retention,
    heartbeat_path,
    write_heartbeat,
)
from ivr.adapters.sql.db import Recording, RecordingStatus, settings_engine
from ivr.adapters.sql.schema import require_head
from ivr.adapters.telephony import instance_dirs
from ivr.errors import ConfigError, InvalidInput
from ivr.logging_setup import mask_number
from ivr.settings import Settings
from ivr.supervision import supervise

logger = logging.getLogger(__name__)


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def monitor_dir(settings: Settings) -> Path:
    """Where MixMonitor leaves the legs: the setting, else the Asterisk instance's spool."""
    if settings.recordings.monitor_dir is not None:
        return settings.recordings.monitor_dir
    local = instance_dirs.monitor_dir(settings)
    if not local.is_dir():
        raise ConfigError(
            "recordings.monitor_dir (IVR_RECORDINGS__MONITOR_DIR) is not set, and the local "
            f"Asterisk instance has no {local} (is the stack up?); set it to where MixMonitor "
            "writes"
        )
    return local


def build_recorder(settings: Settings, engine: Engine) -> Recorder:
    """The Recorder of the ``ivr recorder`` role and of ``ivr recordings sweep``.

    What must happen with each new recording inside its catalog transaction (tickets, the
    speech-to-text job) is passed here as ``on_catalogued``.
    """
    from ivr.adapters.recordings.pipeline import cataloguer

    return Recorder(
        settings, engine, on_catalogued=cataloguer(settings), monitor_dir=monitor_dir(settings)
    )


async def _push_jobs(settings: Settings, engine: Engine) -> int:
    """Send the new recordings' speech-to-text jobs to Redis (the workers also do it)."""
    import redis.asyncio as aioredis

    from ivr.adapters.recordings.pipeline import push_jobs

    client = aioredis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True, socket_timeout=2,
        socket_connect_timeout=2,
    )  # fmt: skip
    try:
        return await push_jobs(client, engine, settings)
    finally:
        await client.aclose()


# --- the role ----------------------------------------------------------------------------
async def run_role(settings: Settings) -> None:
    engine = settings_engine(settings)
    require_head(engine)  # refuses a database not at this code's revision, naming the fix
    recorder = build_recorder(settings, engine)
    beat = heartbeat_path(settings)
    config = settings.recordings
    next_retention = 0.0
    disk = DiskWatch.from_settings(settings)

    def tick() -> None:
        """One sweep (and retention when due), then the heartbeat; never raises."""
        nonlocal next_retention
        error = None
        try:
            recorder.sweep_once()
        except Exception as exc:  # e.g. the monitor directory unreadable: say so, go on
            error = f"{type(exc).__name__}: {exc}"
            logger.exception("sweep failed")
        low = disk.check()  # warned while there is room; MixMonitor writes on regardless
        write_heartbeat(beat, recorder, error, low)
        if time.monotonic() >= next_retention and not recorder.stopping.is_set():
            next_retention = time.monotonic() + config.retention_interval_s
            try:
                apply_retention(settings, engine)
            except Exception:  # e.g. the database away: tried again at the next interval
                logger.exception("retention failed")
            write_heartbeat(beat, recorder, error, low)  # a long retention is no dead role

    async def sweeping() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = recorder.catalogued_total
            work = loop.run_in_executor(None, tick)
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                recorder.stopping.set()  # finish the call in hand, then stop
                await work
                raise
            if recorder.catalogued_total != before:
                await _push_jobs(settings, engine)
            await asyncio.sleep(config.scan_interval_s)

    logger.info(
        "recorder started",
        extra={"monitor_dir": str(recorder.monitor_dir),
               "recordings_dir": str(recorder.recordings_dir),
               "scan_interval_s": config.scan_interval_s},
    )  # fmt: skip
    try:
        await supervise(sweeping())
    finally:
        engine.dispose()
        logger.info("recorder stopped", extra={"catalogued": recorder.catalogued_total})


# --- operator commands -------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subparsers.add_parser("recorder", help="role: catalogue call recordings (and retention)")
    parser = subparsers.add_parser("recordings", help="call recordings: sweep, retention, list")
    sub = parser.add_subparsers(dest="recordings_command", required=True)
    sweep = sub.add_parser("sweep", help="catalogue the calls that have ended, now")
    sweep.add_argument("--json", action="store_true", help="one JSON array of the new rows")
    retention = sub.add_parser("retention", help="delete old files; rows stay, marked deleted")
    retention.add_argument("--days", type=int, default=None, help="keep this many days")
    retention.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="the latest catalogued calls")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--status", choices=[s.value for s in RecordingStatus])
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("--show-numbers", action="store_true", help="unmasked callers")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = settings_engine(settings)
    try:
        require_head(engine)
        match args.recordings_command:
            case "sweep":
                return _sweep(settings, engine, args)
            case "retention":
                return _retention(settings, engine, args)
            case _:
                return _list(engine, args)
    finally:
        engine.dispose()


def _row(rec: Recording, show_numbers: bool) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": rec.id, "linkedid": rec.linkedid, "uniqueid": rec.uniqueid,
        "started_at": at(rec.started_at), "answered_at": at(rec.answered_at),
        "ended_at": at(rec.ended_at), "did": rec.did,
        "caller": rec.caller if show_numbers else mask_number(rec.caller),
        "account": rec.account, "category": rec.category, "desk": rec.desk, "queue": rec.queue,
        "agent": rec.agent, "emergency": rec.emergency, "wait_s": rec.wait_s,
        "duration_s": rec.duration_s, "file": rec.file_name, "format": rec.format,
        "size_bytes": rec.size_bytes, "sha256": rec.sha256, "audio_s": rec.audio_s,
        "status": str(rec.status), "status_detail": rec.status_detail,
        "voice_message_id": rec.voice_message_id, "transcript_id": rec.transcript_id,
        "deleted_at": at(rec.deleted_at),
    }  # fmt: skip


def _sweep(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    recorder = build_recorder(settings, engine)
    rows = recorder.sweep_once()
    if rows:
        asyncio.run(_push_jobs(settings, engine))
    if args.json:
        _out(json.dumps([_row(r, False) for r in rows], ensure_ascii=False))
        return 0
    counts = Counter(str(r.status) for r in rows)
    summary = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    _out(
        f"{len(rows)} call(s) catalogued{f' ({summary})' if summary else ''}; "
        f"{recorder.waiting} still recording or waiting in {recorder.monitor_dir}"
    )
    return 0


def _retention(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    result = apply_retention(settings, engine, days=args.days)
    doc = {"cutoff": result.cutoff.isoformat(), "rows": result.rows, "files": result.files,
           "missing": result.missing, "failed": result.failed}  # fmt: skip
    if args.json:
        _out(json.dumps(doc))
    else:
        _out(
            f"calls started before {result.cutoff:%Y-%m-%d %H:%M} UTC: {result.rows} marked "
            f"deleted, {result.files} file(s) removed, {result.missing} already gone, "
            f"{result.failed} failed"
        )
    return 1 if result.failed else 0


def _list(engine: Engine, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    query = select(Recording).order_by(Recording.started_at.desc(), Recording.id.desc())
    if args.status:
        query = query.where(Recording.status == RecordingStatus(args.status))
    with Session(engine) as session:
        rows = list(session.scalars(query.limit(args.limit)))
    if args.json:
        _out(json.dumps([_row(r, args.show_numbers) for r in rows], ensure_ascii=False))
        return 0
    if not rows:
        _out("no recordings")
    for r in rows:
        caller = r.caller if args.show_numbers else mask_number(r.caller)
        duration = "-" if r.duration_s is None else f"{r.duration_s:.0f} s"
        wait = "" if r.wait_s is None else f" wait {r.wait_s:.0f} s"
        what = " ".join(filter(None, [r.file_name, r.status_detail and f"({r.status_detail})"]))
        flag = " EMERGENCY" if r.emergency else ""
        _out(
            f"{r.id:>6} {r.started_at:%Y-%m-%d %H:%M:%S} {r.status:<10} {caller:<14} "
            f"{r.did:<11} {r.desk or '-':<12} {r.agent or '-':<24} {duration:>6}{wait}{flag}  "
            f"{what}"
        )
    return 0
