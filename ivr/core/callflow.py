"""The call flow: a pure state machine. No I/O, no clock reads (time comes in facts and events).

``start(config, facts)`` and ``step(state, event)`` return the next state and a list of
commands (plain data). The call: greeting, the emergency key announcement, any planned-outage
notice for the caller's area, then the menu (one key per desk, 0 for a person, * to repeat,
8 for English), account entry for billing, after hours an announcement and a voice-message
offer; it ends with ``Finish`` and channel variables the dialplan acts on.

The batch contract
------------------
Every batch (the list ``start``/``step`` returns) is either empty (the flow had already
ended) or ends in exactly one command the adapter must report on, and holds no other such
command:

=================  ==========================================================  ==================
last command       the adapter runs it, then feeds back                        AGI (suggested)
=================  ==========================================================  ==================
``Play``           ``PromptPlayed(now, digit)``: ``digit`` = the escape digit   STREAM FILE
                   that cut the prompt short, or ""
``CollectDigits``  ``DigitsEntered(digits, timed_out, now)``                  GET DATA
``RecordMessage``  ``MessageRecorded(duration_s, now)``                        RECORD FILE
``Finish``         nothing: the AGI session ends, the dialplan reads IVR_NEXT  —
=================  ==========================================================  ==================

The commands before it (``Answer``, ``SetVariable``, ``SayDigits``) need no report. If the
channel goes away at any point, the adapter feeds ``CallerHungUp(now)`` instead; the flow then
ends with no commands (nothing to undo: the state is a value). :func:`awaited` tells the
adapter which event a batch asks for.

An event of another kind than the one asked for is read as the nearest one: a
``PromptPlayed`` where digits were awaited counts as "no key pressed" (so a runner that
cannot collect digits still ends at a person), ``DigitsEntered`` where a prompt played counts
as the prompt played (interrupted by that key), anything where a recording was awaited
counts as an empty recording.

Every loop is bounded (wrong keys, silences, repeats, account attempts), so every call ends
in ``Finish`` after a bounded number of steps, and never without a person, a message or the
caller's own choice.

Time: ``CallFacts.now`` and every event's ``now`` (epoch seconds) decide opening hours
(:mod:`ivr.core.routing`, in the configured time zone) and which outage notices apply.
Hours are not spoken from data: each desk with hours names a pre-rendered ``closed_prompt``
(the hours and the emergency number, in zh and en), because the catalog substitutes only
``{hotline_name}``; SayDigits is kept for account numbers.

>>> from ivr.core.routing_models import Routing
>>> routing = Routing.model_validate({
...     "hotline": {"name": "热线", "dids": ["95158"], "default_queue": "consultation"},
...     "queues": ["consultation", "emergency"],
...     "desks": [
...         {"id": "consultation", "key": "4", "queue": "consultation",
...          "category": "consultation", "label": {"zh": "咨询", "en": "Information"},
...          "always_open": True},
...         {"id": "emergency", "queue": "emergency", "category": "emergency",
...          "label": {"zh": "抢险", "en": "Emergency"}, "emergency": True, "always_open": True},
...     ],
... })
>>> state, cmds = start(flow_config(routing), CallFacts("95158", "13800138000", now=0.0))
>>> cmds
[Answer(), Play(prompt='greeting', language='zh', escape_digits='9')]
>>> state, cmds = step(state, PromptPlayed(now=4.0))
>>> state, cmds = step(state, PromptPlayed(now=7.0))
>>> cmds
[CollectDigits(prompt='menu', language='zh', max_digits=1, timeout_s=3, terminator='#')]
>>> state, cmds = step(state, DigitsEntered("9", timed_out=False, now=8.0))
>>> cmds[0], cmds[-1], state.stage
(SetVariable(name='IVR_NEXT', value='emergency'), Finish(next=<Next.EMERGENCY: 'emergency'>), \
<Stage.DONE: 'done'>)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ivr.core import routing as rules
from ivr.core.routing_models import DeskIn, HotlineIn, HotlinePromptsIn, Routing


class Stage(StrEnum):
    GREETING = "greeting"  # Play: 您好，XX热线，请问有什么可以帮您
    EMERGENCY_NOTICE = "emergency_notice"  # Play: 如遇燃气泄漏等紧急情况请按9
    OUTAGE_NOTICE = "outage_notice"  # Play: a planned outage in the caller's area
    MENU = "menu"  # CollectDigits: one key
    SILENCE = "silence"  # CollectDigits: 您好！您的电话已接通，请讲话 (no key came)
    MENU_INVALID = "menu_invalid"  # Play: 输入有误, then the menu again
    ACCOUNT_ENTRY = "account_entry"  # CollectDigits: account number then #
    ACCOUNT_INVALID = "account_invalid"  # Play: the account number is not valid
    ACCOUNT_READBACK = "account_readback"  # Play: 您输入的户号是 (digits follow)
    ACCOUNT_CONFIRM = "account_confirm"  # SayDigits + CollectDigits: 1 confirm, 2 re-enter
    ACCOUNT_NOTICE = "account_notice"  # Play: an outage in the account's area
    CLOSED = "closed"  # Play: after hours: the desk's hours and the emergency number
    MESSAGE_OFFER = "message_offer"  # CollectDigits: 1 leave a message, 2 end the call
    OFFER_INVALID = "offer_invalid"  # Play: 输入有误, then the offer again
    RECORDING = "recording"  # RecordMessage: beep, then the caller speaks
    MESSAGE_THANKS = "message_thanks"  # Play: the message is saved
    GOODBYE = "goodbye"  # Play: thanks for calling
    DONE = "done"  # the flow has decided (Finish sent); nothing more to do
    HUNG_UP = "hung_up"  # the caller left before the flow finished


class Next(StrEnum):
    QUEUE = "queue"  # the dialplan queues the call in IVR_QUEUE with priority IVR_PRIORITY
    HANGUP = "hangup"  # the dialplan hangs up (message left, or the caller declined)
    EMERGENCY = "emergency"  # the dialplan's emergency path (no more prompts from us)


class Reason(StrEnum):
    """IVR_REASON: why the flow ended where it did (tickets, reports)."""

    MENU = "menu"  # the caller chose the desk
    PERSON = "person"  # the caller pressed the person key
    INVALID = "invalid"  # too many wrong keys
    SILENCE = "silence"  # no key at all: sent to a person (a leak may be behind it)
    REPEATS = "repeats"  # the menu was repeated too often
    EMERGENCY_KEY = "emergency_key"  # the caller pressed the emergency key
    EMERGENCY_DID = "emergency_did"  # the call came in on an emergency DID
    MESSAGE = "message"  # after hours: a voice message was left
    DECLINED = "declined"  # after hours: the caller declined to leave a message


# Channel variables the flow sets (the dialplan and the call report read them).
IVR_NEXT = "IVR_NEXT"
IVR_QUEUE = "IVR_QUEUE"
IVR_PRIORITY = "IVR_PRIORITY"
IVR_CATEGORY = "IVR_CATEGORY"
IVR_ACCOUNT = "IVR_ACCOUNT"
IVR_AREA = "IVR_AREA"
IVR_LANGUAGE = "IVR_LANGUAGE"
IVR_REASON = "IVR_REASON"
IVR_MESSAGE = "IVR_MESSAGE"
IVR_MESSAGE_S = "IVR_MESSAGE_S"
# What the caller told the menu, for the agent's screen pop (ivr.core.screen_pop):
IVR_DESK = "IVR_DESK"  # the desk chosen (or whose hours were announced)
IVR_KEYS = "IVR_KEYS"  # every key group pressed, in order, space-separated ("2 14002233 1")
IVR_ACCOUNT_KEYED = "IVR_ACCOUNT_KEYED"  # an account number keyed in but never confirmed
IVR_HEARD = "IVR_HEARD"  # the outage notices played, space-separated prompt keys


# --- facts and configuration -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FlowConfig:
    routing: Routing


@dataclass(frozen=True, slots=True)
class CallFacts:
    did: str
    caller: str
    now: float  # epoch seconds when the call reached the flow
    call_id: str = ""  # Asterisk's uniqueid: names the voice-message file


def flow_config(routing: Routing) -> FlowConfig:
    """The call flow's configuration from the validated routing data."""
    return FlowConfig(routing=routing)


# --- commands (what the adapter must do) --------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt; a key in ``escape_digits`` cuts it short. Reported: ``PromptPlayed``."""

    prompt: str  # a key of prompts/catalog.yaml
    language: str
    escape_digits: str = ""


@dataclass(frozen=True, slots=True)
class CollectDigits:
    """Play a prompt and read keys (GET DATA). Reported: ``DigitsEntered``.

    Reading stops after ``max_digits`` keys, on the terminator (GET DATA's is always ``#``;
    it is not part of the digits), or ``timeout_s`` after the prompt / the last key.
    """

    prompt: str
    language: str
    max_digits: int
    timeout_s: float
    terminator: str = "#"


@dataclass(frozen=True, slots=True)
class SayDigits:
    """Read digits back, one prompt per digit: ``<prompt_prefix><digit>``. Not reported."""

    digits: str
    language: str
    prompt_prefix: str = "digit-"


@dataclass(frozen=True, slots=True)
class RecordMessage:
    """Beep, then record the caller. Reported: ``MessageRecorded``.

    Stops on ``#``, after ``max_s``, or after ``silence_s`` of silence. ``path_hint`` is a
    file name without extension (``<desk>-<call id>``, only ``[A-Za-z0-9._-]``); the adapter
    puts it in its messages directory.
    """

    path_hint: str
    max_s: int
    silence_s: int
    beep: bool = True
    terminator: str = "#"


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Finish:
    next: Next


Command = Answer | Play | CollectDigits | SayDigits | RecordMessage | SetVariable | Finish


# --- events (what happened) -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PromptPlayed:
    now: float
    digit: str = ""  # the escape digit that cut the prompt short, if any


@dataclass(frozen=True, slots=True)
class DigitsEntered:
    digits: str  # as read, without the terminator; "" when none
    timed_out: bool  # no terminator and not max_digits: the caller stopped pressing
    now: float


@dataclass(frozen=True, slots=True)
class MessageRecorded:
    duration_s: float
    now: float


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    now: float


Event = PromptPlayed | DigitsEntered | MessageRecorded | CallerHungUp

_REPORTED: dict[type, type] = {
    Play: PromptPlayed,
    CollectDigits: DigitsEntered,
    RecordMessage: MessageRecorded,
}


def awaited(batch: Sequence[Command]) -> type[Event] | None:
    """The event the adapter feeds back after running ``batch``; None after ``Finish``.

    Raises ValueError when the batch breaks the contract (see the module docstring).
    """
    if not batch:
        return None
    last = batch[-1]
    final = [c for c in batch if type(c) in _REPORTED or isinstance(c, Finish)]
    if final != [last]:
        raise ValueError(
            f"a batch must end in one Play/CollectDigits/RecordMessage/Finish: {batch}"
        )
    return _REPORTED.get(type(last))


# --- state --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallState:
    config: FlowConfig
    facts: CallFacts
    stage: Stage
    language: str
    history: tuple[str, ...] = field(default=())  # stages passed, for logs and tests
    priority: int = 0  # IVR_PRIORITY (priority callers)
    area: str = ""  # by the caller's number, then by the account number
    desk: str = ""  # the desk chosen (or whose hours were announced)
    invalid: int = 0  # wrong inputs at the current choice (menu, account, offer)
    silences: int = 0  # no input in a row
    menu_plays: int = 0  # repeats and language switches
    entered: str = ""  # an account number awaiting confirmation
    keyed: str = ""  # the last well-formed account number keyed in, confirmed or not
    account: str = ""  # the confirmed account number
    keys: tuple[str, ...] = ()  # every key group pressed, in order (menus, account, offers)
    notices: tuple[str, ...] = ()  # outage prompts still to play
    heard: tuple[str, ...] = ()  # outage prompts played
    message: str = ""  # the voice message's path hint, from the moment recording starts
    message_s: float = 0.0  # its length, once recorded
    outcome: Next | None = None  # what Finish said


_TERMINAL = (Stage.DONE, Stage.HUNG_UP)


def start(config: FlowConfig, facts: CallFacts) -> tuple[CallState, list[Command]]:
    routing = config.routing
    hotline = routing.hotline
    area = rules.area_for(routing, caller=facts.caller) or ""
    state = CallState(
        config=config,
        facts=facts,
        stage=Stage.GREETING,
        language=hotline.default_language,
        priority=rules.priority_for(routing, facts.caller),
        area=area,
        notices=tuple(o.prompt for o in rules.outages_for(routing, area or None, facts.now)),
    )
    if facts.did in hotline.emergency_dids:  # the dialplan should never send these here
        state, finish = _emergency(state, Reason.EMERGENCY_DID)
        return replace(state, history=()), [Answer(), *finish]
    return state, [Answer(), _play(state, hotline.prompts.greeting)]


def step(state: CallState, event: Event) -> tuple[CallState, list[Command]]:
    if state.stage in _TERMINAL:
        return state, []
    if isinstance(event, CallerHungUp):
        return _moved(state, Stage.HUNG_UP), []
    pressed = (
        event.digits
        if isinstance(event, DigitsEntered)
        else event.digit
        if isinstance(event, PromptPlayed)
        else ""
    )
    if pressed:
        state = replace(state, keys=(*state.keys, pressed))
    if state.stage in _AFTER_PLAY:
        played = _as_played(event)
        if played.digit and played.digit == _hotline(state).emergency_key:
            return _emergency(state, Reason.EMERGENCY_KEY)
        return _AFTER_PLAY[state.stage](state, played.now)
    if state.stage in _AFTER_DIGITS:
        return _AFTER_DIGITS[state.stage](state, as_digits(event))
    if state.stage is Stage.RECORDING:
        return _recorded(state, _as_recorded(event))
    raise AssertionError(f"unhandled stage {state.stage}")  # pragma: no cover


# --- reading events ---------------------------------------------------------------------------
def _as_played(event: PromptPlayed | DigitsEntered | MessageRecorded) -> PromptPlayed:
    match event:
        case PromptPlayed():
            return event
        case DigitsEntered(digits=digits, now=now):
            return PromptPlayed(now=now, digit=digits if len(digits) == 1 else "")
        case MessageRecorded(now=now):
            return PromptPlayed(now=now)


def as_digits(event: PromptPlayed | DigitsEntered | MessageRecorded) -> DigitsEntered:
    """Where keys were awaited, a played prompt counts as its escape key or none (the call
    flow's and the question machines' reading)."""
    match event:
        case DigitsEntered():
            return event
        case PromptPlayed(digit=digit, now=now):
            return DigitsEntered(digits=digit, timed_out=not digit, now=now)
        case MessageRecorded(now=now):
            return DigitsEntered(digits="", timed_out=True, now=now)


def _as_recorded(event: PromptPlayed | DigitsEntered | MessageRecorded) -> MessageRecorded:
    if isinstance(event, MessageRecorded):
        return event
    return MessageRecorded(duration_s=0.0, now=event.now)


# --- the greeting and the notices ---------------------------------------------------------
def _after_greeting(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _moved(state, Stage.EMERGENCY_NOTICE), [_play(state, _prompts(state).emergency)]


def _after_emergency_notice(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    if state.notices:
        return _moved(state, Stage.OUTAGE_NOTICE), [_play(state, state.notices[0])]
    return _menu(state)


def _after_outage_notice(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    state = _notice_heard(state)
    if state.notices:
        return _moved(state, Stage.OUTAGE_NOTICE), [_play(state, state.notices[0])]
    return _menu(state)


def _notice_heard(state: CallState) -> CallState:
    return replace(state, notices=state.notices[1:], heard=(*state.heard, state.notices[0]))


# --- the menu -------------------------------------------------------------------------------
def _menu(state: CallState) -> tuple[CallState, list[Command]]:
    return _moved(state, Stage.MENU), [_collect_key(state, _prompts(state).menu)]


def _after_menu_invalid(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _menu(state)


def _menu_choice(state: CallState, event: DigitsEntered) -> tuple[CallState, list[Command]]:
    hotline = _hotline(state)
    key, now = event.digits, event.now
    if not key and event.timed_out:
        silences = state.silences + 1
        if silences > hotline.silence_repeats:
            return _person(state, Reason.SILENCE, now)
        state = replace(state, silences=silences)
        return _moved(state, Stage.SILENCE), [_collect_key(state, _prompts(state).silence)]
    state = replace(state, silences=0)
    if key == hotline.emergency_key:
        return _emergency(state, Reason.EMERGENCY_KEY)
    if key == hotline.person_key:
        return _person(state, Reason.PERSON, now)
    if key in (hotline.repeat_key, hotline.english_key):
        return _replay(state, now, switch_language=key == hotline.english_key)
    desk = state.config.routing.desk_for_key(key)
    if desk is not None:
        return _desk_chosen(state, desk, now)
    invalid = state.invalid + 1
    if invalid >= hotline.max_invalid:
        return _person(state, Reason.INVALID, now)
    state = replace(state, invalid=invalid)
    return _moved(state, Stage.MENU_INVALID), [_play(state, _prompts(state).invalid)]


def _replay(state: CallState, now: float, switch_language: bool) -> tuple[CallState, list[Command]]:
    plays = state.menu_plays + 1
    if plays > _hotline(state).max_menu_plays:
        return _person(state, Reason.REPEATS, now)
    state = replace(state, menu_plays=plays)
    if switch_language:  # the notices again, in the language the caller understands
        language = "en" if state.language == "zh" else "zh"
        state = replace(state, language=language, notices=state.heard, heard=())
    return _moved(state, Stage.EMERGENCY_NOTICE), [_play(state, _prompts(state).emergency)]


def _desk_chosen(state: CallState, desk: DeskIn, now: float) -> tuple[CallState, list[Command]]:
    state = replace(state, desk=desk.id, invalid=0, silences=0)
    if not rules.is_open(state.config.routing, desk, now):
        return _closed(state, desk)
    if desk.account_entry:
        return _account_prompt(state)
    return _to_queue(state, desk, Reason.MENU)


def _person(state: CallState, reason: Reason, now: float) -> tuple[CallState, list[Command]]:
    """The person key's desk; after hours its announcement, or for silence the night queue."""
    routing = state.config.routing
    desk = routing.person_desk()
    state = replace(state, desk=desk.id)
    if rules.is_open(routing, desk, now):
        return _to_queue(state, desk, reason)
    if reason is Reason.SILENCE:
        return _to_night_queue(state, reason)
    return _closed(replace(state, invalid=0, silences=0), desk)


# --- account entry --------------------------------------------------------------------------
def _account_prompt(state: CallState) -> tuple[CallState, list[Command]]:
    rules_ = _hotline(state).account
    collect = CollectDigits(
        prompt=_prompts(state).account_entry,
        language=state.language,
        max_digits=rules_.max_digits + 1,  # one more, so a too-long entry is seen as such
        timeout_s=rules_.timeout_s,
    )
    return _moved(state, Stage.ACCOUNT_ENTRY), [collect]


def _account_entered(state: CallState, event: DigitsEntered) -> tuple[CallState, list[Command]]:
    hotline = _hotline(state)
    digits = event.digits
    if digits == hotline.emergency_key:  # a lone 9 is no account number: the leak key
        return _emergency(state, Reason.EMERGENCY_KEY)
    if not digits and event.timed_out:
        return _account_failed(state, say_invalid=False)
    rules_ = hotline.account
    if digits.isascii() and digits.isdigit():
        if rules_.min_digits <= len(digits) <= rules_.max_digits:
            state = replace(state, entered=digits, keyed=digits)
            return _moved(state, Stage.ACCOUNT_READBACK), [
                _play(state, _prompts(state).account_readback)
            ]
    return _account_failed(state, say_invalid=True)


def _account_failed(state: CallState, say_invalid: bool) -> tuple[CallState, list[Command]]:
    """One more failed attempt; after max_invalid the desk takes the call without it."""
    invalid = state.invalid + 1
    state = replace(state, invalid=invalid, entered="")
    if invalid >= _hotline(state).max_invalid:
        return _to_queue(state, _chosen_desk(state), Reason.MENU)
    if say_invalid:
        return _moved(state, Stage.ACCOUNT_INVALID), [_play(state, _prompts(state).account_invalid)]
    return _account_prompt(state)


def _after_account_invalid(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _account_prompt(state)


def _after_readback(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    say = SayDigits(state.entered, state.language, _prompts(state).digit_prefix)
    confirm = _collect_key(state, _prompts(state).account_confirm)
    return _moved(state, Stage.ACCOUNT_CONFIRM), [say, confirm]


def _account_confirmed(state: CallState, event: DigitsEntered) -> tuple[CallState, list[Command]]:
    hotline = _hotline(state)
    key = event.digits
    if key == hotline.emergency_key:
        return _emergency(state, Reason.EMERGENCY_KEY)
    if key == hotline.account.confirm_key:
        routing = state.config.routing
        account = state.entered
        area = rules.area_for(routing, caller=state.facts.caller, account=account) or ""
        fresh = tuple(
            o.prompt
            for o in rules.outages_for(routing, area or None, event.now)
            if o.prompt not in state.heard
        )
        state = replace(state, account=account, entered="", area=area, notices=fresh)
        if fresh:
            return _moved(state, Stage.ACCOUNT_NOTICE), [_play(state, fresh[0])]
        return _to_queue(state, _chosen_desk(state), Reason.MENU)
    if key == hotline.account.reenter_key:
        return _account_failed(state, say_invalid=False)
    invalid = state.invalid + 1  # no key or a wrong one: read it back and ask again
    if invalid >= hotline.max_invalid:
        return _to_queue(replace(state, entered=""), _chosen_desk(state), Reason.MENU)
    state = replace(state, invalid=invalid)
    return _moved(state, Stage.ACCOUNT_READBACK), [_play(state, _prompts(state).account_readback)]


def _after_account_notice(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    state = _notice_heard(state)
    if state.notices:
        return _moved(state, Stage.ACCOUNT_NOTICE), [_play(state, state.notices[0])]
    return _to_queue(state, _chosen_desk(state), Reason.MENU)


# --- after hours: announcement and voice message ---------------------------------------
def _closed(state: CallState, desk: DeskIn) -> tuple[CallState, list[Command]]:
    assert desk.closed_prompt is not None  # routing_models: every desk with hours has one
    return _moved(state, Stage.CLOSED), [_play(state, desk.closed_prompt)]


def _after_closed(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _offer(state)


def _offer(state: CallState) -> tuple[CallState, list[Command]]:
    return _moved(state, Stage.MESSAGE_OFFER), [_collect_key(state, _prompts(state).message_offer)]


def _after_offer_invalid(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _offer(state)


def _offer_choice(state: CallState, event: DigitsEntered) -> tuple[CallState, list[Command]]:
    hotline = _hotline(state)
    key = event.digits
    if not key and event.timed_out:
        silences = state.silences + 1
        if silences > hotline.silence_repeats:
            return _to_night_queue(state, Reason.SILENCE)
        return _offer(replace(state, silences=silences))
    state = replace(state, silences=0)
    if key == hotline.emergency_key:
        return _emergency(state, Reason.EMERGENCY_KEY)
    if key == hotline.voice_message.offer_key:
        path = f"{state.desk}-{_file_safe(state.facts.call_id) or f'{event.now:.0f}'}"
        state = replace(state, message=path)
        record = RecordMessage(
            path_hint=path,
            max_s=hotline.voice_message.max_s,
            silence_s=hotline.voice_message.silence_s,
        )
        return _moved(state, Stage.RECORDING), [record]
    if key == hotline.voice_message.decline_key:
        return _moved(state, Stage.GOODBYE), [_play(state, _prompts(state).goodbye)]
    invalid = state.invalid + 1
    if invalid >= hotline.max_invalid:
        return _to_night_queue(state, Reason.INVALID)
    state = replace(state, invalid=invalid)
    return _moved(state, Stage.OFFER_INVALID), [_play(state, _prompts(state).invalid)]


def _recorded(state: CallState, event: MessageRecorded) -> tuple[CallState, list[Command]]:
    if event.duration_s < _hotline(state).voice_message.min_s:  # nothing said: a silent caller
        return _to_night_queue(replace(state, message=""), Reason.SILENCE)
    commands: list[Command] = [
        SetVariable(IVR_MESSAGE, state.message),
        SetVariable(IVR_MESSAGE_S, f"{event.duration_s:.0f}"),
        _play(state, _prompts(state).message_thanks),
    ]
    return _moved(state, Stage.MESSAGE_THANKS, message_s=event.duration_s), commands


def _after_thanks(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _hang_up(state, Reason.MESSAGE)


def _after_goodbye(state: CallState, now: float) -> tuple[CallState, list[Command]]:
    return _hang_up(state, Reason.DECLINED)


_AFTER_PLAY: dict[Stage, Callable[[CallState, float], tuple[CallState, list[Command]]]] = {
    Stage.GREETING: _after_greeting,
    Stage.EMERGENCY_NOTICE: _after_emergency_notice,
    Stage.OUTAGE_NOTICE: _after_outage_notice,
    Stage.MENU_INVALID: _after_menu_invalid,
    Stage.ACCOUNT_INVALID: _after_account_invalid,
    Stage.ACCOUNT_READBACK: _after_readback,
    Stage.ACCOUNT_NOTICE: _after_account_notice,
    Stage.CLOSED: _after_closed,
    Stage.OFFER_INVALID: _after_offer_invalid,
    Stage.MESSAGE_THANKS: _after_thanks,
    Stage.GOODBYE: _after_goodbye,
}
_AFTER_DIGITS: dict[
    Stage, Callable[[CallState, DigitsEntered], tuple[CallState, list[Command]]]
] = {
    Stage.MENU: _menu_choice,
    Stage.SILENCE: _menu_choice,
    Stage.ACCOUNT_ENTRY: _account_entered,
    Stage.ACCOUNT_CONFIRM: _account_confirmed,
    Stage.MESSAGE_OFFER: _offer_choice,
}


# --- endings --------------------------------------------------------------------------------
def _emergency(state: CallState, reason: Reason) -> tuple[CallState, list[Command]]:
    """To the dialplan's emergency path. IVR_NEXT first: it alone decides the route."""
    desk = state.config.routing.emergency_desk()
    state = replace(state, desk=desk.id)
    commands: list[Command] = [
        SetVariable(IVR_NEXT, Next.EMERGENCY.value),
        SetVariable(IVR_LANGUAGE, state.language),
        SetVariable(IVR_CATEGORY, desk.category),
        SetVariable(IVR_PRIORITY, str(state.priority)),
        *_known(state),
        SetVariable(IVR_REASON, reason.value),
        Finish(Next.EMERGENCY),
    ]
    return _moved(state, Stage.DONE, outcome=Next.EMERGENCY), commands


def _to_queue(
    state: CallState, desk: DeskIn, reason: Reason, queue: str | None = None
) -> tuple[CallState, list[Command]]:
    commands: list[Command] = [
        SetVariable(IVR_LANGUAGE, state.language),
        SetVariable(IVR_QUEUE, queue or desk.queue),
        SetVariable(IVR_PRIORITY, str(state.priority)),
        SetVariable(IVR_CATEGORY, desk.category),
        *_known(state),
        SetVariable(IVR_REASON, reason.value),
        SetVariable(IVR_NEXT, Next.QUEUE.value),
        Finish(Next.QUEUE),
    ]
    return _moved(state, Stage.DONE, outcome=Next.QUEUE), commands


def _to_night_queue(state: CallState, reason: Reason) -> tuple[CallState, list[Command]]:
    """The desk is closed but the caller must reach a person: the 24 h after-hours queue."""
    routing = state.config.routing
    desk = routing.desk(state.desk) if state.desk else routing.person_desk()
    return _to_queue(state, desk, reason, queue=routing.hotline.after_hours_queue)


def _hang_up(state: CallState, reason: Reason) -> tuple[CallState, list[Command]]:
    commands: list[Command] = [
        SetVariable(IVR_LANGUAGE, state.language),
        SetVariable(IVR_PRIORITY, str(state.priority)),
        SetVariable(IVR_CATEGORY, _chosen_desk(state).category),
        *_known(state),
        SetVariable(IVR_REASON, reason.value),
        SetVariable(IVR_NEXT, Next.HANGUP.value),
        Finish(Next.HANGUP),
    ]
    return _moved(state, Stage.DONE, outcome=Next.HANGUP), commands


def _known(state: CallState) -> list[Command]:
    """Variables set only when known: the account number (confirmed, or keyed in and never
    confirmed), the area, the desk, the keys pressed and the outage notices heard."""
    known: list[Command] = []
    if state.account:
        known.append(SetVariable(IVR_ACCOUNT, state.account))
    if state.keyed and state.keyed != state.account:
        known.append(SetVariable(IVR_ACCOUNT_KEYED, state.keyed))
    if state.area:
        known.append(SetVariable(IVR_AREA, state.area))
    if state.desk:
        known.append(SetVariable(IVR_DESK, state.desk))
    if state.keys:
        known.append(SetVariable(IVR_KEYS, " ".join(state.keys)))
    if state.heard:
        known.append(SetVariable(IVR_HEARD, " ".join(state.heard)))
    return known


# --- helpers --------------------------------------------------------------------------------
def _moved(state: CallState, stage: Stage, **changes: Any) -> CallState:
    return replace(state, stage=stage, history=(*state.history, state.stage.value), **changes)


def _hotline(state: CallState) -> HotlineIn:
    return state.config.routing.hotline


def _prompts(state: CallState) -> HotlinePromptsIn:
    return state.config.routing.hotline.prompts


def _chosen_desk(state: CallState) -> DeskIn:
    routing = state.config.routing
    return routing.desk(state.desk) if state.desk else routing.person_desk()


def _play(state: CallState, prompt: str) -> Play:
    """Every prompt can be cut short by the emergency key."""
    return Play(prompt, state.language, escape_digits=_hotline(state).emergency_key)


def _collect_key(state: CallState, prompt: str) -> CollectDigits:
    return CollectDigits(
        prompt=prompt,
        language=state.language,
        max_digits=1,
        timeout_s=_hotline(state).silence_timeout_s,
    )


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", text).lstrip(".")[:64]
