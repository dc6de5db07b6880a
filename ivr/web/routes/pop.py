"""The agent desk's screen pop (``#pop``, ``/static/agent-pop.js``): the agent's calls as
server-sent events, keyed on each call's Linkedid.

Route (role ``agent``, a web account linked to an agent; at most ``web.max_streams_per_user``
streams open at once per user, shared with the other live pages)::

    GET /api/agent/events        text/event-stream

The stream follows the AMI events the ami role keeps (``ivr:ami:events``, read once per web
process by :class:`CallFeed`) through the pure fold :func:`ivr.core.screen_pop.follow`, for
the agent's interfaces ``PJSIP/<工号>`` and ``PJSIP/<工号>-webrtc``. Events (every ``data`` is
one JSON object; ``id`` is the stream entry's id, which ``Last-Event-ID`` resumes from)::

    retry: 2000
    event: current      {"linkedids": [...]}   on (re)connect: the agent's calls now; a page
                                               drops any pop not listed
    event: pop          the screen pop (ivr.core.screen_pop.compose): AgentCalled named the
                        agent, or a call already ringing/connected when the stream opens;
                        its history's ``possible_repeat`` names an earlier complaint this
                        call may repeat (the repeat-complaint window), else null
    event: connected    {"linkedid", "queue"}   the agent answered (AgentConnect)
    event: ended        {"linkedid", "queue"}   answered and done, not answered, or the
                                               caller hung up
    event: signed-out   the session that opened the stream ended: the stream ends
    event: unavailable  Redis went away: the stream ends, the browser comes back

A reconnect with ``Last-Event-ID`` inside the window read at start gets the events after that
id as they happened; any other (re)connect gets ``current`` and the calls going on now. The
window starts 2 minutes before the agent's current ringing or talking began (the agent
states the ami role keeps, ``ivr:live:agent_states``), else 2 s before now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.exceptions import RedisError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ivr import redis_keys
from ivr.adapters.sql import agents, users
from ivr.adapters.sql.caller_history import caller_history
from ivr.adapters.sql.db import Role
from ivr.adapters.telephony.config_check import load_checked
from ivr.core import callflow
from ivr.core.agent_states import Activity
from ivr.core.routing_models import Routing
from ivr.core.screen_pop import (
    CALLER,
    FOLLOWED,
    AgentCall,
    History,
    Signal,
    compose,
    follow,
    interfaces_of,
)
from ivr.settings import Settings
from ivr.web import static_pages
from ivr.web.auth import Forbidden, get_current_user, get_engine, session_token
from ivr.web.deps import SettingsDep
from ivr.web.routes.metrics import (
    EventStreamResponse,
    OpenStreams,
    StreamTiming,
    session_holds,
    sse_event,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["agent desk"])
static_pages.add_script(router, "agent-pop.js")

PAGE: Final = 500  # stream entries read at once
BUSY_LOOKBACK_S: Final = 120.0  # before a ringing or talking agent's state began
IDLE_LOOKBACK_S: Final = 2.0  # before now, for an agent with no call
DEFAULT_TIMING: Final = StreamTiming()
FEED_OVERLAP_S: Final = 2.0  # the feed starts this long before now
FEED_BLOCK_MS: Final = 1000  # under the web's Redis socket timeout (2 s)
FEED_FAILED: Final = None  # what a subscriber gets when the feed's Redis failed
_STREAM_ID: Final = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


@dataclass(frozen=True, slots=True)
class PopData:
    """What every pop of this web process reads: the routing and the prompts' texts."""

    routing: Routing
    prompt_texts: Mapping[str, str]  # prompt key -> text in the hotline's default language


def pop_data(request: Request, settings: Settings) -> PopData:
    """Loaded (and checked, as every role does at start) on the first stream, then kept."""
    data: PopData | None = getattr(request.app.state, "pop_data", None)
    if data is None:
        routing, catalog = load_checked(
            settings.routing_dir, settings.prompts_dir, settings.dialplan_dir
        )
        language = routing.hotline.default_language
        texts = {p.key: p.text for p in catalog if p.language == language}
        data = request.app.state.pop_data = PopData(routing, texts)
    return data


def stream_agent(request: Request, settings: Settings) -> tuple[str, str]:
    """(username, 工号) of the signed-in agent, from a SQL session of its own that is closed
    before the stream starts."""
    with Session(get_engine(request), expire_on_commit=False) as db:
        user = get_current_user(request, db, settings)
        if not users.has_role(user, Role.agent):
            raise Forbidden("needs the role agent", required=[Role.agent.value])
        return user.username, agents.agent_of_user(db, user)


def stream_key(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``: stream ids in their order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def window_start(redis: aioredis.Redis, work_number: str, now: float) -> str:
    """The stream id to read the agent's calls from (see the module's docstring)."""
    raw: Any = await redis.hget(redis_keys.LIVE_AGENT_STATES, work_number)
    since = now - IDLE_LOOKBACK_S
    if raw:
        view = json.loads(raw)
        if view.get("state") in (Activity.RINGING.value, Activity.TALKING.value):
            since = min(since, float(view.get("since") or now) - BUSY_LOOKBACK_S)
    return f"{int(since * 1000)}-0"


Entry = tuple[str, dict[str, str]]


async def entries_after(redis: aioredis.Redis, after: str) -> list[Entry]:
    """Up to :data:`PAGE` stream entries after the id ``after``, at once."""
    raw: Any = await redis.xrange(redis_keys.AMI_EVENTS, f"({after}", "+", count=PAGE)
    return [(str(entry_id), dict(fields)) for entry_id, fields in raw]


class CallFeed:
    """One reader of ``ivr:ami:events`` per web process, shared by every agent's stream: it
    hands each entry an agent's calls can turn on (:data:`ivr.core.screen_pop.FOLLOWED`) to
    every subscriber's queue. (A reader per stream read every event once per open page: 50
    agents rung at once waited seconds.) It runs while anyone subscribes, from
    :data:`FEED_OVERLAP_S` before it started; a subscriber skips what it read already. When
    Redis fails, each subscriber gets :data:`FEED_FAILED` and the feed stops (the next
    subscriber starts it again)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.queues: set[asyncio.Queue[Entry | None]] = set()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Entry | None]:
        queue: asyncio.Queue[Entry | None] = asyncio.Queue()
        self.queues.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(time.time() - FEED_OVERLAP_S))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Entry | None]) -> None:
        self.queues.discard(queue)

    async def _run(self, since: float) -> None:
        last = f"{int(since * 1000)}-0"
        try:
            while self.queues:
                raw: Any = await self.redis.xread(
                    {redis_keys.AMI_EVENTS: last}, count=PAGE, block=FEED_BLOCK_MS
                )
                for _, entries in raw or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        if fields.get("Event") in FOLLOWED:
                            for queue in self.queues:
                                queue.put_nowait((str(entry_id), dict(fields)))
        except (RedisError, OSError) as exc:
            logger.warning("screen pop feed stopped: Redis: %s", exc)
            for queue in self.queues:
                queue.put_nowait(FEED_FAILED)


def call_feed(request: Request) -> CallFeed:
    """The web process's feed (made on the first stream)."""
    feed: CallFeed | None = getattr(request.app.state, "call_feed", None)
    if feed is None:
        feed = request.app.state.call_feed = CallFeed(request.app.state.redis)
    return feed


def _sse(name: str, entry_id: str, document: Mapping[str, Any]) -> str:
    return f"id: {entry_id}\n{sse_event(name, document)}"


async def agent_events(
    redis: aioredis.Redis,
    feed: CallFeed,
    work_number: str,
    make_pop: Callable[[AgentCall], Awaitable[dict[str, Any]]],
    *,
    resume: str | None = None,
    signed_in: Callable[[], Awaitable[bool]] | None = None,
    timing: StreamTiming = DEFAULT_TIMING,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[str, None]:
    """The SSE text of one agent's stream (events: the module's docstring)."""
    interfaces = interfaces_of(work_number)
    calls: dict[str, AgentCall] = {}
    yield f"retry: {timing.retry_ms}\n\n"

    async def told(signal: Signal, entry_id: str) -> str:
        call = signal.call
        if signal.kind == "pop":
            return _sse("pop", entry_id, await make_pop(call))
        return _sse(signal.kind, entry_id, {"linkedid": call.linkedid, "queue": call.queue})

    queue = feed.subscribe()  # before the catch-up: nothing falls between the two
    try:
        last = await window_start(redis, work_number, time.time())
        resuming = resume is not None and stream_key(resume) >= stream_key(last)
        while True:  # catch up with the window
            entries = await entries_after(redis, last)
            for entry_id, fields in entries:
                last = entry_id
                calls, signals = follow(calls, fields, interfaces)
                if resuming and resume is not None and stream_key(entry_id) > stream_key(resume):
                    for signal in signals:
                        yield await told(signal, entry_id)
            if len(entries) < PAGE:
                break
        if not resuming:
            yield _sse("current", last, {"linkedids": list(calls)})
            for call in calls.values():
                yield _sse("pop", last, await make_pop(call))
                if call.connected:
                    yield _sse("connected", last, {"linkedid": call.linkedid, "queue": call.queue})
        caught_up = stream_key(last)
        wrote = checked = clock()
        while True:
            if signed_in is not None and clock() - checked >= timing.session_check_s:
                if not await signed_in():
                    yield sse_event(
                        "signed-out", {"error": "not-authenticated", "message": "sign in again"}
                    )
                    return
                checked = clock()
            entry: Entry | None = ("0-0", {})  # nothing came
            with contextlib.suppress(TimeoutError):
                entry = await asyncio.wait_for(queue.get(), timing.poll_s)
            if entry is FEED_FAILED:
                raise RedisError("the screen pop feed lost Redis")
            entry_id, fields = entry
            if stream_key(entry_id) > caught_up:
                calls, signals = follow(calls, fields, interfaces)
                for signal in signals:
                    yield await told(signal, entry_id)
                    wrote = clock()
            if clock() - wrote >= timing.keepalive_s:
                yield ": keep-alive\n\n"
                wrote = clock()
    except (RedisError, OSError) as exc:
        logger.warning("agent %s: screen pop stream ended: Redis: %s", work_number, exc)
        yield sse_event(
            "unavailable", {"error": "metrics-unavailable", "message": "Redis is unreachable"}
        )
    finally:
        feed.unsubscribe(queue)


@router.get(
    "/api/agent/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, settings: SettingsDep) -> Response:
    """Server-sent events of the signed-in agent's calls: the screen pop when a call rings
    the agent, then connected and ended, keyed on the call's Linkedid; ``Last-Event-ID``
    resumes. Ends when the session that opened it ends."""
    username, work_number = await run_in_threadpool(stream_agent, request, settings)
    data = pop_data(request, settings)
    redis: aioredis.Redis = request.app.state.redis
    engine = get_engine(request)
    token = session_token(request, settings) or ""
    header = request.headers.get("last-event-id", "").strip()
    resume = header if _STREAM_ID.fullmatch(header) else None

    async def make_pop(call: AgentCall) -> dict[str, Any]:
        found: Any = await redis.hgetall(redis_keys.live_call_facts(call.linkedid))
        facts: dict[str, str] = dict(found)
        now = time.time()
        caller = facts.get(CALLER, "")
        account = facts.get(callflow.IVR_ACCOUNT) or facts.get(callflow.IVR_ACCOUNT_KEYED, "")

        def history() -> History:
            with Session(engine) as db:
                return caller_history(
                    db, caller, account, call.linkedid, now,
                    zone=ZoneInfo(settings.tickets.timezone),
                    window_days=settings.tickets.repeat_window_days,
                )  # fmt: skip

        past = await run_in_threadpool(history)
        return compose(call, facts, past, data.routing, data.prompt_texts, now)

    async def signed_in() -> bool:
        return await run_in_threadpool(session_holds, engine, token, settings)

    streams: OpenStreams = request.app.state.open_streams
    release = streams.take(username)
    timing = StreamTiming(session_check_s=settings.web.stream_session_check_s)
    stream = agent_events(
        redis, call_feed(request), work_number, make_pop, resume=resume, signed_in=signed_in,
        timing=timing,
    )  # fmt: skip
    return EventStreamResponse(stream, on_close=release)
