"""The call flow: a pure state machine. No I/O, no clock reads (time comes in events).

``start(config, facts)`` and ``step(state, event)`` return the next state and a list of
commands (plain data). The FastAGI adapter carries out the commands in order and feeds back
one event for the batch: ``PromptPlayed`` after a ``Play``, ``CallerHungUp`` when the
channel goes away. A batch ending in ``Finish`` ends the AGI session; the dialplan then acts
on the channel variables set (``IVR_NEXT``, ``IVR_QUEUE``, ``IVR_LANGUAGE`` ...).

Today the flow greets the caller and hands the call to the default desk's queue.

>>> cfg = FlowConfig(default_queue="consultation")
>>> state, cmds = start(cfg, CallFacts(did="95158", caller="13800138000", now=0.0))
>>> [type(c).__name__ for c in cmds]
['Answer', 'Play']
>>> state, cmds = step(state, PromptPlayed(now=4.0))
>>> cmds[-1]
Finish(next=<Next.QUEUE: 'queue'>)
>>> state.stage
<Stage.DONE: 'done'>
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from ivr.core.routing_models import Routing


class Stage(StrEnum):
    GREETING = "greeting"  # the greeting is playing
    DONE = "done"  # the flow has decided; nothing more to do
    HUNG_UP = "hung_up"  # the caller left before the flow finished


class Next(StrEnum):
    QUEUE = "queue"  # the dialplan queues the call in IVR_QUEUE
    HANGUP = "hangup"  # the dialplan hangs up (the caller was served or left)


# --- facts and configuration -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FlowConfig:
    default_queue: str
    default_language: str = "zh"
    greeting_prompt: str = "greeting"


@dataclass(frozen=True, slots=True)
class CallFacts:
    did: str
    caller: str
    now: float


def flow_config(routing: Routing) -> FlowConfig:
    """The call flow's configuration from the validated routing data."""
    return FlowConfig(
        default_queue=routing.hotline.default_queue,
        default_language=routing.hotline.default_language,
    )


# --- commands (what the adapter must do) --------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str  # a key of prompts/catalog.yaml
    language: str


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Finish:
    next: Next


Command = Answer | Play | SetVariable | Finish


# --- events (what happened) -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PromptPlayed:
    now: float


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    now: float


Event = PromptPlayed | CallerHungUp


# --- state --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallState:
    config: FlowConfig
    facts: CallFacts
    stage: Stage
    language: str
    history: tuple[str, ...] = field(default=())  # stages passed, for logs and tests


def start(config: FlowConfig, facts: CallFacts) -> tuple[CallState, list[Command]]:
    state = CallState(
        config=config, facts=facts, stage=Stage.GREETING, language=config.default_language
    )
    return state, [Answer(), Play(config.greeting_prompt, state.language)]


def step(state: CallState, event: Event) -> tuple[CallState, list[Command]]:
    if state.stage in (Stage.DONE, Stage.HUNG_UP):
        return state, []
    if isinstance(event, CallerHungUp):
        return _moved(state, Stage.HUNG_UP), []
    if state.stage is Stage.GREETING:
        return _moved(state, Stage.DONE), _to_queue(state, state.config.default_queue)
    raise AssertionError(f"unhandled stage {state.stage}")  # pragma: no cover


def _moved(state: CallState, stage: Stage) -> CallState:
    return replace(state, stage=stage, history=(*state.history, state.stage.value))


def _to_queue(state: CallState, queue: str) -> list[Command]:
    return [
        SetVariable("IVR_LANGUAGE", state.language),
        SetVariable("IVR_QUEUE", queue),
        SetVariable("IVR_NEXT", Next.QUEUE.value),
        Finish(Next.QUEUE),
    ]
