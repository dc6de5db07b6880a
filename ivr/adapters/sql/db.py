"""The SQL store: engine, schema (SQLAlchemy 2 typed models) and the audit helper.

SQLite file by default (``<run_dir>/hotline.db``), PostgreSQL by URL (``IVR_DATABASE__URL``;
the driver, e.g. ``psycopg``, is installed separately). The models here are the schema the
code expects; the database gets it through Alembic migrations (:mod:`ivr.adapters.sql.schema`,
revisions in ``ivr/adapters/sql/migrations/versions/``): ``ivr db upgrade`` creates, adopts or
upgrades it, and every role refuses to start on a database that is not at the newest
revision. A change to a model therefore needs a new revision (``ivr db revision -m MSG
--autogenerate``, then reviewed); ``ivr db check`` and the tests fail when the models and the
migrations differ.

Tables::

    users       one row per person; never deleted, only disabled (the audit log names them)
    sessions    server-side sign-in sessions; the cookie holds a random token, the row its digest
    audit_log   who did what to which target, when and from where (sign-in/out, replays ...)
    voice_messages  after-hours messages: the call, the desk, the file (name only), how long
    recordings  one row per answered call (inbound, or an agent's outbound call): call facts,
                the stereo file (name only), its status
    reviews     QA spot-check reviews of a recording; immutable (a correction is a new row)
    transcripts what vosk heard on the caller's side: text, word timings, confidence
    stt_jobs    one speech-to-text job per recording or voice message: status, attempts, error
    tickets     工单: one per call that reached a person or left a voice message
    ticket_transitions  who moved a ticket from which state to which, when
    ticket_notes        notes on a ticket; a transcript note is unique per (ticket, source)
    agents      the people who answer: 工号 (unique; the SIP username), name, active flag, the
                web account (role agent) they sign in with, the SIP password's HA1 (never the
                password) and the realm it was made with
    agent_desks the desks an agent answers, with a queue penalty each (at least one)
    agent_changes   every change to an agent: who, when, which action, each field old -> new
    survey_answers  the post-call survey's outcome, one per call (Linkedid, as its ticket's)

All times are stored in UTC and read back as timezone-aware datetimes on every backend.

PostgreSQL differs from SQLite where it matters here, and this module evens it out: its text
cannot hold a NUL character, so on PostgreSQL a NUL in any statement parameter is sent as
U+FFFD (a search for it finds nothing, a note or an audit row keeps the rest instead of the
request failing).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from ivr.core.survey import Outcome as SurveyOutcome  # the outcomes live in the core
from ivr.core.tickets import TicketState as TicketState  # the states live in the core
from ivr.errors import HotlineError
from ivr.settings import Settings

logger = logging.getLogger(__name__)

DB_FILE = "hotline.db"


class DatabaseUnavailable(HotlineError):
    """The database cannot be reached, or its schema is not the one this code needs
    (:mod:`ivr.adapters.sql.schema` has the subclasses)."""

    slug = "database-unavailable"
    status = 503
    public_message = "the database cannot be reached right now; try again in a moment"


class DatabaseBusy(DatabaseUnavailable):
    """Another process held the SQLite file's write lock for longer than the busy timeout."""

    slug = "database-busy"
    public_message = "the database is busy; try again in a moment"


def database_error(exc: OperationalError) -> DatabaseUnavailable:
    """The domain error for a driver's operational error (lost connection, locked file)."""
    cause = getattr(exc, "orig", None) or exc
    text = f"{type(cause).__name__}: {cause}"
    if "database is locked" in str(cause) or "database is busy" in str(cause):
        return DatabaseBusy(text, retry_after_s=2)
    return DatabaseUnavailable(text, retry_after_s=5)


class Role(enum.StrEnum):
    """What a person may do. ``admin`` implies every other role."""

    qa = "qa"  # finds, replays and scores calls
    supervisor = "supervisor"  # watches the live hotline and the answer rate
    admin = "admin"  # everything, including user management
    # answers calls (an agent of ivr.adapters.sql.agents links to it): may sign in, and sees
    # nothing else yet; no route above names it, so none opens to it by accident
    agent = "agent"
    # a department's staff (维修, 收费 ...; user_departments): see the tickets dispatched to
    # their departments, take them and report the result
    department = "department"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}


def _str_enum(kind: type[enum.StrEnum], length: int = 16) -> Enum:
    """A StrEnum stored as its value (VARCHAR + CHECK), on every backend."""
    return Enum(
        kind, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id PHC string
    role: Mapped[Role] = mapped_column(_str_enum(Role))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class UserSession(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256/HMAC
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(255), default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    actor: Mapped[str] = mapped_column(String(128))  # username, or e.g. "cli:root"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "auth.login"
    target: Mapped[str | None] = mapped_column(String(255), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)


class VoiceMessage(Base):
    """A voice message left after hours. The file is named, never addressed by path: it
    lives in the Asterisk instance's messages directory (``IVR_MESSAGES``)."""

    __tablename__ = "voice_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(150), unique=True)  # the caller's channel
    did: Mapped[str] = mapped_column(String(32))
    caller: Mapped[str] = mapped_column(String(32))  # unmasked: shown by role only
    desk: Mapped[str] = mapped_column(String(40), index=True)
    category: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(8))
    file_name: Mapped[str] = mapped_column(String(200))  # <desk>-<uniqueid>.wav
    duration_s: Mapped[float]
    complete: Mapped[bool]  # False: the caller hung up while recording (kept all the same)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RecordingStatus(enum.StrEnum):
    ok = "ok"  # a playable stereo file (caller left, agent right)
    empty = "empty"  # the legs held no audio (zero-length): listed, nothing to play
    corrupt = "corrupt"  # a leg could not be decoded: listed with the reason in status_detail
    incomplete = "incomplete"  # legs found without the end-of-call marker (Asterisk died)
    deleted = "deleted"  # the file was removed by retention; the row stays


class Recording(Base):
    """One answered hotline call and its recording. The file is named, never addressed by a
    path from outside: it lives in ``recordings.dir`` and is served by id only."""

    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_started_id", "started_at", "id"),
        # the QA page's usual filters, newest first within them
        Index("ix_recordings_desk_started", "desk", "started_at"),
        Index("ix_recordings_agent_started", "agent", "started_at"),
        Index("ix_recordings_emergency_started", "emergency", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(150), unique=True)  # the call id
    uniqueid: Mapped[str] = mapped_column(String(150), index=True)  # the caller's channel
    started_at: Mapped[datetime] = mapped_column(index=True)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    did: Mapped[str] = mapped_column(String(32), index=True)
    caller: Mapped[str] = mapped_column(String(32), index=True)  # unmasked: shown by role only
    caller_reversed: Mapped[str] = mapped_column(String(32), index=True)  # "last digits" search
    account: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    category: Mapped[str | None] = mapped_column(String(40), default=None)
    desk: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    queue: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    agent: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    emergency: Mapped[bool] = mapped_column(default=False, index=True)
    wait_s: Mapped[float | None] = mapped_column(default=None)  # in queue until answered
    duration_s: Mapped[float | None] = mapped_column(default=None, index=True)  # answer..hang-up
    file_name: Mapped[str | None] = mapped_column(String(200), default=None)  # in recordings.dir
    format: Mapped[str] = mapped_column(String(8), default="wav")
    # BIGINT: PostgreSQL's INTEGER ends at 2 GiB, 18.6 h of 8 kHz stereo (SQLite's does not)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    audio_s: Mapped[float | None] = mapped_column(default=None)  # length of the stereo file
    status: Mapped[RecordingStatus] = mapped_column(
        _str_enum(RecordingStatus), default=RecordingStatus.ok, index=True
    )
    status_detail: Mapped[str | None] = mapped_column(String(255), default=None)
    voice_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voice_messages.id", ondelete="SET NULL"), default=None
    )
    transcript_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcripts.id", ondelete="SET NULL", use_alter=True), default=None, index=True
    )
    catalogued_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # inbound: a call to the hotline; outbound: an agent's click-to-call (outbound_calls), whose
    # caller is the customer called and whose agent is the 工号 that called
    direction: Mapped[str] = mapped_column(
        String(8), default="inbound", server_default="inbound", index=True
    )


class Review(Base):
    """A QA spot-check of one recording. Immutable once written: a correction is a new
    review naming the one it corrects (``corrects_id``)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    reviewer: Mapped[str] = mapped_column(String(64))  # username at the time
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), default=None)
    # {item key: {"score": int, "comment": str}} for the spot-check items (ivr.core.qa)
    items: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[float]
    comment: Mapped[str] = mapped_column(Text, default="")


class Transcript(Base):
    """What the speech-to-text worker heard on the caller's side of one source."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(64), unique=True)  # "recording:12", ...
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), default=None, index=True
    )
    voice_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voice_messages.id", ondelete="SET NULL"), default=None
    )
    language: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(120))  # the model folder's name
    text: Mapped[str] = mapped_column(Text)
    # [{"word": str, "start": s, "end": s, "conf": 0..1}] in seconds from the file's start
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(default=None)  # mean word confidence
    audio_s: Mapped[float]
    decode_s: Mapped[float]
    danger_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SttJobStatus(enum.StrEnum):
    queued = "queued"  # in the Redis stream, waiting for a worker
    no_model = "no model"  # waiting in the queue: no (usable) model installed
    model_error = "model error"  # waiting in the queue: the model is there but cannot load
    running = "running"
    retrying = "retrying"  # failed, will be tried again after a backoff
    done = "done"
    silent = "silent"  # decoded, no speech found: done, with an empty transcript
    dead = "dead"  # given up (dead letter): see last_error


class SttJob(Base):
    """One transcription job. The row is the system of record; the Redis stream carries it."""

    __tablename__ = "stt_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(64), unique=True)  # as Transcript.source_key
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), default=None
    )
    voice_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voice_messages.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[SttJobStatus] = mapped_column(
        _str_enum(SttJobStatus), default=SttJobStatus.queued, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    stream_id: Mapped[str | None] = mapped_column(String(40), default=None)  # None: not sent
    transcript_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcripts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyAnswer(Base):
    """The post-call survey's outcome of one call (ivr.core.survey): one row per call, by its
    Linkedid, which is also its ticket's (tickets.linkedid) and its recording's. Written by the
    recorder from the call's facts, in the transaction that catalogues the call."""

    __tablename__ = "survey_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(150), unique=True)  # the call (and its ticket)
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), default=None, index=True
    )
    desk: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    queue: Mapped[str | None] = mapped_column(String(40), default=None)
    agent: Mapped[str | None] = mapped_column(String(80), default=None)  # the queue member
    work_number: Mapped[str | None] = mapped_column(String(12), default=None, index=True)
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    outcome: Mapped[SurveyOutcome] = mapped_column(_str_enum(SurveyOutcome, 24), index=True)
    key: Mapped[str | None] = mapped_column(String(1), default=None)  # 1, 2, 3 or a wrong one
    call_ended_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallFactRow(Base):
    """One call (Linkedid) as the answer-rate reducer classified it when it ended, stored by
    the ami role: the system of record of the call figures (docs/figures.md). Written once
    per Linkedid (a second outcome is ignored, as the live counters ignore it);
    ``ivr report recompute`` adds the calls queue_log saw that are missing."""

    __tablename__ = "call_facts"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(150), unique=True)
    callid: Mapped[str] = mapped_column(String(150), index=True)  # queue_log's callid; "" if none
    klass: Mapped[str] = mapped_column(String(16), index=True)  # a CallClass value, or unknown
    queue: Mapped[str] = mapped_column(String(40), index=True)  # first entered; "" if never
    emergency: Mapped[bool] = mapped_column(index=True)
    threshold_s: Mapped[float]
    wait_s: Mapped[float]
    counted_at: Mapped[datetime] = mapped_column(index=True)  # first entry, else last hang-up
    entered_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime]
    agent: Mapped[str] = mapped_column(String(80))  # who answered (member name); "" if nobody
    work_number: Mapped[str] = mapped_column(String(12), index=True)  # its 工号; "" if none
    talk_s: Mapped[float | None] = mapped_column(default=None)
    source: Mapped[str] = mapped_column(String(16))  # ami or queue_log
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
    # CallerIDNum (unmasked: shown by role only); "" when unknown (queue_log, an unknown call)
    caller: Mapped[str] = mapped_column(String(32), default="", server_default="", index=True)


class Ticket(Base):
    """工单: one per call that reached a person or left a voice message."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(150), unique=True)  # one ticket per call
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), default=None, index=True
    )
    voice_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voice_messages.id", ondelete="SET NULL"), default=None, index=True
    )
    desk: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    category: Mapped[str | None] = mapped_column(String(40), default=None)
    # unmasked: shown by role only; indexed for the screen pop (a caller's, an account's tickets)
    caller: Mapped[str] = mapped_column(String(32), index=True)
    account: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    agent: Mapped[str | None] = mapped_column(String(80), default=None)
    emergency: Mapped[bool] = mapped_column(default=False, index=True)
    state: Mapped[TicketState] = mapped_column(
        _str_enum(TicketState), default=TicketState.awaiting_dispatch, index=True
    )
    priority: Mapped[int] = mapped_column(default=0, index=True)  # higher = more urgent
    level: Mapped[str | None] = mapped_column(String(4), default=None)  # complaint L1..L4
    deadline_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    danger: Mapped[bool] = mapped_column(default=False, index=True)  # danger word heard
    danger_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The agent's record (ivr.core.ticket_form), saved at recorded_at; until then a draft.
    surname: Mapped[str | None] = mapped_column(String(16), default=None)
    title: Mapped[str | None] = mapped_column(String(4), default=None)  # 先生 / 女士
    contact_number: Mapped[str | None] = mapped_column(String(20), default=None)
    contact_confirmed: Mapped[bool] = mapped_column(default=False, server_default=false())
    estate: Mapped[str | None] = mapped_column(String(60), default=None)  # 小区
    building: Mapped[str | None] = mapped_column(String(20), default=None)  # 楼栋
    unit: Mapped[str | None] = mapped_column(String(20), default=None)  # 单元
    room: Mapped[str | None] = mapped_column(String(20), default=None)  # 门牌
    problem_category: Mapped[str | None] = mapped_column(String(40), default=None)
    problem_subcategory: Mapped[str | None] = mapped_column(String(40), default=None)
    happened_at: Mapped[datetime | None] = mapped_column(default=None)
    place: Mapped[str | None] = mapped_column(String(16), default=None)  # indoors / public
    description: Mapped[str | None] = mapped_column(Text, default=None)
    urgency: Mapped[str | None] = mapped_column(String(16), default=None)
    complaint: Mapped[bool] = mapped_column(default=False, server_default=false())
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # resolved/dispatched
    reply: Mapped[str | None] = mapped_column(Text, default=None)  # answered on the call
    replied_at: Mapped[datetime | None] = mapped_column(default=None)
    department: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    recorded_at: Mapped[datetime | None] = mapped_column(default=None)  # the record saved
    recorded_by: Mapped[str | None] = mapped_column(String(128), default=None)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    draft_at: Mapped[datetime | None] = mapped_column(default=None)
    # The department's part, then the hotline's reply to the customer.
    taken_by: Mapped[str | None] = mapped_column(String(128), default=None)
    taken_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[str | None] = mapped_column(Text, default=None)
    reported_at: Mapped[datetime | None] = mapped_column(default=None)
    customer_reply: Mapped[str | None] = mapped_column(Text, default=None)
    customer_reply_at: Mapped[datetime | None] = mapped_column(default=None)
    customer_reply_by: Mapped[str | None] = mapped_column(String(128), default=None)
    # 重复投诉 (ivr.core.repeats): the first complaint this complaint repeats (a ticket id; no
    # foreign key: a plain column added in place), and the link's state: marked (when the
    # record was saved), confirmed or unlinked by the agent; None: not a repeat.
    repeat_of: Mapped[int | None] = mapped_column(default=None, index=True)
    repeat_state: Mapped[str | None] = mapped_column(String(12), default=None)


class Followup(Base):
    """回访: one follow-up call owed on a ticket that reached 已完成 (ivr.core.followup decides
    when to call; :mod:`ivr.adapters.sql.followups` keeps this row). A ticket closed, reopened
    and closed again has two, called one at a time."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    desk: Mapped[str | None] = mapped_column(String(40), default=None)
    number: Mapped[str] = mapped_column(String(32))  # as the ticket has it: normalised to dial
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default="due", index=True)  # FOLLOWUP_STATUS
    attempts: Mapped[int] = mapped_column(default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_result: Mapped[str | None] = mapped_column(String(16), default=None)  # followup.Result
    in_flight: Mapped[bool] = mapped_column(default=False, index=True)
    resolved: Mapped[bool | None] = mapped_column(default=None)
    satisfaction: Mapped[str | None] = mapped_column(String(24), default=None)  # survey.Outcome
    worklist_reason: Mapped[str | None] = mapped_column(String(120), default=None)
    flagged: Mapped[bool] = mapped_column(default=False, index=True)  # not resolved: supervisors
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class OutboundCall(Base):
    """Every outbound call placed through the trunk, with who or what started it."""

    __tablename__ = "outbound_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(150), unique=True)  # Originate's ChannelId
    purpose: Mapped[str] = mapped_column(String(16), index=True)  # followup, callback
    number: Mapped[str] = mapped_column(String(32), index=True)  # normalised, as dialled
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), default=None, index=True
    )
    followup_id: Mapped[int | None] = mapped_column(
        ForeignKey("followups.id", ondelete="SET NULL"), default=None, index=True
    )
    started_by: Mapped[str] = mapped_column(String(128))  # "role:followups", or a username
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[str | None] = mapped_column(String(16), default=None)  # followup.Result
    dial_status: Mapped[str | None] = mapped_column(String(32), default=None)
    # an agent's click-to-call: the agent's device, rung first (ivr.core.callbacks.agent_device)
    device: Mapped[str | None] = mapped_column(String(80), default=None)
    placed_at: Mapped[datetime | None] = mapped_column(default=None)  # Originate sent
    # an agent's call, recorded and catalogued (recordings.direction outbound)
    recording_id: Mapped[int | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL", name="fk_outbound_calls_recording_id"),
        default=None,
        index=True,
    )


class UserDepartment(Base):
    """A department (routing/departments.yaml) a user of the role ``department`` works for."""

    __tablename__ = "user_departments"
    __table_args__ = (UniqueConstraint("user_id", "department"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(40), index=True)


class TicketTransition(Base):
    __tablename__ = "ticket_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[TicketState | None] = mapped_column(_str_enum(TicketState))
    to_state: Mapped[TicketState] = mapped_column(_str_enum(TicketState))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    actor: Mapped[str] = mapped_column(String(128))  # username, or "system"
    at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")


class TicketNote(Base):
    __tablename__ = "ticket_notes"
    # One transcript note per ticket and source, however often a job is redone.
    __table_args__ = (UniqueConstraint("ticket_id", "source_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "transcript" | "staff"
    source_key: Mapped[str | None] = mapped_column(String(64), default=None)  # None: staff note
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    transcript_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcripts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """坐席: one person who answers calls. Never deleted, only disabled (the changes and the
    recordings name them). See :mod:`ivr.adapters.sql.agents`."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    work_number: Mapped[str] = mapped_column(String(12), unique=True)  # 工号: the SIP username
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    # the web account (role agent); one agent per account
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, unique=True
    )
    sip_ha1: Mapped[str] = mapped_column(String(32))  # MD5(工号:realm:password), never it
    sip_realm: Mapped[str] = mapped_column(String(64))  # the realm sip_ha1 was made with
    password_set_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Presence (ivr.core.agent_presence): the ami role keeps Asterisk's queues in step with it.
    logged_in: Mapped[bool] = mapped_column(default=False, server_default=false())
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    pause_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    presence_at: Mapped[datetime | None] = mapped_column(default=None)
    # which device rings while logged in (chosen at log-in): "desk" or "browser"
    device: Mapped[str] = mapped_column(String(8), default="desk", server_default="desk")


class AgentDesk(Base):
    """A desk (``routing/desks.yaml``) an agent answers; penalty 0 is asked first."""

    __tablename__ = "agent_desks"
    __table_args__ = (UniqueConstraint("agent_id", "desk"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    desk: Mapped[str] = mapped_column(String(40), index=True)
    penalty: Mapped[int] = mapped_column(default=0)


class AgentChange(Base):
    """One change to an agent (the audit log has a row for it too, ``agent.<action>``)."""

    __tablename__ = "agent_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    actor: Mapped[str] = mapped_column(String(128))  # username, or "cli:<login>"
    action: Mapped[str] = mapped_column(String(32))  # add, set, disable, enable, reset-password
    # {field: {"old": ..., "new": ...}} (ivr.core.agents.changes); never a password
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)


def audit(
    session: Session,
    user: User | None,
    action: str,
    target: str | None = None,
    ip: str | None = None,
    *,
    actor: str | None = None,
) -> AuditEntry:
    """Add one audit row to ``session`` (the caller commits with the change it records).

    ``actor`` names who acted when there is no ``user`` (``"cli:<login>"``, a typed username).
    """
    entry = AuditEntry(
        user_id=user.id if user is not None else None,
        actor=(actor or (user.username if user is not None else "-"))[:128],
        action=action,
        target=target[:255] if target is not None else None,
        ip=ip[:64] if ip is not None else None,
        at=utcnow(),
    )
    session.add(entry)
    return entry


def _begin_sqlite(session: Session) -> None:
    """Make sure SQLite really is in a transaction before a SAVEPOINT.

    pysqlite opens a transaction only before INSERT/UPDATE/DELETE, never before a SAVEPOINT;
    a SAVEPOINT outside a transaction starts one of its own, and releasing it COMMITS, so
    the caller's later rollback would not undo the row. PostgreSQL needs nothing.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver: Any = connection.connection.driver_connection
    if not driver.in_transaction:
        connection.exec_driver_sql("BEGIN")


def in_savepoint(session: Session, insert: Callable[[], None]) -> IntegrityError | None:
    """Run ``insert`` (add + flush) in a SAVEPOINT; the error if a constraint refused it
    (the SAVEPOINT is rolled back, the rest of the transaction stays)."""
    _begin_sqlite(session)
    try:
        with session.begin_nested():
            insert()
    except IntegrityError as exc:
        return exc
    return None


def database_url(settings: Settings) -> str:
    """``database.url``, or the SQLite file in the run dir."""
    return settings.database.url or f"sqlite:///{settings.run_dir / DB_FILE}"


def create_db_engine(url: str, *, echo: bool = False, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for ``url``. For a SQLite file: creates its folder, turns on foreign keys
    and write-ahead logging (readers never wait for a writer), and waits up to
    ``busy_timeout_s`` for another process's write before giving up (``database is
    locked``, answered 503 by the web role)."""
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_s=busy_timeout_s))
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _postgres_parameters, retval=True)
    logger.debug("database engine", extra={"url": parsed.render_as_string(hide_password=True)})
    return engine


def settings_engine(settings: Settings) -> Engine:
    return create_db_engine(
        database_url(settings),
        echo=settings.database.echo,
        busy_timeout_s=settings.database.busy_timeout_s,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout_s: float) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        # roles share the file: wait for another's write rather than fail at once
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode=WAL")  # kept by the file once set
    finally:
        cursor.close()


NUL: Final = "\x00"
NUL_STORED: Final = "\ufffd"  # what PostgreSQL gets instead (the replacement character)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, NUL_STORED) if NUL in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(item) for item in value)
    return value


def _postgres_parameters(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    """PostgreSQL's text cannot hold NUL (the driver refuses it: a 500 for a search or a
    sign-in with one in it): send U+FFFD instead, in every parameter of every statement."""
    return statement, _without_nul(parameters)


#: pg_advisory_xact_lock key held by a schema upgrade (ivr.adapters.sql.schema): upgraders
#: starting at once take turns ("hotline" in ASCII).
SCHEMA_LOCK: Final = 0x686F746C696E65
