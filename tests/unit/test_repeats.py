"""Repeat complaints (ivr.core.repeats): window, matching, the chain's first, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.core.repeats import (
    Complaint,
    RepeatLink,
    escalated,
    find_repeat,
    in_window,
    number_key,
    window_start,
)
from ivr.core.tickets import Level

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOV1 = datetime(2026, 11, 1, 10, 0, tzinfo=SHANGHAI)


def complaint(ticket_id: int, at: datetime, **fields: object) -> Complaint:
    return Complaint(ticket_id=ticket_id, opened_at=at, **fields)  # type: ignore[arg-type]


def test_same_number_within_the_window_links_to_the_first() -> None:
    first = complaint(1, NOV1, number="13800000000", category="供暖不热")
    new = complaint(2, NOV1 + timedelta(days=3), number="138 0000 0000", category="供暖不热")
    assert find_repeat(new, [first], SHANGHAI) == RepeatLink(first=1, via=1, matched_on="number")


def test_same_account_other_number_is_a_repeat() -> None:
    first = complaint(1, NOV1, number="13800000000", account="A-1001")
    new = complaint(2, NOV1 + timedelta(days=1), number="13900000000", account=" A-1001 ")
    assert find_repeat(new, [first], SHANGHAI) == RepeatLink(first=1, via=1, matched_on="account")


def test_last_day_of_the_window_is_a_repeat_the_day_after_is_not() -> None:
    first = complaint(1, NOV1, number="13800000000")
    last_day = NOV1.replace(hour=23, minute=59) + timedelta(days=30)
    day_after = NOV1.replace(hour=0, minute=0) + timedelta(days=31)
    assert find_repeat(complaint(2, last_day, number="13800000000"), [first], SHANGHAI)
    assert find_repeat(complaint(3, day_after, number="13800000000"), [first], SHANGHAI) is None


def test_the_window_is_counted_in_the_hotlines_local_days() -> None:
    # 23:30 UTC on Dec 1 is already Dec 2 in Shanghai: 31 local days after Nov 1
    first = complaint(1, NOV1, number="1")
    new = complaint(2, datetime(2026, 12, 1, 23, 30, tzinfo=UTC), number="1")
    assert find_repeat(new, [first], SHANGHAI) is None
    assert find_repeat(new, [first], UTC) is not None


def test_a_configured_window() -> None:
    first = complaint(1, NOV1, number="1")
    new = complaint(2, NOV1 + timedelta(days=8), number="1")
    assert find_repeat(new, [first], SHANGHAI, window_days=7) is None
    assert find_repeat(new, [first], SHANGHAI, window_days=8) is not None
    with pytest.raises(ValueError):
        find_repeat(new, [first], SHANGHAI, window_days=-1)


def test_another_matter_is_not_a_repeat_an_unknown_one_is() -> None:
    first = complaint(1, NOV1, number="1", category="收费争议")
    other = complaint(2, NOV1 + timedelta(days=1), number="1", category="供暖不热")
    unknown = complaint(3, NOV1 + timedelta(days=1), number="1")
    assert find_repeat(other, [first], SHANGHAI) is None
    assert find_repeat(unknown, [first], SHANGHAI) == RepeatLink(1, 1, "number")


def test_nothing_in_common_or_empty_fields_never_match() -> None:
    first = complaint(1, NOV1, number="", account="")
    new = complaint(2, NOV1 + timedelta(days=1), number="abc", account="  ")
    assert find_repeat(new, [first], SHANGHAI) is None
    assert (
        find_repeat(
            complaint(3, NOV1 + timedelta(days=1), number="2"),
            [complaint(4, NOV1, number="1")],
            SHANGHAI,
        )
        is None
    )


def test_a_repeat_of_a_repeat_links_to_the_first_of_the_chain() -> None:
    first = complaint(1, NOV1, number="1")
    second = complaint(2, NOV1 + timedelta(days=2), number="1", repeat_of=1)
    third = complaint(3, NOV1 + timedelta(days=31), number="1")
    # the first is out of the window of the third, the second (a repeat of 1) is in it
    assert find_repeat(third, [first, second], SHANGHAI) == RepeatLink(
        first=1, via=2, matched_on="number"
    )


def test_the_oldest_match_wins_and_later_or_same_tickets_are_ignored() -> None:
    a = complaint(1, NOV1, number="1")
    b = complaint(2, NOV1 + timedelta(days=1), number="1")
    new = complaint(3, NOV1 + timedelta(days=2), number="1")
    later = complaint(4, NOV1 + timedelta(days=5), number="1")
    assert find_repeat(new, [b, later, new, a], SHANGHAI) == RepeatLink(1, 1, "number")
    assert find_repeat(a, [b, later], SHANGHAI) is None


def test_escalation_is_one_level_up_and_never_down() -> None:
    assert escalated(Level.L4) is Level.L3
    assert escalated(Level.L3) is Level.L2
    assert escalated(Level.L2) is Level.L1
    assert escalated(Level.L1) is Level.L1
    assert escalated(None) is Level.L2  # no level yet: the complaints' default L3, one up


def test_numbers_compare_by_their_digits() -> None:
    assert number_key("+86 (138) 0000-0000") == "8613800000000"
    assert number_key("ext. abc") == ""


def test_in_window_and_its_start() -> None:
    assert not in_window(NOV1, NOV1 - timedelta(seconds=1), SHANGHAI, 30)
    assert in_window(NOV1, NOV1, SHANGHAI, 0)
    start = window_start(NOV1 + timedelta(days=30), SHANGHAI, 30)
    assert start == datetime(2026, 11, 1, 0, 0, tzinfo=SHANGHAI)
    assert in_window(start, NOV1 + timedelta(days=30), SHANGHAI, 30)
