"""The metrics routes over HTTP with a stubbed store: roles, periods, masking, Prometheus format,
the page, and the SSE generator and response (no network: the routes over a real Redis and
the page in Chromium are in tests/integration/test_supervisor_page.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from ivr.adapters.metrics.read import MetricsReader, day_hours
from ivr.adapters.metrics.store import MetricsUnavailable, bucket_names
from ivr.core.metrics import (
    Counters,
    LiveView,
    MetricsConfig,
    QueueLive,
    Summary,
    WaitingCall,
    metrics_document,
)
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.deps import get_metrics_reader
from ivr.web.routes import metrics as routes
from ivr.web.routes.metrics import (
    EventStreamResponse,
    StreamTiming,
    masked,
    metrics_events,
    prometheus_text,
)
from tests.web_support import (
    SUMMARY_FIELDS,
    loopback_settings,
    sign_in,
    staff_engine,
)

TZ = ZoneInfo("Asia/Shanghai")
NOW = 1763866500.0  # 2025-11-23 10:55:00 in Shanghai
LATE_CALLER = "13812345677"
EARLY_CALLER = "031187000123"
CONFIG = MetricsConfig(thresholds={"repair": 6.0, "emergency": 15.0})
HEALTH = {
    "anomalies": {"clock_skew": 1, "duplicate": 4, "garbled": 2},
    "anomalies_today": {"duplicate": 1},
    "dropped": {"batches": 3, "calls": 1},
    "resync": {"resyncs": 1},
}


# --- a store without Redis ------------------------------------------------------------------
def waiting(linkedid: str, queue: str, waited: float, caller: str) -> WaitingCall:
    threshold = CONFIG.threshold_s(queue)
    return WaitingCall(linkedid, queue, queue, NOW - waited, waited, caller, threshold)


def sample_document(now: float) -> dict[str, Any]:
    late = waiting("1763866400.12", "repair", 75.25, LATE_CALLER)
    early = waiting("1763866495.30", "repair", 2.0, EARLY_CALLER)
    repair = QueueLive(6.0, (late, early), agents_free=0, agents_busy=2, agents_paused=1)
    emergency = QueueLive(15.0, (), agents_free=1)
    live = LiveView(
        now, QueueLive(60.0, (late, early), 1, 2, 1), {"repair": repair, "emergency": emergency}
    )
    summary = Summary(
        Counters(answered=9, answered_late=1, abandoned=1, timed_out=1, ivr_only=3),
        {"repair": Counters(answered=9, answered_late=1, abandoned=1, timed_out=1)},
    )
    return metrics_document(summary, live, CONFIG)


class FakeStore:
    """What MetricsReader uses of MetricsStore, without Redis."""

    tz = TZ

    def __init__(self) -> None:
        self.periods: list[str] = []
        self.unavailable = False

    def buckets(self, at: float) -> dict[str, str]:
        return bucket_names(at, TZ)

    async def summary(self, period: str, now: float) -> dict[str, Any]:
        if self.unavailable:
            raise MetricsUnavailable("metrics not readable from Redis: refused")
        self.periods.append(period)
        return sample_document(now)

    async def health(self, now: float) -> dict[str, Any]:
        return json.loads(json.dumps(HEALTH))


class FakeFeed:
    def __init__(self, changes: asyncio.Queue[str]) -> None:
        self.changes = changes

    async def wait(self, timeout: float) -> bool:
        try:
            item = await asyncio.wait_for(self.changes.get(), timeout)
        except TimeoutError:
            return False
        if item == "fail":
            raise MetricsUnavailable("metrics change feed lost: connection reset")
        return True


class FakeReader(MetricsReader):
    def __init__(self) -> None:
        super().__init__(FakeStore())  # type: ignore[arg-type]
        self.changes_queue: asyncio.Queue[str] | None = None
        self.feed_closed = 0
        self.fail_feed = False

    async def hourly(self, day: date) -> dict[str, Any]:
        hours = [
            {"hour": h.name, "start": h.start, "label": h.label} | Counters().to_json()
            for h in day_hours(day, TZ)
        ]
        return {"day": day.isoformat(), "timezone": "Asia/Shanghai", "hours": hours}

    @asynccontextmanager
    async def changes(self):  # type: ignore[override]
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.changes_queue = queue
        if self.fail_feed:
            queue.put_nowait("fail")
        try:
            yield FakeFeed(queue)
        finally:
            self.feed_closed += 1


# --- the app --------------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        yield engine


@pytest.fixture
def reader() -> FakeReader:
    return FakeReader()


@contextmanager
def app_client(settings: Settings, reader: FakeReader) -> Iterator[TestClient]:
    app = create_app(settings)
    app.dependency_overrides[get_metrics_reader] = lambda: reader
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(settings: Settings, engine: Engine, reader: FakeReader) -> Iterator[TestClient]:
    with app_client(settings, reader) as client:
        yield client


API_ROUTES = ["/api/metrics/summary", "/api/metrics/hourly", "/api/metrics/stream"]


# --- who may read ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "slug"),
    [
        *((path, "not-authenticated") for path in API_ROUTES),
        ("/metrics", "metrics-not-authenticated"),
    ],
)
def test_given_no_session_when_reading_metrics_then_401_json_not_a_redirect(client, path, slug):
    response = client.get(path, follow_redirects=False)

    assert response.status_code == 401
    assert response.json()["error"] == slug


SCRAPE_TOKEN = "prometheus-scrape-token-0123456789abcdef"


@pytest.fixture
def token_client(tmp_path: Path, password_hash: str, reader: FakeReader) -> Iterator[TestClient]:
    settings = loopback_settings(tmp_path, web={"metrics_token": SCRAPE_TOKEN})
    with staff_engine(settings, password_hash), app_client(settings, reader) as client:
        yield client


def test_given_the_scrape_token_then_metrics_and_nothing_else(token_client):
    bearer = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}

    response = token_client.get("/metrics", headers=bearer)

    assert response.status_code == 200
    assert response.headers["content-type"] == routes.PROMETHEUS_TYPE
    assert "hotline_calls_today" in response.text
    for path in [*API_ROUTES, "/api/recordings", "/api/tickets", "/api/audit"]:
        assert token_client.get(path, headers=bearer).status_code == 401, path


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {SCRAPE_TOKEN}x",
        f"Bearer {SCRAPE_TOKEN[:-1]}",
        "Bearer ",
        f"Basic {SCRAPE_TOKEN}",  # not a bearer: no session either
        f"bearer {SCRAPE_TOKEN.upper()}",
    ],
)
def test_given_a_wrong_scrape_token_then_401(token_client, authorization):
    response = token_client.get("/metrics", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["error"] == "metrics-not-authenticated"


def test_given_no_token_configured_when_a_bearer_is_sent_then_401_saying_so(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})

    assert response.status_code == 401
    assert "web.metrics_token" in response.json()["message"]


def test_given_a_short_scrape_token_then_settings_refused(tmp_path):
    with pytest.raises(ValueError, match="metrics_token"):
        loopback_settings(tmp_path, web={"metrics_token": "too-short"})


def test_given_no_session_when_opening_the_page_then_redirected_to_sign_in(client):
    response = client.get("/supervisor", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/supervisor"


@pytest.mark.parametrize("path", [*API_ROUTES, "/metrics", "/supervisor"])
def test_given_a_qa_user_when_reading_metrics_then_403(client, path):
    sign_in(client, "qa1")

    response = client.get(path)

    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "needs the role supervisor",
        "details": {"required": ["supervisor"]},
    }


@pytest.mark.parametrize("username", ["sup1", "admin1"])
@pytest.mark.parametrize("period", ["hour", "today", "month"])
def test_given_supervisor_or_admin_when_asking_each_period_then_the_document(
    client, reader, username, period
):
    sign_in(client, username)

    response = client.get("/api/metrics/summary", params={"period": period})

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert SUMMARY_FIELDS <= set(doc)
    assert SUMMARY_FIELDS <= set(doc["queues"]["repair"])
    assert reader.store.periods == [period]
    assert doc["period"] == period
    assert doc["answer_rate_target"] == 0.9
    assert doc["timezone"] == "Asia/Shanghai"
    assert doc["health"] == HEALTH
    assert (doc["offered"], doc["answered"], doc["answer_rate"]) == (12, 9, 0.75)
    assert doc["queues"]["repair"]["waiting_now"] == 2


def test_given_no_period_then_today(client, reader):
    sign_in(client, "sup1")

    doc = client.get("/api/metrics/summary").json()

    assert doc["period"] == "today"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["bucket"])


@pytest.mark.parametrize("period", ["day", "week", "", "TODAY"])
def test_given_an_unknown_period_then_422(client, period):
    sign_in(client, "sup1")

    assert client.get("/api/metrics/summary", params={"period": period}).status_code == 422
    assert client.get("/api/metrics/stream", params={"period": period}).status_code == 422


def test_given_redis_unreachable_then_503_metrics_unavailable(client, reader):
    sign_in(client, "sup1")
    reader.store.unavailable = True

    response = client.get("/api/metrics/summary")

    assert response.status_code == 503
    assert response.json()["error"] == "metrics-unavailable"
    assert client.get("/metrics").status_code == 503


# --- masking --------------------------------------------------------------------------------
def test_given_calls_over_the_threshold_then_numbers_masked_everywhere(client):
    sign_in(client, "admin1")  # even the admin sees masked numbers here

    response = client.get("/api/metrics/summary")

    doc = response.json()
    assert [c["caller"] for c in doc["over_threshold_now"]] == ["138******77"]
    assert [c["caller"] for c in doc["queues"]["repair"]["over_threshold_now"]] == ["138******77"]
    assert doc["over_threshold_now"][0]["waited_s"] == 75.25
    assert LATE_CALLER not in response.text
    assert LATE_CALLER not in client.get("/metrics").text


def test_masked_walks_every_level_and_keeps_the_rest():
    doc = {"a": [{"caller": "031187000123", "n": 1}], "b": {"caller": "110"}, "caller": None}

    assert masked(doc) == {
        "a": [{"caller": "031*******23", "n": 1}],
        "b": {"caller": "***"},
        "caller": None,
    }
    assert doc["a"][0]["caller"] == "031187000123"  # a copy


# --- the hourly series ----------------------------------------------------------------------
def test_given_today_then_24_hours_of_the_local_day(client):
    sign_in(client, "sup1")

    doc = client.get("/api/metrics/hourly").json()

    assert len(doc["hours"]) == 24
    assert [h["label"] for h in doc["hours"]][:3] == ["00:00", "01:00", "02:00"]
    assert doc["hours"][0]["hour"] == f"{doc['day']}T00+0800"
    assert doc["hours"][5]["answer_rate"] is None


def test_given_a_day_then_that_day(client):
    sign_in(client, "sup1")

    doc = client.get("/api/metrics/hourly", params={"day": "2025-11-23"}).json()

    assert doc["day"] == "2025-11-23"
    assert doc["hours"][10]["hour"] == "2025-11-23T10+0800"


@pytest.mark.parametrize("day", ["yesterday", "2025-2-3", "2025-02-30", "2025-13-01"])
def test_given_a_bad_day_then_422(client, day):
    sign_in(client, "sup1")

    assert client.get("/api/metrics/hourly", params={"day": day}).status_code == 422


# --- Prometheus -----------------------------------------------------------------------------
PROM_LINE = re.compile(
    r"^(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*"
    r"|# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge)"
    r'|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*",?)*\})? '
    r"(-?[0-9.e+-]+|NaN|[+-]Inf))$"
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_given_a_supervisor_when_scraping_then_valid_prometheus_text(client):
    sign_in(client, "sup1")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert text.endswith("\n")
    for line in text.splitlines():
        assert PROM_LINE.match(line), line
    found = samples(text)
    assert found[("hotline_calls_today_total", (("class", "answered"),))] == 9
    assert found[("hotline_calls_today_total", (("class", "ivr_only"),))] == 3
    assert (
        found[("hotline_queue_calls_today_total", (("class", "timed_out"), ("queue", "repair")))]
        == 1
    )
    assert found[("hotline_answer_rate_today", ())] == 0.75
    assert found[("hotline_answer_rate_target", ())] == 0.9
    assert found[("hotline_waiting_calls", ())] == 2
    assert found[("hotline_queue_waiting_calls", (("queue", "repair"),))] == 2
    assert found[("hotline_longest_wait_seconds", ())] == 75.25
    assert found[("hotline_over_threshold_calls", ())] == 1
    assert found[("hotline_queue_threshold_seconds", (("queue", "emergency"),))] == 15
    assert found[("hotline_agents", (("state", "paused"),))] == 1
    assert found[("hotline_queue_agents", (("queue", "repair"), ("state", "busy")))] == 2
    assert found[("hotline_metrics_anomalies_total", (("kind", "duplicate"),))] == 4
    assert found[("hotline_metrics_dropped_total", (("what", "batches"),))] == 3
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["hotline_calls_today"] == "counter"  # the parser drops the _total suffix
    assert types["hotline_waiting_calls"] == "gauge"


def test_given_nothing_offered_and_odd_queue_names_then_nan_and_escaped_labels():
    doc = sample_document(NOW)
    empty = dict(doc["queues"]["emergency"])
    doc = doc | {"answer_rate": None, "queues": {'odd "q"\\name': empty}, "health": {}}

    text = prometheus_text(doc)

    assert "hotline_answer_rate_today NaN\n" in text
    assert 'hotline_queue_waiting_calls{queue="odd \\"q\\"\\\\name"} 0\n' in text
    found = samples(text)
    assert found[("hotline_queue_waiting_calls", (("queue", 'odd "q"\\name'),))] == 0
    for line in text.splitlines():
        assert PROM_LINE.match(line), line


def test_given_agents_then_per_agent_state_since_reason_calls_and_handle_time():
    agents = [
        {"work_number": "1001", "name": "张三", "state": "talking", "label": "通话", "reason": "",
         "since": NOW - 30, "until": None, "caller_masked": "139******78", "calls_today": 4,
         "mean_handle_s": 95.5, "queues": ["repair"]},
        {"work_number": "1002", "name": "李四", "state": "paused", "label": "小休",
         "reason": "培训", "since": NOW - 600, "until": None, "caller_masked": "",
         "calls_today": 0, "mean_handle_s": None, "queues": ["billing", "repair"]},
    ]  # fmt: skip
    doc = sample_document(NOW) | {"health": {}, "agents": agents}

    text = prometheus_text(doc)

    for line in text.splitlines():
        assert PROM_LINE.match(line), line
    found = samples(text)
    state = "hotline_agent_state"
    assert found[(state, (("name", "张三"), ("state", "talking"), ("work_number", "1001")))] == 1
    assert found[(state, (("name", "张三"), ("state", "idle"), ("work_number", "1001")))] == 0
    assert sum(v for (name, _), v in found.items() if name == state) == 2  # one state each
    assert found[("hotline_agent_state_since_seconds", (("work_number", "1002"),))] == NOW - 600
    assert found[("hotline_agent_paused", (("reason", "培训"), ("work_number", "1002")))] == 1
    assert ("hotline_agent_paused", (("reason", ""), ("work_number", "1001"))) not in found
    assert found[("hotline_agent_calls_today_total", (("work_number", "1001"),))] == 4
    assert found[("hotline_agent_mean_handle_seconds", (("work_number", "1001"),))] == 95.5
    assert math.isnan(found[("hotline_agent_mean_handle_seconds", (("work_number", "1002"),))])
    assert found[("hotline_agents_by_state", (("state", "paused"),))] == 1
    assert found[("hotline_agents_by_state", (("state", "offline"),))] == 0
    assert "139******78" not in text  # no caller on /metrics, not even masked


# --- the page -------------------------------------------------------------------------------
def test_given_a_supervisor_then_the_page_with_a_strict_policy_and_its_assets(client):
    sign_in(client, "sup1")

    page = client.get("/supervisor")
    script = client.get("/static/supervisor.js")
    style = client.get("/static/supervisor.css")

    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for marker in ('id="answer-rate"', 'id="waiting-now"', 'id="red-list"', 'id="hourly-chart"'):
        assert marker in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "EventSource" in script.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


# --- the stream -----------------------------------------------------------------------------
def test_given_a_supervisor_when_the_feed_fails_then_stream_sent_masked_document_then_ended(
    client, reader
):
    sign_in(client, "sup1")
    reader.fail_feed = True

    response = client.get("/api/metrics/stream")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    blocks = response.text.split("\n\n")
    assert blocks[0] == "retry: 2000"
    doc = json.loads(blocks[1].removeprefix("data: "))
    assert SUMMARY_FIELDS <= set(doc)
    assert doc["over_threshold_now"][0]["caller"] == "138******77"
    assert LATE_CALLER not in response.text
    assert blocks[2].startswith("event: unavailable\ndata: ")
    assert reader.feed_closed == 1


FAST = StreamTiming(coalesce_s=0.1, tick_s=0.2, keepalive_s=0.3, poll_s=0.05)


class Source:
    """A read() for metrics_events that counts its calls."""

    def __init__(self, waiting_now: int = 0) -> None:
        self.reads = 0
        self.waiting_now = waiting_now

    async def __call__(self) -> dict[str, Any]:
        self.reads += 1
        return {"n": self.reads, "waiting_now": self.waiting_now}


async def next_block(events, timeout: float = 2.0) -> str:
    return await asyncio.wait_for(anext(events), timeout)


async def test_given_a_burst_of_changes_then_one_document_for_the_burst():
    reader = FakeReader()
    source = Source()
    events = metrics_events(source, reader.changes(), timing=FAST)
    assert await next_block(events) == "retry: 2000\n\n"
    assert await next_block(events) == 'data: {"n":1,"waiting_now":0}\n\n'

    for _ in range(20):
        reader.changes_queue.put_nowait("changed")
    burst = await next_block(events)
    quiet = await next_block(events)  # nothing changed since: a keep-alive comes next

    assert burst == 'data: {"n":2,"waiting_now":0}\n\n'
    assert quiet == ": keep-alive\n\n"
    assert source.reads == 2
    await events.aclose()
    assert reader.feed_closed == 1


async def test_given_changes_keep_coming_then_at_most_one_document_per_coalesce_interval():
    reader = FakeReader()
    source = Source()
    events = metrics_events(source, reader.changes(), timing=FAST)
    await next_block(events)
    await next_block(events)
    loop = asyncio.get_running_loop()

    async def publish() -> None:
        for _ in range(40):
            reader.changes_queue.put_nowait("changed")
            await asyncio.sleep(0.01)

    publisher = asyncio.create_task(publish())
    stamps = []
    while len(stamps) < 3:
        block = await next_block(events)
        if block.startswith("data:"):
            stamps.append(loop.time())
    await publisher
    await events.aclose()

    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(gap >= FAST.coalesce_s * 0.9 for gap in gaps), gaps


async def test_given_calls_waiting_then_a_document_every_tick_without_changes():
    reader = FakeReader()
    source = Source(waiting_now=1)
    events = metrics_events(source, reader.changes(), timing=FAST)
    await next_block(events)
    await next_block(events)

    blocks = [await next_block(events) for _ in range(3)]

    assert [b.startswith("data:") for b in blocks] == [True, True, True]
    assert source.reads == 4
    await events.aclose()


async def test_given_redis_fails_on_connect_then_unavailable_event_and_end():
    reader = FakeReader()

    async def read() -> dict[str, Any]:
        raise MetricsUnavailable("metrics not readable from Redis: refused")

    blocks = [block async for block in metrics_events(read, reader.changes(), timing=FAST)]

    assert blocks[0] == "retry: 2000\n\n"
    event, data = blocks[1].split("\n", 1)
    assert event == "event: unavailable"
    assert json.loads(data.removeprefix("data: ")) == {
        "error": "metrics-unavailable",  # what went wrong inside stays in the log
        "message": "the live figures cannot be read right now; try again in a moment",
    }
    assert len(blocks) == 2
    assert reader.feed_closed == 1


async def test_given_the_client_disconnects_then_the_response_returns_and_the_feed_is_closed():
    reader = FakeReader()
    source = Source()
    response = EventStreamResponse(metrics_events(source, reader.changes(), timing=FAST))
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    call = asyncio.create_task(response({"type": "http"}, receive, send))
    while not any(b"data:" in m.get("body", b"") for m in sent):
        await asyncio.sleep(0.01)
    gone.set()
    await asyncio.wait_for(call, 2)

    assert sent[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert reader.feed_closed == 1


def test_given_the_real_redis_unreachable_then_503_names_no_host_or_port(
    settings: Settings, engine: Engine
) -> None:
    port = settings.redis.url.rsplit(":", 1)[1].split("/")[0]  # nothing listens there
    with TestClient(create_app(settings)) as client:
        sign_in(client, "sup1")
        response = client.get("/api/metrics/summary")
    assert response.status_code == 503
    assert response.json()["error"] == "metrics-unavailable"
    assert port not in response.text and "127.0.0.1" not in response.text
    assert "redis://" not in response.text


async def test_given_the_session_ends_then_a_signed_out_event_ends_the_stream():
    reader = FakeReader()
    answers = iter([True, True, False])
    asked = []

    async def signed_in() -> bool:
        asked.append(True)
        return next(answers)

    timing = StreamTiming(keepalive_s=0.05, poll_s=0.02, session_check_s=0.05)
    events = metrics_events(Source(), reader.changes(), signed_in=signed_in, timing=timing)
    blocks = [block async for block in events]  # ends by itself

    assert blocks[-1].startswith("event: signed-out\ndata: ")
    assert json.loads(blocks[-1].split("data: ", 1)[1])["error"] == "not-authenticated"
    assert len(asked) == 3
    assert reader.feed_closed == 1


def test_open_streams_are_capped_per_user_and_given_back_once():
    streams = routes.OpenStreams(limit=2)
    first, second = streams.take("sup1"), streams.take("sup1")
    other = streams.take("sup2")
    with pytest.raises(routes.TooManyStreams) as refused:
        streams.take("sup1")
    assert refused.value.details["retry_after_s"] == 5
    first()
    first()  # twice: counted back once
    third = streams.take("sup1")
    for release in (second, third, other):
        release()
    assert streams.open == {}
