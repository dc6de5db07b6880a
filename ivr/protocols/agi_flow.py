"""The call flow over AGI, sans I/O: one translation for FastAGI and process AGI.

:func:`drive` is a generator that yields AGI command words and receives each command's
:class:`AgiResult`; :func:`agi_words` turns a call-flow command into AGI commands and
:func:`event_for` reads the result back as a call-flow event. Throwing
:class:`ivr.errors.AgiHangup` into the driver ends the flow as ``CallerHungUp``.
Pure apart from the clock passed in; imports nothing beyond the core (the process-AGI
script runs it with Debian's Python inside the Asterisk root).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

from ivr.core import callflow, survey
from ivr.errors import AgiHangup
from ivr.protocols.agi import AgiRequest, AgiResult

Words = tuple[str, ...]
Driver = Generator[Words, AgiResult, callflow.CallState]
SurveyDriver = Generator[Words, AgiResult, survey.SurveyState]
M = TypeVar("M")  # a question machine's state


@dataclass(frozen=True, slots=True)
class AgiPaths:
    """Directories as Asterisk sees them (inside its root), passed by the dialplan."""

    prompts: str  # <prompts>/<lang>/<key>
    messages: str  # voice messages are recorded here

    @classmethod
    def from_args(cls, env: AgiRequest) -> AgiPaths:
        """``AGI(url,${IVR_PROMPTS},${IVR_MESSAGES})``; both absolute, or the route fails."""
        args = env.args
        if len(args) < 2 or not all(a.startswith("/") for a in args[:2]):
            raise ValueError(
                "the dialplan must pass the prompts and messages directories as AGI arguments"
            )
        return cls(prompts=args[0].rstrip("/"), messages=args[1].rstrip("/"))


def agi_words(cmd: callflow.Command, paths: AgiPaths) -> list[Words]:
    """The AGI commands for one call-flow command (none for ``Finish``)."""
    match cmd:
        case callflow.Answer():
            return [("ANSWER",)]
        case callflow.Play(prompt=prompt, language=lang, escape_digits=escape):
            return [("STREAM FILE", f"{paths.prompts}/{lang}/{prompt}", escape)]
        case callflow.CollectDigits(prompt=prompt, language=lang, max_digits=n, timeout_s=t):
            return [("GET DATA", f"{paths.prompts}/{lang}/{prompt}", str(int(t * 1000)), str(n))]
        case callflow.SayDigits(digits=digits, language=lang, prompt_prefix=prefix):
            return [("STREAM FILE", f"{paths.prompts}/{lang}/{prefix}{d}", "") for d in digits]
        case callflow.RecordMessage() as rec:
            words: Words = ("RECORD FILE", f"{paths.messages}/{rec.path_hint}", "wav",
                            rec.terminator, str(rec.max_s * 1000))  # fmt: skip
            if rec.beep:
                words += ("BEEP",)
            return [(*words, f"s={rec.silence_s}")]
        case callflow.SetVariable(name=name, value=value):
            return [("SET VARIABLE", name, value)]
        case callflow.Finish():
            return []


def event_for(cmd: callflow.Command, result: AgiResult, now: float) -> callflow.Event:
    """What the last command of a batch reports, from its AGI result."""
    match cmd:
        case callflow.Play():
            # result=N>0: the escape key (its code point) cut the prompt; -1: the file could
            # not be played (a hang-up shows up as HANGUP/EOF on the next command).
            key = chr(result.value) if result.value > 0 else ""
            return callflow.PromptPlayed(now=now, digit=key)
        case callflow.CollectDigits():
            digits = result.result if result.value >= 0 else ""
            return callflow.DigitsEntered(digits, timed_out=result.data == "timeout", now=now)
        case callflow.RecordMessage():
            if result.data == "hangup":  # the partial message is saved all the same
                return callflow.CallerHungUp(now=now)
            endpos = int(result.extra.get("endpos", "0") or 0)
            return callflow.MessageRecorded(duration_s=endpos / 8000, now=now)
    raise ValueError(f"{type(cmd).__name__} reports no event")


def drive(
    config: callflow.FlowConfig,
    facts: callflow.CallFacts,
    paths: AgiPaths,
    clock: Callable[[], float],
) -> Driver:
    """The call flow as a generator of AGI commands; returns the final state. A GET DATA
    that fails is read as no digits (the hang-up shows on the next command)."""
    state, batch = callflow.start(config, facts)
    return (yield from _run(callflow.step, state, batch, paths, clock, failed_read_hangs_up=False))


def drive_survey(
    state: survey.SurveyState, batch: list[callflow.Command], prompts: str,
    clock: Callable[[], float],
) -> SurveyDriver:  # fmt: skip
    """The post-call survey from :func:`ivr.core.survey.start` 's result (see
    :func:`drive_machine`)."""
    return drive_machine(survey.step, state, batch, prompts, clock)


def drive_machine(
    step: Callable[[M, callflow.Event], tuple[M, list[callflow.Command]]],
    state: M, batch: list[callflow.Command], prompts: str, clock: Callable[[], float],
) -> Generator[Words, AgiResult, M]:  # fmt: skip
    """A question machine that speaks the call flow's command language (the survey, the 回访
    call), from its ``start`` 's result, as a generator of AGI commands (the call flow's batch
    contract); returns the final state. A GET DATA that fails (result -1: the caller hung up
    while it listened) is read as the hang-up."""
    paths = AgiPaths(prompts=prompts, messages="")
    return (yield from _run(step, state, batch, paths, clock, failed_read_hangs_up=True))


def _run(
    step: Callable[[M, callflow.Event], tuple[M, list[callflow.Command]]],
    state: M, batch: list[callflow.Command], paths: AgiPaths, clock: Callable[[], float],
    *, failed_read_hangs_up: bool,
) -> Generator[Words, AgiResult, M]:  # fmt: skip
    """The one driver loop: send each batch's AGI words, step the machine with what the last
    command reports, until a batch awaits nothing or the caller hangs up."""
    try:
        while batch:
            reported = callflow.awaited(batch)
            result: AgiResult | None = None
            for cmd in batch:
                for words in agi_words(cmd, paths):
                    result = yield words
            if reported is None:
                break
            assert result is not None, "every reported command sends AGI words"
            last = batch[-1]
            if (
                failed_read_hangs_up
                and isinstance(last, callflow.CollectDigits)
                and result.value < 0
            ):
                # GET DATA answers -1 when the caller hangs up while it listens (not HANGUP):
                # that is no "no answer".
                state, batch = step(state, callflow.CallerHungUp(now=clock()))
                continue
            state, batch = step(state, event_for(last, result, clock()))
    except AgiHangup:
        state, _ = step(state, callflow.CallerHungUp(now=clock()))
    return state
