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
over https). SQL keeps the token's digest and an absolute expiry (``ivr.adapters.sql.users``), so
sign-out, disabling a user and changing a password take effect on the next request.

CSRF: same-origin check. Every cookie-authenticated POST/PUT/PATCH/DELETE, and the sign-in
and sign-out requests themselves, must carry an ``Origin`` header (or, failing that, a
``Referer``) whose host[:port] equals the request's ``Host``; otherwise 403
``cross-origin-request``. A request with neither header is refused too, so scripts that use
the cookie must send ``Origin``. SameSite=Lax is the second layer.

Failed sign-ins are counted per username and per client address in a sliding window
(:class:`LoginThrottle`), in memory, per web process; past a free allowance each failure
doubles the wait before the next try (429 with ``Retry-After``), up to a cap, so no name or
address is ever locked for good. The client address is the peer's, or, behind a proxy listed
in ``web.trusted_proxies``, the one that proxy saw (X-Forwarded-For). At most
``auth.max_password_checks`` password checks run at once (:class:`PasswordChecks`); a
sign-in that cannot get a turn in time gets 429 too. Failures are logged (username, address,
reason; never the password) and written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from math import ceil
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import users
from ivr.adapters.sql.db import Role, User, UserSession, audit
from ivr.errors import HotlineError
from ivr.settings import AuthSettings, Settings
from ivr.web.deps import SettingsDep
from ivr.web.errors import error_response

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- errors -----------------------------------------------------------------------------------
class AuthError(HotlineError):
    """Base of the sign-in and permission errors (pages: NotAuthenticated is a redirect)."""

    slug = "auth-error"
    status = 401


class NotAuthenticated(AuthError):
    """No valid session: 401 for the APIs, a redirect to ``/login`` for pages."""

    slug = "not-authenticated"
    status = 401


class Forbidden(AuthError):
    """Signed in, but the role does not allow this (HTTP 403)."""

    slug = "forbidden"
    status = 403


class CrossOriginRejected(AuthError):
    """A state-changing request without our Origin: refused (HTTP 403)."""

    slug = "cross-origin-request"
    status = 403


class LoginThrottled(AuthError):
    """Too many failed sign-ins for this username or address (HTTP 429, ``Retry-After``)."""

    slug = "too-many-attempts"
    status = 429

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many failed sign-ins; try again later", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class InvalidAuthRequest(AuthError):
    """A sign-in request that is neither JSON nor a form, or too large."""

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
    return error_response(exc, headers={"Cache-Control": "no-store"})


# --- rate limit of failed sign-ins ------------------------------------------------------------
class LoginThrottle:
    """Failed sign-ins per username and per client address within a sliding window.

    The first ``max_per_user`` (``max_per_ip``) failures within the window cost nothing; from
    then on each failure doubles the wait before the next try of that name (address): 1 s,
    2 s, 4 s ... up to ``max_delay_s``. Nothing is ever locked for good, so a flood can slow
    down the names and addresses it uses, never lock out a whole site, while a guesser's rate
    falls off exponentially.

    Bounded: at most ``max_keys`` names/addresses are tracked (least recently failed ones are
    forgotten first), each with a bounded number of timestamps. In memory: every web process
    counts on its own, and a restart forgets. Thread-safe (sync routes run in a pool).
    """

    def __init__(
        self,
        max_per_user: int,
        max_per_ip: int,
        window_s: float,
        *,
        max_delay_s: float = 300.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self.window_s = window_s
        self.max_delay_s = max_delay_s
        self.max_keys = max_keys
        self.clock = clock
        # past this many doublings the delay is at its cap: no need to remember more stamps
        self._extra = max(1, ceil(math.log2(max_delay_s)) + 1)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> LoginThrottle:
        return cls(
            auth.login_max_failures,
            auth.login_max_failures_per_ip,
            auth.login_window_s,
            max_delay_s=auth.login_max_delay_s,
        )

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

    def delay_after(self, failures: int, free: int) -> float:
        """The wait after ``failures`` recent failures of which ``free`` cost nothing."""
        if failures < free:
            return 0.0
        return float(min(self.max_delay_s, 2.0 ** (failures - free)))

    def retry_after(self, username: str, ip: str) -> float | None:
        """Seconds until ``username`` may try again from ``ip``; None if it may now."""
        now = self.clock()
        waits = []
        with self._lock:
            for key, free in self._keys(username, ip):
                stamps = self._recent(key, now)
                if stamps is not None:
                    wait = stamps[-1] + self.delay_after(len(stamps), free) - now
                    if wait > 0:
                        waits.append(wait)
        return max(waits) if waits else None

    def failed(self, username: str, ip: str) -> None:
        now = self.clock()
        with self._lock:
            for key, free in self._keys(username, ip):
                stamps = self._recent(key, now)
                if stamps is None:
                    stamps = self._failures[key] = deque(maxlen=free + self._extra)
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


class SignInBusy(AuthError):
    """Every password-check slot of this web process stayed busy past the wait: try again."""

    slug = "sign-in-busy"
    status = 429

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many sign-ins at once; try again in a moment",
                         retry_after_s=retry_after_s)  # fmt: skip
        self.retry_after_s = retry_after_s


class PasswordChecks:
    """At most ``limit`` password checks at once in this process, in threads of their own at
    a lower CPU priority: an argon2 check takes 64 MiB and a core for a moment, so a flood of
    sign-ins queues (on the event loop, not a thread each) rather than take the host's
    memory, and the checks that do run yield the CPU to everything else the web role does
    (its health, live pages, replays). A sign-in waits at most ``wait_s`` for its turn."""

    NICENESS: Final = 10  # added to the web role's own, for the checking threads only

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(limit)
        self._threads = ThreadPoolExecutor(
            max_workers=limit, thread_name_prefix="password-check", initializer=_lower_priority
        )

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> PasswordChecks:
        return cls(auth.max_password_checks, auth.password_check_wait_s)

    async def run(self, check: Callable[..., T], *args: Any) -> T:
        """``check(*args)`` in a checking thread once a turn is free; :class:`SignInBusy`
        when none frees up within ``wait_s``."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait_s)
        except TimeoutError:
            raise SignInBusy(retry_after_s=1.0) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, check, *args)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux keeps a nice value per thread; the threads
    argon2 starts for its lanes inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PasswordChecks.NICENESS)
    except OSError as exc:  # not permitted here: checks run at normal priority
        logger.warning("password-check threads keep normal priority: %s", exc)


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


def get_password_checks(request: Request) -> PasswordChecks:
    checks: PasswordChecks = request.app.state.password_checks
    return checks


DbDep = Annotated[Session, Depends(get_db)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
PasswordChecksDep = Annotated[PasswordChecks, Depends(get_password_checks)]


def client_ip(request: Request) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy
    (``web.trusted_proxies``); then the nearest address in X-Forwarded-For that is not one."""
    peer = request.client.host if request.client else "unknown"
    settings: Settings = request.app.state.settings
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"),
                            settings.web.trusted_proxies)  # fmt: skip


def forwarded_client(
    peer: str, forwarded_for: list[str], trusted: Sequence[IPv4Network | IPv6Network]
) -> str:
    """Walk the chain right to left (each proxy appends the address it saw), from the peer,
    while the hop is a trusted proxy; the first hop that is not is the client.

    >>> from ipaddress import ip_network
    >>> proxies = [ip_network("127.0.0.1/32")]
    >>> forwarded_for = ["203.0.113.9, 198.51.100.2"]
    >>> forwarded_client("127.0.0.1", forwarded_for, proxies)
    '198.51.100.2'
    >>> forwarded_client("192.0.2.1", ["198.51.100.2"], proxies)  # not from a proxy: ignored
    '192.0.2.1'
    >>> forwarded_client("127.0.0.1", ["not-an-address"], proxies)
    '127.0.0.1'
    """
    hops = [h.strip() for line in forwarded_for for h in line.split(",") if h.strip()]
    client = peer
    while _trusted(client, trusted) and hops:
        candidate = hops.pop()
        try:
            ip_address(candidate)
        except ValueError:
            break  # garbage in the header: the last good hop stands
        client = candidate
    return client


def _trusted(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


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
def login_name(username: str) -> str:
    """The name the throttle and the audit log know a sign-in by."""
    return username.strip().lower()[:64]


def check_throttle(throttle: LoginThrottle, name: str, ip: str) -> None:
    """Raise :class:`LoginThrottled` while ``name`` or ``ip`` has to wait."""
    wait = throttle.retry_after(name, ip)
    if wait is not None:
        logger.warning("sign-in throttled", extra={"username": name, "ip": ip})
        raise LoginThrottled(round(wait, 1))


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
    name = login_name(username)
    check_throttle(throttle, name, ip)
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
