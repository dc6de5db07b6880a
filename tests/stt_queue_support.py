"""For the STT queue and worker tests: a private redis-server, settings, rows, worker processes.

RedisServer(dir).start()        a redis-server of our own on a free loopback port (we may
                                kill and restart it without touching anyone's stack)
stt_settings(tmp, redis_url, database_url=None, **stt)
                                settings with a SQLite file (or ``database_url``), recordings
                                and Asterisk dirs under tmp, the Korean model, quick timings
add_call(engine, settings, wav) a catalogued recording of ``wav`` with its ticket and job
add_voice_message(...)          the same for a voice message in the messages dir
WorkerProcess(settings)         ``python -m ivr stt-worker --single`` (or the pool)
wait_until(predicate, timeout, what)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import tickets
from ivr.adapters.sql.db import Recording, SttJob, Ticket, TicketNote, Transcript, VoiceMessage
from ivr.adapters.stt import job_queue as stt_queue
from ivr.adapters.telephony.instance_dirs import messages_dir
from ivr.devstack.ports import free_port
from ivr.devstack.stack import settings_env
from ivr.settings import Settings
from tests.stack_support import wait_for as wait_until
from tests.stt_support import ko_model_path

REPO = Path(__file__).resolve().parent.parent


class RedisServer:
    """redis-server on 127.0.0.1, no persistence: a restart loses everything (the worst
    case a worker must survive)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.dir), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        with client:

            def pong() -> bool:
                try:
                    return bool(client.ping())
                except redis.RedisError:
                    return False

            wait_until(pong, 10, "redis-server to answer")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


def stt_settings(
    tmp: Path, redis_url: str, *, database_url: str | None = None, **stt: Any
) -> Settings:
    """Settings for a worker on a private Redis and a SQLite file in ``tmp`` (unless
    ``database_url`` names another database)."""
    options: dict[str, Any] = {
        "model_path": ko_model_path(),
        "language": "ko",
        "stream": "ivr:stt:jobs",
        "group": "stt-workers",
        "claim_idle_s": 3.0,
        "heartbeat_s": 0.5,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 4.0,
        "max_attempts": 3,
        "model_poll_s": 0.5,
        "sweep_s": 0.5,
        "drain_s": 10.0,
    }
    options.update(stt)
    return Settings(
        run_dir=tmp / "run",
        redis={"url": redis_url},
        database={"url": database_url},
        recordings={"dir": tmp / "recordings"},
        asterisk={"root": tmp / "root", "instance": "sttq"},
        ami={"secret": "stt-queue-test-secret"},
        log_level="INFO",
        stt=options,
    )


_calls = 0


def add_call(
    engine: Engine, settings: Settings, wav: Path, *, ticket: bool = True, copy: bool = True
) -> int:
    """A catalogued recording of ``wav`` (moved into recordings_dir), its ticket (when the
    call reached an agent) and its STT job, in one transaction. Returns the job id."""
    global _calls
    _calls += 1
    name = f"call-{os.getpid()}-{_calls}.wav"
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copy(wav, settings.recordings_dir / name)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        rec = Recording(
            linkedid=f"lk-{os.getpid()}-{_calls}-{time.time_ns()}",
            uniqueid=f"uq-{_calls}",
            started_at=now,
            answered_at=now,
            ended_at=now,
            did="95158",
            caller="13800138000",
            caller_reversed="00083100831",
            desk="repair",
            category="repair",
            queue="repair",
            agent="agent-1001" if ticket else None,
            file_name=name,
            audio_s=1.0,
        )
        session.add(rec)
        session.flush()
        tickets.open_for_call(session, recording=rec, voice_message=None, settings=settings)
        return stt_queue.create_job(session, recording=rec).id


def add_voice_message(engine: Engine, settings: Settings, wav: Path) -> int:
    """A voice message left after hours (file in the Asterisk messages dir), its ticket
    and its job."""
    global _calls
    _calls += 1
    folder = messages_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"repair-vm-{_calls}.wav"
    shutil.copy(wav, folder / name)
    with Session(engine) as session, session.begin():
        message = VoiceMessage(
            uniqueid=f"vm-{os.getpid()}-{_calls}-{time.time_ns()}",
            did="95158",
            caller="13900139000",
            desk="repair",
            category="repair",
            language="zh",
            file_name=name,
            duration_s=3.0,
            complete=True,
        )
        session.add(message)
        session.flush()
        tickets.open_for_call(session, recording=None, voice_message=message, settings=settings)
        return stt_queue.create_job(session, voice_message=message).id


def job(engine: Engine, job_id: int) -> SttJob:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(SttJob, job_id)
        assert row is not None
        return row


def notes_for(engine: Engine, job_id: int) -> list[TicketNote]:
    """The transcript notes of the ticket of this job's source."""
    with Session(engine) as session:
        key = session.get(SttJob, job_id).source_key  # type: ignore[union-attr]
        return list(session.scalars(select(TicketNote).where(TicketNote.source_key == key)))


def count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def ticket_of(engine: Engine, job_id: int) -> Ticket | None:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(SttJob, job_id)
        assert row is not None
        clause = (
            Ticket.recording_id == row.recording_id
            if row.recording_id is not None
            else Ticket.voice_message_id == row.voice_message_id
        )
        return session.scalar(select(Ticket).where(clause))


def transcript_of(engine: Engine, job_id: int) -> Transcript | None:
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(SttJob, job_id)
        assert row is not None
        return session.scalar(select(Transcript).where(Transcript.source_key == row.source_key))


class WorkerProcess:
    """``ivr stt-worker`` as its own process, with the settings in its environment."""

    def __init__(self, settings: Settings, log: Path, *args: str) -> None:
        self.settings = settings
        self.log = log
        self.args = args or ("--single",)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env |= settings_env(self.settings)
        env["IVR_ENV_FILE"] = "/nonexistent"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ivr", "stt-worker", *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=REPO,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
