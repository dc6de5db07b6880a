"""The post-call survey on the real Asterisk: the simulated agent (queue member
``Local/agent@sim-agents/n`` carrying agent 1001's name) hangs up first and the caller is
asked; the caller hangs up first and is not; no key, wrong keys, the emergency line (off by
default), and the FastAGI server gone before the agent hangs up. Each outcome is read back
from SQL, where the recorder stored it with the call's recording and ticket."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import surveys
from ivr.adapters.sql.db import Recording, SurveyAnswer, Ticket, settings_engine
from ivr.adapters.telephony.originate import place_call
from ivr.core.call_report import CallReport
from ivr.devstack.stack import Stack, asterisk_instance, pid_alive
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, private_stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

AGENT = "Local/agent@sim-agents/n"  # answers after 1 s, speaks, hangs up (IVR_SIM_AGENT_HOLD)


@pytest.fixture(scope="module")
def survey_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("survey")
    routing = routing_for_tests(base / "routing", survey=True)  # as shipped: on, not emergency
    with private_stack(base, "surv", "survey-logs", sim_agents=False, routing_dir=routing) as st:
        asyncio.run(_add_members(st, {"repair": "1001 测试", "emergency": "1002 抢险"}))
        yield st


@pytest.fixture(scope="module")
def engine(survey_stack: Stack) -> Iterator[Engine]:
    eng = settings_engine(survey_stack.settings)
    yield eng
    eng.dispose()


async def _add_members(stack: Stack, members: dict[str, str]) -> None:
    async with ami_session(stack.settings, "actions") as client:
        for queue, name in members.items():
            fields = {"Queue": queue, "Interface": AGENT, "MemberName": name}
            reply = await client.send_action("QueueAdd", fields, timeout=5)
            assert reply.response == "Success", reply.to_dict()


def _call(
    stack: Stack, caller: str, keys: list[str], *, hold_s: float, did: str = "95158"
) -> CallReport:
    return asyncio.run(place_call(stack.settings, did=did, caller=caller, keys=keys, hold_s=hold_s))


def _stored(engine: Engine, linkedid: str) -> tuple[SurveyAnswer, Ticket]:
    """The call's survey row and its ticket, once the recorder has catalogued the call."""

    def both() -> tuple[SurveyAnswer, Ticket] | None:
        with Session(engine) as session:
            ticket = session.scalar(select(Ticket).where(Ticket.linkedid == linkedid))
            answer = surveys.for_ticket(session, ticket) if ticket is not None else None
            if ticket is None or answer is None:
                return None
            session.expunge_all()
            return answer, ticket

    found: tuple[SurveyAnswer, Ticket] = wait_for(both, 20, f"the survey row of {linkedid}")
    return found


def _survey_prompts(report: CallReport) -> list[str]:
    return [c.split("/")[-1].split(" ")[0] for c in report.agi_commands if "/survey-" in c]


def test_given_the_agent_hangs_up_first_when_the_caller_presses_2_then_stored_with_the_ticket(
    survey_stack: Stack, engine: Engine
) -> None:
    report = _call(survey_stack, "13800138701", ["1", "2"], hold_s=60)
    assert report.queue == "repair"
    assert report.agi_routes == ["inbound", "survey"]
    assert _survey_prompts(report) == ["survey-question", "survey-thanks"]
    assert report.variables["IVR_SURVEY"] == "basically satisfied"
    assert report.hangup_cause == "Normal Clearing (16)"
    answer, ticket = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key) == ("basically satisfied", "2")
    assert (answer.desk, answer.queue, answer.work_number) == ("repair", "repair", "1001")
    assert answer.agent == "1001 测试" and ticket.desk == "repair"
    assert ticket.agent == "1001"  # opened at AgentConnect, owned by the 工号
    assert answer.language == "zh"
    with Session(engine) as session:
        rec = session.scalar(select(Recording).where(Recording.linkedid == report.linkedid))
        assert rec is not None and answer.recording_id == rec.id


def test_given_an_english_call_then_asked_in_english_and_3_is_dissatisfied(
    survey_stack: Stack, engine: Engine
) -> None:
    report = _call(survey_stack, "13800138702", ["8", "1", "3"], hold_s=70)
    assert report.variables.get("IVR_LANGUAGE") == "en"
    assert any("/en/survey-question" in c for c in report.agi_commands)
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key, answer.language) == ("dissatisfied", "3", "en")


def test_given_no_key_then_no_answer_after_the_timeout_and_asked_once(
    survey_stack: Stack, engine: Engine
) -> None:
    report = _call(survey_stack, "13800138703", ["1"], hold_s=70)
    assert _survey_prompts(report) == ["survey-question"]
    assert (
        report.agi_commands[-1].startswith("STREAM FILE")
        and "/zh/goodbye" in report.agi_commands[-1]
    )
    assert sum(c.startswith("GET DATA") and "survey" in c for c in report.agi_commands) == 1
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key) == ("no answer", None)


def test_given_a_wrong_key_then_asked_again_and_a_second_wrong_key_ends_it(
    survey_stack: Stack, engine: Engine
) -> None:
    report = _call(survey_stack, "13800138704", ["1", "7", "9"], hold_s=70)
    assert _survey_prompts(report) == ["survey-question", "survey-invalid", "survey-question"]
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key) == ("wrong key", "9")


def test_given_the_caller_hangs_up_first_then_no_survey_and_recorded_as_such(
    survey_stack: Stack, engine: Engine
) -> None:
    inst = asterisk_instance(survey_stack.settings)
    inst.rx("dialplan set global IVR_SIM_AGENT_HOLD 60")  # the agent stays on
    try:
        report = _call(survey_stack, "13800138705", ["1"], hold_s=25)
    finally:
        inst.rx("dialplan set global IVR_SIM_AGENT_HOLD 1")
    assert report.queue == "repair" and report.event_counts.get("AgentConnect") == 1
    assert report.agi_routes == ["inbound"]
    assert "IVR_SURVEY" not in report.variables
    answer, ticket = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key, answer.work_number) == ("caller hung up", None, "1001")
    assert ticket.agent == "1001"  # opened at AgentConnect, owned by the 工号


def test_given_the_caller_hangs_up_during_the_question_then_hung_up_during_survey(
    survey_stack: Stack, engine: Engine
) -> None:
    # The survey runs from about 16 s to 30 s into such a call (menu key 1, the agent's 1 s
    # answer, the 工号, hello-world, its hang-up; the question and 5 s): the caller leaves at 22 s.
    report = _call(survey_stack, "13800138709", ["1"], hold_s=22)
    assert report.agi_routes == ["inbound", "survey"]
    assert _survey_prompts(report) == ["survey-question"]
    assert report.variables["IVR_SURVEY"] == "asking"
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.key) == ("hung up during survey", None)


def test_given_the_emergency_line_then_no_survey_by_default(
    survey_stack: Stack, engine: Engine
) -> None:
    report = _call(survey_stack, "13800138706", [], did="96777", hold_s=40)
    assert report.queue == "emergency" and report.event_counts.get("AgentConnect") == 1
    assert report.agi_routes == [] and report.agi_commands == []  # no AGI on this path
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.desk) == ("off", "emergency")


def test_given_the_dialplan_asks_for_a_desk_whose_survey_is_off_then_the_server_says_off(
    survey_stack: Stack, engine: Engine
) -> None:
    # Asterisk rendered with the emergency desk's survey on, the routing the server runs with
    # has it off (changed since `ivr up`): the crew's hang-up reaches the survey route, which
    # asks nothing.
    inst = asterisk_instance(survey_stack.settings)
    before = inst.rx("dialplan show globals")
    inst.rx(
        "dialplan set global IVR_SURVEY_CATEGORIES billing/complaints/consultation/emergency/repair"
    )
    try:
        report = _call(survey_stack, "13800138708", [], did="96777", hold_s=40)
    finally:
        inst.rx("dialplan set global IVR_SURVEY_CATEGORIES billing/complaints/consultation/repair")
    assert "IVR_SURVEY_CATEGORIES=billing/complaints/consultation/repair" in before
    assert report.agi_routes == ["survey"]
    assert not any("survey-" in c for c in report.agi_commands)
    answer, _ = _stored(engine, report.linkedid)
    assert (answer.outcome, answer.desk) == ("off", "emergency")


def test_given_the_fastagi_server_down_when_the_agent_hangs_up_then_the_call_just_ends(
    survey_stack: Stack, engine: Engine
) -> None:
    inst = asterisk_instance(survey_stack.settings)
    inst.rx("dialplan set global IVR_SIM_AGENT_HOLD 8")  # time to stop the server meanwhile
    call: CallReport | None = None
    try:
        agi = survey_stack.running()["agi"]

        async def scenario() -> CallReport:
            task = asyncio.create_task(
                place_call(survey_stack.settings, did="95158", caller="13800138707",
                           keys=["1"], hold_s=60)
            )  # fmt: skip

            def connected() -> bool:  # the agent's half, answered, holding (Wait)
                lines = inst.rx("core show channels concise").splitlines()
                return any("!sim-agents!" in line and "!Up!Wait!" in line for line in lines)

            await asyncio.to_thread(wait_for, connected, 40, "the agent connected")
            os.kill(agi.pid, signal.SIGTERM)
            await asyncio.to_thread(
                wait_for, lambda: not pid_alive(agi.pid), 10, "the agi role stopped"
            )
            return await task

        started = time.monotonic()
        call = asyncio.run(scenario())
        assert time.monotonic() - started < 50  # no apology loop, no survey timeout
    finally:
        inst.rx("dialplan set global IVR_SIM_AGENT_HOLD 1")
        survey_stack.restart_role("agi")
    assert call is not None
    assert call.agi_routes == ["inbound", "survey"]
    assert call.variables["IVR_SURVEY"] == "asked"
    assert call.variables["AGISTATUS"] == "FAILURE"
    assert not any("survey" in c for c in call.agi_commands)
    assert call.hangup_cause == "Normal Clearing (16)"
    answer, _ = _stored(engine, call.linkedid)
    assert answer.outcome == "not asked"
