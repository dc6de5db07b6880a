"""The call flow state machine: every transition, as plain data."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivr.core.callflow import (
    Answer,
    CallerHungUp,
    CallFacts,
    CallState,
    CollectDigits,
    Command,
    DigitsEntered,
    Event,
    Finish,
    FlowConfig,
    MessageRecorded,
    Next,
    Play,
    PromptPlayed,
    RecordMessage,
    SayDigits,
    SetVariable,
    Stage,
    awaited,
    flow_config,
    start,
    step,
)
from ivr.core.routing_models import Routing

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args: int) -> float:
    return datetime(*args, tzinfo=SHANGHAI).timestamp()


OPEN = at(2026, 11, 25, 10, 0)  # a Wednesday morning: every desk open
NIGHT = at(2026, 11, 25, 23, 0)  # every desk with hours closed
SUNDAY = at(2026, 11, 29, 10, 0)  # billing and complaints closed, consultation open
HOLIDAY = at(2027, 1, 1, 10, 0)  # a Friday, but a public holiday for billing

MOBILE = "13800138000"  # no area
QIAOXI = "031186001234"  # a landline in the area with an outage
ELDERLY = "031186000001"  # a priority caller (elderly, living alone) in the same area
ACCOUNT = "12345678"  # an account number in xinhua (another outage)

ROUTING_DATA: dict[str, Any] = {
    "hotline": {
        "name": "测试热线",
        "dids": ["95158"],
        "emergency_dids": ["96777"],
        "default_queue": "consultation",
    },
    "queues": ["consultation", "repair", "billing", "complaints", "emergency"],
    "desks": [
        {
            "id": "repair",
            "key": "1",
            "queue": "repair",
            "category": "repair",
            "label": {"zh": "报修", "en": "Repairs"},
            "always_open": True,
        },
        {
            "id": "billing",
            "key": "2",
            "queue": "billing",
            "category": "billing",
            "label": {"zh": "缴费与费用", "en": "Billing"},
            "account_entry": True,
            "hours": {"mon-sat": ["08:30-17:30"]},
            "holidays": ["2027-01-01"],
            "closed_prompt": "closed-billing",
        },
        {
            "id": "complaints",
            "key": "3",
            "queue": "complaints",
            "category": "complaints",
            "label": {"zh": "投诉与建议", "en": "Complaints"},
            "hours": {"mon-fri": ["08:30-12:00", "13:30-17:30"]},
            "closed_prompt": "closed-complaints",
        },
        {
            "id": "consultation",
            "key": "4",
            "queue": "consultation",
            "category": "consultation",
            "label": {"zh": "咨询", "en": "Information"},
            "hours": {"daily": ["08:00-20:00"]},
            "closed_prompt": "closed-consultation",
        },
        {
            "id": "emergency",
            "queue": "emergency",
            "category": "emergency",
            "label": {"zh": "抢险", "en": "Emergency"},
            "emergency": True,
            "always_open": True,
        },
    ],
    "areas": [
        {
            "id": "qiaoxi",
            "name": "桥西区",
            "caller_prefixes": ["031186"],
            "account_prefixes": ["11"],
        },
        {
            "id": "xinhua",
            "name": "新华区",
            "caller_prefixes": ["031183"],
            "account_prefixes": ["12"],
        },
        {
            "id": "yuhua",
            "name": "裕华区",
            "caller_prefixes": ["031185"],
            "account_prefixes": ["13"],
        },
    ],
    "priority_callers": [
        {"number": ELDERLY, "priority": 5, "reason": "elderly_alone"},
        {"number": "031183000002", "priority": 3, "reason": "key_account"},
    ],
    "outages": [
        {
            "area": "qiaoxi",
            "starts": "2026-11-24T00:00",
            "ends": "2027-01-02T00:00",
            "prompt": "outage-qiaoxi-heating",
        },
        {
            "area": "qiaoxi",
            "starts": "2026-11-25T00:00",
            "ends": "2026-11-26T00:00",
            "prompt": "outage-qiaoxi-water",
        },
        {
            "area": "xinhua",
            "starts": "2026-11-20T00:00",
            "ends": "2027-01-02T00:00",
            "prompt": "outage-xinhua-gas",
        },
    ],
}
ROUTING = Routing.model_validate(ROUTING_DATA)
CONFIG = flow_config(ROUTING)


def config_with(**hotline: Any) -> FlowConfig:
    data = {**ROUTING_DATA, "hotline": {**ROUTING_DATA["hotline"], **hotline}}
    return flow_config(Routing.model_validate(data))


# --- driving the flow -------------------------------------------------------------------
def played(digit: str = "", now: float = OPEN) -> PromptPlayed:
    return PromptPlayed(now=now, digit=digit)


def keys(digits: str, now: float = OPEN) -> DigitsEntered:
    return DigitsEntered(digits=digits, timed_out=False, now=now)


def silence(now: float = OPEN) -> DigitsEntered:
    return DigitsEntered(digits="", timed_out=True, now=now)


def recorded(seconds: float, now: float = OPEN) -> MessageRecorded:
    return MessageRecorded(duration_s=seconds, now=now)


def call(
    *events: Event | str,
    now: float = OPEN,
    caller: str = MOBILE,
    config: FlowConfig = CONFIG,
    did: str = "95158",
) -> tuple[CallState, list[Command]]:
    """Start a call and feed ``events``; "p" is a prompt played, "t" a silence, digits keys."""
    state, commands = start(config, CallFacts(did, caller, now, call_id="1700000000.7"))
    for event in events:
        if isinstance(event, str):
            event = (
                played(now=now)
                if event == "p"
                else silence(now)
                if event == "t"
                else keys(event, now)
            )
        state, commands = step(state, event)
    return state, commands


def variables(commands: list[Command]) -> dict[str, str]:
    return {c.name: c.value for c in commands if isinstance(c, SetVariable)}


def queued(commands: list[Command]) -> dict[str, str]:
    """The variables of a batch that must end the flow in a queue."""
    assert commands[-1] == Finish(Next.QUEUE)
    values = variables(commands)
    assert values["IVR_NEXT"] == "queue"
    return values


def zh(prompt: str) -> Play:
    return Play(prompt, "zh", escape_digits="9")


def menu(language: str = "zh") -> CollectDigits:
    return CollectDigits("menu", language, max_digits=1, timeout_s=3, terminator="#")


MENU = ("p", "p")  # greeting, emergency notice: the menu follows (caller without notices)

# One way to reach each stage: (events, now, caller).
STAGE_PATHS: dict[Stage, tuple[tuple[str, ...], float, str]] = {
    Stage.GREETING: ((), OPEN, MOBILE),
    Stage.EMERGENCY_NOTICE: (("p",), OPEN, MOBILE),
    Stage.OUTAGE_NOTICE: (("p", "p"), OPEN, QIAOXI),
    Stage.MENU: (MENU, OPEN, MOBILE),
    Stage.SILENCE: ((*MENU, "t"), OPEN, MOBILE),
    Stage.MENU_INVALID: ((*MENU, "5"), OPEN, MOBILE),
    Stage.ACCOUNT_ENTRY: ((*MENU, "2"), OPEN, MOBILE),
    Stage.ACCOUNT_INVALID: ((*MENU, "2", "123"), OPEN, MOBILE),
    Stage.ACCOUNT_READBACK: ((*MENU, "2", ACCOUNT), OPEN, MOBILE),
    Stage.ACCOUNT_CONFIRM: ((*MENU, "2", ACCOUNT, "p"), OPEN, MOBILE),
    Stage.ACCOUNT_NOTICE: ((*MENU, "2", ACCOUNT, "p", "1"), OPEN, MOBILE),
    Stage.CLOSED: ((*MENU, "2"), NIGHT, MOBILE),
    Stage.MESSAGE_OFFER: ((*MENU, "2", "p"), NIGHT, MOBILE),
    Stage.OFFER_INVALID: ((*MENU, "2", "p", "5"), NIGHT, MOBILE),
    Stage.RECORDING: ((*MENU, "2", "p", "1"), NIGHT, MOBILE),
    Stage.GOODBYE: ((*MENU, "2", "p", "2"), NIGHT, MOBILE),
}


def reach(stage: Stage) -> tuple[CallState, list[Command]]:
    events, now, caller = STAGE_PATHS[stage]
    state, commands = call(*events, now=now, caller=caller)
    assert state.stage is stage, state.history
    return state, commands


def reach_any(stage: Stage) -> tuple[CallState, list[Command]]:
    """Like reach(), and MESSAGE_THANKS too (it needs a MessageRecorded on the way)."""
    if stage is not Stage.MESSAGE_THANKS:
        return reach(stage)
    state, _ = call(*MENU, "2", "p", "1", now=NIGHT)
    return step(state, recorded(12.4, now=NIGHT))


NON_TERMINAL = [s for s in Stage if s not in (Stage.DONE, Stage.HUNG_UP)]


# --- start, greeting, notices ---------------------------------------------------------------
def test_given_new_call_when_started_then_answer_and_greeting_in_default_language():
    facts = CallFacts(did="95158", caller=MOBILE, now=OPEN)

    state, commands = start(CONFIG, facts)

    assert commands == [Answer(), Play("greeting", "zh", escape_digits="9")]
    assert state.stage is Stage.GREETING
    assert state.language == "zh"
    assert (state.facts, state.config) == (facts, CONFIG)
    assert (state.history, state.priority, state.area, state.notices) == ((), 0, "", ())


def test_given_english_default_when_started_then_greeting_in_english():
    state, commands = call(config=config_with(default_language="en"))

    assert commands == [Answer(), Play("greeting", "en", escape_digits="9")]
    assert state.language == "en"


def test_given_custom_prompt_keys_when_started_then_those_prompts_played():
    config = config_with(prompts={"greeting": "greeting-night", "emergency": "leak-first"})

    _, commands = call(config=config)
    _, after_greeting = call("p", config=config)

    assert commands[1] == zh("greeting-night")
    assert after_greeting == [zh("leak-first")]


def test_given_greeting_when_played_then_emergency_key_announced_first():
    state, commands = call("p")

    assert commands == [zh("emergency-notice")]
    assert state.stage is Stage.EMERGENCY_NOTICE


def test_given_caller_without_outage_when_emergency_notice_played_then_menu():
    state, commands = call(*MENU)

    assert commands == [menu()]
    assert state.stage is Stage.MENU
    assert state.history == ("greeting", "emergency_notice")


def test_given_caller_from_affected_area_when_notices_then_each_outage_before_menu():
    state, first = call("p", "p", caller=QIAOXI)
    state, second = step(state, played())
    state, after = step(state, played())

    assert first == [zh("outage-qiaoxi-heating")]
    assert second == [zh("outage-qiaoxi-water")]
    assert after == [menu()]
    assert state.heard == ("outage-qiaoxi-heating", "outage-qiaoxi-water")
    assert state.area == "qiaoxi"


def test_given_affected_area_after_outage_ended_when_called_then_no_notice():
    state, _ = call(caller=QIAOXI, now=at(2027, 1, 3, 10, 0))

    assert state.notices == ()
    assert call("p", "p", caller=QIAOXI, now=at(2027, 1, 3, 10, 0))[1] == [menu()]


def test_given_caller_number_in_international_form_when_started_then_area_and_priority_found():
    state, _ = call(caller="+86 311 8600 0001")

    assert (state.area, state.priority) == ("qiaoxi", 5)


def test_given_emergency_did_when_started_then_emergency_path_without_prompts():
    state, commands = call(did="96777")

    assert commands[0] == Answer()
    assert commands[1] == SetVariable("IVR_NEXT", "emergency")
    assert commands[-1] == Finish(Next.EMERGENCY)
    assert not any(isinstance(c, Play | CollectDigits) for c in commands)
    assert variables(commands)["IVR_REASON"] == "emergency_did"
    assert (state.stage, state.outcome, state.history) == (Stage.DONE, Next.EMERGENCY, ())


# --- the menu: one transition per key -----------------------------------------------------
@pytest.mark.parametrize(
    ("key", "queue", "category"),
    [
        ("1", "repair", "repair"),
        ("3", "complaints", "complaints"),
        ("4", "consultation", "consultation"),
    ],
)
def test_given_menu_when_desk_key_then_queue_of_that_desk(key, queue, category):
    state, commands = call(*MENU, key)

    assert commands == [
        SetVariable("IVR_LANGUAGE", "zh"),
        SetVariable("IVR_QUEUE", queue),
        SetVariable("IVR_PRIORITY", "0"),
        SetVariable("IVR_CATEGORY", category),
        SetVariable("IVR_DESK", queue),
        SetVariable("IVR_KEYS", key),
        SetVariable("IVR_REASON", "menu"),
        SetVariable("IVR_NEXT", "queue"),
        Finish(Next.QUEUE),
    ]
    assert (state.stage, state.outcome, state.desk) == (Stage.DONE, Next.QUEUE, queue)


def test_given_menu_when_person_key_then_consultation_queue():
    _, commands = call(*MENU, "0")

    assert queued(commands) == {
        "IVR_LANGUAGE": "zh",
        "IVR_QUEUE": "consultation",
        "IVR_PRIORITY": "0",
        "IVR_CATEGORY": "consultation",
        "IVR_DESK": "consultation",
        "IVR_KEYS": "0",
        "IVR_REASON": "person",
        "IVR_NEXT": "queue",
    }


def test_given_menu_when_billing_key_then_account_number_asked():
    state, commands = call(*MENU, "2")

    assert commands == [
        CollectDigits("account-entry", "zh", max_digits=13, timeout_s=10, terminator="#")
    ]
    assert (state.stage, state.desk) == (Stage.ACCOUNT_ENTRY, "billing")


def test_given_menu_when_emergency_key_then_emergency_path_at_once():
    state, commands = call(*MENU, "9", caller=ELDERLY)

    assert commands == [
        SetVariable("IVR_NEXT", "emergency"),
        SetVariable("IVR_LANGUAGE", "zh"),
        SetVariable("IVR_CATEGORY", "emergency"),
        SetVariable("IVR_PRIORITY", "5"),
        SetVariable("IVR_AREA", "qiaoxi"),
        SetVariable("IVR_DESK", "emergency"),
        SetVariable("IVR_KEYS", "9"),
        SetVariable("IVR_REASON", "emergency_key"),
        Finish(Next.EMERGENCY),
    ]
    assert (state.stage, state.outcome) == (Stage.DONE, Next.EMERGENCY)


def test_given_menu_when_repeat_key_then_emergency_notice_and_menu_again():
    state, commands = call(*MENU, "*")
    state, again = step(state, played())

    assert commands == [zh("emergency-notice")]
    assert again == [menu()]
    assert state.menu_plays == 1


def test_given_repeats_beyond_limit_when_repeat_key_then_a_person():
    state, commands = call(*MENU, *(["*", "p"] * 5), "*")

    assert queued(commands)["IVR_REASON"] == "repeats"
    assert queued(commands)["IVR_QUEUE"] == "consultation"
    assert state.menu_plays == 5


def test_given_menu_when_english_key_then_menu_in_english_and_language_variable_en():
    state, switched = call(*MENU, "8")
    state, menu_en = step(state, played())
    state, commands = step(state, keys("1"))

    assert switched == [Play("emergency-notice", "en", escape_digits="9")]
    assert menu_en == [menu("en")]
    assert queued(commands)["IVR_LANGUAGE"] == "en"


def test_given_english_when_english_key_again_then_back_to_mandarin():
    state, _ = call(*MENU, "8", "p", "8")

    assert state.language == "zh"
    assert step(state, played())[1] == [menu("zh")]


def test_given_outage_heard_in_mandarin_when_english_chosen_then_notice_again_in_english():
    state, _ = call("p", "p", "p", "p", "8", "p", caller=QIAOXI)

    assert state.stage is Stage.OUTAGE_NOTICE
    assert state.language == "en"
    state, commands = step(state, played())
    assert commands == [Play("outage-qiaoxi-water", "en", escape_digits="9")]
    assert step(state, played())[1] == [menu("en")]


# --- wrong keys and garbage ----------------------------------------------------------------
@pytest.mark.parametrize(
    "entered",
    ["5", "6", "7", "", "12", "99", "9" * 1000, "abc", "１", "\x00", "#", "*#", "1 "],
    ids=repr,
)
def test_given_menu_when_invalid_input_then_input_error_and_menu_again(entered):
    state, commands = call(*MENU, entered)
    state, again = step(state, played())

    assert commands == [zh("invalid-input")]
    assert again == [menu()]
    assert state.invalid == 1


def test_given_two_wrong_keys_when_third_wrong_key_then_a_person():
    state, commands = call(*MENU, "5", "p", "7", "p", "6")

    assert queued(commands)["IVR_QUEUE"] == "consultation"
    assert queued(commands)["IVR_REASON"] == "invalid"
    assert state.history.count("menu_invalid") == 2


def test_given_two_wrong_keys_when_right_key_then_that_desk():
    _, commands = call(*MENU, "5", "p", "7", "p", "1")

    assert queued(commands)["IVR_QUEUE"] == "repair"


def test_given_custom_max_invalid_when_that_many_wrong_keys_then_a_person():
    _, commands = call(*MENU, "5", config=config_with(max_invalid=1))

    assert queued(commands)["IVR_REASON"] == "invalid"


def test_given_three_wrong_keys_at_night_then_person_desk_hours_and_message_offer():
    state, commands = call(*MENU, "5", "p", "5", "p", "5", now=NIGHT)

    assert commands == [zh("closed-consultation")]
    assert (state.stage, state.desk) == (Stage.CLOSED, "consultation")


# --- silence ---------------------------------------------------------------------------------
def test_given_menu_when_no_key_then_silence_prompt_is_played():
    state, commands = call(*MENU, "t")

    assert commands == [CollectDigits("silence", "zh", max_digits=1, timeout_s=3)]
    assert state.silences == 1


def test_given_silent_caller_when_silence_prompt_repeated_then_a_person_never_cut_off():
    state, second = call(*MENU, "t", "t")
    state, commands = step(state, silence())

    assert second == [CollectDigits("silence", "zh", max_digits=1, timeout_s=3)]
    assert queued(commands)["IVR_QUEUE"] == "consultation"
    assert queued(commands)["IVR_REASON"] == "silence"
    assert state.history[-3:] == ("menu", "silence", "silence")


def test_given_silent_caller_at_night_when_silence_persists_then_24h_queue_not_hangup():
    _, commands = call(*MENU, "t", "t", "t", now=NIGHT)

    values = queued(commands)
    assert values["IVR_QUEUE"] == "emergency"  # hotline.after_hours_queue
    assert values["IVR_CATEGORY"] == "consultation"
    assert values["IVR_REASON"] == "silence"


def test_given_silence_repeats_configured_when_silent_then_that_many_prompts():
    state, commands = call(*MENU, "t", "t", "t", config=config_with(silence_repeats=3))

    assert commands == [CollectDigits("silence", "zh", max_digits=1, timeout_s=3)]
    assert state.silences == 3


@pytest.mark.parametrize(("key", "queue"), [("1", "repair"), ("0", "consultation")])
def test_given_silence_prompt_when_key_pressed_then_menu_choice_taken(key, queue):
    _, commands = call(*MENU, "t", key)

    assert queued(commands)["IVR_QUEUE"] == queue


def test_given_silence_then_key_when_silent_again_then_count_starts_over():
    state, commands = call(*MENU, "t", "t", "*", "p", "t")

    assert commands == [CollectDigits("silence", "zh", max_digits=1, timeout_s=3)]
    assert state.silences == 1


# --- account entry ------------------------------------------------------------------------------
def test_given_account_entry_when_valid_number_then_read_back_and_confirm_asked():
    state, readback = call(*MENU, "2", ACCOUNT)
    state, confirm = step(state, played())

    assert readback == [zh("account-readback")]
    assert confirm == [
        SayDigits(ACCOUNT, "zh", prompt_prefix="digit-"),
        CollectDigits("account-confirm", "zh", max_digits=1, timeout_s=3),
    ]
    assert state.entered == ACCOUNT


def test_given_read_back_when_confirmed_then_billing_queue_with_account():
    state, commands = call(*MENU, "2", "13000001", "p", "1")

    assert commands == [
        SetVariable("IVR_LANGUAGE", "zh"),
        SetVariable("IVR_QUEUE", "billing"),
        SetVariable("IVR_PRIORITY", "0"),
        SetVariable("IVR_CATEGORY", "billing"),
        SetVariable("IVR_ACCOUNT", "13000001"),
        SetVariable("IVR_AREA", "yuhua"),
        SetVariable("IVR_DESK", "billing"),
        SetVariable("IVR_KEYS", "2 13000001 1"),
        SetVariable("IVR_REASON", "menu"),
        SetVariable("IVR_NEXT", "queue"),
        Finish(Next.QUEUE),
    ]
    assert state.account == "13000001"


def test_given_account_in_area_with_outage_when_confirmed_then_notice_before_queue():
    state, notice = call(*MENU, "2", ACCOUNT, "p", "1")
    state, commands = step(state, played())

    assert notice == [zh("outage-xinhua-gas")]
    assert queued(commands)["IVR_ACCOUNT"] == ACCOUNT
    assert queued(commands)["IVR_AREA"] == "xinhua"


def test_given_notice_heard_by_caller_number_when_account_same_area_then_not_repeated():
    state, commands = call("p", "p", "p", "p", "2", "11000001", "p", "1", caller=QIAOXI)

    assert queued(commands)["IVR_ACCOUNT"] == "11000001"
    assert state.history.count("outage_notice") == 2


def test_given_notices_keys_and_an_account_then_the_screen_pop_variables_say_them():
    _, commands = call("p", "p", "p", "p", "8", "p", "p", "p", "2", "11000001", "p", "1",
                       caller=QIAOXI)  # fmt: skip

    values = queued(commands)
    assert values["IVR_KEYS"] == "8 2 11000001 1"
    assert values["IVR_HEARD"] == "outage-qiaoxi-heating outage-qiaoxi-water"  # zh, en: once
    assert (values["IVR_DESK"], values["IVR_LANGUAGE"]) == ("billing", "en")
    assert "IVR_ACCOUNT_KEYED" not in values  # it was confirmed: IVR_ACCOUNT


def test_given_an_account_keyed_but_never_confirmed_then_it_is_set_apart():
    _, commands = call(*MENU, "2", ACCOUNT, "p", "", "p", "", "p", "")

    values = queued(commands)
    assert values["IVR_ACCOUNT_KEYED"] == ACCOUNT and "IVR_ACCOUNT" not in values
    assert values["IVR_KEYS"] == f"2 {ACCOUNT}"  # the silences pressed nothing


def test_given_number_with_no_area_and_account_of_unknown_area_then_no_area_variable():
    _, commands = call(*MENU, "2", "99999999", "p", "1")

    assert "IVR_AREA" not in queued(commands)


def test_given_read_back_when_rejected_then_number_asked_again():
    state, commands = call(*MENU, "2", ACCOUNT, "p", "2")

    assert commands == [
        CollectDigits("account-entry", "zh", max_digits=13, timeout_s=10, terminator="#")
    ]
    assert (state.entered, state.invalid) == ("", 1)


@pytest.mark.parametrize(
    "entered",
    [
        "1234567",
        "1234567890123",
        "1234567890123456789012345",
        "1234*678",
        "",
        "12345678a",
        "９" * 8,
    ],
    ids=["too-short", "too-long", "far-too-long", "star", "hash-only", "letter", "fullwidth"],
)
def test_given_account_entry_when_invalid_number_then_error_and_asked_again(entered):
    state, commands = call(*MENU, "2", entered)
    state, again = step(state, played())

    assert commands == [zh("account-invalid")]
    assert again[0].prompt == "account-entry"  # type: ignore[union-attr]
    assert state.invalid == 1


def test_given_account_entry_when_no_key_then_asked_again_without_error_prompt():
    state, commands = call(*MENU, "2", "t")

    assert commands[0].prompt == "account-entry"  # type: ignore[union-attr]
    assert state.invalid == 1


def test_given_account_typed_without_hash_when_timed_out_then_accepted():
    state, commands = step(call(*MENU, "2")[0], DigitsEntered(ACCOUNT, timed_out=True, now=OPEN))

    assert commands == [zh("account-readback")]


def test_given_three_failed_account_entries_then_billing_queue_without_account():
    state, commands = call(*MENU, "2", "1", "p", "t", ACCOUNT, "p", "2")

    values = queued(commands)
    assert values["IVR_QUEUE"] == "billing"
    assert "IVR_ACCOUNT" not in values


def test_given_confirm_question_when_no_key_then_read_back_again():
    state, commands = call(*MENU, "2", ACCOUNT, "p", "t")

    assert commands == [zh("account-readback")]
    assert (state.stage, state.invalid) == (Stage.ACCOUNT_READBACK, 1)


def test_given_confirm_question_when_wrong_keys_then_billing_without_account():
    _, commands = call(*MENU, "2", ACCOUNT, "p", "5", "p", "7", "p", "#")

    assert "IVR_ACCOUNT" not in queued(commands)


def test_given_account_entry_when_lone_emergency_key_then_emergency_path():
    _, commands = call(*MENU, "2", "9")

    assert commands[-1] == Finish(Next.EMERGENCY)


def test_given_account_containing_nines_when_entered_then_it_is_an_account():
    _, commands = call(*MENU, "2", "99999999")

    assert commands == [zh("account-readback")]


# --- after hours ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "when", "prompt"),
    [
        ("2", NIGHT, "closed-billing"),
        ("3", NIGHT, "closed-complaints"),
        ("4", NIGHT, "closed-consultation"),
        ("0", NIGHT, "closed-consultation"),
        ("2", SUNDAY, "closed-billing"),
        ("3", SUNDAY, "closed-complaints"),
        ("2", HOLIDAY, "closed-billing"),
        ("2", at(2026, 11, 25, 17, 30), "closed-billing"),
        ("3", at(2026, 11, 25, 12, 15), "closed-complaints"),
    ],
)
def test_given_desk_closed_when_chosen_then_hours_announced_then_message_offered(key, when, prompt):
    state, commands = call(*MENU, key, now=when)
    state, offer = step(state, played(now=when))

    assert commands == [zh(prompt)]
    assert offer == [CollectDigits("message-offer", "zh", max_digits=1, timeout_s=3)]


@pytest.mark.parametrize(
    ("key", "when", "queue"),
    [
        ("1", NIGHT, "repair"),
        ("4", SUNDAY, "consultation"),
        ("3", at(2026, 11, 25, 13, 30), "complaints"),
    ],
)
def test_given_desk_open_or_24h_when_chosen_then_queued(key, when, queue):
    _, commands = call(*MENU, key, now=when)

    assert queued(commands)["IVR_QUEUE"] == queue


def test_given_message_offer_when_accepted_then_beep_recording_then_saved_and_thanks():
    state, record = call(*MENU, "2", "p", "1", now=NIGHT)
    state, thanks = step(state, recorded(12.4, now=NIGHT))
    state, commands = step(state, played(now=NIGHT))

    assert record == [
        RecordMessage(path_hint="billing-1700000000.7", max_s=120, silence_s=5, beep=True)
    ]
    assert thanks == [
        SetVariable("IVR_MESSAGE", "billing-1700000000.7"),
        SetVariable("IVR_MESSAGE_S", "12"),
        zh("message-thanks"),
    ]
    assert commands == [
        SetVariable("IVR_LANGUAGE", "zh"),
        SetVariable("IVR_PRIORITY", "0"),
        SetVariable("IVR_CATEGORY", "billing"),
        SetVariable("IVR_DESK", "billing"),
        SetVariable("IVR_KEYS", "2 1"),
        SetVariable("IVR_REASON", "message"),
        SetVariable("IVR_NEXT", "hangup"),
        Finish(Next.HANGUP),
    ]
    assert state.outcome is Next.HANGUP


def test_given_message_offer_when_declined_then_goodbye_and_hangup():
    state, goodbye = call(*MENU, "3", "p", "2", now=NIGHT)
    state, commands = step(state, played(now=NIGHT))

    assert goodbye == [zh("goodbye")]
    assert commands[-1] == Finish(Next.HANGUP)
    assert variables(commands)["IVR_REASON"] == "declined"
    assert variables(commands)["IVR_CATEGORY"] == "complaints"


def test_given_message_offer_when_caller_hangs_up_then_ended_without_commands():
    state, commands = step(call(*MENU, "2", "p", now=NIGHT)[0], CallerHungUp(now=NIGHT))

    assert (state.stage, commands, state.outcome) == (Stage.HUNG_UP, [], None)


def test_given_recording_when_caller_hangs_up_then_message_path_kept_for_the_adapter():
    state, commands = step(call(*MENU, "2", "p", "1", now=NIGHT)[0], CallerHungUp(now=NIGHT))

    assert (state.stage, commands) == (Stage.HUNG_UP, [])
    assert state.message == "billing-1700000000.7"


def test_given_recording_when_nothing_said_then_silent_caller_goes_to_24h_queue():
    state, commands = step(call(*MENU, "2", "p", "1", now=NIGHT)[0], recorded(0.4, now=NIGHT))

    values = queued(commands)
    assert (values["IVR_QUEUE"], values["IVR_REASON"]) == ("emergency", "silence")
    assert state.message == ""


def test_given_message_offer_when_silent_then_offered_again_then_24h_queue():
    state, again = call(*MENU, "2", "p", "t", now=NIGHT)
    _, commands = call(*MENU, "2", "p", "t", "t", "t", now=NIGHT)

    assert again == [CollectDigits("message-offer", "zh", max_digits=1, timeout_s=3)]
    assert queued(commands)["IVR_QUEUE"] == "emergency"
    assert queued(commands)["IVR_CATEGORY"] == "billing"


def test_given_message_offer_when_wrong_keys_then_error_offer_again_then_24h_queue():
    _, error = call(*MENU, "2", "p", "5", now=NIGHT)
    _, again = call(*MENU, "2", "p", "5", "p", now=NIGHT)
    _, commands = call(*MENU, "2", "p", "5", "p", "5", "p", "*", now=NIGHT)

    assert error == [zh("invalid-input")]
    assert again[0].prompt == "message-offer"  # type: ignore[union-attr]
    assert queued(commands)["IVR_REASON"] == "invalid"


def test_given_call_id_with_odd_characters_when_recording_then_path_hint_is_file_safe():
    state, _ = start(CONFIG, CallFacts("95158", MOBILE, NIGHT, call_id="../../etc/x y"))
    for event in (played(now=NIGHT), played(now=NIGHT), keys("2", NIGHT), played(now=NIGHT)):
        state, _ = step(state, event)

    _, commands = step(state, keys("1", NIGHT))

    assert commands[0].path_hint == "billing-etcxy"  # type: ignore[union-attr]


# --- priority callers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("caller", "priority"),
    [(ELDERLY, "5"), ("031183000002", "3"), ("+8603118600 0001", "5"), (MOBILE, "0"), ("", "0")],
)
def test_given_caller_when_queued_then_priority_from_priority_callers(caller, priority):
    state, _ = call(caller=caller)
    while state.stage is not Stage.MENU:
        state, _ = step(state, played())

    _, commands = step(state, keys("1"))

    assert queued(commands)["IVR_PRIORITY"] == priority


# --- the emergency key at every choice and prompt -----------------------------------------
@pytest.mark.parametrize("stage", [*STAGE_PATHS, Stage.MESSAGE_THANKS], ids=str)
def test_given_any_menu_point_when_emergency_key_then_emergency_path_no_more_prompts(stage):
    state, batch = reach_any(stage)
    kind = awaited(batch)
    event: Event = (
        played("9")
        if kind is PromptPlayed
        else keys("9")
        if kind is DigitsEntered
        else recorded(5.0)
    )

    after, commands = step(state, event)

    if stage is Stage.RECORDING:  # the 9 is part of what the caller says, not a key
        assert after.stage is Stage.MESSAGE_THANKS
        return
    assert commands[0] == SetVariable("IVR_NEXT", "emergency")
    assert commands[-1] == Finish(Next.EMERGENCY)
    assert not any(isinstance(c, Play | CollectDigits | RecordMessage) for c in commands)
    assert (after.stage, after.outcome) == (Stage.DONE, Next.EMERGENCY)


@pytest.mark.parametrize("stage", [s for s in STAGE_PATHS if s is not Stage.RECORDING], ids=str)
def test_given_any_prompt_when_played_then_the_emergency_key_may_cut_it_short(stage):
    _, batch = reach(stage)

    for command in batch:
        if isinstance(command, Play):
            assert command.escape_digits == "9"


def test_given_custom_emergency_key_when_pressed_then_emergency_path():
    config = config_with(emergency_key="7")
    _, greeting = call(config=config)
    _, commands = call(*MENU, "7", config=config)
    _, nine = call(*MENU, "9", config=config)

    assert greeting[1] == Play("greeting", "zh", escape_digits="7")
    assert commands[-1] == Finish(Next.EMERGENCY)
    assert nine == [Play("invalid-input", "zh", escape_digits="7")]


# --- hang-ups and finished flows ------------------------------------------------------------
@pytest.mark.parametrize("stage", NON_TERMINAL, ids=str)
def test_given_any_stage_when_caller_hangs_up_then_hung_up_without_commands(stage):
    before, _ = reach_any(stage)

    after, commands = step(before, CallerHungUp(now=OPEN + 1))

    assert commands == []
    assert after.stage is Stage.HUNG_UP
    assert after.history == (*before.history, stage.value)
    assert after.outcome is None


@pytest.mark.parametrize(
    "event",
    [played(), played("9"), keys("1"), silence(), recorded(3.0), CallerHungUp(now=OPEN)],
    ids=repr,
)
@pytest.mark.parametrize("final", ["done", "hung_up"])
def test_given_finished_flow_when_any_event_then_nothing_happens(final, event):
    before = call(*MENU, "1")[0] if final == "done" else call(*MENU, CallerHungUp(now=OPEN))[0]

    after, commands = step(before, event)

    assert commands == []
    assert after == before


def test_given_a_step_when_taken_then_earlier_state_unchanged():
    before = call(*MENU)[0]
    snapshot = dataclasses.replace(before)

    step(before, keys("2"))

    assert before == snapshot
    assert before.stage is Stage.MENU


# --- events of the wrong kind ---------------------------------------------------------------
def test_given_runner_that_only_plays_when_every_event_is_prompt_played_then_person_by_day():
    state, commands = call(*["p"] * 5)

    assert queued(commands)["IVR_QUEUE"] == "consultation"
    assert queued(commands)["IVR_REASON"] == "silence"
    assert state.history == ("greeting", "emergency_notice", "menu", "silence", "silence")


def test_given_runner_that_only_plays_at_night_then_24h_queue():
    _, commands = call(*["p"] * 5, now=NIGHT)

    assert queued(commands)["IVR_QUEUE"] == "emergency"


def test_given_prompt_played_with_digit_where_keys_awaited_then_read_as_that_key():
    _, commands = step(call(*MENU)[0], played("1"))

    assert queued(commands)["IVR_QUEUE"] == "repair"


def test_given_digits_where_prompt_played_awaited_then_read_as_prompt_cut_short():
    state, commands = step(call()[0], keys("1"))
    _, emergency = step(call()[0], keys("9"))

    assert commands == [zh("emergency-notice")]
    assert emergency[-1] == Finish(Next.EMERGENCY)


def test_given_recording_event_where_keys_awaited_then_read_as_silence():
    state, commands = step(call(*MENU)[0], recorded(3.0))

    assert state.stage is Stage.SILENCE


def test_given_prompt_played_where_recording_awaited_then_read_as_empty_message():
    _, commands = step(call(*MENU, "2", "p", "1", now=NIGHT)[0], played(now=NIGHT))

    assert queued(commands)["IVR_REASON"] == "silence"


# --- the batch contract, over every reachable state --------------------------------------
PROBES: dict[type, list[Event]] = {
    PromptPlayed: [played(), played("9"), played("1")],
    DigitsEntered: [
        silence(),
        keys(""),
        *(keys(k) for k in "0123456789*"),
        keys(ACCOUNT),
        keys("11000001"),
        keys("123"),
        keys("1234567890123"),
        keys("12*45678"),
        DigitsEntered("1234", timed_out=True, now=OPEN),
    ],
    MessageRecorded: [recorded(0.2), recorded(30.0)],
}
# keys and keyed record the path, like history: they decide no transition
KEY_FIELDS = [
    f.name
    for f in dataclasses.fields(CallState)
    if f.name not in ("config", "facts", "history", "keys", "keyed")
]


def key_of(state: CallState) -> tuple[object, ...]:
    return tuple(getattr(state, name) for name in KEY_FIELDS)


def explore(now: float, caller: str) -> Iterator[tuple[CallState, list[Command], int]]:
    """Every reachable state (depth first), its batch, and the longest path from it."""
    longest: dict[tuple[object, ...], int] = {}
    on_path: set[tuple[object, ...]] = set()
    found: list[tuple[CallState, list[Command], int]] = []

    def visit(state: CallState, batch: list[Command]) -> int:
        key = key_of(state)
        assert key not in on_path, f"a loop through {state.stage}: {state.history}"
        if key in longest:
            return longest[key]
        on_path.add(key)
        kind = awaited(batch)  # raises if the batch breaks the contract
        if state.stage in (Stage.DONE, Stage.HUNG_UP):
            depth = 0
        else:
            assert kind is not None, f"{state.stage} awaits nothing: {batch}"
            children = [step(state, dataclasses.replace(e, now=now)) for e in PROBES[kind]]
            children.append(step(state, CallerHungUp(now=now)))
            depth = 1 + max(visit(s, b) for s, b in children)
        on_path.discard(key)
        longest[key] = depth
        found.append((state, batch, depth))
        return depth

    visit(*start(CONFIG, CallFacts("95158", caller, now)))
    return iter(found)


@pytest.mark.parametrize(
    ("now", "caller"), [(OPEN, MOBILE), (NIGHT, MOBILE), (OPEN, QIAOXI), (SUNDAY, ELDERLY)]
)
def test_given_every_reachable_state_when_stepped_then_batch_contract_holds_and_flow_ends(
    now, caller
):
    reached = list(explore(now, caller))

    stages = {state.stage for state, _, _ in reached}
    for state, batch, _ in reached:
        if state.stage in (Stage.DONE, Stage.HUNG_UP):
            assert awaited(batch) is None
        else:
            assert batch and awaited(batch) is not None
        finishes = [c for c in batch if isinstance(c, Finish)]
        assert len(finishes) <= 1 and (not finishes or batch[-1] is finishes[0])
        if finishes:
            assert state.stage is Stage.DONE and state.outcome is finishes[0].next
            assert variables(batch)["IVR_NEXT"] == finishes[0].next.value
    # Every call ends. The worst case (silences, repeats, wrong keys and account attempts
    # all to their limits) is a long call, but a bounded one.
    assert max(depth for _, _, depth in reached) <= 60
    assert {Stage.GREETING, Stage.MENU, Stage.SILENCE, Stage.DONE, Stage.HUNG_UP} <= stages


def test_given_all_explorations_then_every_stage_is_reached():
    stages = {
        state.stage
        for now, caller in [(OPEN, MOBILE), (NIGHT, MOBILE), (OPEN, QIAOXI)]
        for state, _, _ in explore(now, caller)
    }

    assert stages == set(Stage)


def test_given_random_events_when_a_thousand_calls_then_each_ends_in_finish_or_hangup():
    rng = random.Random(20261123)
    pool: list[Event] = [e for events in PROBES.values() for e in events]
    pool.append(keys("x" * 5000))
    for _ in range(1000):
        state, batch = start(
            CONFIG,
            CallFacts("95158", rng.choice([MOBILE, QIAOXI, ELDERLY]), rng.choice([OPEN, NIGHT])),
        )
        for _ in range(60):
            awaited(batch)
            if state.stage in (Stage.DONE, Stage.HUNG_UP):
                break
            event = rng.choice(pool) if rng.random() > 0.02 else CallerHungUp(now=OPEN)
            state, batch = step(state, event)
        assert state.stage in (Stage.DONE, Stage.HUNG_UP)


@pytest.mark.parametrize(
    "batch",
    [
        [Play("a", "zh"), Play("b", "zh")],
        [Play("a", "zh"), SetVariable("X", "1")],
        [CollectDigits("a", "zh", 1, 3), Finish(Next.QUEUE)],
        [Finish(Next.QUEUE), SetVariable("X", "1")],
        [SetVariable("X", "1")],
        [Answer()],
    ],
    ids=repr,
)
def test_given_batch_breaking_the_contract_when_awaited_then_value_error(batch):
    with pytest.raises(ValueError, match="a batch must end in one"):
        awaited(batch)


def test_given_batches_when_awaited_then_the_event_to_feed_back():
    assert awaited([Answer(), Play("greeting", "zh")]) is PromptPlayed
    assert awaited([SayDigits("1", "zh"), CollectDigits("a", "zh", 1, 3)]) is DigitsEntered
    assert awaited([RecordMessage("a/b", 60, 5)]) is MessageRecorded
    assert awaited([SetVariable("IVR_NEXT", "queue"), Finish(Next.QUEUE)]) is None
    assert awaited([]) is None


# --- a table of every transition ---------------------------------------------------------------
TRANSITIONS = [
    # (from stage, event, to stage)
    (Stage.GREETING, played(), Stage.EMERGENCY_NOTICE),
    (Stage.GREETING, played("9"), Stage.DONE),
    (Stage.EMERGENCY_NOTICE, played(), Stage.MENU),
    (Stage.OUTAGE_NOTICE, played(), Stage.OUTAGE_NOTICE),  # a second notice
    (Stage.MENU, keys("1"), Stage.DONE),
    (Stage.MENU, keys("2"), Stage.ACCOUNT_ENTRY),
    (Stage.MENU, keys("5"), Stage.MENU_INVALID),
    (Stage.MENU, keys("*"), Stage.EMERGENCY_NOTICE),
    (Stage.MENU, keys("8"), Stage.EMERGENCY_NOTICE),
    (Stage.MENU, silence(), Stage.SILENCE),
    (Stage.SILENCE, silence(), Stage.SILENCE),
    (Stage.SILENCE, keys("4"), Stage.DONE),
    (Stage.SILENCE, keys("5"), Stage.MENU_INVALID),
    (Stage.MENU_INVALID, played(), Stage.MENU),
    (Stage.ACCOUNT_ENTRY, keys(ACCOUNT), Stage.ACCOUNT_READBACK),
    (Stage.ACCOUNT_ENTRY, keys("12"), Stage.ACCOUNT_INVALID),
    (Stage.ACCOUNT_ENTRY, silence(), Stage.ACCOUNT_ENTRY),
    (Stage.ACCOUNT_INVALID, played(), Stage.ACCOUNT_ENTRY),
    (Stage.ACCOUNT_READBACK, played(), Stage.ACCOUNT_CONFIRM),
    (Stage.ACCOUNT_CONFIRM, keys("1"), Stage.ACCOUNT_NOTICE),  # xinhua: an outage
    (Stage.ACCOUNT_CONFIRM, keys("2"), Stage.ACCOUNT_ENTRY),
    (Stage.ACCOUNT_CONFIRM, silence(), Stage.ACCOUNT_READBACK),
    (Stage.ACCOUNT_CONFIRM, keys("5"), Stage.ACCOUNT_READBACK),
    (Stage.ACCOUNT_NOTICE, played(), Stage.DONE),
    (Stage.CLOSED, played(), Stage.MESSAGE_OFFER),
    (Stage.MESSAGE_OFFER, keys("1"), Stage.RECORDING),
    (Stage.MESSAGE_OFFER, keys("2"), Stage.GOODBYE),
    (Stage.MESSAGE_OFFER, keys("5"), Stage.OFFER_INVALID),
    (Stage.MESSAGE_OFFER, silence(), Stage.MESSAGE_OFFER),
    (Stage.OFFER_INVALID, played(), Stage.MESSAGE_OFFER),
    (Stage.RECORDING, recorded(10.0), Stage.MESSAGE_THANKS),
    (Stage.RECORDING, recorded(0.0), Stage.DONE),
    (Stage.MESSAGE_THANKS, played(), Stage.DONE),
    (Stage.GOODBYE, played(), Stage.DONE),
]


@pytest.mark.parametrize(("source", "event", "target"), TRANSITIONS, ids=lambda v: str(v))
def test_given_stage_when_event_then_next_stage(source, event, target):
    state, _ = reach_any(source)
    now = STAGE_PATHS.get(source, ((), NIGHT, MOBILE))[1]

    after, commands = step(state, dataclasses.replace(event, now=now))

    assert after.stage is target
    assert after.history[-1] == source.value
    assert awaited(commands) is not None or after.stage is Stage.DONE


def test_given_transition_table_then_every_non_terminal_stage_has_a_row():
    assert {source for source, _, _ in TRANSITIONS} == set(NON_TERMINAL)


def test_stage_next_and_reason_values_are_the_strings_the_dialplan_and_logs_use():
    assert [n.value for n in Next] == ["queue", "hangup", "emergency"]
    assert Stage.DONE.value == "done" and Stage.HUNG_UP.value == "hung_up"
    assert all(s.value == s.name.lower() for s in Stage)
