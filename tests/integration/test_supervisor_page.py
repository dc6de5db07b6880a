"""The metrics routes against a real stack, and the supervisors' live page in headless Chromium.

The page test signs in through the form, checks the numbers, empties the repair queue of its
simulated agent and places a real call into it: "waiting now" must move within 2 s of the
``QueueCallerJoin`` (watched on an AMI link of our own), and the call must join the red list
once it has waited past the repair threshold. The screenshot goes to
``test-artifacts/supervisor.png``.

Needs Debian's ``chromium`` (apt) and the ``playwright`` wheel (its driver only: never
``playwright install``). The repair threshold must be short: the session stack is used when
``metrics.thresholds["repair"]`` is at most ``RED_THRESHOLD_S``, else a stack of our own.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis
from playwright.async_api import Page
from prometheus_client.parser import text_string_to_metric_families

from ivr import redis_keys
from ivr.adapters.sql.db import settings_engine
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import Stack, asterisk_instance, isolated_settings
from ivr.protocols.ami import AmiMessage
from tests.stack_support import open_around_the_clock
from tests.web_support import (
    ARTIFACTS,
    PASSWORD,
    SUMMARY_FIELDS,
    add_user,
    chromium,
    login,
    sign_in_on_page,
)

pytestmark = pytest.mark.integration

QUEUE = "repair"  # always open; key 1 in the menu
RED_THRESHOLD_S = 6.0
MEMBER = "Local/agent@sim-agents/n"
CALLER = "13800138077"
MASKED = "138******77"
OTHER_CALLER = "13800138078"


def short_threshold(stack: Stack) -> bool:
    metrics = stack.settings.metrics
    return metrics.thresholds.get(QUEUE, metrics.default_threshold_s) <= RED_THRESHOLD_S


@pytest.fixture(scope="module")
def live_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    shared: Stack = request.getfixturevalue("stack")
    if short_threshold(shared):
        yield shared
        return
    base = tmp_path_factory.mktemp("supervisor-stack")
    thresholds = {"emergency": 15.0, "emergency-backup": 15.0, QUEUE: RED_THRESHOLD_S}
    settings = isolated_settings(
        base / "run",
        f"tsup{os.getpid()}",
        metrics={"thresholds": thresholds},
        routing_dir=open_around_the_clock(base / "routing"),  # key 4 below, at any hour
    )
    own = Stack(settings)
    own.up()
    try:
        yield own
    finally:
        inst = asterisk_instance(settings)
        own.down()
        inst.remove()


@pytest.fixture(scope="module")
def supervisor(live_stack: Stack) -> tuple[str, str]:
    """A user with the supervisor role in the stack's SQL database."""
    username = f"sup-{secrets.token_hex(3)}"
    engine = settings_engine(live_stack.settings)
    try:
        add_user(engine, username, PASSWORD, "supervisor")
    finally:
        engine.dispose()
    return username, PASSWORD


@pytest.fixture
def base_url(live_stack: Stack) -> str:
    web = live_stack.settings.web
    return f"http://{web.host}:{web.port}"


@pytest.fixture
async def http(base_url: str, supervisor: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await login(client, *supervisor, origin=base_url)
        assert response.status_code == 200
        yield client


# --- the API over the real Redis ------------------------------------------------------------
async def test_given_the_stack_then_summary_hourly_and_prometheus_agree(http, live_stack):
    summary = (await http.get("/api/metrics/summary", params={"period": "today"})).json()
    hourly = (await http.get("/api/metrics/hourly")).json()
    scrape = await http.get("/metrics")

    assert SUMMARY_FIELDS <= set(summary)
    assert summary["queues"][QUEUE]["threshold_s"] == RED_THRESHOLD_S
    assert set(summary["health"]) == {"anomalies", "anomalies_today", "dropped", "resync"}
    assert summary["agents_free"] >= 1  # the simulated agents
    assert hourly["day"] == summary["bucket"]
    assert len(hourly["hours"]) == 24
    assert sum(h["offered"] for h in hourly["hours"]) == summary["offered"]
    assert scrape.status_code == 200
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape.text)
        for s in family.samples
    }
    assert values[("hotline_queue_threshold_seconds", (("queue", QUEUE),))] == RED_THRESHOLD_S
    assert values[("hotline_calls_today_total", (("class", "answered"),))] == summary["answered"]
    for period in ("hour", "month"):
        doc = (await http.get("/api/metrics/summary", params={"period": period})).json()
        assert doc["period"] == period and SUMMARY_FIELDS <= set(doc)


async def test_given_a_stream_then_document_on_connect_on_change_and_released_on_close(
    http, live_stack
):
    settings = live_stack.settings
    client = redis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), decode_responses=True
    )

    def subscribers() -> int:
        return int(
            dict(client.pubsub_numsub(redis_keys.METRICS_CHANGED))[redis_keys.METRICS_CHANGED]
        )

    before = subscribers()
    try:
        async with http.stream("GET", "/api/metrics/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()

            async def next_document() -> dict[str, Any]:
                async for line in lines:
                    if line.startswith("data: "):
                        return json.loads(line.removeprefix("data: "))
                raise AssertionError("the stream ended")

            first = await asyncio.wait_for(next_document(), 5)
            assert SUMMARY_FIELDS <= set(first)
            assert subscribers() == before + 1
            published = time.monotonic()
            client.publish(redis_keys.METRICS_CHANGED, str(time.time()))
            second = await asyncio.wait_for(next_document(), 2)
            assert time.monotonic() - published < 1.0
            assert second["at"] >= first["at"]
        deadline = time.monotonic() + 5
        while subscribers() > before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert subscribers() == before  # the server let go of its pub/sub connection
    finally:
        client.close()


# --- the page in Chromium -------------------------------------------------------------------
async def value_of(page: Page, element_id: str) -> str:
    return await page.eval_on_selector(f"#{element_id}", "el => el.dataset.value ?? el.textContent")


class QueueJoins:
    """Our own AMI link: when did CALLER's call join QUEUE (monotonic clock)?"""

    def __init__(self) -> None:
        self.joined_at: float | None = None
        self.joined = asyncio.Event()

    async def on_event(self, message: AmiMessage) -> None:
        if (
            message.event == "QueueCallerJoin"
            and message.get("Queue") == QUEUE
            and message.get("CallerIDNum") == CALLER
            and not self.joined.is_set()
        ):
            self.joined_at = time.monotonic()
            self.joined.set()


async def test_given_the_live_page_when_a_call_waits_then_waiting_now_and_red_list_follow(
    live_stack, supervisor, base_url, tmp_path
):
    settings = live_stack.settings
    inst = asterisk_instance(settings)
    joins = QueueJoins()
    ami = AmiClient(settings.ami, settings.ami_secret(), on_event=joins.on_event)
    ami_task = asyncio.create_task(ami.run())
    call: asyncio.Task[Any] | None = None
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        async with chromium(
            tmp_path, viewport=(1360, 1000), timezone_id=settings.metrics.timezone
        ) as browser:
            page = await browser.new_page()
            # signed out: the sign-in form, which brings us back
            await sign_in_on_page(page, base_url, "/supervisor", *supervisor)

            # the numbers render and match the API
            await page.wait_for_selector("#connection[data-state=live]", timeout=5000)
            await page.wait_for_selector("#updated:not(:empty)", timeout=5000)
            await page.wait_for_selector("#hourly-chart[data-hours='24']", timeout=5000)
            response = await page.request.get(f"{base_url}/api/metrics/summary")
            doc = await response.json()
            assert await value_of(page, "offered") == str(doc["offered"])
            rate = await page.text_content("#answer-rate")
            assert rate == (
                "—" if doc["answer_rate"] is None else f"{doc['answer_rate'] * 100:.1f} %"
            )
            assert await page.is_visible(f"#queues tr[data-queue='{QUEUE}']")
            await ami.wait_connected(10)

            # a call that nobody answers: repair without its agent
            inst.rx(f"queue remove member {MEMBER} from {QUEUE}")
            agents = f"#queues tr[data-queue='{QUEUE}'] td:last-child"
            await page.wait_for_selector(f"{agents}:text-matches('^0 /')", timeout=5000)
            before = int(await value_of(page, "waiting-now"))
            call = asyncio.create_task(
                place_call(settings, did="95158", caller=CALLER, keys=["1"], hold_s=90)
            )
            await asyncio.wait_for(joins.joined.wait(), 40)
            # (selectors, not wait_for_function: the page's CSP forbids eval, rightly)
            await page.wait_for_selector(f"#waiting-now[data-value='{before + 1}']", timeout=2500)
            assert joins.joined_at is not None
            took = time.monotonic() - joins.joined_at
            assert took <= 2.0, f"waiting now changed {took:.2f} s after QueueCallerJoin"

            # past the threshold: on the red list, masked, and its wait ticking
            row = f"#red-list tbody tr:has(td.caller:text-is('{MASKED}'))"
            await page.wait_for_selector(row, timeout=(RED_THRESHOLD_S + 4) * 1000)
            joined_for = time.monotonic() - joins.joined_at
            assert joined_for <= RED_THRESHOLD_S + 2.5, f"red after {joined_for:.1f} s"
            cells = await page.eval_on_selector_all(
                f"{row} td", "tds => tds.map(t => t.textContent)"
            )
            assert cells[1] == QUEUE
            assert cells[3] == f"{RED_THRESHOLD_S:g} s"
            first_wait = cells[2]
            await page.wait_for_timeout(1300)
            assert await page.text_content(f"{row} td.waited") != first_wait
            assert int(await value_of(page, "over-count")) >= 1
            assert CALLER not in await page.content()

            # meanwhile a call answered in consultation: today's numbers and the chart move
            offered = int(await value_of(page, "offered"))
            served = await place_call(settings, did="95158", caller=OTHER_CALLER, keys=["4"])
            assert served.queue == "consultation"
            await page.wait_for_selector(f"#offered[data-value='{offered + 1}']", timeout=5000)
            await page.wait_for_selector("#hourly-chart rect.bar", timeout=5000)
            doc = await (await page.request.get(f"{base_url}/api/metrics/summary")).json()
            rate = doc["answer_rate"]
            assert await page.text_content("#answer-rate") == f"{rate * 100:.1f} %"
            status = "good" if rate >= doc["answer_rate_target"] else "bad"
            assert await page.get_attribute("#rate-card", "data-status") == status
            assert await page.is_visible(row)
            await page.screenshot(path=str(ARTIFACTS / "supervisor.png"), full_page=True)

            # answered at last: it leaves the list and nobody waits any more
            inst.rx(f"queue add member {MEMBER} to {QUEUE}")
            await page.wait_for_selector(row, state="detached", timeout=10_000)
            await page.wait_for_selector(f"#waiting-now[data-value='{before}']", timeout=5000)
            report = await asyncio.wait_for(call, 60)
            assert report.queue == QUEUE
            assert report.event_counts.get("AgentConnect") == 1
    finally:
        if MEMBER not in inst.rx(f"queue show {QUEUE}"):
            inst.rx(f"queue add member {MEMBER} to {QUEUE}")
        if call is not None and not call.done():
            await asyncio.wait_for(asyncio.gather(call, return_exceptions=True), 120)
        ami_task.cancel()
        await asyncio.gather(ami_task, return_exceptions=True)
