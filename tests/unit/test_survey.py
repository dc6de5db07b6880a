"""The post-call survey state machine: every transition, as plain data."""

from __future__ import annotations

import pytest

from ivr.core.callflow import (
    CallerHungUp,
    CollectDigits,
    DigitsEntered,
    Finish,
    MessageRecorded,
    Next,
    Play,
    PromptPlayed,
    SetVariable,
    awaited,
)
from ivr.core.routing_models import Routing
from ivr.core.survey import (
    ASKED,
    ASKING,
    IVR_SURVEY,
    IVR_SURVEY_KEY,
    Outcome,
    Stage,
    SurveyConfig,
    SurveyState,
    start,
    step,
    stored_outcome,
    survey_config,
)

CONFIG = SurveyConfig(desks=frozenset({"repair", "billing"}), timeout_s=5, retries=1)
QUESTION = CollectDigits("survey-question", "zh", max_digits=1, timeout_s=5)


def _asked(language: str = "zh", config: SurveyConfig = CONFIG) -> SurveyState:
    state, cmds = start(config, desk="repair", language=language)
    assert cmds == [SetVariable(IVR_SURVEY, ASKING), CollectDigits(
        "survey-question", language, max_digits=1, timeout_s=config.timeout_s)]  # fmt: skip
    assert state.stage is Stage.ASKING and awaited(cmds) is DigitsEntered
    return state


def _key(key: str) -> DigitsEntered:
    return DigitsEntered(key, timed_out=False, now=10.0)


@pytest.mark.parametrize(
    ("key", "outcome"),
    [("1", Outcome.SATISFIED), ("2", Outcome.BASICALLY_SATISFIED), ("3", Outcome.DISSATISFIED)],
)
def test_given_an_offered_key_then_its_outcome_is_set_before_the_thanks(key, outcome):
    state, cmds = step(_asked(), _key(key))
    assert cmds == [
        SetVariable(IVR_SURVEY, outcome.value),
        SetVariable(IVR_SURVEY_KEY, key),
        Play("survey-thanks", "zh"),
    ]
    assert (state.stage, state.outcome, state.key) == (Stage.THANKS, outcome, key)
    state, cmds = step(state, PromptPlayed(now=12.0))
    assert cmds == [Finish(Next.HANGUP)] and state.stage is Stage.DONE
    assert state.history == ("asking", "thanks")


def test_given_english_call_then_asked_and_thanked_in_english():
    state, cmds = step(_asked("en"), _key("1"))
    assert cmds[-1] == Play("survey-thanks", "en")


def test_given_no_key_within_the_timeout_then_no_answer_and_never_asked_again():
    state, cmds = step(_asked(), DigitsEntered("", timed_out=True, now=15.0))
    assert cmds == [SetVariable(IVR_SURVEY, "no answer"), Play("goodbye", "zh")]
    assert state.outcome is Outcome.NO_ANSWER
    state, cmds = step(state, PromptPlayed(now=17.0))
    assert cmds == [Finish(Next.HANGUP)]
    # The channel now holds "no answer": a second run of the route asks nothing.
    again, cmds = start(CONFIG, desk="repair", language="zh", previous="no answer")
    assert cmds == [Finish(Next.HANGUP)] and again.outcome is Outcome.NO_ANSWER


def test_given_a_wrong_key_then_said_once_and_asked_again_and_a_right_key_counts():
    state, cmds = step(_asked(), _key("7"))
    assert cmds == [Play("survey-invalid", "zh")] and state.stage is Stage.INVALID
    state, cmds = step(state, PromptPlayed(now=11.0))
    assert cmds == [QUESTION] and state.stage is Stage.ASKING
    state, cmds = step(state, _key("3"))
    assert state.outcome is Outcome.DISSATISFIED and state.key == "3"


@pytest.mark.parametrize("wrong", ["9", "*", "0", "4"])
def test_given_two_wrong_keys_then_wrong_key_with_the_last_key_and_goodbye(wrong):
    state, _ = step(_asked(), _key("5"))
    state, _ = step(state, PromptPlayed(now=11.0))
    state, cmds = step(state, _key(wrong))
    assert cmds == [
        SetVariable(IVR_SURVEY, "wrong key"),
        SetVariable(IVR_SURVEY_KEY, wrong),
        Play("goodbye", "zh"),
    ]
    assert state.outcome is Outcome.WRONG_KEY


def test_given_no_retries_then_the_first_wrong_key_ends_it():
    config = SurveyConfig(desks=frozenset({"repair"}), retries=0)
    state, _ = start(config, desk="repair", language="zh")
    state, cmds = step(state, _key("8"))
    assert state.outcome is Outcome.WRONG_KEY and cmds[-1] == Play("goodbye", "zh")


def test_given_a_wrong_key_then_silence_then_no_answer():
    state, _ = step(_asked(), _key("5"))
    state, _ = step(state, PromptPlayed(now=11.0))
    state, _ = step(state, DigitsEntered("", timed_out=True, now=20.0))
    assert state.outcome is Outcome.NO_ANSWER


def test_given_hang_up_while_asked_then_hung_up_during_survey_and_nothing_more():
    state, cmds = step(_asked(), CallerHungUp(now=11.0))
    assert (state.stage, state.outcome, cmds) == (Stage.HUNG_UP, Outcome.HUNG_UP, [])
    assert step(state, _key("1")) == (state, [])


def test_given_hang_up_during_the_thanks_then_the_answer_stays():
    state, _ = step(_asked(), _key("2"))
    state, cmds = step(state, CallerHungUp(now=12.0))
    assert (state.stage, state.outcome, cmds) == (
        Stage.HUNG_UP, Outcome.BASICALLY_SATISFIED, [])  # fmt: skip


def test_given_hang_up_after_the_wrong_key_prompt_then_hung_up_during_survey():
    state, _ = step(_asked(), _key("5"))
    state, _ = step(state, CallerHungUp(now=12.0))
    assert state.outcome is Outcome.HUNG_UP


def test_given_a_desk_with_the_survey_off_then_off_and_no_question():
    state, cmds = start(CONFIG, desk="emergency", language="zh")
    assert cmds == [SetVariable(IVR_SURVEY, "off"), Finish(Next.HANGUP)]
    assert (state.stage, state.outcome) == (Stage.DONE, Outcome.OFF)
    assert step(state, _key("1")) == (state, [])


def test_given_an_unknown_desk_then_off():
    assert start(CONFIG, desk="", language="zh")[0].outcome is Outcome.OFF


@pytest.mark.parametrize("previous", [None, "", ASKED, ASKING, "garbage"])
def test_given_no_final_outcome_on_the_channel_then_asked(previous):
    _, cmds = start(CONFIG, desk="repair", language="zh", previous=previous)
    assert cmds[-1] == QUESTION


def test_given_an_event_of_another_kind_then_read_as_keys():
    state, _ = step(_asked(), PromptPlayed(now=1.0, digit="1"))
    assert state.outcome is Outcome.SATISFIED
    state, _ = step(_asked(), PromptPlayed(now=1.0))
    assert state.outcome is Outcome.NO_ANSWER
    state, _ = step(_asked(), MessageRecorded(duration_s=3.0, now=1.0))
    assert state.outcome is Outcome.NO_ANSWER


def test_given_every_path_then_each_batch_keeps_the_contract():
    paths = [
        [_key("1"), PromptPlayed(now=1)],
        [_key("5"), PromptPlayed(now=1), _key("6"), PromptPlayed(now=2)],
        [DigitsEntered("", timed_out=True, now=1), PromptPlayed(now=2)],
    ]
    for events in paths:
        state = _asked()
        for event in events:
            state, cmds = step(state, event)
            awaited(cmds)  # raises on a broken batch
        assert state.stage is Stage.DONE


@pytest.mark.parametrize(
    ("connected", "survey", "stored"),
    [
        (False, None, None),  # nobody answered: no survey is due
        (False, "satisfied", None),
        (True, None, Outcome.CALLER_HUNG_UP),  # the caller hung up first
        (True, ASKED, Outcome.NOT_ASKED),  # the FastAGI server was down
        (True, ASKING, Outcome.HUNG_UP),  # hung up before a key
        (True, "dissatisfied", Outcome.DISSATISFIED),
        (True, "off", Outcome.OFF),
        (True, "no answer", Outcome.NO_ANSWER),
        (True, "nonsense", Outcome.NOT_ASKED),
    ],
)
def test_stored_outcome_from_the_facts(connected, survey, stored):
    assert stored_outcome(connected=connected, survey=survey) is stored


def test_survey_config_from_routing_is_on_except_the_emergency_desk_unless_set():
    desks = [
        {"id": "repair", "key": "1", "queue": "repair", "category": "repair",
         "label": {"zh": "报修", "en": "Repairs"}, "always_open": True},
        {"id": "billing", "key": "2", "queue": "billing", "category": "billing",
         "label": {"zh": "缴费", "en": "Billing"}, "always_open": True, "survey": False},
        {"id": "emergency", "queue": "emergency", "category": "emergency",
         "label": {"zh": "抢险", "en": "Emergency"}, "emergency": True, "always_open": True},
    ]  # fmt: skip
    data = {
        "hotline": {"name": "热线", "dids": ["95158"], "default_queue": "repair",
                    "survey": {"timeout_s": 8, "retries": 0}},
        "queues": ["repair", "billing", "emergency"],
        "desks": desks,
    }  # fmt: skip
    config = survey_config(Routing.model_validate(data))
    assert config.desks == frozenset({"repair"})
    assert (config.timeout_s, config.retries) == (8, 0)
    desks[2]["survey"] = True
    assert "emergency" in survey_config(Routing.model_validate(data)).desks
