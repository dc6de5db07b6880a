"""Users, passwords and sign-in sessions: the SQL side of authentication.

- Passwords are hashed with argon2id (argon2-cffi, RFC 9106 low-memory profile). A hash made
  with other parameters is replaced by a fresh one at the next successful sign-in.
- A session is a random 256-bit token handed to the browser; SQL keeps only its digest
  (SHA-256, or HMAC-SHA256 keyed with ``auth.session_secret`` when set) and an absolute
  expiry. Deleting the row signs the session out at once; so does disabling the user.
- Usernames are lower case; users are never deleted (the audit log names them), only disabled.

The web layer (cookies, roles per route, same-origin checks) is :mod:`ivr.web.auth`; the
``ivr users`` command is :mod:`ivr.cli_users`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import SecretStr
from sqlalchemy import CursorResult, Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Role, User, UserSession, audit, utcnow
from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_LENGTH = 256  # a cookie longer than this is not one of ours

PASSWORDS = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4 (argon2-cffi's defaults)


class UserError(HotlineError):
    """Base of the errors about web accounts (``ivr users``, sign-in)."""

    slug = "user-error"
    status = 400


class UserNotFound(UserError):
    """No account has this username."""

    slug = "user-not-found"
    status = 404


class UserExists(UserError):
    """An account with this username exists already."""

    slug = "user-exists"
    status = 409


class InvalidUserInput(UserError):
    """A username, role or password that the rules refuse."""

    slug = "invalid-user-input"
    status = 422


class InvalidCredentials(UserError):
    """Sign-in refused. The message is the same whatever the reason; ``reason`` is for logs."""

    slug = "invalid-credentials"
    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__("invalid username or password")
        self.reason = reason  # "unknown-user", "bad-password" or "disabled"


# --- names, roles, passwords ------------------------------------------------------------------
def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise InvalidUserInput(
            "username: 2-64 characters, a letter first, then letters, digits, '.', '_' or '-'"
        )
    return name


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidUserInput(
            f"role {role!r}: must be one of {', '.join(r.value for r in Role)}"
        ) from None


def has_role(user: User, *roles: Role) -> bool:
    """True when ``user`` holds one of ``roles``; ``admin`` holds them all."""
    return user.role == Role.admin or user.role in roles


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidUserInput(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidUserInput(f"password: at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise InvalidUserInput("password: not only spaces")


def hash_password(password: str, hasher: PasswordHasher = PASSWORDS) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str, hasher: PasswordHasher = PASSWORDS) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=4)
@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random password with ``hasher``'s parameters, made once: checking an
    unknown user's password against it costs exactly one verification, as for a known user
    (made afresh each time, it cost a hash and a verification: twice a known user's)."""
    return hasher.hash(secrets.token_urlsafe(16))


# --- user management --------------------------------------------------------------------------
def get_user(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username.strip().lower()))


def require_user(db: Session, username: str) -> User:
    user = get_user(db, username)
    if user is None:
        raise UserNotFound(f"no user {username.strip().lower()!r}")
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def create_user(
    db: Session,
    username: str,
    password: str,
    role: Role | str,
    *,
    hasher: PasswordHasher = PASSWORDS,
) -> User:
    name = normalize_username(username)
    valid_role = parse_role(role)
    check_password_policy(password)
    if get_user(db, name) is not None:
        raise UserExists(f"user {name!r} exists already")
    now = utcnow()
    user = User(
        username=name,
        password_hash=hash_password(password, hasher),
        role=valid_role,
        disabled=False,
        created_at=now,
        password_changed_at=now,
    )
    db.add(user)
    db.flush()
    return user


def set_password(
    db: Session, username: str, password: str, *, hasher: PasswordHasher = PASSWORDS
) -> tuple[User, int]:
    """New password; every session of the user ends. Returns the user and sessions ended."""
    check_password_policy(password)
    user = require_user(db, username)
    user.password_hash = hash_password(password, hasher)
    user.password_changed_at = utcnow()
    return user, end_user_sessions(db, user)


def set_role(db: Session, username: str, role: Role | str) -> User:
    """Takes effect on the user's next request (roles are read per request)."""
    user = require_user(db, username)
    user.role = parse_role(role)
    return user


def set_disabled(db: Session, username: str, disabled: bool) -> tuple[User, int]:
    """Disable (ending every session at once) or enable again. Returns sessions ended."""
    user = require_user(db, username)
    user.disabled = disabled
    return user, end_user_sessions(db, user) if disabled else 0


def authenticate(
    db: Session,
    username: str,
    password: str,
    *,
    hasher: PasswordHasher = PASSWORDS,
    now: datetime | None = None,
) -> User:
    """The user whose password this is, or :class:`InvalidCredentials`.

    An unknown user costs one hash verification too, so timing does not tell which names
    exist. A hash made with older parameters is upgraded on success.
    """
    try:
        name = normalize_username(username)
    except InvalidUserInput:
        name = None
    user = get_user(db, name) if name is not None else None
    if user is None:
        verify_password(_dummy_hash(hasher), password, hasher)
        raise InvalidCredentials("unknown-user")
    if not verify_password(user.password_hash, password, hasher):
        raise InvalidCredentials("bad-password")
    if user.disabled:
        raise InvalidCredentials("disabled")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password, hasher)
        logger.info("password hash upgraded", extra={"username": user.username})
    user.last_login_at = now or utcnow()
    return user


def ensure_dev_user(
    engine: Engine, username: str = "supervisor", role: Role | str = "admin"
) -> str | None:
    """Create ``username`` with a random password if missing and return that password.

    For the dev stack only (``ivr up`` prints it once, after bringing the database to head).
    Returns None when the user exists, so no password is ever shown twice or reset.
    """
    with Session(engine) as db:
        if get_user(db, username) is not None:
            return None
        password = secrets.token_urlsafe(18)
        user = create_user(db, username, password, role)
        audit(db, None, "user.add", target=user.username, actor="ivr up")
        try:
            db.commit()
        except IntegrityError:  # another process created it in between
            return None
    return password


# --- sessions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    session: UserSession


def token_digest(token: str, secret: SecretStr | None = None) -> str:
    data = token.encode()
    if secret is not None:
        return hmac.new(secret.get_secret_value().encode(), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def start_session(
    db: Session,
    user: User,
    *,
    lifetime_s: int,
    secret: SecretStr | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> tuple[str, UserSession]:
    """A new session for ``user``: returns the token for the cookie and the stored row."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = UserSession(
        token_digest=token_digest(token, secret),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime_s),
        ip=ip[:64] if ip else None,
        user_agent=user_agent[:255] if user_agent else None,
    )
    db.add(row)
    db.flush()
    return token, row


def session_user(
    db: Session, token: str, *, secret: SecretStr | None = None, now: datetime | None = None
) -> SignedIn | None:
    """The live session for ``token`` and its user; None if unknown, expired or disabled."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = db.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(
            UserSession.token_digest == token_digest(token, secret),
            UserSession.expires_at > (now or utcnow()),
            User.disabled.is_(False),
        )
    ).first()
    if row is None:
        return None
    session, user = row
    return SignedIn(user=user, session=session)


def end_session(db: Session, token: str, *, secret: SecretStr | None = None) -> User | None:
    """Delete the session for ``token``; returns its user (None if there was none)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = db.scalar(
        select(UserSession).where(UserSession.token_digest == token_digest(token, secret))
    )
    if row is None:
        return None
    user = db.get(User, row.user_id)
    db.delete(row)
    db.flush()
    return user


def end_user_sessions(db: Session, user: User) -> int:
    result = db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    return cast("CursorResult[Any]", result).rowcount


def purge_expired_sessions(db: Session, now: datetime | None = None) -> int:
    result = db.execute(delete(UserSession).where(UserSession.expires_at <= (now or utcnow())))
    return cast("CursorResult[Any]", result).rowcount
