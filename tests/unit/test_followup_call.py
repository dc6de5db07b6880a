"""The 回访 call's state machine: every transition, as plain data, and each attempt's result."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import survey
from ivr.core.callflow import (
    CallerHungUp,
    CollectDigits,
    Command,
    DigitsEntered,
    Finish,
    Next,
    Play,
    PromptPlayed,
    SetVariable,
    awaited,
)
from ivr.core.followup import Result
from ivr.core.followup_call import (
    IVR_FOLLOWUP,
    IVR_FOLLOWUP_RESOLVED,
    SURVEY_DESK,
    CallResult,
    FollowupCallConfig,
    FollowupCallState,
    Stage,
    call_config,
    policy_config,
    result_of,
    start,
    step,
)

CONFIG = FollowupCallConfig()
RESOLVED_Q = CollectDigits("followup-resolved", "zh", max_digits=1, timeout_s=5)


def _keys(state: FollowupCallState, key: str) -> tuple[FollowupCallState, list[Command]]:
    return step(state, DigitsEntered(key, timed_out=not key, now=1.0))


def _asked(language: str = "zh") -> FollowupCallState:
    state, _ = start(CONFIG, language=language)
    state, cmds = step(state, PromptPlayed(now=0.5))
    assert cmds == [CollectDigits("followup-resolved", language, max_digits=1, timeout_s=5)]
    return state


def test_start_says_who_and_why_then_asks_resolved() -> None:
    state, cmds = start(CONFIG, language="zh")
    assert cmds == [SetVariable(IVR_FOLLOWUP, "asking"), Play("followup-intro", "zh")]
    assert awaited(cmds) is PromptPlayed and state.stage is Stage.INTRO
    state, cmds = step(state, PromptPlayed(now=1.0))
    assert cmds == [RESOLVED_Q] and awaited(cmds) is DigitsEntered
    assert state.stage is Stage.RESOLVED


@pytest.mark.parametrize(("key", "resolved", "value"), [("1", True, "yes"), ("2", False, "no")])
def test_resolved_then_the_survey_question(key: str, resolved: bool, value: str) -> None:
    state = _asked("en")
    state, cmds = _keys(state, key)
    assert cmds[:2] == [SetVariable(IVR_FOLLOWUP, "answered"),
                        SetVariable(IVR_FOLLOWUP_RESOLVED, value)]  # fmt: skip
    assert cmds[-1] == CollectDigits("survey-question", "en", max_digits=1, timeout_s=5)
    assert state.resolved is resolved and state.stage is Stage.SATISFACTION
    state, cmds = _keys(state, "2")
    assert state.satisfaction is survey.Outcome.BASICALLY_SATISFIED
    assert SetVariable(survey.IVR_SURVEY, "basically satisfied") in cmds
    state, cmds = step(state, PromptPlayed(now=3.0))
    assert cmds == [Finish(Next.HANGUP)] and state.stage is Stage.DONE
    assert step(state, PromptPlayed(now=4.0)) == (state, [])


def test_a_wrong_key_is_answered_once_then_refused() -> None:
    state = _asked()
    state, cmds = _keys(state, "7")
    assert cmds == [Play("survey-invalid", "zh")] and state.stage is Stage.INVALID
    state, cmds = step(state, PromptPlayed(now=2.0))
    assert cmds == [RESOLVED_Q]
    state, cmds = _keys(state, "9")
    assert cmds == [SetVariable(IVR_FOLLOWUP, "refused"), Play("goodbye", "zh")]
    state, cmds = step(state, PromptPlayed(now=3.0))
    assert cmds == [Finish(Next.HANGUP)] and state.outcome == "refused"


def test_no_key_at_the_resolved_question_is_refused() -> None:
    state = _asked()
    state, cmds = _keys(state, "")
    assert cmds[0] == SetVariable(IVR_FOLLOWUP, "refused")


def test_a_wrong_satisfaction_key_follows_the_survey_rules() -> None:
    state = _asked()
    state, _ = _keys(state, "1")
    state, cmds = _keys(state, "5")
    assert cmds == [Play("survey-invalid", "zh")]
    state, cmds = step(state, PromptPlayed(now=2.0))
    state, cmds = _keys(state, "5")
    assert state.satisfaction is None and state.resolved is True
    assert SetVariable(survey.IVR_SURVEY, "wrong key") in cmds


def test_hang_up_before_and_after_the_answer() -> None:
    state = _asked()
    gone, cmds = step(state, CallerHungUp(now=1.0))
    assert cmds == [] and gone.outcome == "hung up" and gone.stage is Stage.HUNG_UP
    state, _ = _keys(state, "2")
    gone, cmds = step(state, CallerHungUp(now=2.0))
    assert gone.stage is Stage.HUNG_UP and gone.outcome == "answered" and gone.resolved is False


@pytest.mark.parametrize(
    ("status", "result"),
    [("BUSY", Result.BUSY), ("NOANSWER", Result.NO_ANSWER), ("CONGESTION", Result.FAILED),
     ("CHANUNAVAIL", Result.FAILED), ("", Result.FAILED)],
)  # fmt: skip
def test_unanswered_attempts(status: str, result: Result) -> None:
    got = result_of(answered=False, dial_status=status, followup=None, resolved=None,
                    satisfaction=None)  # fmt: skip
    assert got == CallResult(result)


def test_answered_attempts() -> None:
    def of(followup: str | None, resolved: str | None, sat: str | None) -> CallResult:
        return result_of(answered=True, dial_status="", followup=followup, resolved=resolved,
                         satisfaction=sat)  # fmt: skip

    assert of("refused", None, None) == CallResult(Result.REFUSED)
    assert of("asking", None, None) == CallResult(Result.NO_ANSWER)
    assert of(None, None, None) == CallResult(Result.NO_ANSWER)
    assert of("answered", "yes", "no answer") == CallResult(Result.ANSWERED, resolved=True)
    assert of("answered", "no", "dissatisfied") == CallResult(
        Result.ANSWERED, resolved=False, satisfaction=survey.Outcome.DISSATISFIED
    )


def test_config_from_the_shipped_routing_and_a_desk_of_its_own() -> None:
    routing = load_routing(Path("routing"))
    policy = policy_config(routing)
    assert policy is not None
    assert (policy.hours_start, policy.hours_end) == (time(8, 0), time(20, 0))
    assert (policy.max_attempts, policy.spacing_min, policy.max_concurrent) == (3, 30, 3)
    assert policy.due_within_h == {} and policy.default_due_within_h == 24
    call = call_config(routing)
    assert (call.intro, call.question, call.survey.desks) == (
        "followup-intro",
        "followup-resolved",
        frozenset({SURVEY_DESK}),
    )
    desks = [d.model_copy(update={"followup_within_h": 4}) if d.id == "complaints" else d
             for d in routing.desks]  # fmt: skip
    shorter = policy_config(routing.model_copy(update={"desks": desks}))
    assert shorter is not None and shorter.due_within_h == {"complaints": 4}
    hotline = routing.hotline.model_copy(update={"followup": None})
    assert policy_config(routing.model_copy(update={"hotline": hotline})) is None
