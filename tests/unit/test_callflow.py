"""The call flow state machine: every transition, as plain data."""

from __future__ import annotations

import pytest

from ivr.core.callflow import (
    Answer,
    CallerHungUp,
    CallFacts,
    CallState,
    Finish,
    FlowConfig,
    Next,
    Play,
    PromptPlayed,
    SetVariable,
    Stage,
    start,
    step,
)

CONFIG = FlowConfig(default_queue="consultation")
FACTS = CallFacts(did="95158", caller="13800138000", now=100.0)


def greeting(config: FlowConfig = CONFIG) -> CallState:
    state, _ = start(config, FACTS)
    return state


def done() -> CallState:
    state, _ = step(greeting(), PromptPlayed(now=104.0))
    return state


def hung_up() -> CallState:
    state, _ = step(greeting(), CallerHungUp(now=101.0))
    return state


def test_given_new_call_when_started_then_answer_and_greeting_in_default_language():
    state, commands = start(CONFIG, FACTS)

    assert commands == [Answer(), Play(prompt="greeting", language="zh")]
    assert state.stage is Stage.GREETING
    assert state.language == "zh"
    assert state.facts == FACTS
    assert state.config == CONFIG
    assert state.history == ()


def test_given_english_default_when_started_then_greeting_in_english():
    config = FlowConfig(default_queue="repair", default_language="en")

    state, commands = start(config, FACTS)

    assert commands == [Answer(), Play(prompt="greeting", language="en")]
    assert state.language == "en"


def test_given_custom_greeting_prompt_when_started_then_that_prompt_played():
    config = FlowConfig(default_queue="repair", greeting_prompt="greeting-night")

    _, commands = start(config, FACTS)

    assert commands[1] == Play(prompt="greeting-night", language="zh")


def test_given_greeting_when_prompt_played_then_queue_default_desk():
    state, commands = step(greeting(), PromptPlayed(now=104.0))

    assert commands == [
        SetVariable("IVR_LANGUAGE", "zh"),
        SetVariable("IVR_QUEUE", "consultation"),
        SetVariable("IVR_NEXT", "queue"),
        Finish(Next.QUEUE),
    ]
    assert state.stage is Stage.DONE
    assert state.history == ("greeting",)


def test_given_english_config_when_prompt_played_then_language_variable_english():
    config = FlowConfig(default_queue="repair", default_language="en")

    _, commands = step(greeting(config), PromptPlayed(now=104.0))

    assert commands[:3] == [
        SetVariable("IVR_LANGUAGE", "en"),
        SetVariable("IVR_QUEUE", "repair"),
        SetVariable("IVR_NEXT", Next.QUEUE.value),
    ]
    assert commands[-1] == Finish(Next.QUEUE)


def test_given_greeting_when_caller_hangs_up_then_hung_up_without_commands():
    state, commands = step(greeting(), CallerHungUp(now=101.0))

    assert commands == []
    assert state.stage is Stage.HUNG_UP
    assert state.history == ("greeting",)


@pytest.mark.parametrize("event", [PromptPlayed(now=200.0), CallerHungUp(now=200.0)])
@pytest.mark.parametrize("final", [done, hung_up], ids=["done", "hung_up"])
def test_given_finished_flow_when_any_event_then_nothing_happens(final, event):
    before = final()

    after, commands = step(before, event)

    assert commands == []
    assert after == before


def test_given_a_step_when_taken_then_earlier_state_unchanged():
    before = greeting()

    step(before, PromptPlayed(now=104.0))

    assert before.stage is Stage.GREETING
    assert before.history == ()


def test_stage_and_next_values_are_the_strings_the_dialplan_and_logs_use():
    assert [s.value for s in Stage] == ["greeting", "done", "hung_up"]
    assert [n.value for n in Next] == ["queue", "hangup"]
