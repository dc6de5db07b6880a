"""The recorder: ended calls' legs in the monitor directory become one stereo file and one row.

Asterisk leaves four files per recorded call in its monitor directory, all named after the
caller channel's UNIQUEID (filtered to ``-0-9A-Za-z._``; see dialplan/README.md; for an
agent's outbound call, the customer's channel: the customer is the caller's leg)::

    <name>-caller.wav   what the caller said (MixMonitor r())
    <name>-agent.wav    what the caller heard: prompts, the agent (MixMonitor t())
    <name>.call         the call's facts, written at hang-up (ivr.core.recording_meta)
    <name>.done         touched by MixMonitor once both legs are closed: the call has ended

:meth:`Recorder.sweep_once` catalogues every ended call it finds — the ``ivr recorder`` role
calls it every ``recordings.scan_interval_s``; after an outage of the app the first sweep
catalogues whatever piled up. For each call, in this order:

1. the legs are decoded (also a leg whose header Asterisk never finished) and combined into
   one stereo 8 kHz 16-bit WAV, caller left, agent right, the shorter leg padded with
   silence, written atomically to ``<recordings_dir>/YYYY/MM/DD/<UTC time>-<hash>.wav``
   (:func:`ivr.core.recording_meta.recording_stem`: never named after caller input);
2. one :class:`~ivr.adapters.sql.db.Recording` row is inserted with the facts, the file's size,
   SHA-256 and length, and the voice message of the same channel linked; ``on_catalogued``
   runs in that same transaction (it may register SQLAlchemy ``after_commit`` listeners on
   the session for work that must follow the commit); then the commit;
3. only then are the call's files removed from the monitor directory (the marker last).

A crash anywhere repeats at most the step it was in: the row is unique by Linkedid and a
call already in the catalog is only cleaned up. Statuses: ``empty`` (no audio in either leg:
no file), ``corrupt`` (a leg cannot be decoded: the reason in ``status_detail``, the legs
moved to ``<recordings_dir>/unreadable/<stem>-caller.wav`` ... so nothing is lost),
``incomplete`` (no end-of-call marker after ``recordings.incomplete_after_s``: Asterisk
stopped mid-call; what was recorded is catalogued). :func:`apply_retention` deletes files of
calls older than ``recordings.retention_days`` and marks their rows ``deleted``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.adapters.recordings.voice_messages import message_from_facts
from ivr.adapters.sql.db import Recording, RecordingStatus, VoiceMessage, utcnow
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.disk import DiskSpace
from ivr.core.recording_meta import (
    MAX_FACTS_BYTES,
    CallFacts,
    Readiness,
    desk_for,
    parse_facts,
    readiness,
    recording_stem,
    reversed_digits,
)
from ivr.core.wav import HEADER_READ, NotWav, WavLayout, parse_wav_header
from ivr.errors import InvalidInput
from ivr.logging_setup import mask_number
from ivr.settings import Settings

logger = logging.getLogger(__name__)

CALLER_LEG = "-caller.wav"
AGENT_LEG = "-agent.wav"
FACTS = ".call"
DONE = ".done"
UNREADABLE = "unreadable"  # under recordings_dir: legs that could not be decoded, kept
SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
_SUFFIXES = (("caller", CALLER_LEG), ("agent", AGENT_LEG), ("facts", FACTS), ("done", DONE))
_NAME = re.compile(r"[-0-9A-Za-z._]{1,160}")  # what the dialplan's FILTER() lets through
_DETAIL_MAX = 255
SLICE_S = 60  # legs are combined a minute at a time: an hour-long call is never all in memory
RETRY_MAX_S = 60.0  # a call that failed is tried again after 1, 2, 4 ... s, at most this

# (session, the new row, the call's facts if it had a facts file)
OnCatalogued = Callable[[Session, Recording, CallFacts | None], None]


@dataclass
class CallFiles:
    """One recorded call's files in the monitor directory (None: not there)."""

    name: str
    caller: Path | None = None
    agent: Path | None = None
    facts: Path | None = None
    done: Path | None = None

    def present(self) -> list[Path]:
        """Legs, facts, then the marker (the order they are removed in)."""
        return [p for p in (self.caller, self.agent, self.facts, self.done) if p is not None]


def scan(monitor_dir: Path) -> dict[str, CallFiles]:
    """The calls in ``monitor_dir`` by name; other files and symlinks are left alone."""
    calls: dict[str, CallFiles] = {}
    try:
        entries = list(os.scandir(monitor_dir))
    except FileNotFoundError:
        return calls
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        for attr, suffix in _SUFFIXES:
            if entry.name.endswith(suffix):
                name = entry.name[: -len(suffix)]
                if _NAME.fullmatch(name):
                    setattr(calls.setdefault(name, CallFiles(name)), attr, Path(entry.path))
                break
    return calls


@dataclass
class _Leg:
    """One leg, opened but not read: its samples are read a slice at a time."""

    path: Path | None = None
    layout: WavLayout | None = None  # None: no samples to read
    error: str | None = None  # why it cannot be decoded (the call is then corrupt)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return 0.0 if self.layout is None else self.layout.seconds


def _open_leg(path: Path | None, role: str) -> _Leg:
    if path is None:
        return _Leg(notes=[f"{role} leg missing"])
    size = path.stat().st_size
    if size == 0:
        return _Leg(notes=[f"{role} leg empty (0 bytes)"])
    with path.open("rb") as raw:
        head = raw.read(HEADER_READ)
    try:
        layout = parse_wav_header(head, size)
    except NotWav as exc:
        return _Leg(error=f"{role} leg cannot be decoded: {exc}")
    leg = _Leg(path)
    if not layout.header_ok:
        leg.notes.append(f"{role} leg header unfinished: read to the end of the file")
    if layout.frames == 0:
        leg.notes.append(f"{role} leg holds no audio")
    else:
        leg.layout = layout
    return leg


def _slices(leg: _Leg) -> Iterator[Any]:
    """The leg as mono 8 kHz 16-bit pydub AudioSegments of SLICE_S seconds each."""
    from pydub import AudioSegment

    if leg.path is None or leg.layout is None:
        return
    layout = leg.layout
    step = layout.sample_rate * SLICE_S * layout.frame_size
    with leg.path.open("rb") as raw:
        raw.seek(layout.data_offset)
        left = layout.data_size
        while left > 0:
            data = raw.read(min(step, left))
            left -= len(data)
            data = data[: len(data) - len(data) % layout.frame_size]
            if not data:
                return  # the file shrank under us: what was there is kept
            audio = AudioSegment(
                data=data,
                sample_width=layout.sample_width,
                frame_rate=layout.sample_rate,
                channels=layout.channels,
            )
            yield audio.set_channels(1).set_sample_width(SAMPLE_WIDTH).set_frame_rate(SAMPLE_RATE)


def _silence(frames: int) -> Any:
    from pydub import AudioSegment

    return AudioSegment(
        data=b"\0" * (frames * SAMPLE_WIDTH),
        sample_width=SAMPLE_WIDTH,
        frame_rate=SAMPLE_RATE,
        channels=1,
    )


@dataclass(frozen=True, slots=True)
class _Written:
    file_name: str  # relative to recordings_dir
    size: int
    sha256: str
    audio_s: float


def _write_stereo(caller: _Leg, agent: _Leg, target: Path, file_name: str) -> _Written:
    """Caller left, agent right, a slice at a time; the shorter leg padded with silence.
    Written to a temporary file beside the target, synced, then renamed over it."""
    from pydub import AudioSegment

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    frames = 0
    try:
        with tmp.open("wb") as out:
            with wave.open(out, "wb") as stereo:
                stereo.setnchannels(2)
                stereo.setsampwidth(SAMPLE_WIDTH)
                stereo.setframerate(SAMPLE_RATE)
                for left, right in zip_longest(_slices(caller), _slices(agent)):
                    length = max(int(s.frame_count()) for s in (left, right) if s is not None)
                    pair = []
                    for part in (left, right):
                        pad = _silence(length - (0 if part is None else int(part.frame_count())))
                        pair.append(pad if part is None else part + pad)
                    stereo.writeframes(AudioSegment.from_mono_audiosegments(*pair).raw_data)
                    frames += length
            out.flush()
            os.fsync(out.fileno())
        digest = hashlib.sha256()
        with tmp.open("rb") as written:
            for chunk in iter(lambda: written.read(1 << 20), b""):
                digest.update(chunk)
        size = tmp.stat().st_size
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return _Written(file_name, size, digest.hexdigest(), round(frames / SAMPLE_RATE, 3))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _detail(parts: list[str]) -> str | None:
    text = "; ".join(p for p in parts if p)
    if len(text) > _DETAIL_MAX:
        text = text[: _DETAIL_MAX - 3] + "..."
    return text or None


@dataclass(frozen=True, slots=True)
class _Known:
    """What the catalog already holds for a call: enough to finish its cleanup."""

    uniqueid: str
    status: RecordingStatus
    stem: str


class Recorder:
    """Catalogues ended calls from ``monitor_dir`` (default: ``recordings.monitor_dir``)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        on_catalogued: OnCatalogued | None = None,
        *,
        monitor_dir: Path | None = None,
    ) -> None:
        monitor = monitor_dir or settings.recordings.monitor_dir
        if monitor is None:
            raise ValueError("Recorder: no monitor directory (recordings.monitor_dir)")
        self.settings = settings
        self.engine = engine
        self.on_catalogued = on_catalogued
        self.monitor_dir = monitor
        self.recordings_dir = settings.recordings_dir
        self.stopping = threading.Event()  # set: the sweep stops after the call in hand
        self.waiting = 0  # calls left on disk by the last sweep (still recording, or late)
        self.catalogued_total = 0
        self._retry: dict[str, tuple[float, int]] = {}  # failed calls: (next try, attempts)
        desks = load_routing(settings.routing_dir).desks
        self._desk_by_category = {d.category: d.id for d in desks}
        self._desk_by_queue = {d.queue: d.id for d in desks}

    # --- the sweep -----------------------------------------------------------------------
    def sweep_once(self) -> list[Recording]:
        """Catalogue every call in the monitor directory that has ended; returns the new rows
        (detached, readable). A call that fails is logged and left for the next sweep."""
        catalogued: list[Recording] = []
        waiting = 0
        now = time.time()
        calls = scan(self.monitor_dir)
        self._retry = {name: r for name, r in self._retry.items() if name in calls}
        for files in calls.values():
            if self.stopping.is_set():
                break
            retry_at, attempts = self._retry.get(files.name, (0.0, 0))
            if retry_at > now:
                waiting += 1
                continue
            try:
                state, facts = self._assess(files, now)
                if state is Readiness.WAIT:
                    waiting += 1
                    continue
                row = self._process(files, facts, state)
            except FileNotFoundError:
                # Another sweep (an operator's `ivr recordings sweep`) took it meanwhile.
                logger.info("recording taken by another sweep", extra={"call": files.name})
                continue
            except Exception as exc:  # one bad call must not stop the others: retried later
                waiting += 1
                self._retry[files.name] = (now + min(RETRY_MAX_S, 2.0**attempts), attempts + 1)
                logger.error(
                    "recording not catalogued: %s", exc, extra={"call": files.name}, exc_info=True
                )
                continue
            self._retry.pop(files.name, None)
            if row is not None:
                catalogued.append(row)
        self.waiting = waiting
        self.catalogued_total += len(catalogued)
        return catalogued

    def _assess(self, files: CallFiles, now: float) -> tuple[Readiness, CallFacts | None]:
        stats = [p.stat() for p in files.present()]
        newest_age = now - max(s.st_mtime for s in stats)
        done_age = None if files.done is None else now - files.done.stat().st_mtime
        facts = self._facts(files)
        message_row = False
        if done_age is not None and facts is not None and facts.may_hold_message:
            message_row = self._message(facts.uniqueid or files.name) is not None
        state = readiness(
            done_age_s=done_age,
            newest_age_s=newest_age,
            facts=facts,
            message_row=message_row,
            grace_s=self.settings.recordings.facts_grace_s,
            incomplete_after_s=self.settings.recordings.incomplete_after_s,
        )
        return state, facts

    @staticmethod
    def _facts(files: CallFiles) -> CallFacts | None:
        if files.facts is None:
            return None
        with files.facts.open("rb") as raw:
            blob = raw.read(MAX_FACTS_BYTES + 1)
        facts = parse_facts(blob[:MAX_FACTS_BYTES].decode("utf-8", "replace"))
        if len(blob) > MAX_FACTS_BYTES:
            problems = (*facts.problems, f"facts file over {MAX_FACTS_BYTES} bytes: cut")
            facts = replace(facts, problems=problems)
        return facts

    def _message(self, uniqueid: str) -> VoiceMessage | None:
        with Session(self.engine) as session:
            return session.scalar(select(VoiceMessage).where(VoiceMessage.uniqueid == uniqueid))

    def _known(self, linkedid: str) -> _Known | None:
        with Session(self.engine) as session:
            row = session.scalar(select(Recording).where(Recording.linkedid == linkedid))
            if row is None:
                return None
            return _Known(row.uniqueid, row.status, recording_stem(row.linkedid, row.started_at))

    def _process(
        self, files: CallFiles, facts: CallFacts | None, state: Readiness
    ) -> Recording | None:
        uniqueid = (facts.uniqueid if facts else None) or files.name
        linkedid = (facts.linkedid if facts else None) or uniqueid
        known = self._known(linkedid)
        if known is not None and known.uniqueid != uniqueid:
            # A second recorded channel in the same call: kept as a call of its own.
            linkedid = f"{linkedid}+{uniqueid}"[:150]
            known = self._known(linkedid)
        if known is not None:  # catalogued before a crash or by another sweep: clean up only
            self._finish(files, known.status, known.stem)
            return None
        row = self._build(files, facts, state, linkedid, uniqueid)
        committed = self._insert(row, facts)
        if committed is None:  # another sweep inserted it between our look and our insert
            known = self._known(linkedid)
            if known is not None:
                self._finish(files, known.status, known.stem)
            return None
        self._finish(
            files, committed.status, recording_stem(committed.linkedid, committed.started_at)
        )
        self._log(committed)
        return committed

    def _build(
        self,
        files: CallFiles,
        facts: CallFacts | None,
        state: Readiness,
        linkedid: str,
        uniqueid: str,
    ) -> Recording:
        f = facts or CallFacts()
        notes: list[str] = []
        if facts is None:
            notes.append("no facts file: times estimated from the files")
        notes += f.problems
        if state is Readiness.INCOMPLETE:
            notes.insert(0, "no end-of-call marker: Asterisk stopped mid-call?")
        caller, agent = _open_leg(files.caller, "caller"), _open_leg(files.agent, "agent")
        errors = [leg.error for leg in (caller, agent) if leg.error]
        notes = [*errors, *caller.notes, *agent.notes, *notes]
        legs_s = max(caller.seconds, agent.seconds)
        newest = max(p.stat().st_mtime for p in files.present())
        ended = f.ended_at if f.ended_at is not None else newest
        started = f.started_at if f.started_at is not None else ended - legs_s
        stem = recording_stem(linkedid, _moment(started) or utcnow())
        written: _Written | None = None
        if errors:
            status = RecordingStatus.corrupt
            notes.append(f"legs kept in {UNREADABLE}/{stem}-*.wav")
        elif caller.layout is None and agent.layout is None:
            status = RecordingStatus.empty
        else:
            status = (
                RecordingStatus.incomplete if state is Readiness.INCOMPLETE else RecordingStatus.ok
            )
            file_name = f"{stem}.wav"
            written = _write_stereo(caller, agent, self.recordings_dir / file_name, file_name)
        number = f.caller or ""
        return Recording(
            linkedid=linkedid,
            uniqueid=uniqueid,
            started_at=_moment(started),
            answered_at=_moment(f.answered_at),
            ended_at=_moment(ended),
            did=f.did or "",
            caller=number,
            caller_reversed=reversed_digits(number),
            account=f.account,
            category=f.category,
            desk=desk_for(f.category, f.queue, self._desk_by_category, self._desk_by_queue),
            queue=f.queue,
            agent=f.agent,
            emergency=f.emergency,
            wait_s=f.wait_s,
            duration_s=f.duration_s,
            file_name=written.file_name if written else None,
            format="wav",
            size_bytes=written.size if written else None,
            sha256=written.sha256 if written else None,
            audio_s=written.audio_s if written else None,
            status=status,
            status_detail=_detail(notes),
            catalogued_at=utcnow(),
            direction=f.direction,
        )

    def _insert(self, row: Recording, facts: CallFacts | None) -> Recording | None:
        """Insert, link the voice message (saving one the facts name that nobody saved: the
        process AGI has no SQL), run on_catalogued, commit; None: already there."""
        with Session(self.engine, expire_on_commit=False) as session:
            message = session.scalar(
                select(VoiceMessage).where(VoiceMessage.uniqueid == row.uniqueid)
            )
            from_facts = None
            if message is None and facts is not None and facts.uniqueid == row.uniqueid:
                message = from_facts = message_from_facts(facts, row.desk or row.category or "")
                if from_facts is not None:
                    session.add(from_facts)
            try:
                if message is not None:
                    session.flush()  # the message's id (a concurrent save: IntegrityError)
                    row.voice_message_id = message.id
                session.add(row)
                session.flush()
                if self.on_catalogued is not None:
                    self.on_catalogued(session, row, facts)
                session.commit()
                if from_facts is not None:
                    logger.info(
                        "voice message kept from the call's facts",
                        extra={"uniqueid": row.uniqueid, "file": from_facts.file_name},
                    )
            except IntegrityError:
                session.rollback()
                if self._known(row.linkedid) is None:
                    raise
                return None
            except Exception:
                session.rollback()
                if self._known(row.linkedid) is None:
                    raise
                # The commit went through; an after_commit listener failed after it.
                logger.exception("after-commit work failed", extra={"linkedid": row.linkedid})
            return row

    def _finish(self, files: CallFiles, status: RecordingStatus, stem: str) -> None:
        """Remove the call's files from the monitor directory; legs of a corrupt call are
        moved under recordings_dir/unreadable/ instead. The marker goes last."""
        if status is RecordingStatus.corrupt:
            kept = self.recordings_dir / UNREADABLE / stem
            kept.parent.mkdir(parents=True, exist_ok=True)
            for leg, suffix in ((files.caller, CALLER_LEG), (files.agent, AGENT_LEG)):
                if leg is not None and leg.exists():
                    shutil.move(leg, kept.with_name(kept.name + suffix))
        for path in files.present():
            path.unlink(missing_ok=True)

    def _log(self, row: Recording) -> None:
        latency = None
        if row.ended_at is not None:
            latency = round((row.catalogued_at - row.ended_at).total_seconds(), 3)
        logger.info(
            "recording catalogued",
            extra={"linkedid": row.linkedid, "uniqueid": row.uniqueid, "status": str(row.status),
                   "caller": mask_number(row.caller), "desk": row.desk, "agent": row.agent,
                   "audio_s": row.audio_s, "catalog_latency_s": latency,
                   "detail": row.status_detail or ""},
        )  # fmt: skip


# --- retention ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: datetime  # calls that started before this lost their files
    rows: int  # rows marked deleted
    files: int  # files removed
    missing: int  # files that were already gone
    failed: int  # rows left as they were: a file could not be removed


def _retained_files(recordings_dir: Path, row: Recording) -> Iterator[Path]:
    if row.file_name:
        yield recordings_dir / row.file_name
    if row.status is RecordingStatus.corrupt:
        stem = recording_stem(row.linkedid, row.started_at)
        for suffix in (CALLER_LEG, AGENT_LEG):
            yield recordings_dir / UNREADABLE / f"{stem}{suffix}"


def apply_retention(
    settings: Settings,
    engine: Engine,
    *,
    days: int | None = None,
    now: datetime | None = None,
    batch: int = 500,
) -> RetentionResult:
    """Delete the files of calls that started more than ``days`` (default
    ``recordings.retention_days``) ago; their rows stay, marked ``deleted`` with the time."""
    keep_days = settings.recordings.retention_days if days is None else days
    if keep_days < 1:
        raise InvalidInput(f"retention days must be at least 1, got {keep_days}")
    moment = now or utcnow()
    cutoff = moment - timedelta(days=keep_days)
    root = settings.recordings_dir.resolve()
    rows = files = missing = failed = 0
    with_files = (RecordingStatus.ok, RecordingStatus.incomplete, RecordingStatus.corrupt)
    last_id = 0
    while True:
        with Session(engine) as session:
            batch_rows = list(
                session.scalars(
                    select(Recording)
                    .where(Recording.started_at < cutoff, Recording.status.in_(with_files),
                           Recording.id > last_id)
                    .order_by(Recording.id)
                    .limit(batch)
                )
            )  # fmt: skip
            if not batch_rows:
                break
            for row in batch_rows:
                last_id = row.id
                try:
                    removed, gone = _remove(root, _retained_files(root, row))
                except OSError as exc:
                    failed += 1
                    logger.error("retention: file not removed: %s", exc, extra={"id": row.id})
                    continue
                files += removed
                missing += gone
                if row.sha256:  # and the mp3 made of it for a download, if one was
                    files += _remove_conversions(settings.conversion_dir, row.sha256)
                was = row.file_name or f"{row.status} legs"
                row.status = RecordingStatus.deleted
                row.deleted_at = moment
                row.file_name = None
                row.status_detail = _detail([f"deleted by retention ({keep_days} days): {was}"])
                rows += 1
            session.commit()
    result = RetentionResult(cutoff, rows, files, missing, failed)
    logger.info(
        "retention done",
        extra={"cutoff": cutoff.isoformat(), "days": keep_days, "rows": rows, "files": files,
               "missing": missing, "failed": failed},
    )  # fmt: skip
    return result


def _remove_conversions(conversion_dir: Path, digest: str) -> int:
    """Delete the downloads converted from the file with this SHA-256 (named by it only)."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        return 0
    removed = 0
    for path in conversion_dir.glob(f"{digest}-*.mp3"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _remove(root: Path, paths: Iterator[Path]) -> tuple[int, int]:
    removed = gone = 0
    for path in paths:
        if not path.resolve().is_relative_to(root):  # a row naming a file elsewhere
            raise OSError(f"{path} is outside {root}")
        try:
            path.unlink()
        except FileNotFoundError:
            gone += 1
        else:
            removed += 1
    return removed, gone


# --- the role's heartbeat ----------------------------------------------------------------
HEARTBEAT_FILE = "recorder.json"


def heartbeat_path(settings: Settings) -> Path:
    return settings.run_dir / HEARTBEAT_FILE


def write_heartbeat(
    path: Path, recorder: Recorder, error: str | None, disk_low: Sequence[DiskSpace] = ()
) -> None:
    """What `ivr status` shows for the role: its PID, the last sweep, its counts, and the
    folders low on disk space."""
    doc = {"pid": os.getpid(), "at": time.time(), "catalogued": recorder.catalogued_total,
           "waiting": recorder.waiting, "error": error,
           "monitor_dir": str(recorder.monitor_dir),
           "disk_low": [space.to_json() for space in disk_low]}  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def heartbeat_status(path: Path, pid: int, max_age_s: float) -> tuple[bool, str]:
    """(ok, detail) for the role's readiness and `ivr status`."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False, "no sweep yet"
    age = time.time() - float(doc.get("at", 0))
    if doc.get("pid") != pid:
        return False, "no sweep yet"
    if not math.isfinite(age) or age > max_age_s:
        return False, f"last sweep {age:.0f} s ago"
    if doc.get("error"):
        return False, f"last sweep failed: {doc['error']}"
    low = "".join(
        f"; LOW DISK SPACE: {space['label']} {space['free_mib']} MiB free"
        for space in doc.get("disk_low", [])
    )
    return True, (
        f"last sweep {age:.1f} s ago, {doc.get('catalogued', 0)} catalogued, "
        f"{doc.get('waiting', 0)} waiting in {doc.get('monitor_dir')}{low}"
    )
