"""The SQL store: engine, schema (SQLAlchemy 2 typed models) and the audit helper.

SQLite file by default (``<run_dir>/hotline.db``), PostgreSQL by URL (``IVR_DATABASE__URL``;
the driver, e.g. ``psycopg``, is installed separately). There is no migration tool yet:
:func:`create_all` creates missing tables at start and never alters existing ones, so a
column added to a model needs a manual ``ALTER TABLE`` (or a fresh database) until one is
adopted.

Tables::

    users       one row per person; never deleted, only disabled (the audit log names them)
    sessions    server-side sign-in sessions; the cookie holds a random token, the row its digest
    audit_log   who did what to which target, when and from where (sign-in/out, replays ...)
    voice_messages  after-hours messages: the call, the desk, the file (name only), how long

All times are stored in UTC and read back as timezone-aware datetimes on every backend.
"""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Engine,
    Enum,
    ForeignKey,
    String,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from ivr.errors import HotlineError
from ivr.settings import Settings

logger = logging.getLogger(__name__)

DB_FILE = "hotline.db"


class DatabaseUnavailable(HotlineError):
    """The database cannot be reached or its tables cannot be created."""

    slug = "database-unavailable"
    status = 503


class Role(enum.StrEnum):
    """What a person may do. ``admin`` implies every other role."""

    qa = "qa"  # finds, replays and scores calls
    supervisor = "supervisor"  # watches the live hotline and the answer rate
    admin = "admin"  # everything, including user management


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


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id PHC string
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
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


def database_url(settings: Settings) -> str:
    """``database.url``, or the SQLite file in the run dir."""
    return settings.database.url or f"sqlite:///{settings.run_dir / DB_FILE}"


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; for a SQLite file, creates its folder and turns on foreign keys."""
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    logger.debug("database engine", extra={"url": parsed.render_as_string(hide_password=True)})
    return engine


def settings_engine(settings: Settings) -> Engine:
    return create_db_engine(database_url(settings), echo=settings.database.echo)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")  # roles share the file: wait, don't fail
    finally:
        cursor.close()


def create_all(engine: Engine) -> None:
    """Create the tables that are missing (no migrations yet: existing ones are not altered)."""
    try:
        Base.metadata.create_all(engine)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's error, without the SQL
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"database {where}: {type(cause).__name__}: {cause}") from exc
