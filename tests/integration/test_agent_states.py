"""Agent states live against the real stack: Asterisk 22 + the ami role + Redis + the web role.

An agent with a 工号 logs in to two desks the way the convention says (AMI QueueAdd as the
actions account, ``MemberName`` "1001 测试", a Local channel to ``[sim-agents]`` that
answers after a delay); a real call (``place_call``: the menu, key 4, consultation) must
show it 振铃 → 通话 → 后处理 (its ``Wrapuptime``) → 空闲 in ``ivr:live:agent_states`` and in
``/api/metrics/summary``, with the caller masked and one call counted today; QueuePause with
the reason 小休 shows it paused with that reason there and on ``/metrics``. A second agent
whose ``StateInterface`` is ``PJSIP/<工号>`` with no such endpoint (no phone registered) is
离线, and the dev stack's ``Local/agent@sim-agents/n`` members are no agents.

Found here, on this Asterisk: a member whose ``StateInterface`` names a PJSIP endpoint that
does not exist is ``Invalid`` (Status 4) and app_queue never rings it (``ringinuse = no``),
so the answering agent's state comes from its Local channel itself.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from ivr import redis_keys
from ivr.adapters.sql.db import settings_engine
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.stack import Stack, asterisk_instance
from tests.web_support import ARTIFACTS, PASSWORD, add_user, chromium, login, sign_in_on_page

pytestmark = pytest.mark.integration

QUEUE = "consultation"  # key 4 in the menu
SIM_MEMBER = "Local/agent@sim-agents/n"
AGENT = {"Interface": "Local/1001@sim-agents/n", "MemberName": "1001 测试"}
UNREGISTERED = {
    "Interface": "Local/1009@sim-agents/n",
    "MemberName": "1009 未注册",
    "StateInterface": "PJSIP/1009",  # no such endpoint: Asterisk says Invalid
}
CALLER = "13800138055"
MASKED = "138******55"
WRAPUP_S = 4


@pytest.fixture
async def actions(stack: Stack) -> AsyncIterator[AmiClient]:
    settings = stack.settings
    ami = AmiClient(
        settings.ami,
        settings.ami_actions_secret(),
        username=settings.ami.actions_username,
        events="off",
    )
    task = asyncio.create_task(ami.run())
    try:
        await ami.wait_connected(10)
        yield ami
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def supervisor(stack: Stack) -> str:
    """A user with the supervisor role in the stack's SQL database (password PASSWORD)."""
    username = f"sup-{secrets.token_hex(3)}"
    engine = settings_engine(stack.settings)
    try:
        add_user(engine, username, PASSWORD, "supervisor")
    finally:
        engine.dispose()
    return username


@pytest.fixture
def base_url(stack: Stack) -> str:
    return f"http://{stack.settings.web.host}:{stack.settings.web.port}"


@pytest.fixture
async def http(base_url: str, supervisor: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await login(client, supervisor, PASSWORD, origin=base_url)).status_code == 200
        yield client


async def action(ami: AmiClient, name: str, **fields: str) -> None:
    reply = await ami.send_action(name, fields, timeout=5)
    assert reply.response == "Success", reply.to_dict()


def stored(client: redis.Redis, work_number: str) -> dict[str, Any] | None:
    raw = client.hget(redis_keys.LIVE_AGENT_STATES, work_number)
    return None if raw is None else dict(json.loads(raw))


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def api_agent(http: httpx.AsyncClient, work_number: str) -> dict[str, Any]:
    response = await http.get("/api/metrics/summary")
    assert response.status_code == 200
    agents = {a["work_number"]: a for a in response.json()["agents"]}
    return dict(agents[work_number])


async def test_given_an_agent_and_a_call_then_ringing_talking_wrapup_idle_and_paused(
    stack, redis_client, actions, http
):
    inst = asterisk_instance(stack.settings)
    inst.rx(f"queue remove member {SIM_MEMBER} from {QUEUE}")  # only our agent answers
    call: asyncio.Task[Any] | None = None
    try:
        await action(actions, "QueueAdd", Queue=QUEUE, **AGENT, Wrapuptime=str(WRAPUP_S))
        await action(actions, "QueueAdd", Queue="billing", **AGENT)
        await action(actions, "QueueAdd", Queue="billing", **UNREGISTERED)

        def idle() -> dict[str, Any] | None:  # in both queues: both QueueAdds processed
            found = stored(redis_client, "1001")
            in_both = found and found["state"] == "idle" and len(found["queues"]) == 2
            return found if in_both else None

        first = await until(idle, 5, "agent 1001 idle in Redis")
        assert (first["name"], first["queues"]) == ("测试", ["billing", QUEUE])
        offline = await until(lambda: stored(redis_client, "1009"), 5, "agent 1009 in Redis")
        assert offline["state"] == "offline"
        assert (await api_agent(http, "1009"))["label"] == "离线"
        work_numbers = redis_client.hkeys(redis_keys.LIVE_AGENT_STATES)
        assert all(key.isdigit() for key in work_numbers)  # the sim agents are no agents

        call = asyncio.create_task(
            place_call(
                stack.settings, did="95158", caller=CALLER, keys=["4"], hold_s=40, agent_delay_s=2
            )
        )

        def in_state(state: str) -> Callable[[], dict[str, Any] | None]:
            def check() -> dict[str, Any] | None:
                found = stored(redis_client, "1001")
                return found if found and found["state"] == state else None

            return check

        ringing = await until(in_state("ringing"), 40, "agent 1001 ringing")
        assert ringing["caller"] == MASKED
        api = await api_agent(http, "1001")
        assert (api["state"], api["label"], api["caller_masked"]) == ("ringing", "振铃", MASKED)
        talking = await until(in_state("talking"), 10, "agent 1001 talking")
        assert talking["caller"] == MASKED and talking["since"] >= ringing["since"]
        api = await api_agent(http, "1001")
        assert (api["state"], api["caller_masked"]) == ("talking", MASKED)
        wrapup = await until(in_state("wrapup"), 20, "agent 1001 in wrap-up")
        assert wrapup["wrapup_until"] == pytest.approx(wrapup["since"] + WRAPUP_S, abs=0.1)
        assert wrapup["calls"] >= 1
        api = await api_agent(http, "1001")
        assert (api["state"], api["label"], api["caller_masked"]) == ("wrapup", "后处理", "")
        calls = api["calls_today"]
        assert calls == wrapup["calls"] and api["mean_handle_s"] >= WRAPUP_S
        await asyncio.sleep(max(0.0, wrapup["wrapup_until"] - time.time()) + 0.3)
        api = await api_agent(http, "1001")  # no event ends a wrap-up: the read says idle
        assert (api["state"], api["since"]) == ("idle", pytest.approx(wrapup["wrapup_until"]))
        assert CALLER not in redis_client.hget(redis_keys.LIVE_AGENT_STATES, "1001")

        await action(actions, "QueuePause", Interface=AGENT["Interface"], Paused="true",
                     Reason="小休")  # fmt: skip
        paused = await until(in_state("paused"), 5, "agent 1001 paused")
        assert paused["reason"] == "小休"
        api = await api_agent(http, "1001")
        assert (api["state"], api["reason"], api["calls_today"]) == ("paused", "小休", calls)
        scrape = (await http.get("/metrics")).text
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scrape)
            for s in family.samples
        }
        assert found[("hotline_agent_paused", (("reason", "小休"), ("work_number", "1001")))] == 1
        key = (
            "hotline_agent_state",
            (("name", "测试"), ("state", "paused"), ("work_number", "1001")),
        )
        assert found[key] == 1
        assert found[("hotline_agent_calls_today_total", (("work_number", "1001"),))] == calls
        report = await asyncio.wait_for(call, 60)
        assert report.queue == QUEUE and report.event_counts.get("AgentConnect") == 1

        # logged out of every desk: 离线, today's calls kept
        for queue in ("billing", QUEUE):
            await action(actions, "QueueRemove", Queue=queue, Interface=AGENT["Interface"])
        gone = await until(in_state("offline"), 5, "agent 1001 offline")
        assert (gone["queues"], gone["calls"]) == ([], calls)
    finally:
        for queue, member in ((QUEUE, AGENT), ("billing", AGENT), ("billing", UNREGISTERED)):
            await actions.send_action(
                "QueueRemove", {"Queue": queue, "Interface": member["Interface"]}, timeout=5
            )
        if SIM_MEMBER not in inst.rx(f"queue show {QUEUE}"):
            inst.rx(f"queue add member {SIM_MEMBER} to {QUEUE}")
        if call is not None and not call.done():
            await asyncio.wait_for(asyncio.gather(call, return_exceptions=True), 60)


# --- the supervisor page in Chromium --------------------------------------------------------
async def test_given_the_live_page_then_the_agents_table_follows_each_agent(
    stack, actions, supervisor, base_url, tmp_path
):
    """Four agents: one rung by a real call, then talking, one paused for 培训, one idle, one
    离线; the table shows them by 工号 with the state in Chinese and English, the reason, the
    caller masked, and its duration ticking. Screenshot: test-artifacts/supervisor-agents.png."""
    inst = asterisk_instance(stack.settings)
    inst.rx(f"queue remove member {SIM_MEMBER} from {QUEUE}")
    members = [
        (QUEUE, AGENT | {"Wrapuptime": "2"}),
        ("billing", {"Interface": "Local/1002@sim-agents/n", "MemberName": "1002 李四"}),
        ("billing", {"Interface": "Local/1003@sim-agents/n", "MemberName": "1003 王五"}),
        ("billing", UNREGISTERED),
    ]
    call: asyncio.Task[Any] | None = None
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        for queue, member in members:
            await action(actions, "QueueAdd", Queue=queue, **member)
        await action(actions, "QueuePause", Interface="Local/1002@sim-agents/n", Paused="true",
                     Reason="培训")  # fmt: skip
        async with chromium(
            tmp_path, viewport=(1360, 1100), timezone_id=stack.settings.metrics.timezone
        ) as browser:
            page = await browser.new_page()
            await sign_in_on_page(page, base_url, "/supervisor", supervisor)
            row = "#agent-states tr[data-work-number='{}']"
            await page.wait_for_selector(row.format("1002") + "[data-state=paused]", timeout=5000)
            assert await page.text_content(row.format("1002") + " td.state") == "小休 paused培训"
            await page.wait_for_selector(row.format("1009") + "[data-state=offline]", timeout=5000)
            await page.wait_for_selector(row.format("1003") + "[data-state=idle]", timeout=5000)
            assert await page.is_hidden("#agent-states-empty")
            rows = await page.eval_on_selector_all(
                "#agent-states tbody tr", "trs => trs.map(t => t.dataset.workNumber)"
            )
            assert rows == sorted(rows) and "1001" in rows  # by 工号; no sim agent rows
            before = int(await page.text_content(row.format("1001") + " td.calls") or "0")

            call = asyncio.create_task(
                place_call(
                    stack.settings,
                    did="95158",
                    caller=CALLER,
                    keys=["4"],
                    hold_s=40,
                    agent_delay_s=6,
                )
            )
            ringing = row.format("1001") + "[data-state=ringing]"
            await page.wait_for_selector(ringing, timeout=40_000)
            cells = await page.eval_on_selector_all(
                f"{ringing} td", "tds => tds.map(t => t.textContent)"
            )
            assert cells[:3] == ["1001", "测试", "振铃 ringing"]
            assert cells[4] == MASKED
            await page.wait_for_timeout(1300)
            assert await page.text_content(f"{ringing} td.for") != cells[3]  # it ticks
            assert CALLER not in await page.content()
            await page.screenshot(path=str(ARTIFACTS / "supervisor-agents.png"), full_page=True)

            talking = row.format("1001") + "[data-state=talking]"
            await page.wait_for_selector(talking, timeout=15_000)
            await page.wait_for_selector(row.format("1001") + "[data-state=wrapup]", timeout=20_000)
            # the wrap-up runs out on the page itself (no event comes): idle, one more call
            idle = row.format("1001") + "[data-state=idle]"
            await page.wait_for_selector(idle, timeout=5000)
            assert await page.text_content(f"{idle} td.calls") == str(before + 1)
        report = await asyncio.wait_for(call, 60)
        assert report.queue == QUEUE
    finally:
        for queue, member in members:
            await actions.send_action(
                "QueueRemove", {"Queue": queue, "Interface": member["Interface"]}, timeout=5
            )
        if SIM_MEMBER not in inst.rx(f"queue show {QUEUE}"):
            inst.rx(f"queue add member {SIM_MEMBER} to {QUEUE}")
        if call is not None and not call.done():
            await asyncio.wait_for(asyncio.gather(call, return_exceptions=True), 60)
