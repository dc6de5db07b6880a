"""The report page in headless Chromium, against the real web role (``python -m ivr web``) on a
SQLite file holding the synthetic month (its calls, tickets, survey answers, logins and QA
reviews) and a redis-server of its own, on loopback.

The admin opens /reports for November 2026: every figure against its target, red or green,
with its definition on hover and a 12-month trend; the answer rate's numerator opens its four
calls, and a call's recording link opens that recording on /qa; the complaints' timely reply
rate opens its tickets, each linking to /tickets. The supervisor (no qa role) plays the
recording on the page itself: a figure, its calls, the call's recording, and the audio
element loads the wav; the follow-up report shows the month's follow-ups. Screenshots:
``test-artifacts/reports-page.png``, ``reports-calls.png``, ``reports-recording.png``,
``reports-supervisor-player.png``.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.metrics.call_facts import outcome_row, store_rows
from ivr.adapters.sql import db as sql
from ivr.adapters.sql.db import Recording
from ivr.devstack.ports import free_port
from ivr.settings import Settings
from tests import figures_month as m
from tests.figures_month_sql import store_agents, store_tickets
from tests.stt_queue_support import RedisServer
from tests.web_support import ARTIFACTS, chromium, sign_in_on_page, web_role

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(base URL, the id of call a60's recording)."""
    run = tmp_path_factory.mktemp("reports-page")
    server = RedisServer(run / "redis").start()
    settings = Settings(run_dir=run, redis={"url": server.url}, web={"port": free_port()})
    try:
        with web_role(settings, [("admin1", "admin"), ("sup1", "supervisor")]) as (url, _):
            engine = sql.settings_engine(settings)
            store_rows(engine, [outcome_row(o) for o in m.classified_calls()])
            store_tickets(engine)
            store_agents(engine)
            write_wav(settings.recordings_dir / "a60.wav")
            with Session(engine) as db:
                row = db.scalar(select(Recording).where(Recording.linkedid == "a60"))
                assert row is not None
                row.file_name, recording = "a60.wav", row.id
                db.commit()
            engine.dispose()
            yield url, recording
    finally:
        server.kill()


def write_wav(path: Path) -> None:
    """One second of a stereo 8 kHz tone, as the recorder writes calls (caller left, agent
    right)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = [int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000)]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<hh", v, v) for v in tone))


async def test_a_supervisor_plays_a_figure_s_call_recording_on_the_page(
    served: tuple[str, int], tmp_path: Path
) -> None:
    base, recording = served
    ARTIFACTS.mkdir(exist_ok=True)
    async with chromium(tmp_path, viewport=(1400, 1000), timezone_id="Asia/Shanghai") as browser:
        page = await browser.new_page()
        await sign_in_on_page(page, base, "/reports", "sup1")
        await page.goto(f"{base}/reports?month=2026-11")
        await page.wait_for_selector("body[data-ready=true]", timeout=10000)
        complaints = page.locator("#follow-ups tr[data-key=follow_up_complaints]")
        cells = await complaints.locator("td[data-field]").all_inner_texts()
        assert cells == [str(v) for v in m.FOLLOW_UP_SUMMARY["follow_up_complaints"].values()]
        rate = page.locator("#figures tr[data-key=answer_rate]")
        await rate.locator("td").nth(2).locator("button").click()  # the numerator: 4 calls
        await page.wait_for_selector("#item-rows tr[data-linkedid=a60]", timeout=5000)
        row = page.locator("#item-rows tr[data-linkedid=a60]")
        assert await row.locator("a[href^='/qa']").count() == 0  # /qa is for the qa role
        await row.locator(f"button[data-recording='{recording}']").click()
        await page.wait_for_selector(f"#player[data-id='{recording}']:not([hidden])")
        deadline = time.monotonic() + 10  # polled: the page's CSP forbids wait_for_function
        while await page.eval_on_selector("#player-audio", "a => a.readyState") < 1:
            assert time.monotonic() < deadline, "the player did not load the metadata"
            await asyncio.sleep(0.1)
        duration = await page.eval_on_selector("#player-audio", "a => a.duration")
        assert duration == pytest.approx(1.0, abs=0.05)
        assert await page.eval_on_selector("#player-audio", "a => a.error") is None
        await page.screenshot(path=str(ARTIFACTS / "reports-supervisor-player.png"))


async def test_a_figure_opens_its_calls_and_the_calls_open_their_recordings(
    served: tuple[str, int], tmp_path: Path
) -> None:
    base, recording = served
    ARTIFACTS.mkdir(exist_ok=True)
    async with chromium(tmp_path, viewport=(1400, 1000), timezone_id="Asia/Shanghai") as browser:
        page = await browser.new_page()
        await sign_in_on_page(page, base, "/reports", "admin1")
        await page.goto(f"{base}/reports?month=2026-11")
        await page.wait_for_selector("body[data-ready=true]", timeout=10000)
        rate = page.locator("#figures tr[data-key=answer_rate]")
        assert await rate.locator("td").nth(1).inner_text() == "40.0%"
        assert await rate.locator("td button.missed").count() == 1  # red: under 90 %
        met = page.locator("#figures tr[data-key=repeat_complaint_rate] td.met")
        assert await met.count() == 1  # green
        title = await rate.locator("td.figure-name").get_attribute("title")
        assert title is not None and "公式 formula" in title and "≥ 90%" in title
        assert await rate.locator("svg.trend circle").count() == 1  # November only has data
        assert await page.locator("#by-desk tr[data-group=repair]").count() == 1
        assert await page.locator("#by-agent tr[data-group='1001']").count() == 1
        department = page.locator("#by-department tr[data-group=customer-service]")
        assert await department.locator("button").nth(3).inner_text() == "66.7%"  # 4 of 6
        assert await page.locator("a#download-pdf").get_attribute("href") == (
            "/api/reports/file?month=2026-11&format=pdf"
        )
        await page.screenshot(path=str(ARTIFACTS / "reports-page.png"), full_page=True)

        await rate.locator("td").nth(2).locator("button").click()  # the numerator: 4
        await page.wait_for_selector("#items:not([hidden])", timeout=5000)
        ids = await page.eval_on_selector_all(
            "#item-rows tbody tr", "rows => rows.map(r => r.dataset.linkedid)"
        )
        assert ids == list(m.EXPECTED["answer_rate"][1])
        link = page.locator("#item-rows tr[data-linkedid=a60] a[href^='/qa']")
        assert await link.get_attribute("href") == f"/qa?recording={recording}"
        await page.screenshot(path=str(ARTIFACTS / "reports-calls.png"), full_page=True)

        await (
            page.locator("#figures tr[data-key=complaint_reply_timely_rate] td")
            .nth(2)
            .locator("button")
            .click()
        )
        await page.wait_for_selector("#item-rows tr[data-ticket='5']", timeout=5000)
        tickets = await page.eval_on_selector_all(
            "#item-rows tbody tr", "rows => rows.map(r => r.dataset.ticket)"
        )
        assert tickets == ["5", "8", "10", "11"]
        assert (
            await page.locator("#item-rows tr[data-ticket='5'] a").first.get_attribute("href")
            == "/tickets#ticket-5"
        )

        await rate.locator("td").nth(2).locator("button").click()
        await page.wait_for_selector("#item-rows tr[data-linkedid=a60]", timeout=5000)
        await page.locator("#item-rows tr[data-linkedid=a60] a[href^='/qa']").click()
        await page.wait_for_url(f"{base}/qa?recording={recording}")
        await page.wait_for_selector(f"#detail[data-id='{recording}']", timeout=10000)
        await page.screenshot(path=str(ARTIFACTS / "reports-recording.png"))
