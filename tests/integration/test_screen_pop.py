"""The agent desk's screen pop against the real stack: demo agent 1002 (billing) signed in on
``/agent`` in Chromium, an earlier complaint for the caller's number in SQL, a sipp caller with
RTP audio from the elderly caller's landline in qiaoxi (a priority caller, in an area with an
outage being announced) goes through the menu (2 billing, the account number, never
confirmed) and rings 1002's desk phone (sipp, answers after 2 s). The page shows the caller's
number, the menu path, the earlier ticket (a possible repeat complaint) and the outage while the
phone rings; the time from the
``AgentCalled`` stream entry to the pop rendered is measured; then connected and ended; then
the session ends and the page says so."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import delete
from sqlalchemy.orm import Session

from ivr import redis_keys
from ivr.adapters.sql.db import Recording, Ticket, TicketState, UserSession, settings_engine
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.sipp import run_caller
from ivr.devstack.stack import Stack, asterisk_instance
from tests.conftest import routing_for_tests
from tests.stack_support import ivr_cli, private_stack
from tests.web_support import ARTIFACTS, PASSWORD, add_user, chromium, sign_in_on_page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # ~70 s of call + the stack

CALLER = "031186000001"  # routing/priority_callers.yaml: elderly_alone; area qiaoxi
ACCOUNT = "3456789"  # keys in rising order only (see pop_stack); 7 digits in this test
INTERVAL_S = 0.5  # between keys
POP_MUST_MS = 300.0  # the standard: the pop within 300 ms of the ring
POP_BOUND_MS = 1500.0  # what this test asserts (a shared machine, Chromium and a stack)


@pytest.fixture(scope="module")
def pop_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("pop")
    routing = routing_for_tests(base / "routing")
    # sipp replays one pcap per key, each with the RTP sequence numbers it was captured with
    # (1: 7984, 2: 8042 ... 9: 8293, #: 8436, 0: 12080), and Asterisk loses a key whose
    # numbers fall below the previous key's, or leap far above them (1 after 2 or after #,
    # 0 after 9): after the menu's 2 only 3 to 9 arrive, so this routing takes 7-digit
    # accounts, and the caller never confirms (the confirmation key 1 would be lost): after
    # three read-backs the desk takes the call with the account keyed in, unconfirmed.
    hotline = (routing / "hotline.yaml").read_text(encoding="utf-8")
    assert "min_digits: 8" in hotline
    (routing / "hotline.yaml").write_text(hotline.replace("min_digits: 8", "min_digits: 7"))
    with private_stack(
        base, "pop", "pop-logs", sim_agents=False, demo_agents=True, routing_dir=routing
    ) as stack:
        yield stack


def _seconds(stack: Stack, *keys: str) -> float:
    """How long the hotline speaks these prompts (zh, as built for this stack)."""
    total = 0.0
    for key in keys:
        with wave.open(str(stack.settings.prompts_build_dir / "zh" / f"{key}.wav")) as w:
            total += w.getnframes() / w.getframerate()
    return total


def _keys(stack: Stack) -> tuple[float, str]:
    """(seconds after the answer of the first key, the keys): 2 during the menu prompt
    (after the greeting, the emergency notice and the qiaoxi outage), the account and #."""
    menu_at = _seconds(stack, "greeting", "emergency-notice", "outage-qiaoxi-20261126") + 1.5
    return menu_at, f"2{ACCOUNT}#"


def _earlier_ticket(stack: Stack) -> int:
    engine = settings_engine(stack.settings)
    try:
        with Session(engine) as db:
            at = datetime.now(UTC) - timedelta(days=2)
            db.add(
                Recording(
                    linkedid="1764000000.1", uniqueid="1764000000.1", started_at=at,
                    did="95158", caller=CALLER, caller_reversed=CALLER[::-1], desk="repair",
                    category="repair", file_name="earlier.wav",
                )
            )  # fmt: skip
            ticket = Ticket(
                linkedid="1764000000.1", caller=CALLER, state=TicketState.in_progress,
                desk="repair", category="repair", level="L2", created_at=at, complaint=True,
            )  # fmt: skip
            db.add(ticket)
            db.commit()
            ticket_id = ticket.id
        add_user(engine, "lisi", PASSWORD, "agent")
    finally:
        engine.dispose()
    linked = ivr_cli(stack.settings, "agents", "set", "1002", "--user", "lisi")
    assert linked.returncode == 0, linked.stderr
    return ticket_id


def _stream_entry(stack: Stack, event: str, linkedid: str) -> tuple[float, dict[str, str]]:
    """(epoch ms of the stream entry, its fields) of the first ``event`` of the call."""
    s = stack.settings
    with redis.Redis.from_url(s.redis.url, **s.redis_auth(), decode_responses=True) as client:
        for entry_id, fields in client.xrange(redis_keys.AMI_EVENTS, "-", "+"):
            if fields.get("Event") == event and fields.get("Linkedid") == linkedid:
                return float(entry_id.split("-")[0]), fields
    raise AssertionError(f"no {event} for {linkedid} in the stream")


async def _ring_and_watch(stack: Stack, profile: Path) -> dict[str, object]:
    s = stack.settings
    base_url = f"http://{s.web.host}:{s.web.port}"
    popped: list[object] = []
    async with chromium(profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone) as browser:
        page = await browser.new_page()
        await sign_in_on_page(page, base_url, "/agent", "lisi")
        await page.wait_for_selector("#pop[data-stream=open]", timeout=10_000)
        await page.evaluate(
            """() => { window.popEvents = [];
            for (const name of ["hotline:pop", "hotline:connected", "hotline:ended"]) {
              document.addEventListener(name, (e) => window.popEvents.push(
                [name, e.detail.linkedid, document.getElementById("pop-body")?.dataset.state]));
            } }"""
        )
        first_key_s, keys = _keys(stack)
        inst = asterisk_instance(s)
        caller = asyncio.create_task(
            asyncio.to_thread(
                run_caller,
                s.asterisk.root,
                inst.base / "sipp" / "pop-caller",
                target=f"127.0.0.1:{s.asterisk.sip_port}",
                did="95158",
                caller_id=CALLER,
                digits=keys,
                digits_after_s=first_key_s,
                digit_interval_s=INTERVAL_S,
                hold_s=60,
                timeout_s=150,
            )  # fmt: skip
        )
        body = await page.wait_for_selector("#pop-body[data-linkedid]", timeout=120_000)
        assert body is not None
        popped.append(await body.get_attribute("data-state"))  # as first rendered
        rendered_at = float(await body.get_attribute("data-rendered-at") or 0)
        text = await body.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "agent-screen-pop.png"), full_page=True)
        await page.wait_for_selector("#pop-body[data-state=connected]", timeout=15_000)
        await page.wait_for_selector("#pop-body[data-state=ended]", timeout=60_000)
        result = await caller
        events = await page.evaluate("window.popEvents")
        linkedid = await body.get_attribute("data-linkedid")
        # The session ends (as at its expiry): the stream says so and the page stops.
        await asyncio.to_thread(_end_sessions, stack)
        await page.wait_for_selector("#expired:not([hidden])", timeout=15_000)
    return {
        "text": text, "rendered_at": rendered_at, "events": events, "linkedid": linkedid,
        "state_at_render": popped[0], "sipp": result,
    }  # fmt: skip


def _end_sessions(stack: Stack) -> None:
    engine = settings_engine(stack.settings)
    try:
        with Session(engine) as db:
            db.execute(delete(UserSession))
            db.commit()
    finally:
        engine.dispose()


def test_given_an_earlier_ticket_when_the_caller_rings_1002_then_the_pop_shows_it_before_the_answer(
    pop_stack: Stack, tmp_path: Path
) -> None:
    ticket_id = _earlier_ticket(pop_stack)

    seen = asyncio.run(_ring_and_watch(pop_stack, tmp_path))

    linkedid = str(seen["linkedid"])
    text = str(seen["text"])
    assert seen["state_at_render"] == "ringing"
    assert CALLER in text  # unmasked
    assert "独居老人" in text and "重复来电" in text  # the priority tag, the repeat mark
    assert f"2 → {ACCOUNT}" in text  # the keys pressed
    assert f"{ACCOUNT} 未确认" in text and "缴费与费用 (billing)" in text
    assert "桥西区" in text and "暂停供热" in text  # the notice heard, the outage now
    assert f"#{ticket_id}" in text and "处理中" in text  # the earlier ticket, open
    # a complaint 2 days ago from this number: within the 30-day repeat-complaint window
    assert f"可能重复投诉 possible repeat complaint: #{ticket_id} " in text
    assert "处理中 · 同号码 same number" in text
    called_ms, called = _stream_entry(pop_stack, "AgentCalled", linkedid)
    connect_ms, _ = _stream_entry(pop_stack, "AgentConnect", linkedid)
    assert called["Interface"] == "PJSIP/1002" and called["DestLinkedid"] == linkedid
    assert called["DestUniqueid"] != linkedid  # keyed on the call, not the agent's channel
    latency_ms = float(seen["rendered_at"]) - called_ms  # type: ignore[arg-type]
    (ARTIFACTS / "screen-pop-latency.json").write_text(
        json.dumps({"agent_called_to_rendered_ms": latency_ms, "must_ms": POP_MUST_MS})
    )
    print(f"AgentCalled -> pop rendered: {latency_ms:.0f} ms")  # noqa: T201
    assert 0 <= latency_ms <= POP_BOUND_MS, latency_ms
    assert float(seen["rendered_at"]) < connect_ms  # before the answer  # type: ignore[arg-type]
    assert seen["events"] == [
        ["hotline:pop", linkedid, "ringing"],
        ["hotline:connected", linkedid, "connected"],
        ["hotline:ended", linkedid, "ended"],
    ]


class Sse:
    """One ``GET /api/agent/events`` read event by event (httpx), for the resume test."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout_s: float = 30.0) -> tuple[str, str, dict[str, object]]:
        """(event, id, data) of the next event (comments and ``retry`` skipped)."""
        event, entry_id = "", ""
        while True:
            line = await asyncio.wait_for(anext(self.lines), timeout_s)
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                entry_id = line[4:]
            elif line.startswith("data: "):
                return event, entry_id, json.loads(line[6:])


async def _resumed(stack: Stack) -> dict[str, list[tuple[str, object]]]:
    s = stack.settings
    base = f"http://{s.web.host}:{s.web.port}"
    seen: dict[str, list[tuple[str, object]]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=60)) as http:
        login = await http.post(
            "/api/auth/login", json={"username": "zhangsan", "password": PASSWORD},
            headers={"Origin": base},
        )  # fmt: skip
        login.raise_for_status()
        call = asyncio.create_task(
            place_call(s, did="95158", caller="13800138702", keys=["1"], hold_s=20)
        )
        async with http.stream("GET", "/api/agent/events") as first:
            sse = Sse(first)
            assert (await sse.next())[0] == "current"
            kind, pop_id, pop = await sse.next(60)
            assert kind == "pop"
            seen["first"] = [(kind, pop["linkedid"])]
            kind, _, doc = await sse.next()
            seen["first"].append((kind, doc["linkedid"]))
        # dropped after the answer: back with the pop's id, the rest as it happened
        headers = {"Last-Event-ID": pop_id}
        async with http.stream("GET", "/api/agent/events", headers=headers) as again:
            sse = Sse(again)
            seen["resumed"] = [((e := await sse.next())[0], e[2]["linkedid"])]
            # a new page while the call goes on: the call as it stands now
            async with http.stream("GET", "/api/agent/events") as fresh:
                sse_fresh = Sse(fresh)
                seen["fresh"] = [(e[0], e[2].get("linkedid", e[2].get("linkedids")))
                                 for e in [await sse_fresh.next() for _ in range(3)]]  # fmt: skip
            seen["resumed"].append(((e := await sse.next(40))[0], e[2]["linkedid"]))
        report = await call
        seen["call"] = [("linkedid", report.linkedid)]
    return seen


def test_given_a_dropped_stream_then_last_event_id_resumes_and_a_new_page_gets_the_call(
    pop_stack: Stack,
) -> None:
    engine = settings_engine(pop_stack.settings)
    try:
        add_user(engine, "zhangsan", PASSWORD, "agent")
    finally:
        engine.dispose()
    linked = ivr_cli(pop_stack.settings, "agents", "set", "1001", "--user", "zhangsan")
    assert linked.returncode == 0, linked.stderr

    seen = asyncio.run(_resumed(pop_stack))

    ((_, linkedid),) = seen["call"]
    assert seen["first"] == [("pop", linkedid), ("connected", linkedid)]
    assert seen["resumed"] == [("connected", linkedid), ("ended", linkedid)]
    assert seen["fresh"] == [("current", [linkedid]), ("pop", linkedid), ("connected", linkedid)]
