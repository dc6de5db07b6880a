"""The QA page in headless Chromium against the real app served by uvicorn on loopback.

A ``qa`` user signs in through the form, searches by the caller's number, opens the
call, plays it (``currentTime`` advances), seeks with the player and by clicking a word of
the transcript, sees a deduction without a comment refused, and submits a score that then
appears in the list of reviews. The browser fetches the audio in byte ranges (206) from
byte 0 on; the audit log holds one replay, not one row per range request. The screenshot
goes to ``test-artifacts/qa.png``.

Needs Debian's ``chromium`` (apt) and the ``playwright`` wheel (its driver only: never
``playwright install``), as the supervisor page test.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, users
from ivr.adapters.sql.db import AuditEntry, RecordingStatus, Review
from ivr.devstack.ports import free_port
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.qa_support import QA_STAFF, add_transcript, call_wav, catalogue
from tests.web_support import (
    ARTIFACTS,
    PASSWORD,
    add_staff,
    chromium,
    loopback_settings,
    sign_in_on_page,
)

SECONDS = 90.0
WORDS = [("hello", 0.3, 0.8), ("there", 0.9, 1.3), ("gas", 6.0, 6.4), ("smell", 6.5, 7.0)]
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(
        tmp_path / "run",
        web={"port": free_port()},
        recordings={"dir": tmp_path / "recordings", "conversion_dir": tmp_path / "cache"},
    )


@pytest.fixture
def catalog(settings: Settings) -> dict[str, int]:
    rec_dir = settings.recordings_dir
    call_wav(rec_dir / "a.wav", SECONDS, "hello there. I can smell gas in the kitchen")
    call_wav(rec_dir / "b.wav", 3.0)
    (rec_dir / "c.wav").write_bytes(b"")
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    add_staff(engine, users.hash_password(PASSWORD), QA_STAFF)
    ids: dict[str, int] = {}
    with Session(engine) as db:
        for name, fields in {
            "a": {
                "caller": "13800138000",
                "file_name": "a.wav",
                "desk": "repair",
                "queue": "repair",
                "agent": "agent-7",
                "duration_s": SECONDS,
                "started_at": T0,
            },
            "b": {
                "caller": "13900139111",
                "file_name": "b.wav",
                "desk": "billing",
                "queue": "billing",
                "agent": "agent-2",
                "duration_s": 3.0,
                "started_at": T0 + timedelta(hours=1),
            },
            "c": {
                "caller": "13700137222",
                "file_name": "c.wav",
                "desk": "repair",
                "queue": "repair",
                "status": RecordingStatus.empty,
                "status_detail": "zero-length legs",
                "started_at": T0 + timedelta(hours=2),
            },
        }.items():
            ids[name] = catalogue(db, linkedid=f"L-{name}", recordings_dir=rec_dir, **fields).id
        add_transcript(db, db.get(sql.Recording, ids["a"]), WORDS)
        db.commit()
    engine.dispose()
    return ids


@pytest.fixture
def base_url(settings: Settings, catalog: dict[str, int]) -> Iterator[str]:
    """The app on uvicorn in a thread, on a free loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.web.port,
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.web.port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def current_time(page: Page) -> float:
    return float(await page.eval_on_selector("#player", "el => el.currentTime"))


async def wait_until_time(page: Page, at_least: float, timeout: float = 8.0) -> float:
    deadline = time.monotonic() + timeout
    while (now := await current_time(page)) < at_least:
        assert time.monotonic() < deadline, f"currentTime stayed at {now:.2f} s"
        await asyncio.sleep(0.1)
    return now


async def test_given_a_qa_user_when_searching_playing_seeking_and_scoring_then_all_work(
    settings, catalog, base_url, tmp_path
):
    ARTIFACTS.mkdir(exist_ok=True)
    audio_statuses: list[int] = []
    ranges: list[str | None] = []
    async with chromium(
        tmp_path, viewport=(1360, 1100), timezone_id=settings.metrics.timezone
    ) as browser:
        page = await browser.new_page()
        page.on(
            "response",
            lambda r: audio_statuses.append(r.status) if r.url.endswith("/audio") else None,
        )
        page.on(
            "request",
            lambda r: ranges.append(r.headers.get("range")) if r.url.endswith("/audio") else None,
        )
        # signed out: the sign-in form, which brings us back
        await sign_in_on_page(page, base_url, "/qa", "qa1")
        await page.wait_for_selector("body[data-ready=true]", timeout=5000)
        assert await page.text_content("#who") == "qa1 (qa)"
        assert await page.locator("#results tbody tr").count() == 3
        empty_row = f"#results tbody tr[data-id='{catalog['c']}'] td.status"
        assert await page.get_attribute(empty_row, "data-status") == "empty"

        # numbers are masked for qa: a search by last digits is refused, saying why ...
        await page.fill("#search input[name=caller]", "8000")
        await page.click("#search-button")
        await page.wait_for_selector("#search-error:not([hidden])", timeout=5000)
        assert "whole number" in await page.text_content("#search-error")
        # ... and the whole number finds the one call, its number still masked
        await page.fill("#search input[name=caller]", "138 0013 8000")
        await page.click("#search-button")
        await page.wait_for_selector("#total[data-value='1']", timeout=5000)
        row = f"#results tbody tr[data-id='{catalog['a']}']"
        assert await page.text_content(f"{row} td.caller") == "138******00"
        assert "13800138000" not in await page.content()

        # open it: player, downloads, transcript
        await page.click(row)
        await page.wait_for_selector(f"#detail[data-id='{catalog['a']}']", timeout=5000)
        await page.wait_for_selector("#transcript .word[data-start='6']", timeout=5000)
        assert await page.get_attribute("#download-mp3", "href") == (
            f"/api/recordings/{catalog['a']}/download?format=mp3"
        )
        deadline = time.monotonic() + 5
        while await page.eval_on_selector("#player", "el => el.readyState") < 1:
            assert time.monotonic() < deadline, "the player did not load the metadata"
            await asyncio.sleep(0.1)
        assert await page.eval_on_selector("#player", "el => el.duration") == pytest.approx(
            SECONDS, abs=0.05
        )

        # play by clicking the first word: time advances
        await page.click("#transcript .word[data-start='0.3']")
        started = await wait_until_time(page, 0.3)
        await wait_until_time(page, started + 1.0)
        assert not await page.eval_on_selector("#player", "el => el.paused")

        # seek with the player, then by clicking a word further on
        await page.eval_on_selector("#player", "el => { el.currentTime = 80; }")
        assert await wait_until_time(page, 80.2) < SECONDS
        await page.click("#transcript .word[data-start='6']")
        deadline = time.monotonic() + 5
        while not 6.0 <= await current_time(page) < 8.0:
            assert time.monotonic() < deadline, "clicking the word did not seek to it"
            await asyncio.sleep(0.05)
        await wait_until_time(page, 6.6)
        await page.wait_for_selector("#transcript .word.now", timeout=3000)

        # a deduction needs a comment: refused by the server, shown on the page
        await page.fill("#review-items tr[data-key=attitude] input", "15")
        assert await page.text_content("#review-total") == "95"
        await page.click("#review-submit")
        await page.wait_for_selector("#review-error:not([hidden])", timeout=5000)
        assert "items.attitude.comment" in (await page.text_content("#review-error") or "")
        assert await page.locator("#reviews li").count() == 0

        # with the comment: saved, listed with the reviewer and total
        await page.fill("#review-items tr[data-key=attitude] textarea", "语气不耐烦 impatient")
        await page.fill("#review-comment", "总体良好")
        await page.click("#review-submit")
        await page.wait_for_selector("#reviews li .total[data-total='95']", timeout=5000)
        head = await page.text_content("#reviews li .review-head") or ""
        assert head.startswith("#") and "qa1" in head
        assert await page.text_content(f"{row} td.reviews") == "1"
        assert await page.locator("#corrects option").count() == 2
        await page.screenshot(path=str(ARTIFACTS / "qa.png"), full_page=True)

        # the empty call: listed, not playable, said so
        await page.click("#search button[type=reset]")
        await page.wait_for_selector("#total[data-value='3']", timeout=5000)
        await page.click(f"#results tbody tr[data-id='{catalog['c']}']")
        await page.wait_for_selector(f"#detail[data-id='{catalog['c']}']", timeout=5000)
        assert await page.is_visible("#unplayable")
        assert not await page.is_visible("#player")

    engine = sql.settings_engine(settings)
    with Session(engine) as db:
        audit = db.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith("recording."))
        ).all()
        reviews = db.scalars(select(Review)).all()
    engine.dispose()
    replays = [a for a in audit if a.action == "recording.replay"]
    assert replays and all(a.target == f"recording:{catalog['a']}" for a in replays)
    assert all(a.actor == "qa1" and a.ip == "127.0.0.1" for a in replays)
    # the browser fetched the audio in ranges from byte 0 on; one replay was audited
    assert ranges[0] == "bytes=0-" and set(audio_statuses) == {206}
    assert len(replays) == 1
    assert [(r.reviewer, r.total, r.items["attitude"]["score"]) for r in reviews] == [
        ("qa1", 95.0, 15)
    ]
