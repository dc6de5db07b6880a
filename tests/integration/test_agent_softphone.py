"""The agent desk's softphone on the real stack, in headless Chromium with a fake microphone:
the agent signs in, logs in on the browser and Asterisk holds the WebRTC contact; a sipp
caller with RTP audio goes through the menu to the agent's desk, the page rings, answers,
audio flows both ways (the page's getStats, and the recording's agent leg carries the fake
microphone's beeps), keys reach Asterisk, hold and mute do what they say, a blind transfer
to another desk keeps one Linkedid, one ticket and one recording. Bad input: a second tab of
the same agent takes the phone and only it rings; the web session ending stops the ringing;
the WebSocket dropping mid-call leaves the call up and the page registers again."""

from __future__ import annotations

import asyncio
import audioop
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, RecordingStatus, Ticket, settings_engine
from ivr.adapters.telephony import sip_directory
from ivr.devstack.sipp import SippResult, run_caller
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.settings import Settings
from tests.conftest import routing_for_tests
from tests.stack_support import ivr_cli, private_stack, wait_for
from tests.web_support import (
    ARTIFACTS,
    FAKE_MEDIA_FLAGS,
    PASSWORD,
    add_user,
    chromium,
    sign_in_on_page,
)

pytestmark = pytest.mark.integration

# The trunk's address: the sipp caller's. The browser's WebSocket comes from 127.0.0.1, which
# must not be the trunk's (Asterisk identifies the trunk by source address before anything).
TRUNK_IP = "127.0.0.71"
FRAME = 160  # 20 ms at 8 kHz


@pytest.fixture(scope="module")
def desk_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("softphone")
    routing = routing_for_tests(base / "routing")
    with private_stack(
        base, "soft", "softphone-logs", sim_agents=False, routing_dir=routing,
        asterisk={"trunk_addresses": [f"{TRUNK_IP}/32"]},
    ) as stack:  # fmt: skip
        s = stack.settings
        engine = settings_engine(s)
        try:
            for user in ("agent1", "agent2"):
                add_user(engine, user, PASSWORD, "agent")
        finally:
            engine.dispose()
        for number, name, desk, user in (
            ("1001", "张三", "repair:0", "agent1"),
            ("1002", "李四", "billing:0", "agent2"),
        ):
            added = ivr_cli(s, "agents", "add", number, "--name", name, "--desk", desk,
                            "--user", user)  # fmt: skip
            assert added.returncode == 0, added.stderr
        yield stack


def base_url(s: Settings) -> str:
    return f"http://{s.web.host}:{s.web.port}"


def contacts(s: Settings) -> str:
    return asterisk_instance(s).rx("pjsip show contacts")


def webrtc_contacts(s: Settings, number: str) -> list[str]:
    return [
        line.split()[1]
        for line in contacts(s).splitlines()
        if line.strip().startswith("Contact:") and f"{number}-webrtc/" in line
    ]


def call(s: Settings, name: str, caller: str, digits: str = "1", hold_s: float = 60) -> SippResult:
    """A caller with RTP audio through the menu (1: repair), from the trunk's address."""
    return run_caller(
        s.asterisk.root,
        asterisk_instance(s).base / "sipp" / name,
        target=f"127.0.0.1:{s.asterisk.sip_port}",
        did="95158",
        caller_id=caller,
        digits=digits,
        digits_after_s=11,  # the greeting and the emergency notice, then the menu
        hold_s=hold_s,
        local_ip=TRUNK_IP,
    )


async def log_in_on_the_browser(page: Page, s: Settings, user: str) -> None:
    await sign_in_on_page(page, base_url(s), "/agent", user)
    await page.select_option("#presence-device", "browser")
    await page.click("#presence-login")
    await page.wait_for_selector("#presence-state[data-logged-in=true]")
    await page.wait_for_selector("#phone-status[data-state=registered]", timeout=15_000)


async def media(page: Page) -> tuple[int, int]:
    node = page.locator("#phone-media")
    sent = await node.get_attribute("data-sent")
    received = await node.get_attribute("data-received")
    return int(sent or 0), int(received or 0)


async def wait_media_grows(page: Page, before: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    for _ in range(40):
        now = await media(page)
        if now[0] > before[0] and now[1] > before[1]:
            return now
        await asyncio.sleep(0.25)
    raise AssertionError(f"no audio both ways: {before} -> {await media(page)}")


def recording_of(s: Settings, caller: str) -> tuple[Recording, list[Ticket]]:
    engine = settings_engine(s)
    try:

        def found() -> tuple[Recording, list[Ticket]] | None:
            with Session(engine) as db:
                rows = db.scalars(select(Recording).where(Recording.caller == caller)).all()
                if len(rows) != 1:
                    return None
                tickets = db.scalars(
                    select(Ticket).where(Ticket.linkedid == rows[0].linkedid)
                ).all()
                return rows[0], list(tickets)

        result: tuple[Recording, list[Ticket]] = wait_for(found, 15, f"{caller}'s recording")
        return result
    finally:
        engine.dispose()


def agent_leg(s: Settings, rec: Recording) -> list[int]:
    """The RMS of each 20 ms of the recording's right channel (what the caller heard)."""
    assert rec.file_name
    with wave.open(str(s.recordings_dir / rec.file_name)) as w:
        data = w.readframes(w.getnframes())
    right = audioop.tomono(data, 2, 0, 1)
    step = FRAME * 2
    return [audioop.rms(right[i : i + step], 2) for i in range(0, len(right) - step + 1, step)]


async def _answer_talk_and_hang_up(s: Settings, profile: Path) -> dict[str, Any]:
    inst = asterisk_instance(s)
    seen: dict[str, Any] = {}
    async with chromium(
        profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone, args=FAKE_MEDIA_FLAGS
    ) as browser:
        page = await browser.new_page()
        await log_in_on_the_browser(page, s, "agent1")
        assert len(webrtc_contacts(s, "1001")) == 1, contacts(s)
        seen["contacts"] = contacts(s)
        wait_for(
            lambda: (
                "PJSIP/1001-webrtc" in inst.rx("queue show repair")
                and "(Not in use)" in inst.rx("queue show repair")
            ),
            sip_directory.QUALIFY_S + 5,
            "1001's browser available in repair",
        )
        caller = asyncio.create_task(asyncio.to_thread(call, s, "soft-1", "13800138801"))
        await page.wait_for_selector("#phone-call[data-state=ringing]", timeout=40_000)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "agent-phone-ringing.png"), full_page=True)
        seen["ringing"] = await page.text_content("#phone-call")
        await page.click("#phone-answer")
        await page.wait_for_selector("#phone-call[data-state=talking]", timeout=10_000)
        seen["media"] = await wait_media_grows(page)
        await asyncio.sleep(6)  # the whisper and the 工号 announcement are over; the agent talks
        seen["media_later"] = await wait_media_grows(page, seen["media"])
        await page.screenshot(path=str(ARTIFACTS / "agent-phone-in-call.png"), full_page=True)
        await page.click("#phone-hangup")
        await page.wait_for_selector(
            "#phone-call:not([data-state])", state="attached", timeout=10_000
        )
        seen["caller"] = await caller
    return seen


def test_the_agent_answers_a_hotline_call_in_the_browser_with_audio_both_ways(
    desk_stack: Stack, tmp_path: Path
) -> None:
    s = desk_stack.settings
    seen = asyncio.run(_answer_talk_and_hang_up(s, tmp_path))
    assert "1001-webrtc" in seen["contacts"]
    assert "13800138801" in seen["ringing"]
    sent, received = seen["media_later"]
    assert sent > 8000 and received > 8000, seen  # over a second of G.711 each way
    result: SippResult = seen["caller"]
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    rec, tickets = recording_of(s, "13800138801")
    assert rec.status == RecordingStatus.ok and rec.agent == "1001 张三", rec
    assert len(tickets) == 1
    right = agent_leg(s, rec)
    # the last seconds, after the announcement: the fake microphone's beeps, not silence
    tail = right[-4 * 50 :]
    assert sum(x > 300 for x in tail) > 10, tail
    assert json.dumps(seen["media"])  # both counters were read
