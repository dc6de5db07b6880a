"""回访 on the real Asterisk: the follow-up loop (run here, its clock an input) originates
through the outbound trunk to a sipp resident on 127.0.0.1, who answers and presses keys, is
busy, never answers, or whose trunk refuses everything; results are read back from SQL."""

from __future__ import annotations

import asyncio
import audioop
import itertools
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import callbacks, followups, tickets
from ivr.adapters.sql.db import (
    Agent,
    CallFactRow,
    Followup,
    OutboundCall,
    Recording,
    Role,
    TicketState,
    User,
    settings_engine,
)
from ivr.adapters.sql.users import create_user
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.adapters.telephony.followup_calls import FollowupCalls
from ivr.adapters.telephony.originate import place_call
from ivr.adapters.telephony.routing_files import load_routing
from ivr.devstack.sipp import _free_udp_port, start_resident, stop_agent
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.protocols.ami import AmiMessage
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, followup_off, private_stack, wait_for
from tests.web_support import ARTIFACTS, PASSWORD, chromium, sign_in_on_page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SHANGHAI = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI).timestamp()  # inside calling hours
EVENING = datetime(2026, 12, 7, 20, 30, tzinfo=SHANGHAI).timestamp()  # outside
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return _free_udp_port()


@pytest.fixture(scope="module")
def fu_stack(tmp_path_factory: pytest.TempPathFactory, trunk_port: int) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("followup")
    routing = routing_for_tests(base / "routing")
    # the ami role's loop off (this test runs it, with its clock); a no-answer after 5 s
    followup_off(routing, trunk_port=trunk_port, ring_s=5)
    with private_stack(base, "fup", "followup-logs", sim_agents=False, routing_dir=routing) as st:
        yield st


@pytest.fixture(scope="module")
def engine(fu_stack: Stack) -> Iterator[Engine]:
    eng = settings_engine(fu_stack.settings)
    with Session(eng) as session:
        create_user(session, "fu-boss", "a long enough password", Role.supervisor)
        session.commit()
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def clean(engine: Engine) -> Iterator[None]:
    """Each test starts with no follow-up owed (the loop sees every row)."""
    yield
    with Session(engine) as session:
        session.execute(delete(OutboundCall))
        session.execute(delete(Followup))
        session.commit()


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def boss(session: Session) -> User:
    found = session.scalar(select(User).where(User.username == "fu-boss"))
    assert found is not None
    return found


def closed_ticket(stack: Stack, engine: Engine, number: str) -> int:
    """A ticket taken to 已完成 by a supervisor: it owes one 回访 to ``number``."""
    n = next(_serial)
    with Session(engine) as session:
        supervisor = boss(session)
        rec = Recording(
            linkedid=f"fu-{n}", uniqueid=f"fu-{n}", started_at=datetime.now(UTC), did="95158",
            caller=number, caller_reversed=number[::-1], desk="repair", category="repair",
            agent="1001 张三", file_name=f"fu-{n}.wav",
        )  # fmt: skip
        session.add(rec)
        session.flush()
        ticket = tickets.open_for_call(session, recording=rec, voice_message=None,
                                       settings=stack.settings)  # fmt: skip
        assert ticket is not None
        for to in (TicketState.in_progress, TicketState.awaiting_acceptance, TicketState.done):
            tickets.move(session, ticket.id, to, supervisor, "修好了")
        session.commit()
        return ticket.id


@contextmanager
def resident(
    stack: Stack, port: int, mode: str, keys: tuple[tuple[float, str], ...] = (),
    ring_s: float = 0.5, talk_s: float = 20.0, speak: bool = False,
) -> Iterator[None]:  # fmt: skip
    inst = asterisk_instance(stack.settings)
    proc = start_resident(stack.settings.asterisk.root, inst.base / "sipp" / f"resident-{mode}",
                          port=port, mode=mode, keys=keys, ring_s=ring_s,
                          talk_s=talk_s, speak=speak)  # fmt: skip
    try:
        yield
    finally:
        stop_agent(proc, timeout_s=10)


def prompt_s(stack: Stack, key: str) -> float:
    with wave.open(str(stack.settings.prompts_build_dir / "zh" / f"{key}.wav")) as w:
        frames: int = w.getnframes()
        rate: int = w.getframerate()
    return frames / rate


def run_loop(
    stack: Stack, engine: Engine, clock: Clock, until: Callable[[], bool], timeout_s: float,
    *, between: Callable[[], None] | None = None,
) -> FollowupCalls:  # fmt: skip
    """Tick the loop (its own AMI link, the actions account) until ``until()`` holds."""
    routing = load_routing(stack.settings.routing_dir)
    settings = stack.settings

    async def main() -> FollowupCalls:
        holder: list[FollowupCalls] = []

        async def on_event(message: AmiMessage) -> None:
            await holder[0].on_event(message)

        ami = AmiClient(settings.ami, settings.ami_actions_secret(), on_event=on_event,
                        username=settings.ami.actions_username)  # fmt: skip
        loop = FollowupCalls(engine, routing, ami, clock=clock)
        holder.append(loop)
        runner = asyncio.create_task(ami.run())
        try:
            await ami.wait_connected(10)
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not await asyncio.to_thread(until):
                assert asyncio.get_running_loop().time() < deadline, "timed out"
                await loop.tick()
                if between is not None:
                    between()
                await asyncio.sleep(0.5)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return loop

    return asyncio.run(main())


def rows(engine: Engine, ticket_id: int) -> list[Followup]:
    with Session(engine, expire_on_commit=False) as session:
        found = followups.of_ticket(session, ticket_id)
        session.expunge_all()
        return found


def calls(engine: Engine) -> list[OutboundCall]:
    with Session(engine) as session:
        found = list(session.scalars(select(OutboundCall).order_by(OutboundCall.id)))
        session.expunge_all()
        return found


def test_the_resident_answers_resolved_and_satisfied_and_it_reaches_the_ticket(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "+86 138 0013 8000")
    first = prompt_s(fu_stack, "followup-intro") + 1.5
    # two different keys: a pcap replayed carries the same RTP timestamps, heard once
    with resident(fu_stack, trunk_port, "answer", keys=((first, "1"), (2.0, "2"))):
        run_loop(fu_stack, engine, Clock(MORNING),
                 lambda: rows(engine, ticket_id)[0].status == "finished", 90)  # fmt: skip
    row = rows(engine, ticket_id)[0]
    assert (row.last_result, row.resolved, row.satisfaction, row.flagged) == (
        "answered",
        True,
        "basically satisfied",
        False,
    )
    (call,) = calls(engine)
    assert (call.number, call.purpose, call.started_by, call.result) == (
        "13800138000",
        "followup",
        "role:followups",
        "answered",
    )
    with Session(engine) as session:
        assert tickets.get(session, ticket_id).state is TicketState.done


def test_not_resolved_reopens_the_ticket_raised_and_flagged(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "13800138001")
    with Session(engine) as session:
        before = tickets.get(session, ticket_id).priority
    first = prompt_s(fu_stack, "followup-intro") + 1.5
    with resident(fu_stack, trunk_port, "answer", keys=((first, "2"), (2.0, "3"))):
        run_loop(fu_stack, engine, Clock(MORNING),
                 lambda: rows(engine, ticket_id)[0].status == "finished", 90)  # fmt: skip
    row = rows(engine, ticket_id)[0]
    assert (row.resolved, row.satisfaction, row.flagged) == (False, "dissatisfied", True)
    with Session(engine) as session:
        ticket = tickets.get(session, ticket_id)
        assert ticket.state is TicketState.in_progress and ticket.priority == before + 20
        assert [t.id for t in followups.flagged_tickets(session)] == [ticket_id]


@pytest.mark.parametrize(("mode", "result"), [("busy", "busy"), ("ring", "no answer"),
                                              ("reject", "failed")])  # fmt: skip
def test_busy_no_answer_and_a_refusing_trunk_are_retried_then_land_on_the_worklist(
    fu_stack: Stack, engine: Engine, trunk_port: int, mode: str, result: str
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "13800138002")
    clock = Clock(MORNING)
    seen: list[int] = []

    def next_attempt() -> None:  # once an attempt has ended, the spacing passes
        row = rows(engine, ticket_id)[0]
        if not row.in_flight and row.attempts not in seen:
            seen.append(row.attempts)
            clock.at += 30 * 60

    with resident(fu_stack, trunk_port, mode, ring_s=0.2):
        run_loop(fu_stack, engine, clock, lambda: rows(engine, ticket_id)[0].status == "worklist",
                 240, between=next_attempt)  # fmt: skip
    row = rows(engine, ticket_id)[0]
    assert (row.attempts, row.last_result, row.worklist_reason) == (3, result, "attempts exhausted")
    attempts = calls(engine)
    assert [c.result for c in attempts] == [result] * 3
    times = [c.started_at for c in attempts]
    assert all((b - a).total_seconds() >= 30 * 60 for a, b in itertools.pairwise(times))


def test_outside_calling_hours_the_call_waits_for_the_window(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "13800138003")
    clock = Clock(EVENING)
    routing = load_routing(fu_stack.settings.routing_dir)
    with resident(fu_stack, trunk_port, "busy"):
        loop_placed: list[int] = []

        async def ticks() -> None:
            settings = fu_stack.settings
            ami = AmiClient(settings.ami, settings.ami_actions_secret(),
                            username=settings.ami.actions_username)  # fmt: skip
            loop = FollowupCalls(engine, routing, ami, clock=clock)
            runner = asyncio.create_task(ami.run())
            try:
                await ami.wait_connected(10)
                loop_placed.append(len(await loop.tick()))  # 20:30: nothing
                clock.at = MORNING + 86400  # the next morning
                loop_placed.append(len(await loop.tick()))
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)

        asyncio.run(ticks())
    assert loop_placed == [0, 1]
    assert [c.ticket_id for c in calls(engine)] == [ticket_id]


def test_the_cap_holds_under_a_burst_of_20_due_followups(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    ids = [closed_ticket(fu_stack, engine, f"139{n:08d}") for n in range(20)]
    peak: list[int] = []

    def count_in_flight() -> None:
        peak.append(sum(1 for c in calls(engine) if c.ended_at is None))

    with resident(fu_stack, trunk_port, "ring", ring_s=0.2):
        run_loop(fu_stack, engine, Clock(MORNING),
                 lambda: len(calls(engine)) >= 9 and all(c.ended_at for c in calls(engine)), 300,
                 between=count_in_flight)  # fmt: skip
    assert max(peak) == 3 and len(calls(engine)) >= 9
    assert len({c.number for c in calls(engine)}) == len(calls(engine))  # nobody twice (spacing)
    assert all(rows(engine, t)[0].attempts <= 1 for t in ids)


def test_a_ticket_closed_reopened_and_closed_again_is_called_one_followup_at_a_time(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "138 0013 8004")
    with Session(engine) as session:  # reopened (as a 回访 would), closed again: two owed
        tickets.move(session, ticket_id, TicketState.in_progress, None, "again", actor="回访",
                     reopen=True)  # fmt: skip
        tickets.move(session, ticket_id, TicketState.awaiting_acceptance, boss(session), "修好了")
        tickets.move(session, ticket_id, TicketState.done, boss(session), "")
        session.commit()
    assert len(rows(engine, ticket_id)) == 2
    peak: list[int] = []

    def count_in_flight() -> None:
        peak.append(sum(1 for c in calls(engine) if c.ended_at is None))

    with resident(fu_stack, trunk_port, "ring", ring_s=0.2):
        run_loop(fu_stack, engine, Clock(MORNING),
                 lambda: len(calls(engine)) >= 1 and all(c.ended_at for c in calls(engine)), 90,
                 between=count_in_flight)  # fmt: skip
    assert max(peak) <= 1 and len(calls(engine)) == 1  # the earlier one only, once


def test_a_number_with_letters_goes_to_the_worklist_uncalled(
    fu_stack: Stack, engine: Engine
) -> None:
    ticket_id = closed_ticket(fu_stack, engine, "138OO138000")
    run_loop(fu_stack, engine, Clock(MORNING),
             lambda: rows(engine, ticket_id)[0].status == "worklist", 30)  # fmt: skip
    row = rows(engine, ticket_id)[0]
    assert (row.attempts, row.worklist_reason) == (0, "bad number: letters in the number")
    assert calls(engine) == []


def test_no_phone_reaches_the_outbound_trunk(fu_stack: Stack) -> None:
    """Only [agent-callback] dials the trunk, and only Originate reaches it: no dialplan line
    jumps or includes there, and the agents' context reaches only other agents' endpoints (a
    transfer's target) and refuses every other number (in Asterisk)."""
    dialplan = Path(fu_stack.settings.dialplan_dir)
    for path in dialplan.glob("extensions*.conf"):
        context = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.split(";", 1)[0].strip()
            if code.startswith("["):
                context = code
            elif "@outbound" in code:
                assert context == "[agent-callback]", (path, line)
            assert "agent-callback" not in code or code == "[agent-callback]", (path, line)
    inst = asterisk_instance(fu_stack.settings)
    shown = inst.rx("dialplan show 13800138000@from-agents")  # digits: another agent, or nothing
    assert "agent-dial" in shown and "outbound" not in shown
    dial = inst.rx("dialplan show agent-dial")  # only an agent's own endpoints, else cause 21
    assert "PJSIP_ENDPOINT" in dial and "Hangup(21)" in dial and "outbound" not in dial


def test_the_ami_role_places_the_followup_calls_itself(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """As deployed: the loop runs in the ami role (its own AMI link, the real clock; calling
    hours widened to the whole day so the test runs at any hour)."""
    base = tmp_path_factory.mktemp("followup-role")
    port = _free_udp_port()
    routing = routing_for_tests(base / "routing")
    followup_off(routing, trunk_port=port, ring_s=5)
    path = routing / "hotline.yaml"
    hotline = yaml.safe_load(path.read_text(encoding="utf-8"))
    hotline["hotline"]["followup"] |= {"enabled": True, "calling_hours": "00:00-23:59"}
    path.write_text(yaml.safe_dump(hotline, allow_unicode=True))
    with private_stack(base, "fur", "followup-role-logs", sim_agents=False,
                       routing_dir=routing) as stack:  # fmt: skip
        eng = settings_engine(stack.settings)
        try:
            with Session(eng) as session:
                create_user(session, "fu-boss", "a long enough password", Role.supervisor)
                session.commit()
            ticket_id = closed_ticket(stack, eng, "13800138009")
            first = prompt_s(stack, "followup-intro") + 1.5
            with resident(stack, port, "answer", keys=((first, "1"), (2.0, "2"))):
                wait_for(lambda: rows(eng, ticket_id)[0].status == "finished", 90,
                         "the ami role's 回访 call")  # fmt: skip
            row = rows(eng, ticket_id)[0]
            assert (row.resolved, row.satisfaction) == (True, "basically satisfied")
            (call,) = calls(eng)
            assert (call.started_by, call.number) == ("role:followups", "13800138009")
        finally:
            eng.dispose()


AGENT = "Local/agent@sim-agents/n"  # answers after 1 s (extensions-simulation.conf)


def owed_numbers(stack: Stack, engine: Engine) -> list[str]:
    zone = ZoneInfo(stack.settings.metrics.timezone)
    with Session(engine) as session:
        return [e.number for e in callbacks.owed_on(session, datetime.now(UTC), zone)]


async def _queue_member(stack: Stack, action: str) -> None:
    async with ami_session(stack.settings, "actions") as client:
        fields = {"Queue": "repair", "Interface": AGENT}
        if action == "QueueAdd":
            fields["MemberName"] = "1001 测试"
        reply = await client.send_action(action, fields, timeout=5)
        assert reply.response == "Success", reply.to_dict()


def test_an_abandoned_caller_is_on_the_callback_list_until_a_later_call_gets_through(
    fu_stack: Stack, engine: Engine
) -> None:
    number = "13812345678"
    first = asyncio.run(place_call(fu_stack.settings, did="95158", caller=number, keys=["1"],
                                   hold_s=30))  # fmt: skip
    assert first.queue == "repair"  # nobody in the queue: the caller gives up
    wait_for(lambda: number in owed_numbers(fu_stack, engine), 30, "the abandoned caller listed")
    with Session(engine) as session:
        fact = session.scalar(select(CallFactRow).where(CallFactRow.linkedid == first.linkedid))
        assert fact is not None and fact.caller == number
        assert fact.klass in ("abandoned", "timed_out")
    asyncio.run(_queue_member(fu_stack, "QueueAdd"))
    try:
        second = asyncio.run(place_call(fu_stack.settings, did="95158", caller=number,
                                        keys=["1"], hold_s=35))  # fmt: skip
    finally:
        asyncio.run(_queue_member(fu_stack, "QueueRemove"))
    assert second.queue == "repair"
    wait_for(lambda: number not in owed_numbers(fu_stack, engine), 30,
             "the caller who got through taken off the list")  # fmt: skip


def test_an_agent_calls_a_worklist_customer_back_from_their_own_phone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Click-to-call over the web role's API: the ami role rings demo agent 1001's sipp phone
    (PJSIP/1001), then dials the resident on the trunk; the same number is refused meanwhile;
    the call is logged with the agent's account and ends as answered. It is recorded: the
    recorder role catalogues it (direction outbound, the customer the caller, the 工号 the
    agent), joined to its outbound call and so to the ticket. The resident speaks at once
    (7 s), the agent's phone from 7 s after its own answer: in the first 4 s the left
    (customer's) channel holds the resident's voice and the right (agent's) one silence;
    from 8 s the right one holds the agent's voice."""
    base = tmp_path_factory.mktemp("followup-agent")
    port = _free_udp_port()
    routing = routing_for_tests(base / "routing")
    followup_off(routing, trunk_port=port, ring_s=10)
    path = routing / "hotline.yaml"
    hotline = yaml.safe_load(path.read_text(encoding="utf-8"))
    hotline["hotline"]["followup"]["calling_hours"] = "00:00-23:59"  # any hour the test runs
    path.write_text(yaml.safe_dump(hotline, allow_unicode=True))
    with private_stack(base, "fua", "followup-agent-logs", sim_agents=False, demo_agents=True,
                       routing_dir=routing) as stack:  # fmt: skip
        eng = settings_engine(stack.settings)
        try:
            with Session(eng) as session:
                create_user(session, "fu-boss", "a long enough password", Role.supervisor)
                user = create_user(session, "agent1001", PASSWORD, Role.agent)
                agent = session.scalar(select(Agent).where(Agent.work_number == "1001"))
                assert agent is not None
                agent.user_id = user.id
                session.commit()
            ticket_id = closed_ticket(stack, eng, "13800138010")
            with Session(eng) as session:
                row = followups.of_ticket(session, ticket_id)[0]
                row.status, row.worklist_reason = "worklist", "attempts exhausted"
                followup_id = row.id
                session.commit()
            web = f"http://{stack.settings.web.host}:{stack.settings.web.port}"
            with (
                resident(stack, port, "answer", ring_s=0.5, talk_s=12.0, speak=True),
                httpx.Client(base_url=web, headers={"Origin": web}, timeout=10) as client,
            ):
                account = {"username": "agent1001", "password": PASSWORD}
                signed = client.post("/api/auth/login", json=account)
                assert signed.status_code == 200, signed.text
                placed = client.post("/api/agent/outbound-calls", json={"followup_id": followup_id})
                assert placed.status_code == 202, placed.text
                again = client.post("/api/agent/outbound-calls", json={"followup_id": followup_id})
                assert again.status_code == 409
                assert again.json()["error"] == "outbound-call-refused", again.text
                wait_for(lambda: all(c.ended_at for c in calls(eng)), 60, "the agent's call ended")
            (call,) = calls(eng)
            assert (call.purpose, call.started_by, call.device, call.number) == (
                "followup",
                "agent1001",
                "PJSIP/1001",
                "13800138010",
            )
            assert (call.result, call.dial_status) == ("answered", "ANSWER"), call.dial_status
            recording = wait_for(lambda: _outbound_recording(eng, call.channel_id), 60,
                                 "the agent's call catalogued")  # fmt: skip
            assert (recording.direction, recording.caller, recording.agent, recording.desk) == (
                "outbound", "13800138010", "1001", "repair"
            )  # fmt: skip
            assert recording.status == "ok" and recording.file_name, recording.status_detail
            assert "leg" not in (recording.status_detail or ""), recording.status_detail
            with Session(eng) as session:  # the ticket's calls: the recording joined
                joined = [c.recording_id for c in followups.calls_of_ticket(session, ticket_id)]
            assert joined == [recording.id]
            customer, agent_leg = _legs(stack.settings.recordings_dir / recording.file_name)
            first = slice(0, 4 * 8000 * 2)  # 16-bit mono at 8 kHz
            assert audioop.rms(customer[first], 2) > 300, "the resident on the customer's leg"
            assert audioop.rms(agent_leg[first], 2) < audioop.rms(customer[first], 2) / 10
            later = slice(8 * 8000 * 2, 11 * 8000 * 2)
            assert audioop.rms(agent_leg[later], 2) > 300, "the agent on the agent's leg"
            second = closed_ticket(stack, eng, "13800138012")  # called from the page this time
            with Session(eng) as session:
                row = followups.of_ticket(session, second)[0]
                row.status, row.worklist_reason = "worklist", "attempts exhausted"
                session.commit()
            with resident(stack, port, "answer", ring_s=0.5, talk_s=4.0):
                asyncio.run(_click_to_call(web, eng, tmp_path_factory.mktemp("chromium")))
            with Session(eng) as session:
                done = followups.of_ticket(session, second)[0]
                assert (done.status, done.resolved, done.satisfaction) == (
                    "finished",
                    True,
                    "satisfied",
                )
        finally:
            eng.dispose()


def _outbound_recording(engine: Engine, linkedid: str) -> Recording | None:
    with Session(engine, expire_on_commit=False) as session:
        found = session.scalar(select(Recording).where(Recording.linkedid == linkedid))
        session.expunge_all()
        return found


def _legs(path: Path) -> tuple[bytes, bytes]:
    """The stereo file's customer (left) and agent (right) channels, 8 kHz 16-bit each."""
    with wave.open(str(path)) as w:
        data = w.readframes(w.getnframes())
    return audioop.tomono(data, 2, 1, 0), audioop.tomono(data, 2, 0, 1)


async def _click_to_call(web: str, engine: Engine, profile: Path) -> None:
    """In Chromium: the agent's #worklist lists the follow-up; one click rings the agent's
    phone and then the resident; once the call has ended the agent enters the answers."""
    item = "#worklist-followups li:has-text('13800138012')"
    async with chromium(profile, viewport=(1400, 1300), timezone_id="Asia/Shanghai") as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in_on_page(page, web, "/agent", "agent1001")
        await page.wait_for_selector(item)
        await page.click(f"{item} button")
        await page.wait_for_selector(f"{item} form.worklist-result")
        assert "13800138012" in await page.inner_text("#worklist-status")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "agent-worklist.png"), full_page=True)

        def ended() -> bool:
            found = [c for c in calls(engine) if c.number == "13800138012"]
            return bool(found) and all(c.ended_at for c in found)

        await asyncio.to_thread(wait_for, ended, 60, "the page's call ended")
        await page.select_option(f"{item} form.worklist-result select >> nth=0", "resolved")
        await page.select_option(f"{item} form.worklist-result select >> nth=1", "satisfied")
        await page.click(f"{item} form.worklist-result button")
        await page.wait_for_selector(item, state="detached")
        assert errors == []


def test_a_followup_due_while_asterisk_is_unreachable_waits_and_runs_once_it_is_back(
    fu_stack: Stack, engine: Engine, trunk_port: int
) -> None:
    """The loop's AMI link pointed at a port where nothing listens (Asterisk down, from the
    loop's side): it ticks for 3 s and places nothing; with the link back it places the call."""
    ticket_id = closed_ticket(fu_stack, engine, "13800138011")
    settings = fu_stack.settings
    routing = load_routing(settings.routing_dir)
    down = settings.ami.model_copy(update={"port": _free_udp_port(), "connect_timeout_s": 1})

    async def while_down() -> None:
        ami = AmiClient(down, settings.ami_actions_secret(),
                        username=settings.ami.actions_username)  # fmt: skip
        loop = FollowupCalls(engine, routing, ami, clock=Clock(MORNING), tick_s=0.2)
        tasks = [asyncio.create_task(ami.run()), asyncio.create_task(loop.run())]
        await asyncio.sleep(3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(while_down())
    assert calls(engine) == [] and rows(engine, ticket_id)[0].attempts == 0
    with resident(fu_stack, trunk_port, "busy"):
        run_loop(fu_stack, engine, Clock(MORNING),
                 lambda: rows(engine, ticket_id)[0].last_result == "busy", 60)  # fmt: skip
    assert [c.result for c in calls(engine)] == ["busy"]
