"""The 回访 (follow-up) call: a pure state machine. No I/O, no clock reads.

The callee of an automated follow-up call (placed by the ``followups`` role, answered on the
outbound trunk) hears who is calling and why (``followup-intro``), then is asked whether the
matter was resolved (``followup-resolved``: 1 yes, 2 no), then how satisfied they are: that
second question *is* the post-call survey (:mod:`ivr.core.survey`, 满意请按1，基本满意请按2，
不满意请按3, with its wrong-key and no-answer rules), run inside this machine, so there is one
question machinery.

It speaks the call flow's command language (:mod:`ivr.core.callflow`), so the same AGI
translation runs it (FastAGI route ``followup``). Its result goes to channel variables before
anything else is said, so a callee who hangs up during the thanks keeps the answer:

``IVR_FOLLOWUP``           ``answered`` (the resolved question was answered), ``refused`` (no
                           key, or a wrong key twice, at the resolved question), ``hung up``
                           (the callee left before answering it); ``asking`` while under way
``IVR_FOLLOWUP_RESOLVED``  ``yes`` or ``no``
``IVR_SURVEY``             the satisfaction (the survey's outcome; ``satisfied`` ...)

The scheduler reads them from the call's channel when it ends (:func:`result_of`): an
answered follow-up is finished, a refused one too (never called again), a callee who hung up
before answering counts as ``no answer`` (the policy may try again).

>>> config = FollowupCallConfig()
>>> state, cmds = start(config, language="zh")
>>> [type(c).__name__ for c in cmds]
['SetVariable', 'Play']
>>> from ivr.core.callflow import PromptPlayed
>>> state, cmds = step(state, PromptPlayed(now=0.5))
>>> cmds[0].prompt
'followup-resolved'
>>> state, cmds = step(state, DigitsEntered("2", timed_out=False, now=1.0))
>>> cmds[:2]
[SetVariable(name='IVR_FOLLOWUP', value='answered'), SetVariable(name='IVR_FOLLOWUP_RESOLVED', \
value='no')]
>>> state, cmds = step(state, DigitsEntered("3", timed_out=False, now=2.0))
>>> state.satisfaction
<Outcome.DISSATISFIED: 'dissatisfied'>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time as clock_time
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ivr.core import survey
from ivr.core.callflow import (
    CallerHungUp,
    CollectDigits,
    Command,
    DigitsEntered,
    Event,
    Finish,
    Next,
    Play,
    SetVariable,
)
from ivr.core.followup import FollowupConfig, Result
from ivr.core.routing_models import Routing, parse_time_range

IVR_FOLLOWUP = "IVR_FOLLOWUP"
IVR_FOLLOWUP_RESOLVED = "IVR_FOLLOWUP_RESOLVED"
ASKING = "asking"
ANSWERED = "answered"
REFUSED = "refused"
HUNG_UP = "hung up"

RESOLVED_KEYS: Mapping[str, bool] = MappingProxyType({"1": True, "2": False})
SURVEY_DESK = "followup"  # the embedded survey is always on: its config names only this desk


class Stage(StrEnum):
    INTRO = "intro"  # Play: who is calling and why
    RESOLVED = "resolved"  # CollectDigits: resolved? (after the intro)
    INVALID = "invalid"  # Play: 输入有误, then the resolved question again
    SATISFACTION = "satisfaction"  # the embedded survey runs
    GOODBYE = "goodbye"  # Play: goodbye (refused)
    DONE = "done"
    HUNG_UP = "hung_up"


@dataclass(frozen=True, slots=True)
class FollowupCallConfig:
    intro: str = "followup-intro"  # prompt keys (prompts/catalog.yaml)
    question: str = "followup-resolved"
    timeout_s: int = 5
    retries: int = 1  # wrong keys at the resolved question answered with 输入有误, then again
    survey: survey.SurveyConfig = field(
        default_factory=lambda: survey.SurveyConfig(desks=frozenset({SURVEY_DESK}))
    )


def call_config(routing: Routing) -> FollowupCallConfig:
    """The call's prompts and timings from the validated routing (hotline.followup, and the
    survey's question, timeout and retries)."""
    base = routing.hotline.followup
    inner = survey.survey_config(routing)
    return FollowupCallConfig(
        intro=base.intro if base is not None else "followup-intro",
        question=base.question if base is not None else "followup-resolved",
        timeout_s=inner.timeout_s,
        retries=inner.retries,
        survey=replace(inner, desks=frozenset({SURVEY_DESK})),
    )


def policy_config(routing: Routing) -> FollowupConfig | None:
    """The calling policy from the validated routing; None when hotline.followup is unset
    (no 回访 calls are placed)."""
    base = routing.hotline.followup
    if base is None:
        return None
    start, end = parse_time_range(base.calling_hours)
    return FollowupConfig(
        timezone=routing.hotline.timezone,
        hours_start=clock_time(start // 60, start % 60),
        hours_end=clock_time(end // 60, end % 60),
        max_attempts=base.max_attempts,
        spacing_min=base.spacing_min,
        max_concurrent=base.max_concurrent,
        due_within_h={
            d.id: d.followup_within_h for d in routing.desks if d.followup_within_h is not None
        },
        default_due_within_h=base.due_within_h,
    )


@dataclass(frozen=True, slots=True)
class FollowupCallState:
    config: FollowupCallConfig
    language: str
    stage: Stage
    invalid: int = 0
    resolved: bool | None = None
    outcome: str = ASKING  # the IVR_FOLLOWUP value
    satisfaction: survey.Outcome | None = None
    survey_state: survey.SurveyState | None = None
    history: tuple[str, ...] = ()


def start(config: FollowupCallConfig, *, language: str) -> tuple[FollowupCallState, list[Command]]:
    state = FollowupCallState(config=config, language=language, stage=Stage.INTRO)
    return state, [SetVariable(IVR_FOLLOWUP, ASKING), Play(config.intro, language)]


def step(state: FollowupCallState, event: Event) -> tuple[FollowupCallState, list[Command]]:
    if state.stage in (Stage.DONE, Stage.HUNG_UP):
        return state, []
    if state.stage is Stage.SATISFACTION:
        return _in_survey(state, event)
    if isinstance(event, CallerHungUp):
        outcome = HUNG_UP if state.outcome == ASKING else state.outcome
        return _moved(state, Stage.HUNG_UP, outcome=outcome), []
    if state.stage in (Stage.INTRO, Stage.INVALID):
        return _moved(state, Stage.RESOLVED), [_question(state)]
    if state.stage is Stage.GOODBYE:
        return _moved(state, Stage.DONE), [Finish(Next.HANGUP)]
    digits = _as_digits(event)
    resolved = RESOLVED_KEYS.get(digits)
    if resolved is not None:
        return _resolved(state, resolved)
    if digits and state.invalid < state.config.retries:
        state = replace(state, invalid=state.invalid + 1)
        return _moved(state, Stage.INVALID), [Play(state.config.survey.invalid, state.language)]
    commands: list[Command] = [
        SetVariable(IVR_FOLLOWUP, REFUSED),
        Play(state.config.survey.goodbye, state.language),
    ]
    return _moved(state, Stage.GOODBYE, outcome=REFUSED), commands


def _resolved(state: FollowupCallState, resolved: bool) -> tuple[FollowupCallState, list[Command]]:
    inner, asked = survey.start(state.config.survey, desk=SURVEY_DESK, language=state.language)
    commands: list[Command] = [
        SetVariable(IVR_FOLLOWUP, ANSWERED),
        SetVariable(IVR_FOLLOWUP_RESOLVED, "yes" if resolved else "no"),
        *asked,
    ]
    moved = _moved(state, Stage.SATISFACTION, outcome=ANSWERED, resolved=resolved)
    return replace(moved, survey_state=inner), commands


def _in_survey(state: FollowupCallState, event: Event) -> tuple[FollowupCallState, list[Command]]:
    assert state.survey_state is not None
    inner, commands = survey.step(state.survey_state, event)
    satisfaction = inner.outcome if inner.outcome in survey.ANSWERS else None
    state = replace(state, survey_state=inner, satisfaction=satisfaction)
    if inner.stage is survey.Stage.HUNG_UP:
        return _moved(state, Stage.HUNG_UP), commands
    if inner.stage is survey.Stage.DONE:
        return _moved(state, Stage.DONE), commands
    return state, commands


def _question(state: FollowupCallState) -> CollectDigits:
    config = state.config
    return CollectDigits(
        prompt=config.question, language=state.language, max_digits=1, timeout_s=config.timeout_s
    )


def _as_digits(event: Event) -> str:
    match event:
        case DigitsEntered(digits=digits):
            return digits
        case _:
            return ""


def _moved(state: FollowupCallState, stage: Stage, **changes: Any) -> FollowupCallState:
    return replace(state, stage=stage, history=(*state.history, state.stage.value), **changes)


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one outbound attempt ended in, for the ticket."""

    result: Result
    resolved: bool | None = None
    satisfaction: survey.Outcome | None = None


# Asterisk's DIALSTATUS / Originate reasons -> the policy's results (no answer is retried)
_DIAL_RESULTS: Mapping[str, Result] = MappingProxyType(
    {
        "BUSY": Result.BUSY,
        "NOANSWER": Result.NO_ANSWER,
        "CANCEL": Result.NO_ANSWER,
        "CONGESTION": Result.FAILED,
        "CHANUNAVAIL": Result.FAILED,
    }
)


def result_of(
    *, answered: bool, dial_status: str, followup: str | None, resolved: str | None,
    satisfaction: str | None,
) -> CallResult:  # fmt: skip
    """An attempt's result from what the call left: whether the callee answered, the dial
    status when it did not (Originate's reason: BUSY, NOANSWER, CONGESTION, ...), and the
    channel variables this machine set.

    >>> result_of(answered=False, dial_status="BUSY", followup=None, resolved=None,
    ...           satisfaction=None).result
    <Result.BUSY: 'busy'>
    >>> result_of(answered=True, dial_status="", followup="answered", resolved="no",
    ...           satisfaction="satisfied")
    CallResult(result=<Result.ANSWERED: 'answered'>, resolved=False, \
satisfaction=<Outcome.SATISFIED: 'satisfied'>)
    """
    if not answered:
        return CallResult(_DIAL_RESULTS.get(dial_status.upper(), Result.FAILED))
    if followup == REFUSED:
        return CallResult(Result.REFUSED)
    if followup != ANSWERED or resolved not in ("yes", "no"):
        return CallResult(Result.NO_ANSWER)  # answered, but gone before the question
    outcome = survey.final_outcome(satisfaction)
    return CallResult(
        Result.ANSWERED,
        resolved=resolved == "yes",
        satisfaction=outcome if outcome in survey.ANSWERS else None,
    )
