"""The agent desk's softphone on the real stack, in headless Chromium with a fake microphone:
the agent signs in, logs in on the browser and Asterisk holds the WebRTC contact; a sipp
caller with RTP audio goes through the menu to the agent's desk, the page rings, answers,
audio flows both ways (the page's getStats, and the recording's agent leg carries the fake
microphone's beeps), keys reach Asterisk, hold and mute do what they say, a blind transfer
to another desk keeps one Linkedid, one ticket and one recording. Bad input: a second tab of
the same agent takes the phone and only it rings, and a second browser too (the first learns
it when Asterisk stops qualifying it); the web session ending stops the ringing;
the WebSocket dropping mid-call leaves the call up and the page registers again."""

from __future__ import annotations

import asyncio
import audioop
import subprocess
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.async_api import Page
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.sql.db import (
    Recording,
    RecordingStatus,
    Ticket,
    User,
    UserSession,
    settings_engine,
)
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

# each test places a call through the whole menu (about 12 s) and talks: longer than the default
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
BRIDGED_S = 7  # after the answer: the agent's whisper, then the caller hears the 工号

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


def call(s: Settings, name: str, caller: str, hold_s: float = 60, speak: int = 9) -> SippResult:
    """A caller with RTP audio through the menu (1: repair), from the trunk's address: it
    speaks on and on after the keys."""
    return run_caller(
        s.asterisk.root,
        asterisk_instance(s).base / "sipp" / name,
        target=f"127.0.0.1:{s.asterisk.sip_port}",
        did="95158",
        caller_id=caller,
        digits="1",
        digits_after_s=11,  # the greeting and the emergency notice, then the menu
        hold_s=hold_s,
        local_ip=TRUNK_IP,
        speak_after_keys=speak,  # 7 s each: to the queue, then to the agent who answered
    )


async def log_in_on_the_browser(page: Page, s: Settings, user: str) -> None:
    await sign_in_on_page(page, base_url(s), "/agent", user)
    await page.wait_for_selector("#presence-state[data-logged-in]", state="attached")
    if await page.get_attribute("#presence-state", "data-logged-in") == "true":
        await page.click("#presence-logout")  # left logged in by an earlier test
        await page.wait_for_selector("#presence-state[data-logged-in=false]", state="attached")
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
        await asyncio.sleep(BRIDGED_S)  # the whisper and the 工号 announcement are over
        seen["media_later"] = await wait_media_grows(page, seen["media"])
        await page.screenshot(path=str(ARTIFACTS / "agent-phone-in-call.png"), full_page=True)
        await page.click("#phone-keypad button[data-key='5']")  # a key, as RFC 4733 events
        # on hold: Asterisk stops sending to the page (the caller hears the hold music)
        await page.click("#phone-hold")
        await page.wait_for_selector("#phone-call[data-state=held]", timeout=5000)
        await asyncio.sleep(1)
        held_from = await media(page)
        await asyncio.sleep(2)
        seen["held"] = (held_from, await media(page))
        await page.click("#phone-hold")
        await page.wait_for_selector("#phone-call[data-state=talking]", timeout=5000)
        seen["unheld"] = await wait_media_grows(page, await media(page))
        await asyncio.sleep(3)  # the agent talks, then is muted for the last 3 s
        await page.click("#phone-mute")
        assert await page.get_attribute("#phone-mute", "aria-pressed") == "true"
        await asyncio.sleep(3)
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
    (held_from, held_to) = seen["held"]
    assert held_to[1] - held_from[1] < 1000, seen["held"]  # nothing came while on hold
    rec, tickets = recording_of(s, "13800138801")
    assert rec.status == RecordingStatus.ok and rec.agent == "1001 张三", rec
    assert len(tickets) == 1
    right = agent_leg(s, rec)
    # what the caller heard from the agent: the fake microphone's beeps, then, muted, silence
    talking = right[-7 * 50 : -4 * 50]
    muted = right[-int(2.5 * 50) :]
    assert sum(x > 300 for x in talking) > 10, talking
    assert max(muted) < 100, muted
    with redis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True) as client:
        events = [
            fields
            for _, fields in client.xrange(redis_keys.AMI_EVENTS, "-", "+")
            if fields.get("Linkedid") == rec.linkedid
        ]
    keys = [e for e in events if e["Event"] == "DTMFEnd" and e.get("Direction") == "Received"]
    by_channel = [k["Channel"].rsplit("-", 1)[0] for k in keys]
    assert by_channel == ["PJSIP/pstn", "PJSIP/1001-webrtc"], keys  # the menu's 1, the agent's 5


def linkedids_of_channels(s: Settings, prefix: str) -> set[str]:
    """The Linkedids of every channel named ``<prefix>-…`` the AMI listener stored."""
    with redis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True) as client:
        return {
            fields["Linkedid"]
            for _, fields in client.xrange(redis_keys.AMI_EVENTS, "-", "+")
            if fields.get("Event") == "Newchannel"
            and fields.get("Channel", "").rsplit("-", 1)[0] == prefix
        }


def available_in(s: Settings, queue: str, interface: str) -> None:
    inst = asterisk_instance(s)

    def ready() -> bool:
        shown = [line for line in inst.rx(f"queue show {queue}").splitlines() if interface in line]
        return bool(shown) and "(Not in use)" in shown[0]

    wait_for(ready, sip_directory.QUALIFY_S + 5, f"{interface} available in {queue}")


async def popped(page: Page, caller: str) -> dict[str, Any]:
    """The screen pop the page shows for ``caller``'s call: its Linkedid, the number, the
    menu path (label -> value) and the call's own ticket's owner, if shown."""
    await page.wait_for_function(
        "n => document.querySelector('#pop-body .number')?.textContent === n", arg=caller,
        timeout=15_000,
    )  # fmt: skip
    shown: dict[str, Any] = await page.evaluate(
        """() => {
          const body = document.querySelector("#pop-body");
          const path = {};
          for (const dt of body.querySelectorAll(".ivr-path dt")) {
            path[dt.textContent] = dt.nextElementSibling.textContent;
          }
          const owner = body.querySelector(".call-ticket .owner");
          return {linkedid: body.dataset.linkedid, path,
                  owner: owner ? owner.textContent : null};
        }"""
    )
    return shown


def transfer_events(s: Settings) -> list[dict[str, str]]:
    """The BlindTransfer and AttendedTransfer events the AMI listener stored."""
    with redis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True) as client:
        return [
            fields
            for _, fields in client.xrange(redis_keys.AMI_EVENTS, "-", "+")
            if fields.get("Event") in ("BlindTransfer", "AttendedTransfer")
        ]


def assert_the_callers_pop(s: Settings, seen: dict[str, Any], caller: str) -> None:
    """The next agent's page popped the caller's facts, keyed on the caller's Linkedid, and
    the call's one ticket is the first agent's (首问负责制), named in that pop."""
    pop = seen["pop"]
    rec, tickets = recording_of(s, caller)
    assert pop["linkedid"] == rec.linkedid, (pop, transfer_events(s))
    assert pop["path"]["按键 Keys"] == "1"  # the menu path the caller took: repair
    assert pop["path"]["服务台 Desk"].startswith("报修")
    assert len(tickets) == 1 and tickets[0].agent == "1001"
    assert pop["owner"] is not None and "1001" in pop["owner"]


async def answer(page: Page) -> None:
    await page.wait_for_selector("#phone-call[data-state=ringing]", timeout=40_000)
    await page.click("#phone-answer")
    await page.wait_for_selector("#phone-call[data-state=talking]", timeout=10_000)
    await wait_media_grows(page)


async def hang_up(page: Page) -> None:
    await page.click("#phone-hangup")
    await page.wait_for_selector("#phone-call:not([data-state])", state="attached", timeout=10_000)


async def _caller_hangs_up(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with chromium(
        profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone, args=FAKE_MEDIA_FLAGS
    ) as browser:
        page = await browser.new_page()
        await log_in_on_the_browser(page, s, "agent1")
        available_in(s, "repair", "PJSIP/1001-webrtc")
        caller = asyncio.create_task(
            asyncio.to_thread(call, s, "soft-5", "13800138805", hold_s=12, speak=0)
        )
        await answer(page)
        seen["caller"] = await caller  # it hangs up 12 s after its keys
        await page.wait_for_selector(
            "#phone-call:not([data-state])", state="attached", timeout=5000
        )
    return seen


def test_given_the_caller_hanging_up_then_the_pages_call_ends(
    desk_stack: Stack, tmp_path: Path
) -> None:
    seen = asyncio.run(_caller_hangs_up(desk_stack.settings, tmp_path))
    assert seen["caller"].successful == 1


async def _blind_transfer(
    s: Settings, profile: Path, target: str, caller_number: str
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with (
        chromium(profile / "one", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as one,
        chromium(profile / "two", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as two,
    ):  # fmt: skip
        first, second = await one.new_page(), await two.new_page()
        await log_in_on_the_browser(first, s, "agent1")
        await log_in_on_the_browser(second, s, "agent2")
        available_in(s, "repair", "PJSIP/1001-webrtc")
        available_in(s, "billing", "PJSIP/1002-webrtc")
        caller = asyncio.create_task(asyncio.to_thread(call, s, f"soft-2-{target}", caller_number))
        await answer(first)
        await asyncio.sleep(BRIDGED_S)  # a transfer needs the caller and the agent bridged
        await first.fill("#phone-target", target)
        await first.click("#phone-blind")
        await first.wait_for_selector(
            "#phone-call:not([data-state])", state="attached", timeout=10_000
        )
        await answer(second)  # rung by the billing queue, or by its 工号
        seen["second"] = await second.text_content("#phone-call")
        seen["pop"] = await popped(second, caller_number)
        await second.screenshot(path=str(ARTIFACTS / f"agent-phone-transferred-{target}.png"))
        await hang_up(second)
        seen["caller"] = await caller
    return seen


def test_a_blind_transfer_to_another_desk_keeps_one_linkedid_one_ticket_one_recording(
    desk_stack: Stack, tmp_path: Path
) -> None:
    s = desk_stack.settings
    seen = asyncio.run(_blind_transfer(s, tmp_path, "desk-billing", "13800138802"))
    assert "13800138802" in seen["second"]
    result: SippResult = seen["caller"]
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    rec, tickets = recording_of(s, "13800138802")
    assert len(tickets) == 1 and rec.status == RecordingStatus.ok
    assert rec.linkedid in linkedids_of_channels(s, "PJSIP/1001-webrtc")
    assert rec.linkedid in linkedids_of_channels(s, "PJSIP/1002-webrtc")
    assert rec.queue == "billing", rec  # where the call ended
    assert_the_callers_pop(s, seen, "13800138802")


def test_a_blind_transfer_to_another_agents_work_number_pops_the_callers_facts_there(
    desk_stack: Stack, tmp_path: Path
) -> None:
    s = desk_stack.settings
    seen = asyncio.run(_blind_transfer(s, tmp_path, "1002", "13800138807"))
    result: SippResult = seen["caller"]
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    rec, _ = recording_of(s, "13800138807")
    assert rec.linkedid in linkedids_of_channels(s, "PJSIP/1002-webrtc")  # no queue between
    assert_the_callers_pop(s, seen, "13800138807")


async def _second_tab(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with chromium(
        profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone, args=FAKE_MEDIA_FLAGS
    ) as browser:
        old = await browser.new_page()
        await log_in_on_the_browser(old, s, "agent1")
        new = await browser.new_page()
        await new.goto(f"{base_url(s)}/agent")  # the same session: already logged in
        await new.wait_for_selector("#phone-status[data-state=registered]", timeout=15_000)
        await old.wait_for_selector("#phone-take", state="visible", timeout=5000)
        seen["old_status"] = await old.text_content("#phone-status")
        await old.screenshot(path=str(ARTIFACTS / "agent-phone-other-tab.png"))
        seen["contacts"] = wait_for(
            lambda: (found := webrtc_contacts(s, "1001")) and len(found) == 1 and found,
            5, "one browser contact",
        )  # fmt: skip
        available_in(s, "repair", "PJSIP/1001-webrtc")
        caller = asyncio.create_task(asyncio.to_thread(call, s, "soft-3", "13800138803"))
        await answer(new)
        seen["old_call"] = await old.get_attribute("#phone-call", "data-state")
        await hang_up(new)
        seen["caller"] = await caller
    return seen


def test_given_a_second_tab_of_the_same_agent_then_it_takes_the_phone_and_only_it_rings(
    desk_stack: Stack, tmp_path: Path
) -> None:
    seen = asyncio.run(_second_tab(desk_stack.settings, tmp_path))
    assert "另一标签页" in seen["old_status"]
    assert len(seen["contacts"]) == 1
    assert seen["old_call"] is None  # the old tab never rang
    assert seen["caller"].successful == 1


async def _session_expires(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with chromium(
        profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone, args=FAKE_MEDIA_FLAGS
    ) as browser:
        page = await browser.new_page()
        await log_in_on_the_browser(page, s, "agent1")
        assert webrtc_contacts(s, "1001")
        engine = settings_engine(s)
        try:
            with engine.begin() as db:  # the session's time is up
                db.execute(
                    update(UserSession)
                    .where(UserSession.user_id == select(User.id).where(User.username == "agent1")
                           .scalar_subquery())
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )  # fmt: skip
        finally:
            engine.dispose()
        await page.wait_for_selector("#expired", state="visible", timeout=15_000)
        await page.wait_for_selector("#phone-status[data-state=off]", timeout=5000)
        seen["status"] = await page.text_content("#phone-status")
        await page.screenshot(path=str(ARTIFACTS / "agent-phone-session-expired.png"))
        seen["contacts"] = wait_for(
            lambda: not webrtc_contacts(s, "1001") and "gone", 5, "the contact removed"
        )
    return seen


def test_given_the_web_session_expiring_then_the_page_says_so_and_unregisters(
    desk_stack: Stack, tmp_path: Path
) -> None:
    seen = asyncio.run(_session_expires(desk_stack.settings, tmp_path))
    assert "过期" in seen["status"]


async def _websocket_drops(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with chromium(
        profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone, args=FAKE_MEDIA_FLAGS
    ) as browser:
        page = await browser.new_page()
        await log_in_on_the_browser(page, s, "agent1")
        available_in(s, "repair", "PJSIP/1001-webrtc")
        caller = asyncio.create_task(asyncio.to_thread(call, s, "soft-4", "13800138804"))
        await answer(page)
        before = await wait_media_grows(page)
        contact = webrtc_contacts(s, "1001")
        killed = subprocess.run(
            ["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{s.asterisk.http_port}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        seen["killed"] = killed.stdout
        seen["contact"] = wait_for(  # JsSIP connects again and registers a new contact
            lambda: (now := webrtc_contacts(s, "1001")) and now != contact and now,
            15, "a new browser contact",
        )  # fmt: skip
        await page.wait_for_selector("#phone-status[data-state=registered]", timeout=5000)
        seen["state"] = await page.get_attribute("#phone-call", "data-state")
        seen["media"] = await wait_media_grows(page, before)
        seen["channels"] = asterisk_instance(s).rx("core show channels concise")
        await page.screenshot(path=str(ARTIFACTS / "agent-phone-reconnected.png"))
        await hang_up(page)
        seen["caller"] = await caller
    return seen


def test_given_the_websocket_dropping_mid_call_then_the_call_goes_on_and_the_page_registers_again(
    desk_stack: Stack, tmp_path: Path
) -> None:
    seen = asyncio.run(_websocket_drops(desk_stack.settings, tmp_path))
    assert "ESTAB" in seen["killed"], seen["killed"]
    assert seen["state"] == "talking"
    assert "PJSIP/pstn-" in seen["channels"] and "PJSIP/1001-webrtc-" in seen["channels"]
    result: SippResult = seen["caller"]
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail


async def _attended_transfer(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with (
        chromium(profile / "one", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as one,
        chromium(profile / "two", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as two,
    ):  # fmt: skip
        first, second = await one.new_page(), await two.new_page()
        await log_in_on_the_browser(first, s, "agent1")
        await log_in_on_the_browser(second, s, "agent2")
        available_in(s, "repair", "PJSIP/1001-webrtc")
        caller = asyncio.create_task(asyncio.to_thread(call, s, "soft-6", "13800138806"))
        await answer(first)
        await asyncio.sleep(BRIDGED_S)
        await first.fill("#phone-target", "1002")  # another agent, by 工号
        await first.click("#phone-consult")
        await answer(second)  # the consultation call: agent 1001 rings agent 1002
        seen["consulted"] = await second.text_content("#phone-call")
        await first.wait_for_selector("#phone-complete:enabled", timeout=5000)
        await first.screenshot(path=str(ARTIFACTS / "agent-phone-consulting.png"))
        await first.click("#phone-complete")  # REFER with Replaces: the caller to 1002
        await first.wait_for_selector(
            "#phone-call:not([data-state])", state="attached", timeout=10_000
        )
        seen["media"] = await wait_media_grows(second, await media(second))  # the caller speaks
        seen["channels"] = asterisk_instance(s).rx("core show channels concise")
        seen["pop"] = await popped(second, "13800138806")
        await hang_up(second)
        seen["caller"] = await caller
    return seen


def test_an_attended_transfer_to_another_agent_hands_the_caller_over_with_one_recording(
    desk_stack: Stack, tmp_path: Path
) -> None:
    s = desk_stack.settings
    seen = asyncio.run(_attended_transfer(s, tmp_path))
    assert "1001" in seen["consulted"]
    bridged = [line for line in seen["channels"].splitlines() if "PJSIP/" in line]
    assert len(bridged) == 2, seen["channels"]  # the caller and 1002, nobody else
    assert {line.split("!")[0].rsplit("-", 1)[0] for line in bridged} == {
        "PJSIP/pstn", "PJSIP/1002-webrtc",
    }  # fmt: skip
    result: SippResult = seen["caller"]
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    rec, tickets = recording_of(s, "13800138806")
    assert len(tickets) == 1 and rec.status == RecordingStatus.ok
    assert rec.linkedid in linkedids_of_channels(s, "PJSIP/1001-webrtc")
    assert rec.linkedid not in linkedids_of_channels(s, "PJSIP/1002-webrtc")  # the consultation's
    assert_the_callers_pop(s, seen, "13800138806")


async def _second_browser(s: Settings, profile: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with (
        chromium(profile / "old", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as old_browser,
        chromium(profile / "new", viewport=(1360, 1000), timezone_id=s.metrics.timezone,
                 args=FAKE_MEDIA_FLAGS) as new_browser,
    ):  # fmt: skip
        old, new = await old_browser.new_page(), await new_browser.new_page()
        await log_in_on_the_browser(old, s, "agent1")
        first = webrtc_contacts(s, "1001")
        await sign_in_on_page(new, base_url(s), "/agent", "agent1")  # already logged in
        await new.wait_for_selector("#phone-status[data-state=registered]", timeout=15_000)
        seen["taken"] = wait_for(
            lambda: (now := webrtc_contacts(s, "1001")) and now != first and now,
            5, "the new browser's contact",
        )  # fmt: skip
        # no OPTIONS reach the old page any more: it sees it was replaced and stops
        await old.wait_for_selector("#phone-take", state="visible", timeout=50_000)
        seen["old_status"] = await old.text_content("#phone-status")
        await asyncio.sleep(3)
        seen["kept"] = webrtc_contacts(s, "1001")
    return seen


def test_given_a_second_browser_of_the_same_agent_then_the_first_learns_it_was_replaced(
    desk_stack: Stack, tmp_path: Path
) -> None:
    seen = asyncio.run(_second_browser(desk_stack.settings, tmp_path))
    assert "别处" in seen["old_status"]
    assert seen["kept"] == seen["taken"] and len(seen["kept"]) == 1  # the new one stays
