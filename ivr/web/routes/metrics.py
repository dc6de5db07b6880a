"""Answer-rate metrics over HTTP, and the supervisors' live page.

Routes (every one needs the ``supervisor`` role; ``admin`` holds it)::

    GET /api/metrics/summary?period=hour|today|month   the summary document (JSON)
    GET /api/metrics/stream?period=today               the same document as server-sent events
    GET /api/metrics/hourly?day=today|YYYY-MM-DD       answer rate per hour of one local day
    GET /metrics                                       Prometheus text format (today + live)
    GET /supervisor                                    the live page (HTML)
    GET /static/supervisor.js, /static/supervisor.css  its script and style (no data: public)

The document (its fields: docs/answer-rate.md, "The summary document") is
:meth:`ivr.adapters.metrics.read.MetricsReader.document`: the store's summary plus
``period``, ``bucket``, ``timezone``, ``at``, ``answer_rate_target`` and ``health``
(anomalies, dropped, resync); the summary holds ``agents``, one entry per agent by 工号
(state, since, the caller masked, today's calls and mean handle time: docs/answer-rate.md,
"Agent states"). Caller numbers are masked (``138******00``) in everything sent here,
whatever the role. Redis unreachable: 503 ``metrics-unavailable``.

Stream: ``retry: 2000``, then one ``data:`` event with the whole document on connect, and
again after every ``ivr:metrics:changed`` message (bursts coalesced: at most one event per
``coalesce_s``), at least every ``tick_s`` while calls wait (the longest wait moves), and a
``: keep-alive`` comment after ``keepalive_s`` of silence. If Redis goes away the stream sends
``event: unavailable`` and ends; the browser comes back after the retry delay. The stream and
a listener for the client's disconnect run in one task group (Starlette's
``StreamingResponse`` pattern): whichever ends first cancels the other, and the pub/sub
connection is given back.

``/metrics`` also takes ``Authorization: Bearer <web.metrics_token>`` (a scraper has no
session; the token opens that route only) and answers 401 JSON, not the pages' redirect to
the sign-in form, without either.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Annotated, Any, Final, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ivr.adapters.metrics.read import ChangeFeed
from ivr.adapters.metrics.store import MetricsUnavailable
from ivr.adapters.sql import users
from ivr.adapters.sql.db import Role, User
from ivr.core.agent_states import Activity
from ivr.core.metrics import CallClass
from ivr.errors import HotlineError
from ivr.logging_setup import mask_number
from ivr.settings import Settings
from ivr.web import static_pages
from ivr.web.auth import (
    DbDep,
    Forbidden,
    NotAuthenticated,
    SupervisorUser,
    get_current_user,
    get_engine,
    session_token,
)
from ivr.web.deps import MetricsReaderDep, SettingsDep
from ivr.web.errors import error_document
from ivr.web.static_pages import NO_STORE

logger = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])
Period = Literal["hour", "today", "month"]
PROMETHEUS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
CLASSES: Final = tuple(klass.value for klass in CallClass)
AGENT_STATES: Final = ("free", "busy", "paused")
AGENT_ACTIVITIES: Final = tuple(activity.value for activity in Activity)
DAY_PATTERN: Final = r"^(today|\d{4}-\d{2}-\d{2})$"


class InvalidDay(HotlineError):
    """``day`` is neither ``today`` nor a real calendar date."""

    slug = "invalid-day"
    status = 422


class MetricsNotAuthenticated(HotlineError):
    """No session and no valid scrape token on ``/metrics``: 401 JSON, never the pages'
    redirect to the sign-in form (the APIs under ``/api/`` say ``not-authenticated``)."""

    slug = "metrics-not-authenticated"
    status = 401


# --- who may read ---------------------------------------------------------------------------
def _supervisor(user: User) -> User:
    if not users.has_role(user, Role.supervisor):
        raise Forbidden("needs the role supervisor", required=[Role.supervisor.value])
    return user


def stream_supervisor(request: Request, settings: SettingsDep) -> User:
    """The supervisor, from a session of its own that is closed before the stream starts (a
    request's DbDep would hold a pooled SQL connection for as long as the stream lasts)."""
    with Session(get_engine(request), expire_on_commit=False) as db:
        user = get_current_user(request, db, settings)
    return _supervisor(user)


def scrape_supervisor(request: Request, db: DbDep, settings: SettingsDep) -> User | None:
    """A supervisor's session, or (None) the scrape token ``web.metrics_token`` as
    ``Authorization: Bearer``. A bearer that is not the token is refused, never passed on."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        token = settings.web.metrics_token
        if token is None:
            raise MetricsNotAuthenticated("no scrape token is configured (web.metrics_token)")
        if not hmac.compare_digest(credentials.strip().encode(), token.get_secret_value().encode()):
            raise MetricsNotAuthenticated("wrong scrape token")
        return None
    try:
        user = get_current_user(request, db, settings)
    except NotAuthenticated as exc:
        raise MetricsNotAuthenticated(exc.message) from None
    return _supervisor(user)


StreamUser = Annotated[User, Depends(stream_supervisor)]
ScrapeUser = Annotated[User | None, Depends(scrape_supervisor)]


# --- masking --------------------------------------------------------------------------------
def masked(value: Any) -> Any:
    """A copy of ``value`` (JSON data) with every ``caller`` number masked.

    >>> masked({"over_threshold_now": [{"caller": "13800138000", "queue": "repair"}]})
    {'over_threshold_now': [{'caller': '138******00', 'queue': 'repair'}]}
    """
    if isinstance(value, Mapping):
        return {
            key: mask_number(str(item)) if key == "caller" and item is not None else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value


# --- Prometheus text format -----------------------------------------------------------------
def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


Sample = tuple[Mapping[str, str], Any]


class Exposition:
    """Builds one Prometheus text-format (0.0.4) page: HELP and TYPE, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines += [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}"
            )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text(doc: Mapping[str, Any]) -> str:
    """The ``/metrics`` page from a ``today`` document: counters of today, live gauges.

    Totals have no ``queue`` label; ``hotline_queue_*`` are per queue (calls count under the
    queue they first entered; waiting calls under the queue they wait in now).
    """
    queues: Mapping[str, Mapping[str, Any]] = doc.get("queues", {})
    health: Mapping[str, Mapping[str, int]] = doc.get("health", {})
    out = Exposition()

    def per_queue(field: str) -> list[Sample]:
        return [({"queue": q}, part[field]) for q, part in queues.items()]

    def sizes(field: str) -> list[Sample]:
        return [({"queue": q}, len(part[field])) for q, part in queues.items()]

    out.family(
        "hotline_calls_today_total",
        "counter",
        "Calls today by class (local day of the first queue entry; resets at midnight).",
        [({"class": k}, doc[k]) for k in CLASSES],
    )
    out.family(
        "hotline_queue_calls_today_total",
        "counter",
        "Calls today by the queue first entered and class (resets at midnight).",
        [({"queue": q, "class": k}, part[k]) for q, part in queues.items() for k in CLASSES],
    )
    out.family(
        "hotline_answer_rate_today",
        "gauge",
        "Answered within the threshold / offered, today (NaN when nothing was offered).",
        [({}, doc["answer_rate"])],
    )
    out.family(
        "hotline_queue_answer_rate_today",
        "gauge",
        "Answer rate today per queue first entered (NaN when nothing was offered).",
        per_queue("answer_rate"),
    )
    out.family(
        "hotline_answer_rate_target",
        "gauge",
        "The answer rate the service standard asks for.",
        [({}, doc.get("answer_rate_target"))],
    )
    out.family(
        "hotline_threshold_seconds",
        "gauge",
        "Default longest wait for a call to count as answered.",
        [({}, doc["threshold_s"])],
    )
    out.family(
        "hotline_queue_threshold_seconds",
        "gauge",
        "Longest wait for a call to count as answered, per queue.",
        per_queue("threshold_s"),
    )
    out.family("hotline_waiting_calls", "gauge", "Calls waiting now.", [({}, doc["waiting_now"])])
    out.family(
        "hotline_queue_waiting_calls",
        "gauge",
        "Calls waiting now per queue.",
        per_queue("waiting_now"),
    )
    out.family(
        "hotline_longest_wait_seconds",
        "gauge",
        "Longest wait of a call waiting now (0 when none waits).",
        [({}, doc["longest_wait_s"])],
    )
    out.family(
        "hotline_queue_longest_wait_seconds",
        "gauge",
        "Longest wait of a call waiting now, per queue.",
        per_queue("longest_wait_s"),
    )
    out.family(
        "hotline_over_threshold_calls",
        "gauge",
        "Calls waiting now for longer than their threshold.",
        [({}, len(doc["over_threshold_now"]))],
    )
    out.family(
        "hotline_queue_over_threshold_calls",
        "gauge",
        "Calls waiting now for longer than their threshold, per queue.",
        sizes("over_threshold_now"),
    )
    out.family(
        "hotline_agents",
        "gauge",
        "Agents by state now (an agent in several queues counts once).",
        [({"state": s}, doc[f"agents_{s}"]) for s in AGENT_STATES],
    )
    out.family(
        "hotline_queue_agents",
        "gauge",
        "Queue members by state now, per queue.",
        [
            ({"queue": q, "state": s}, part[f"agents_{s}"])
            for q, part in queues.items()
            for s in AGENT_STATES
        ],
    )
    _agent_families(out, doc.get("agents", []))
    for key, name, help_text, label in (
        (
            "anomalies",
            "hotline_metrics_anomalies_total",
            "Odd AMI input seen by the metrics.",
            "kind",
        ),
        ("dropped", "hotline_metrics_dropped_total", "Metrics lost while Redis was away.", "what"),
        (
            "resync",
            "hotline_metrics_resync_total",
            "AMI resyncs and the calls they closed.",
            "what",
        ),
    ):
        counts = health.get(key, {})
        out.family(name, "counter", help_text, [({label: k}, v) for k, v in counts.items()])
    return out.text()


def _agent_families(out: Exposition, agents: Iterable[Mapping[str, Any]]) -> None:
    """Per agent (工号): its state as a set of 0/1 samples (one per state), since when, the
    pause reason, today's calls and mean handle time; and how many agents are in each state."""
    agents = list(agents)
    out.family(
        "hotline_agent_state",
        "gauge",
        "1 for the state each agent (work_number) is in now, 0 for the others.",
        [
            ({"work_number": a["work_number"], "name": a["name"], "state": s}, a["state"] == s)
            for a in agents
            for s in AGENT_ACTIVITIES
        ],
    )
    out.family(
        "hotline_agent_state_since_seconds",
        "gauge",
        "When each agent entered its current state (seconds since the epoch).",
        [({"work_number": a["work_number"]}, a["since"]) for a in agents],
    )
    out.family(
        "hotline_agent_paused",
        "gauge",
        "1 for each paused agent, labelled with the reason (小休, 培训, 会议 ...).",
        [
            ({"work_number": a["work_number"], "reason": a["reason"]}, 1)
            for a in agents
            if a["state"] == "paused"
        ],
    )
    out.family(
        "hotline_agent_calls_today_total",
        "counter",
        "Queue calls each agent completed today (local day; resets at midnight).",
        [({"work_number": a["work_number"]}, a["calls_today"]) for a in agents],
    )
    out.family(
        "hotline_agent_mean_handle_seconds",
        "gauge",
        "Mean handle time (talk + wrap-up) of each agent's calls today (NaN when none).",
        [({"work_number": a["work_number"]}, a["mean_handle_s"]) for a in agents],
    )
    states = Counter(a["state"] for a in agents)
    out.family(
        "hotline_agents_by_state",
        "gauge",
        "Agents (by work number, once each) in each state now.",
        [({"state": s}, states.get(s, 0)) for s in AGENT_ACTIVITIES],
    )


# --- server-sent events ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamTiming:
    coalesce_s: float = 0.25  # at most one document per this interval
    tick_s: float = 1.0  # a document at least this often while calls wait
    keepalive_s: float = 15.0  # a comment after this long without writing
    poll_s: float = 1.0  # longest single wait on the change feed
    retry_ms: int = 2000  # the browser's reconnect delay
    session_check_s: float = 5.0  # the stream ends within about this long of a sign-out


def sse_data(document: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(document, ensure_ascii=False, separators=(',', ':'))}\n\n"


def sse_event(name: str, document: Mapping[str, Any]) -> str:
    return f"event: {name}\n{sse_data(document)}"


async def metrics_events(
    read: Callable[[], Awaitable[dict[str, Any]]],
    changes: AbstractAsyncContextManager[ChangeFeed],
    *,
    signed_in: Callable[[], Awaitable[bool]] | None = None,
    timing: StreamTiming = StreamTiming(),
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[str, None]:
    """The SSE text of the stream: ``read()`` gives the (masked) document to send.

    ``signed_in()``, asked every ``timing.session_check_s``, says whether the session that
    opened the stream still holds; when it no longer does (signed out, expired, disabled),
    a ``signed-out`` event ends the stream."""
    yield f"retry: {timing.retry_ms}\n\n"
    try:
        async with changes as feed:
            document = await read()
            yield sse_data(document)
            sent = wrote = checked = clock()
            while True:
                if signed_in is not None and clock() - checked >= timing.session_check_s:
                    if not await signed_in():
                        yield sse_event("signed-out", {"error": "not-authenticated",
                                                       "message": "sign in again"})  # fmt: skip
                        return
                    checked = clock()
                waiting = bool(document.get("waiting_now"))
                due = wrote + timing.keepalive_s
                if waiting:
                    due = min(due, sent + timing.tick_s)
                changed = await feed.wait(min(timing.poll_s, max(0.0, due - clock())))
                if changed:
                    while (left := sent + timing.coalesce_s - clock()) > 0:
                        await feed.wait(left)  # the rest of a burst rides on this document
                elif not (waiting and clock() - sent >= timing.tick_s):
                    if clock() - wrote >= timing.keepalive_s:
                        yield ": keep-alive\n\n"
                        wrote = clock()
                    continue
                document = await read()
                yield sse_data(document)
                sent = wrote = clock()
    except MetricsUnavailable as exc:
        logger.warning("metrics stream ended: %s", exc.message)
        document = error_document(exc)
        yield sse_event("unavailable", {"error": exc.slug, "message": document["message"]})


class EventStreamResponse(StreamingResponse):
    """``text/event-stream`` whose events and a disconnect listener share one task group,
    whatever the server's ASGI version: the first to end cancels the other, and the event
    generator is closed (its ``finally`` blocks run) before the response returns."""

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[str, None], *, on_close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(events, headers={**NO_STORE, "X-Accel-Buffering": "no"})
        self.events = events
        self.on_close = on_close  # called once the response is over, however it ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def first_to_end(run: Callable[[], Awaitable[None]]) -> None:
                try:
                    await run()
                finally:
                    group.cancel_scope.cancel()

            async def stream() -> None:
                try:
                    await self.stream_response(send)
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.events.aclose()

            group.start_soon(first_to_end, stream)
            group.start_soon(first_to_end, partial(self.listen_for_disconnect, receive))


# --- routes ---------------------------------------------------------------------------------
@router.get("/api/metrics/summary")
async def summary(
    _: SupervisorUser, reader: MetricsReaderDep, response: Response, period: Period = "today"
) -> dict[str, Any]:
    """The answer-rate document of the hour, day or month now, with the live state."""
    response.headers.update(NO_STORE)
    document: dict[str, Any] = masked(await reader.document(period, time.time()))
    return document


# status_code is explicit: FastAPI reads the default from the response class's __init__,
# which EventStreamResponse does not take, and failed building /openapi.json without it.
@router.get(
    "/api/metrics/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    user: StreamUser,
    request: Request,
    settings: SettingsDep,
    reader: MetricsReaderDep,
    period: Period = "today",
) -> Response:
    """Server-sent events: the summary document on connect and on every change, until the
    session that opened it ends. At most ``web.max_streams_per_user`` at once per user."""
    streams: OpenStreams = request.app.state.open_streams
    token = session_token(request, settings) or ""
    engine = get_engine(request)

    async def read() -> dict[str, Any]:
        document: dict[str, Any] = masked(await reader.document(period, time.time()))
        return document

    async def signed_in() -> bool:
        return await run_in_threadpool(session_holds, engine, token, settings)

    release = streams.take(user.username)
    timing = StreamTiming(session_check_s=settings.web.stream_session_check_s)
    events = metrics_events(read, reader.changes(), signed_in=signed_in, timing=timing)
    return EventStreamResponse(events, on_close=release)


def session_holds(engine: Engine, token: str, settings: Settings) -> bool:
    with Session(engine) as db:
        return users.session_user(db, token, secret=settings.auth.session_secret) is not None


class TooManyStreams(HotlineError):
    """This user has as many live streams open as ``web.max_streams_per_user`` allows."""

    slug = "too-many-streams"
    status = 429


class OpenStreams:
    """The live streams open per user in this web process, at most ``limit`` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def take(self, username: str) -> Callable[[], None]:
        """Count one more stream for ``username`` (refused with :class:`TooManyStreams` at
        the limit); the function returned gives it back, once, however often it is called."""
        if self.open[username] >= self.limit:
            raise TooManyStreams(
                f"{self.limit} live streams are open for {username} already; close a page",
                retry_after_s=5,
            )
        self.open[username] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open[username] -= 1
                if not self.open[username]:
                    del self.open[username]

        return release


@router.get("/api/metrics/hourly")
async def hourly(
    _: SupervisorUser,
    reader: MetricsReaderDep,
    response: Response,
    day: Annotated[str, Query(pattern=DAY_PATTERN)] = "today",
) -> dict[str, Any]:
    """Each hour of one local day (today by default): the classes, offered, answer rate."""
    if day == "today":
        wanted = reader.local_day(time.time())
    else:
        try:
            wanted = date.fromisoformat(day)
        except ValueError:
            raise InvalidDay(f"no such day: {day}", day=day) from None
    response.headers.update(NO_STORE)
    return await reader.hourly(wanted)


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(_: ScrapeUser, reader: MetricsReaderDep) -> PlainTextResponse:
    """Prometheus text format: today's counters by class and queue, the live gauges (for a
    supervisor's session or the scrape token)."""
    document = await reader.document("today", time.time())
    return PlainTextResponse(
        prometheus_text(document), media_type=PROMETHEUS_TYPE, headers=NO_STORE
    )


static_pages.add_page(
    router,
    "supervisor",
    SupervisorUser,
    description="The supervisors' live page (signed out: 303 to /login?next=/supervisor).",
)
