"""Who is calling, and may they: sign-in, session cookie, roles per route, same-origin check.

Dependencies for routes (``Annotated`` aliases, as in ``ivr/web/deps.py``)::

    DbDep           a SQLAlchemy Session for this request (commit what you change)
    CurrentUser     the signed-in, enabled user; 401 otherwise
    QaUser, SupervisorUser, AdminUser
                    the same, holding that role (``admin`` holds every role); 403 otherwise
    require_roles(*roles)
                    the dependency behind those, for other combinations:
                    ``user: Annotated[User, require_roles(Role.qa, Role.supervisor)]`` or
                    ``@router.get(..., dependencies=[require_roles(Role.qa)])``

Unauthenticated requests get 401 JSON under ``/api/`` and a 303 redirect to ``/login`` for
pages (GET/HEAD); a missing role is 403 JSON.

Session: the cookie holds a random token (HttpOnly, SameSite=Lax, Path=/, Max-Age = the
session lifetime; Secure per ``auth.cookie_secure``, by default exactly when the request came
over https). SQL keeps the token's digest and an absolute expiry (``ivr.adapters.users``), so
sign-out, disabling a user and changing a password take effect on the next request.

CSRF: same-origin check. Every cookie-authenticated POST/PUT/PATCH/DELETE, and the sign-in
and sign-out requests themselves, must carry an ``Origin`` header (or, failing that, a
``Referer``) whose host[:port] equals the request's ``Host``; otherwise 403
``cross-origin-request``. A request with neither header is refused too, so scripts that use
the cookie must send ``Origin``. SameSite=Lax is the second layer.

Failed sign-ins are counted per username and per client address in a sliding window
(:class:`LoginThrottle`), in memory, per web process; past the limit the answer is 429 with
``Retry-After`` until the window moves on. They are logged (username, address, reason; never
the password) and written to the audit log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import ceil
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters import users
from ivr.adapters.db import Role, User, UserSession, audit
from ivr.errors import HotlineError
from ivr.settings import AuthSettings, Settings
from ivr.web.deps import SettingsDep

logger = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- errors -----------------------------------------------------------------------------------
class AuthError(HotlineError):
    slug = "auth-error"
    status = 401


class NotAuthenticated(AuthError):
    slug = "not-authenticated"
    status = 401


class Forbidden(AuthError):
    slug = "forbidden"
    status = 403


class CrossOriginRejected(AuthError):
    slug = "cross-origin-request"
    status = 403


class LoginThrottled(AuthError):
    slug = "too-many-attempts"
    status = 429

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many failed sign-ins; try again later", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class InvalidAuthRequest(AuthError):
    slug = "invalid-request"
    status = 422


async def auth_error_handler(request: Request, exc: Exception) -> Response:
    """Redirect pages to /login when not signed in; JSON (as for every HotlineError) else."""
    if not isinstance(exc, AuthError):  # registered for AuthError only
        raise exc
    path = request.url.path
    if (
        isinstance(exc, NotAuthenticated)
        and not path.startswith("/api/")
        and request.method in ("GET", "HEAD")
    ):
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(max(1, ceil(exc.retry_after_s)))
    return JSONResponse(
        {"error": exc.slug, "message": exc.message, "details": exc.details},
        status_code=exc.status,
        headers=headers,
    )


# --- rate limit of failed sign-ins ------------------------------------------------------------
class LoginThrottle:
    """Failed sign-ins per username and per client address within a sliding window.

    Bounded: at most ``max_keys`` names/addresses are tracked (least recently failed ones are
    forgotten first) and each keeps at most its limit of timestamps. In memory: every web
    process counts on its own, and a restart forgets. Thread-safe (sync routes run in a pool).
    """

    def __init__(
        self,
        max_per_user: int,
        max_per_ip: int,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> LoginThrottle:
        return cls(auth.login_max_failures, auth.login_max_failures_per_ip, auth.login_window_s)

    def _keys(self, username: str, ip: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (f"user:{username}", self.max_per_user), (f"ip:{ip}", self.max_per_ip)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, username: str, ip: str) -> float | None:
        """Seconds until ``username`` may try again from ``ip``; None if it may now."""
        now = self.clock()
        waits = []
        with self._lock:
            for key, limit in self._keys(username, ip):
                stamps = self._recent(key, now)
                if stamps is not None and len(stamps) >= limit:
                    waits.append(stamps[0] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, username: str, ip: str) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in self._keys(username, ip):
                stamps = self._recent(key, now)
                if stamps is None:
                    stamps = self._failures[key] = deque(maxlen=limit)
                stamps.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username}", None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)


# --- dependencies -----------------------------------------------------------------------------
def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.db_engine
    return engine


def get_db(request: Request) -> Iterator[Session]:
    with Session(get_engine(request), expire_on_commit=False) as session:
        yield session


def get_login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


DbDep = Annotated[Session, Depends(get_db)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request whose Origin (or Referer) is not this site."""
    if request.method not in UNSAFE_METHODS:
        return
    source = request.headers.get("origin") or request.headers.get("referer")
    expected = request.headers.get("host", "").lower()
    if not source or source == "null":
        raise CrossOriginRejected("state-changing requests must carry an Origin header")
    if not expected or urlsplit(source).netloc.lower() != expected:
        logger.warning(
            "cross-origin request refused",
            extra={"path": request.url.path, "origin": source[:200], "ip": client_ip(request)},
        )
        raise CrossOriginRejected("cross-origin request refused")


def session_token(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(settings.auth.cookie_name) or None


def get_current_user(request: Request, db: DbDep, settings: SettingsDep) -> User:
    token = session_token(request, settings)
    found = users.session_user(db, token, secret=settings.auth.session_secret) if token else None
    if found is None:
        raise NotAuthenticated("sign in first")
    check_same_origin(request)
    return found.user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role | str) -> Any:
    """A dependency giving the current user if they hold one of ``roles`` (admin: all)."""
    wanted = tuple(Role(r) for r in roles)
    if not wanted:
        raise ValueError("require_roles() needs at least one role")

    def user_with_role(user: CurrentUser) -> User:
        if not users.has_role(user, *wanted):
            raise Forbidden(
                f"needs the role {' or '.join(r.value for r in wanted)}",
                required=[r.value for r in wanted],
            )
        return user

    return Depends(user_with_role)


QaUser = Annotated[User, require_roles(Role.qa)]
SupervisorUser = Annotated[User, require_roles(Role.supervisor)]
AdminUser = Annotated[User, require_roles(Role.admin)]


# --- sign-in and sign-out ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignIn:
    user: User
    token: str
    session: UserSession


def sign_in(
    db: Session,
    settings: Settings,
    throttle: LoginThrottle,
    username: str,
    password: str,
    *,
    ip: str,
    user_agent: str | None,
) -> SignIn:
    """Check the password (unless throttled), start a session, audit; commits."""
    name = username.strip().lower()[:64]
    wait = throttle.retry_after(name, ip)
    if wait is not None:
        logger.warning("sign-in throttled", extra={"username": name, "ip": ip})
        raise LoginThrottled(round(wait, 1))
    try:
        user = users.authenticate(db, name, password)
    except users.InvalidCredentials as exc:
        throttle.failed(name, ip)
        logger.warning("sign-in failed", extra={"username": name, "ip": ip, "reason": exc.reason})
        audit(db, None, "auth.login_failed", target=name, ip=ip, actor=name)
        db.commit()
        raise
    throttle.succeeded(name)
    users.purge_expired_sessions(db)
    token, session = users.start_session(
        db,
        user,
        lifetime_s=settings.auth.session_lifetime_s,
        secret=settings.auth.session_secret,
        ip=ip,
        user_agent=user_agent,
    )
    audit(db, user, "auth.login", ip=ip)
    db.commit()
    logger.info("signed in", extra={"username": user.username, "ip": ip})
    return SignIn(user=user, token=token, session=session)


def sign_out(db: Session, settings: Settings, token: str | None, *, ip: str) -> User | None:
    """End the session of ``token`` (if any), audit; commits. Returns whose it was."""
    user = users.end_session(db, token, secret=settings.auth.session_secret) if token else None
    if user is not None:
        audit(db, user, "auth.logout", ip=ip)
        db.commit()
        logger.info("signed out", extra={"username": user.username, "ip": ip})
    return user


def cookie_secure(request: Request, settings: Settings) -> bool:
    configured = settings.auth.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def set_session_cookie(
    response: Response, request: Request, settings: Settings, token: str
) -> None:
    response.set_cookie(
        settings.auth.cookie_name,
        token,
        max_age=settings.auth.session_lifetime_s,
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        settings.auth.cookie_name,
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="lax",
    )
