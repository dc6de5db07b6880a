"""The post-call survey: a pure state machine. No I/O, no clock reads.

When the agent hangs up first, the caller stays on the line (Queue()'s option ``c``) and the
dialplan runs the FastAGI route ``survey``, which drives this machine: 满意请按1，基本满意请按2，
不满意请按3 in the call's language, one key, then thanks and the end of the call.

It speaks the call flow's command language (:mod:`ivr.core.callflow`: ``CollectDigits``,
``Play``, ``SetVariable``, ``Finish``, and the same batch contract), so the same AGI
translation runs it. The outcome goes to the channel variable ``IVR_SURVEY`` (and the key
to ``IVR_SURVEY_KEY``) *before* anything else is said, so a caller who hangs up during the
thanks keeps the answer; the dialplan writes both into the call's facts at hang-up and the
recorder stores them with the call and its ticket (one row per Linkedid).

Outcomes (:class:`Outcome`), one per call:

=========================  =====================================================================
``satisfied``               key 1 (满意)
``basically satisfied``     key 2 (基本满意)
``dissatisfied``            key 3 (不满意)
``no answer``               no key within ``timeout_s`` after the question: never asked again
``wrong key``               a key other than 1-3, again after one more try (``retries``)
``hung up during survey``   the caller left before answering (``IVR_SURVEY`` still ``asking``)
``caller hung up``          the caller hung up first: no survey (set by the recorder, not here)
``off``                     the desk's survey is off (routing/desks.yaml ``survey: false``)
``not asked``               the dialplan reached the survey but the FastAGI server did not
                            run it (down, or failed): the call just ended (recorder)
=========================  =====================================================================

A wrong key is answered once with 输入有误 and the question again (``retries``, default 1);
the next wrong key ends the survey as ``wrong key``. A channel that already holds a final
outcome is never asked again.

>>> config = SurveyConfig(desks=frozenset({"repair"}))
>>> state, cmds = start(config, desk="repair", language="zh")
>>> cmds
[SetVariable(name='IVR_SURVEY', value='asking'), CollectDigits(prompt='survey-question', \
language='zh', max_digits=1, timeout_s=5, terminator='#')]
>>> state, cmds = step(state, DigitsEntered("2", timed_out=False, now=0.0))
>>> state.outcome, cmds[-1]
(<Outcome.BASICALLY_SATISFIED: 'basically satisfied'>, Play(prompt='survey-thanks', \
language='zh', escape_digits=''))
>>> from ivr.core.callflow import PromptPlayed
>>> step(state, PromptPlayed(now=3.0))[1]
[Finish(next=<Next.HANGUP: 'hangup'>)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

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
    as_digits,
)
from ivr.core.routing_models import Routing

IVR_SURVEY = "IVR_SURVEY"  # the outcome (or asked/asking while under way)
IVR_SURVEY_KEY = "IVR_SURVEY_KEY"  # the key pressed, when one was

ASKED = "asked"  # set by the dialplan before the AGI: still there = the server never ran it
ASKING = "asking"  # set by the survey before the question: still there = hung up meanwhile


class Outcome(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically satisfied"
    DISSATISFIED = "dissatisfied"
    NO_ANSWER = "no answer"
    WRONG_KEY = "wrong key"
    HUNG_UP = "hung up during survey"
    CALLER_HUNG_UP = "caller hung up"
    OFF = "off"
    NOT_ASKED = "not asked"


ANSWERS = (Outcome.SATISFIED, Outcome.BASICALLY_SATISFIED, Outcome.DISSATISFIED)
DEFAULT_KEYS: Mapping[str, Outcome] = MappingProxyType(
    {"1": Outcome.SATISFIED, "2": Outcome.BASICALLY_SATISFIED, "3": Outcome.DISSATISFIED}
)


class Stage(StrEnum):
    ASKING = "asking"  # CollectDigits: the question
    INVALID = "invalid"  # Play: 输入有误, then the question again
    THANKS = "thanks"  # Play: thanks (an answer) or goodbye (none)
    DONE = "done"  # Finish sent
    HUNG_UP = "hung_up"  # the caller left


@dataclass(frozen=True, slots=True)
class SurveyConfig:
    desks: frozenset[str]  # the desks whose callers are asked
    timeout_s: int = 5  # no key this long after the question: no answer
    retries: int = 1  # wrong keys answered with 输入有误 and the question again
    keys: Mapping[str, Outcome] = field(default_factory=lambda: DEFAULT_KEYS)
    question: str = "survey-question"  # prompt keys (prompts/catalog.yaml)
    invalid: str = "survey-invalid"
    thanks: str = "survey-thanks"
    goodbye: str = "goodbye"


def survey_config(routing: Routing) -> SurveyConfig:
    """The survey's configuration from the validated routing data (hotline.survey, and each
    desk's ``survey`` flag)."""
    survey = routing.hotline.survey
    return SurveyConfig(
        desks=frozenset(d.id for d in routing.desks if d.survey_on),
        timeout_s=survey.timeout_s,
        retries=survey.retries,
        question=survey.question,
        invalid=survey.invalid,
        thanks=survey.thanks,
        goodbye=routing.hotline.prompts.goodbye,
    )


def dialplan_lists(routing: Routing) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the dialplan needs to skip the AGI for a desk whose survey is off: the ticket
    categories, and the queues, of the desks with the survey on (a call's desk is found by its
    IVR_CATEGORY, else by its queue, as :func:`ivr.core.recording_meta.desk_for` does).

    >>> from ivr.core.routing_models import Routing
    >>> routing = Routing.model_validate({
    ...     "hotline": {"name": "热线", "dids": ["95158"], "default_queue": "repair"},
    ...     "queues": ["repair", "emergency"],
    ...     "desks": [
    ...         {"id": "repair", "key": "1", "queue": "repair", "category": "repair",
    ...          "label": {"zh": "报修", "en": "Repairs"}, "always_open": True},
    ...         {"id": "emergency", "queue": "emergency", "category": "emergency",
    ...          "label": {"zh": "抢险", "en": "Emergency"}, "emergency": True,
    ...          "always_open": True},
    ...     ],
    ... })
    >>> dialplan_lists(routing)
    (('repair',), ('repair',))
    """
    by_category = {d.category: d for d in routing.desks}
    by_queue = {d.queue: d for d in routing.desks}
    categories = tuple(sorted(c for c, d in by_category.items() if d.survey_on))
    queues = tuple(sorted(q for q, d in by_queue.items() if d.survey_on))
    return categories, queues


@dataclass(frozen=True, slots=True)
class SurveyState:
    config: SurveyConfig
    desk: str
    language: str
    stage: Stage
    invalid: int = 0
    outcome: Outcome | None = None
    key: str = ""
    history: tuple[str, ...] = field(default=())


def final_outcome(value: str | None) -> Outcome | None:
    """The outcome a channel variable holds, if it is a final one (not asked/asking)."""
    try:
        return Outcome(value) if value else None
    except ValueError:
        return None


def start(
    config: SurveyConfig, *, desk: str, language: str, previous: str | None = None
) -> tuple[SurveyState, list[Command]]:
    """Begin: ask, or end at once when the desk's survey is off or the call was already
    surveyed (``previous``: the channel's ``IVR_SURVEY``)."""
    state = SurveyState(config=config, desk=desk, language=language, stage=Stage.ASKING)
    done_before = final_outcome(previous)
    if done_before is not None:
        return replace(state, stage=Stage.DONE, outcome=done_before), [Finish(Next.HANGUP)]
    if desk not in config.desks:
        state = replace(state, stage=Stage.DONE, outcome=Outcome.OFF)
        return state, [SetVariable(IVR_SURVEY, Outcome.OFF.value), Finish(Next.HANGUP)]
    return state, [SetVariable(IVR_SURVEY, ASKING), _question(state)]


def step(state: SurveyState, event: Event) -> tuple[SurveyState, list[Command]]:
    if state.stage in (Stage.DONE, Stage.HUNG_UP):
        return state, []
    if isinstance(event, CallerHungUp):
        outcome = state.outcome or Outcome.HUNG_UP
        return _moved(state, Stage.HUNG_UP, outcome=outcome), []
    if state.stage is Stage.ASKING:
        return _answered(state, as_digits(event))
    if state.stage is Stage.INVALID:
        return _moved(state, Stage.ASKING), [_question(state)]
    return _moved(state, Stage.DONE), [Finish(Next.HANGUP)]  # THANKS played


def _answered(state: SurveyState, event: DigitsEntered) -> tuple[SurveyState, list[Command]]:
    config = state.config
    key = event.digits
    if not key:
        return _end(state, Outcome.NO_ANSWER, "", config.goodbye)
    outcome = config.keys.get(key)
    if outcome is not None:
        return _end(state, outcome, key, config.thanks)
    if state.invalid < config.retries:
        state = replace(state, invalid=state.invalid + 1)
        return _moved(state, Stage.INVALID), [Play(config.invalid, state.language)]
    return _end(state, Outcome.WRONG_KEY, key, config.goodbye)


def _end(
    state: SurveyState, outcome: Outcome, key: str, prompt: str
) -> tuple[SurveyState, list[Command]]:
    commands: list[Command] = [SetVariable(IVR_SURVEY, outcome.value)]
    if key:
        commands.append(SetVariable(IVR_SURVEY_KEY, key))
    commands.append(Play(prompt, state.language))
    return _moved(state, Stage.THANKS, outcome=outcome, key=key), commands


def _question(state: SurveyState) -> CollectDigits:
    config = state.config
    return CollectDigits(
        prompt=config.question, language=state.language, max_digits=1, timeout_s=config.timeout_s
    )


def _moved(state: SurveyState, stage: Stage, **changes: Any) -> SurveyState:
    return replace(state, stage=stage, history=(*state.history, state.stage.value), **changes)


def stored_outcome(*, connected: bool, survey: str | None) -> Outcome | None:
    """What the recorder stores for a call from its facts at hang-up: None when no agent was
    connected (no survey is due); else the final outcome the channel holds, or what its
    absence means (see the module docstring).

    >>> stored_outcome(connected=True, survey=None)
    <Outcome.CALLER_HUNG_UP: 'caller hung up'>
    >>> stored_outcome(connected=True, survey="asking")
    <Outcome.HUNG_UP: 'hung up during survey'>
    """
    if not connected:
        return None
    if not survey:
        return Outcome.CALLER_HUNG_UP
    if survey == ASKED:
        return Outcome.NOT_ASKED
    if survey == ASKING:
        return Outcome.HUNG_UP
    return final_outcome(survey) or Outcome.NOT_ASKED
