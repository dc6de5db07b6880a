"""Routing evaluation (ivr.core.routing) and the routing models' own rules: pure, no files."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ivr.core.routing import (
    area_for,
    is_open,
    local_time,
    normalize_number,
    outages_for,
    priority_for,
)
from ivr.core.routing_models import (
    DeskIn,
    Routing,
    RoutingSections,
    cross_check,
    days_of,
    defined_queue_problems,
    missing_prompts,
    parse_time_range,
    prompt_references,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*args: int, tz: ZoneInfo = SHANGHAI) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def desk(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "billing",
        "key": "2",
        "queue": "billing",
        "category": "billing",
        "label": {"zh": "缴费与费用", "en": "Billing"},
        "hours": {"mon-fri": ["08:30-12:00", "13:30-17:30"], "sat": ["09:00-12:00"]},
        "holidays": ["2027-01-01"],
        "closed_prompt": "closed-billing",
    }
    return {**base, **changes}


DATA: dict[str, Any] = {
    "hotline": {"name": "测试热线", "dids": ["95158"], "default_queue": "consultation"},
    "queues": ["consultation", "billing", "emergency"],
    "desks": [
        desk(),
        {
            "id": "consultation",
            "key": "4",
            "queue": "consultation",
            "category": "consultation",
            "label": {"zh": "咨询", "en": "Information"},
            "always_open": True,
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
        {"id": "qiaoxi", "name": "桥西区", "caller_prefixes": ["0311", "031186"]},
        {
            "id": "xinhua",
            "name": "新华区",
            "caller_prefixes": ["031183"],
            "account_prefixes": ["12", "1234"],
        },
        {"id": "yuhua", "name": "裕华区", "account_prefixes": ["123"]},
    ],
    "priority_callers": [
        {"number": "031186000001", "priority": 5, "reason": "elderly_alone"},
        {"number": "13900000001", "priority": 3, "reason": "key_account"},
    ],
    "outages": [
        {
            "area": "qiaoxi",
            "starts": "2026-11-26T08:00",
            "ends": "2026-11-26T18:00",
            "announce_from": "2026-11-24T00:00",
            "prompt": "outage-heating",
        },
        {
            "area": "qiaoxi",
            "starts": "2026-11-25T00:00:00+00:00",  # aware: 08:00 in Shanghai
            "ends": "2026-11-27T00:00:00+00:00",
            "prompt": "outage-water",
        },
        {
            "area": "xinhua",
            "starts": "2026-11-26T08:00",
            "ends": "2026-11-26T18:00",
            "prompt": "outage-gas",
        },
    ],
}
ROUTING = Routing.model_validate(DATA)
BILLING = ROUTING.desk("billing")


def changed(path: str, value: Any) -> dict[str, Any]:
    """DATA with one value replaced; path like "desks.0.key" or "hotline.person_key"."""
    data = copy.deepcopy(DATA)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.where, p.message) for p in cross_check(RoutingSections.model_validate(data))]


# --- time and hours ------------------------------------------------------------------------
def test_given_epoch_when_local_time_then_in_shanghai_time():
    assert local_time(0.0, "Asia/Shanghai").isoformat() == "1970-01-01T08:00:00+08:00"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(2026, 11, 25, 8, 29), False),  # Wednesday, before opening
        (at(2026, 11, 25, 8, 30), True),  # opening minute
        (at(2026, 11, 25, 11, 59), True),
        (at(2026, 11, 25, 12, 0), False),  # lunch: the end is exclusive
        (at(2026, 11, 25, 13, 30), True),
        (at(2026, 11, 25, 17, 29), True),
        (at(2026, 11, 25, 17, 30), False),
        (at(2026, 11, 28, 10, 0), True),  # Saturday: its own hours
        (at(2026, 11, 28, 13, 0), False),
        (at(2026, 11, 29, 10, 0), False),  # Sunday: no hours
        (at(2027, 1, 1, 10, 0), False),  # a Friday, but a holiday
        (at(2026, 11, 25, 2, 0, tz=ZoneInfo("UTC")), True),  # 10:00 in Shanghai
        (at(2026, 11, 25, 10, 0, tz=ZoneInfo("UTC")), False),  # 18:00 in Shanghai
    ],
)
def test_given_desk_hours_when_is_open_then_evaluated_in_shanghai_time(moment, expected):
    assert is_open(ROUTING, BILLING, moment) is expected


def test_given_always_open_desk_when_is_open_then_true_at_any_time():
    consultation = ROUTING.desk("consultation")

    assert all(is_open(ROUTING, consultation, at(2027, 1, 1, h, 0)) for h in range(24))


def test_given_desk_time_zone_when_is_open_then_that_zone_used():
    data = changed("desks.0", desk(timezone="Europe/London"))
    routing = Routing.model_validate(data)

    assert is_open(routing, routing.desk("billing"), at(2026, 11, 25, 9, 0, tz=ZoneInfo("UTC")))
    assert not is_open(routing, routing.desk("billing"), at(2026, 11, 25, 9, 0))


def test_given_hotline_time_zone_when_is_open_then_used_for_desks_without_one():
    routing = Routing.model_validate(changed("hotline.timezone", "Europe/Berlin"))
    moment = at(2026, 11, 25, 11, 0, tz=ZoneInfo("Europe/Berlin"))  # 18:00 in Shanghai

    assert is_open(routing, routing.desk("billing"), moment)
    assert not is_open(ROUTING, BILLING, moment)


# --- numbers, priority, areas --------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("013800138000", "13800138000"),
        ("+86 311 8600 1234", "031186001234"),
        ("+86 (0311) 8600-1234", "031186001234"),
        ("0311-86001234", "031186001234"),
        ("86001234", "86001234"),  # a local number starting with 86 is left alone
        ("+14155550100", "+14155550100"),
        ("anonymous", ""),
        ("", ""),
    ],
)
def test_given_caller_id_when_normalized_then_national_digits(raw, expected):
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    ("caller", "priority"),
    [
        ("031186000001", 5),
        ("+86 311 8600 0001", 5),
        ("+8613900000001", 3),
        ("13800138000", 0),
        ("", 0),
        ("9" * 500, 0),
    ],
)
def test_given_caller_when_priority_for_then_from_priority_callers_else_zero(caller, priority):
    assert priority_for(ROUTING, caller) == priority


@pytest.mark.parametrize(
    ("caller", "account", "area"),
    [
        ("031186001234", "", "qiaoxi"),  # longest caller prefix
        ("031183001234", "", "xinhua"),  # longer than qiaoxi's 0311
        ("031199001234", "", "qiaoxi"),  # only 0311 matches
        ("+86 311 8300 1234", "", "xinhua"),  # normalised first
        ("13800138000", "", None),  # mobiles carry no area
        ("13800138000", "12999999", "xinhua"),  # by account
        ("13800138000", "12399999", "yuhua"),  # longest account prefix: 123 over 12
        ("13800138000", "12345678", "xinhua"),  # 1234 over 123
        ("031186001234", "12000000", "xinhua"),  # the account wins over the number
        ("031186001234", "99999999", "qiaoxi"),  # unknown account: the number
        ("", "", None),
    ],
)
def test_given_caller_and_account_when_area_for_then_longest_prefix(caller, account, area):
    assert area_for(ROUTING, caller=caller, account=account) == area


# --- outages --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("area", "moment", "prompts"),
    [
        ("qiaoxi", at(2026, 11, 23, 23, 59), []),  # before anything is announced
        ("qiaoxi", at(2026, 11, 24, 0, 0), ["outage-heating"]),  # announced ahead
        ("qiaoxi", at(2026, 11, 25, 8, 0), ["outage-water", "outage-heating"]),  # by start
        ("qiaoxi", at(2026, 11, 26, 17, 59), ["outage-water", "outage-heating"]),
        ("qiaoxi", at(2026, 11, 26, 18, 0), ["outage-water"]),  # the end is exclusive
        ("qiaoxi", at(2026, 11, 27, 8, 0), []),
        ("xinhua", at(2026, 11, 26, 7, 59), []),  # no announce_from: from the start
        ("xinhua", at(2026, 11, 26, 8, 0), ["outage-gas"]),
        ("yuhua", at(2026, 11, 26, 9, 0), []),
        (None, at(2026, 11, 26, 9, 0), []),
    ],
)
def test_given_area_and_time_when_outages_for_then_active_notices_earliest_first(
    area, moment, prompts
):
    assert [o.prompt for o in outages_for(ROUTING, area, moment)] == prompts


# --- model rules: hours, desks ------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "days"),
    [("mon", ("mon",)), ("mon-wed", ("mon", "tue", "wed")), ("daily", days_of("mon-sun"))],
)
def test_given_day_spec_when_parsed_then_weekdays(spec, days):
    assert days_of(spec) == days


@pytest.mark.parametrize("spec", ["monday", "fri-mon", "mon-", "Mon", "", "mon-fri-sat"])
def test_given_bad_day_spec_when_parsed_then_value_error(spec):
    with pytest.raises(ValueError):
        days_of(spec)


def test_given_time_range_when_parsed_then_minutes():
    assert parse_time_range("08:30-17:30") == (510, 1050)
    assert parse_time_range("00:00-24:00") == (0, 1440)


def test_given_hours_by_ranges_when_validated_then_one_entry_per_weekday():
    model = DeskIn.model_validate(
        desk(hours={"sat": ["13:00-15:00", "09:00-12:00"], "mon-tue": ["08:00-09:00"]})
    )

    assert model.hours == {
        "mon": ["08:00-09:00"],
        "tue": ["08:00-09:00"],
        "sat": ["09:00-12:00", "13:00-15:00"],
    }
    assert DeskIn.model_validate(model.model_dump()) == model  # the loader re-validates


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hours": {"mon": ["8:30-17:30"]}}, "must be HH:MM-HH:MM"),
        ({"hours": {"mon": ["22:00-06:00"]}}, "split a range over midnight"),
        ({"hours": {"mon": ["08:00-08:00"]}}, "ends before it starts"),
        ({"hours": {"mon": ["08:00-25:00"]}}, "must be HH:MM-HH:MM"),
        ({"hours": {"mon": ["08:00-12:00", "11:00-13:00"]}}, "mon: time ranges overlap"),
        ({"hours": {"mon-fri": ["08:00-12:00"], "fri": ["13:00-14:00"]}}, "fri is given twice"),
        ({"hours": {"weekdays": ["08:00-12:00"]}}, "must be a weekday"),
        ({"hours": {}}, "a desk needs hours, or always_open"),
        ({"hours": {"mon": []}}, "a desk needs hours, or always_open"),
        ({"closed_prompt": None}, "needs a closed_prompt"),
        ({"always_open": True}, "an always_open desk has no hours"),
        ({"key": None}, "a desk needs a menu key"),
        ({"key": "#"}, "must be one of 0-9 or *"),
        ({"key": "12"}, "must be one of 0-9 or *"),
        ({"emergency": True}, "must be always_open"),
        ({"timezone": "Asia/Peking"}, "unknown time zone"),
        ({"holidays": ["2027-02-30"]}, "valid date"),
        ({"queue": "Billing Desk"}, "should match pattern"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_given_bad_desk_when_validated_then_error_says_why(changes, message):
    with pytest.raises(ValidationError, match=message):
        DeskIn.model_validate(desk(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "9"}, "has no key"),
        ({"account_entry": True}, "does not ask for an account"),
        ({"hours": {"mon": ["08:00-09:00"]}}, "no hours or holidays"),
    ],
)
def test_given_bad_emergency_desk_when_validated_then_error(changes, message):
    emergency = {**DATA["desks"][2], "key": None, **changes}

    with pytest.raises(ValidationError, match=message):
        DeskIn.model_validate(emergency)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"starts": "2026-11-26T18:00"}, "ends is not after starts"),
        ({"announce_from": "2026-11-27T00:00"}, "announce_from is after starts"),
    ],
)
def test_given_bad_outage_when_validated_then_error(changes, message):
    data = changed("outages.0", {**DATA["outages"][0], **changes})

    with pytest.raises(ValidationError, match=message):
        Routing.model_validate(data)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("hotline.account", {"min_digits": 12, "max_digits": 8}, "min_digits is above"),
        ("hotline.account", {"confirm_key": "1", "reenter_key": "1"}, "the same key"),
        ("hotline.voice_message", {"offer_key": "1", "decline_key": "1"}, "the same key"),
        ("hotline.emergency_key", 9, "valid string"),
        ("hotline.max_invalid", 0, "greater than or equal to 1"),
        ("hotline.timezone", "Mars/Olympus", "unknown time zone"),
        ("priority_callers.0", {"number": "031186000001", "priority": 10, "reason": "x"}, "less"),
    ],
)
def test_given_bad_hotline_value_when_validated_then_error(path, value, message):
    with pytest.raises(ValidationError, match=message):
        Routing.model_validate(changed(path, value))


# --- cross-references ----------------------------------------------------------------------
def test_given_consistent_sections_when_cross_checked_then_no_problem():
    assert problems_of(DATA) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("desks.0.queue", "payments", ("desks.0.queue", "'payments' is not in queues")),
        ("queues.2", "billing", ("queues.2", "'billing' is listed twice")),
        (
            "hotline.default_queue",
            "emergency",
            ("hotline.default_queue", "no desk (other than emergency) has queue 'emergency'"),
        ),
        (
            "hotline.after_hours_queue",
            "billing",
            ("hotline.after_hours_queue", "no always_open desk has queue 'billing'"),
        ),
        ("desks.0.key", "9", ("desks.0.key", "key '9' is also hotline.emergency_key")),
        ("desks.0.key", "0", ("desks.0.key", "key '0' is also hotline.person_key")),
        ("desks.0.key", "4", ("desks.1.key", "key '4' is also the key of desk 'billing'")),
        ("hotline.english_key", "0", ("hotline.english_key", "key '0' is also hotline.person_key")),
        (
            "hotline.repeat_key",
            "9",
            ("hotline.repeat_key", "key '9' is also hotline.emergency_key"),
        ),
        ("desks.1.id", "billing", ("desks.1.id", "'billing' is listed twice")),
        (
            "desks.2",
            {**DATA["desks"][2], "emergency": False, "key": "7"},
            ("desks", "no desk has emergency: true"),
        ),
        (
            "hotline.emergency_dids",
            ["95158"],
            ("hotline.emergency_dids.0", "'95158' is also a hotline DID (dids)"),
        ),
        (
            "hotline.emergency_dids",
            ["96777", "96777"],
            ("hotline.emergency_dids.1", "'96777' is listed twice"),
        ),
        (
            "areas.1.caller_prefixes",
            ["031186"],
            ("areas.1.caller_prefixes.0", "prefix '031186' is also in 'qiaoxi'"),
        ),
        (
            "areas.2.account_prefixes",
            ["12"],
            ("areas.2.account_prefixes.0", "prefix '12' is also in 'xinhua'"),
        ),
        ("areas.2.id", "qiaoxi", ("areas.2.id", "'qiaoxi' is listed twice")),
        ("outages.2.area", "changan", ("outages.2.area", "no area 'changan' in areas")),
        (
            "priority_callers.1.number",
            "031186000001",
            ("priority_callers.1.number", "'031186000001' is listed twice"),
        ),
        (
            "hotline.account",
            {"confirm_key": "9"},
            ("hotline.account.confirm_key", "key '9' is the emergency key"),
        ),
        (
            "hotline.voice_message",
            {"decline_key": "9"},
            ("hotline.voice_message.decline_key", "key '9' is the emergency key"),
        ),
    ],
)
def test_given_inconsistent_sections_when_cross_checked_then_problem_located(path, value, problem):
    assert problem in problems_of(changed(path, value))


def test_given_second_emergency_desk_when_cross_checked_then_problem_at_it():
    data = copy.deepcopy(DATA)
    data["desks"].append({**DATA["desks"][2], "id": "emergency-2"})

    assert ("desks.3.emergency", "a second emergency desk") in problems_of(data)


def test_given_inconsistent_sections_when_routing_built_then_refused():
    with pytest.raises(ValidationError, match="desks.0.queue: 'payments' is not in queues"):
        Routing.model_validate(changed("desks.0.queue", "payments"))


# --- prompts and queues the routing names ---------------------------------------------------
def test_given_routing_when_prompt_references_then_flow_desk_and_outage_prompts():
    refs = {key: loc for loc, key in prompt_references(ROUTING)}

    assert refs["greeting"] == ("hotline", "prompts", "greeting")
    assert refs["silence"] == ("hotline", "prompts", "silence")
    assert refs["digit-7"] == ("hotline", "prompts", "digit_prefix")
    assert refs["closed-billing"] == ("desks", 0, "closed_prompt")
    assert refs["outage-gas"] == ("outages", 2, "prompt")
    assert refs["survey-question"] == ("hotline", "survey", "question")
    assert len(refs) == 12 + 10 + 3 + 1 + 3  # flow, digits, survey, desks, outages


def test_given_catalog_with_every_prompt_in_both_languages_then_nothing_missing():
    every = {(key, lang) for _, key in prompt_references(ROUTING) for lang in ("zh", "en")}

    assert missing_prompts(ROUTING, every) == []


def test_given_prompt_missing_in_english_when_checked_then_problem_names_use_and_language():
    every = {(key, lang) for _, key in prompt_references(ROUTING) for lang in ("zh", "en")}

    problems = missing_prompts(
        ROUTING, every - {("outage-gas", "en"), ("menu", "zh"), ("menu", "en")}
    )

    assert [(p.where, p.message) for p in problems] == [
        ("hotline.prompts.menu", "prompt 'menu' is not in the catalog in zh/en"),
        ("outages.2.prompt", "prompt 'outage-gas' is not in the catalog in en"),
    ]


def test_given_queues_conf_names_when_checked_then_undefined_queue_named():
    problems = defined_queue_problems(ROUTING, {"consultation", "emergency"})

    assert [(p.where, p.message) for p in problems] == [
        ("queues.1", "queue 'billing' is not defined in queues.conf")
    ]


def test_given_routing_when_lookups_then_desks_by_key_and_role():
    assert ROUTING.desk_for_key("2") == BILLING
    assert ROUTING.desk_for_key("9") is None  # the emergency key is no desk key
    assert ROUTING.desk_for_key("") is None
    assert ROUTING.person_desk().id == "consultation"
    assert ROUTING.emergency_desk().id == "emergency"
    assert ROUTING.after_hours_desk().id == "emergency"
