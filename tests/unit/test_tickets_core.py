"""ivr.core.tickets: the state machine, levels, priority and deadlines (pure, no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.core import tickets as rules
from ivr.core.tickets import Calendar, IllegalTransition, InvalidTicketInput, Level, TicketState
from ivr.errors import ConfigError
from ivr.settings import load_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
PLAIN = Calendar.of(SHANGHAI)
S = TicketState
LEGAL = {
    (S.awaiting_dispatch, S.in_progress),
    (S.in_progress, S.awaiting_acceptance),
    (S.awaiting_acceptance, S.done),
    (S.awaiting_acceptance, S.in_progress),  # rejected at acceptance
}


def local(*args: int, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def end_of(day: date, zone: ZoneInfo = SHANGHAI) -> datetime:
    """24:00 local of ``day`` in UTC."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)


# --- states -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("current", "to"), sorted(LEGAL))
def test_given_legal_transition_then_accepted(current, to):
    rules.check_transition(current, to, "reason")


@pytest.mark.parametrize(("current", "to"), [p for p in itertools.product(S, S) if p not in LEGAL])
def test_given_any_other_transition_then_illegal_naming_both_states_and_the_next_ones(current, to):
    with pytest.raises(IllegalTransition) as caught:
        rules.check_transition(current, to, "reason")

    message = caught.value.message
    assert f"{current.value} -> {to.value} is not allowed" in message
    allowed = rules.allowed_next(current)
    assert caught.value.details["allowed"] == [s.value for s in allowed]
    assert caught.value.status == 409
    if allowed:
        assert message.endswith(", ".join(s.value for s in allowed))
    else:
        assert "已完成 is final" in message


def test_given_rejection_at_acceptance_without_reason_then_refused():
    with pytest.raises(InvalidTicketInput, match="say why"):
        rules.check_transition(S.awaiting_acceptance, S.in_progress, "  ")
    rules.check_transition(S.awaiting_acceptance, S.done, "")  # accepting needs no comment


def test_given_the_followup_found_it_not_resolved_then_done_reopens_with_a_reason_only():
    rules.check_transition(S.done, S.in_progress, "回访: not resolved", reopen=True)
    with pytest.raises(InvalidTicketInput, match="reason"):
        rules.check_transition(S.done, S.in_progress, " ", reopen=True)
    with pytest.raises(IllegalTransition):
        rules.check_transition(S.done, S.in_progress, "people cannot reopen")
    for other in (S.awaiting_dispatch, S.awaiting_acceptance, S.done):
        with pytest.raises(IllegalTransition):
            rules.check_transition(S.done, other, "only to 处理中", reopen=True)


def test_given_state_names_then_parsed_in_chinese_or_english():
    assert rules.parse_state("处理中") is S.in_progress
    assert rules.parse_state("awaiting_acceptance") is S.awaiting_acceptance
    with pytest.raises(InvalidTicketInput, match="待派单 \\(awaiting_dispatch\\)"):
        rules.parse_state("closed")


def test_given_filter_names_then_states_with_open_meaning_not_done():
    assert rules.parse_states([]) == frozenset()
    assert rules.parse_states(["open"]) == {S.awaiting_dispatch, S.in_progress,
                                            S.awaiting_acceptance}  # fmt: skip
    assert rules.parse_states(["open", "done"]) == set(S)
    assert rules.parse_states(["已完成", "done"]) == {S.done}
    with pytest.raises(InvalidTicketInput, match="'opened'"):
        rules.parse_states(["opened"])


def test_given_done_is_final_then_nothing_follows_it():
    assert rules.allowed_next(S.done) == ()


# --- overdue ----------------------------------------------------------------------------------
def test_given_deadline_then_overdue_only_strictly_after_it_and_never_when_done():
    due = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)
    tick = timedelta(microseconds=1)

    assert not rules.is_overdue(S.in_progress, due, due)
    assert rules.is_overdue(S.in_progress, due, due + tick)
    assert rules.is_overdue(S.awaiting_dispatch, due, due + tick)
    assert rules.is_overdue(S.awaiting_acceptance, due, due + tick)
    assert not rules.is_overdue(S.done, due, due + timedelta(days=30))
    assert not rules.is_overdue(S.in_progress, None, due)


# --- levels and priority ----------------------------------------------------------------------
DESKS = {"repair": "L2", "complaints": "L3", "consultation": "L4"}


@pytest.mark.parametrize(
    ("desk", "emergency", "danger", "level"),
    [
        ("repair", False, False, Level.L2),
        ("complaints", False, False, Level.L3),
        ("consultation", False, False, Level.L4),
        ("billing", False, False, Level.L3),  # not listed: the default
        (None, False, False, Level.L3),
        ("consultation", True, False, Level.L1),
        ("consultation", False, True, Level.L1),
        ("emergency", True, True, Level.L1),
    ],
)
def test_given_call_facts_then_level(desk, emergency, danger, level):
    got = rules.level_for(
        desk=desk, emergency=emergency, danger=danger, desk_levels=DESKS, default_level="L3"
    )
    assert got is level


def test_given_level_and_flags_then_priority():
    assert [rules.priority_for(lv, emergency=False, danger=False, danger_priority=90)
            for lv in Level] == [80, 60, 40, 20]  # fmt: skip
    assert rules.priority_for(Level.L4, emergency=False, danger=True, danger_priority=90) == 90
    assert rules.priority_for(Level.L1, emergency=True, danger=False, danger_priority=90) == 100
    assert rules.priority_for(Level.L1, emergency=True, danger=True, danger_priority=90) == 100


def test_given_two_levels_then_the_more_urgent_wins():
    assert rules.more_urgent(Level.L3, Level.L1) is Level.L1
    assert rules.more_urgent(Level.L2, Level.L4) is Level.L2


# --- deadlines: hours -------------------------------------------------------------------------
def test_given_level_1_then_two_clock_hours_even_at_night_and_weekends():
    saturday_night = local(2025, 3, 8, 23, 30)
    assert rules.deadline(Level.L1, saturday_night, PLAIN) == (
        saturday_night + timedelta(hours=2)
    ).astimezone(UTC)


def test_given_level_2_then_48_clock_hours_across_a_weekend():
    friday = local(2025, 3, 7, 16, 0)
    due = rules.deadline(Level.L2, friday, PLAIN)
    assert due == local(2025, 3, 9, 16, 0).astimezone(UTC)
    assert due.tzinfo is UTC


def test_given_naive_time_then_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        rules.deadline(Level.L1, datetime(2025, 3, 3, 10), PLAIN)


# --- deadlines: working days ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("opened", "level", "last_day"),
    [
        (local(2025, 3, 3, 10, 0), Level.L3, date(2025, 3, 7)),  # Mon -> Fri
        (local(2025, 3, 3, 0, 0), Level.L3, date(2025, 3, 7)),  # the first instant of Monday
        (local(2025, 3, 2, 23, 59, 59), Level.L3, date(2025, 3, 6)),  # Sunday -> Thu
        (local(2025, 3, 7, 16, 0), Level.L3, date(2025, 3, 13)),  # Fri -> next Thu
        (local(2025, 3, 8, 9, 0), Level.L3, date(2025, 3, 13)),  # Sat -> Thu
        (local(2025, 3, 3, 10, 0), Level.L4, date(2025, 3, 12)),  # Mon -> next Wed
        (local(2025, 3, 7, 23, 59), Level.L4, date(2025, 3, 18)),  # Fri -> Tue after next
    ],
)
def test_given_working_day_level_then_due_at_24_00_of_the_last_working_day(opened, level, last_day):
    assert rules.deadline(level, opened, PLAIN) == end_of(last_day)


def test_given_utc_evening_then_the_local_day_counts():
    # Sunday 17:30 UTC is Monday 01:30 in Shanghai: a Monday complaint, due Friday
    opened = datetime(2025, 3, 2, 17, 30, tzinfo=UTC)
    assert rules.deadline(Level.L3, opened, PLAIN) == end_of(date(2025, 3, 7))
    assert rules.deadline(Level.L3, opened, PLAIN) == datetime(2025, 3, 7, 16, 0, tzinfo=UTC)


# National Day 2025: 1-8 October off, Sunday 28 September and Saturday 11 October worked.
NATIONAL_DAY = Calendar.of(
    SHANGHAI,
    holidays=[date(2025, 10, d) for d in range(1, 9)],
    workdays=[date(2025, 9, 28), date(2025, 10, 11)],
)


def test_given_holidays_then_they_are_skipped_and_make_up_days_count():
    # Tue 30 Sep: 9 Oct (1), 10 Oct (2), Sat 11 Oct make-up (3), Mon 13 Oct (4)
    assert rules.deadline(Level.L3, local(2025, 9, 30, 11, 0), NATIONAL_DAY) == end_of(
        date(2025, 10, 13)
    )
    # Sat 27 Sep: Sun 28 Sep make-up (1), 29 (2), 30 (3), 9 Oct (4)
    assert rules.deadline(Level.L3, local(2025, 9, 27, 11, 0), NATIONAL_DAY) == end_of(
        date(2025, 10, 9)
    )
    # opened on the make-up Sunday itself: that day is not counted
    assert rules.deadline(Level.L3, local(2025, 9, 28, 9, 0), NATIONAL_DAY) == end_of(
        date(2025, 10, 10)
    )
    # opened during the holiday: 9, 10, 11 (make-up), 13, 14, 15, 16
    assert rules.deadline(Level.L4, local(2025, 10, 3, 9, 0), NATIONAL_DAY) == end_of(
        date(2025, 10, 16)
    )


def test_given_calendar_then_working_days_are_weekdays_minus_holidays_plus_make_up_days():
    assert NATIONAL_DAY.is_working_day(date(2025, 9, 26))  # Friday
    assert not NATIONAL_DAY.is_working_day(date(2025, 9, 27))  # Saturday
    assert NATIONAL_DAY.is_working_day(date(2025, 9, 28))  # Sunday, make-up
    assert not NATIONAL_DAY.is_working_day(date(2025, 10, 1))  # Wednesday, holiday
    assert NATIONAL_DAY.is_working_day(date(2025, 10, 11))  # Saturday, make-up
    assert NATIONAL_DAY.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    with pytest.raises(ValueError):
        NATIONAL_DAY.add_working_days(date(2025, 9, 30), 0)


def test_given_a_day_both_holiday_and_make_up_day_then_refused():
    with pytest.raises(ValueError, match="2025-10-01"):
        Calendar.of(SHANGHAI, holidays=[date(2025, 10, 1)], workdays=[date(2025, 10, 1)])
    with pytest.raises(ConfigError, match="tickets"):
        load_settings(tickets={"holidays": ["2025-10-01"], "workdays": ["2025-10-01"]})


def test_given_shanghai_then_no_daylight_saving_the_offset_is_always_8_hours():
    for month in range(1, 13):
        opened = local(2025, month, 1, 12, 0)
        due = rules.deadline(Level.L3, opened, PLAIN)
        assert due.astimezone(SHANGHAI).utcoffset() == timedelta(hours=8)
        assert due.astimezone(SHANGHAI).time() == datetime.min.time()


def test_given_a_zone_with_daylight_saving_then_due_at_local_midnight_after_the_change():
    berlin = Calendar.of(BERLIN)
    # Fri 28 Mar 2025 (CET, +1): Mon 31 Mar .. Thu 3 Apr (CEST, +2): due 4 Apr 00:00 CEST
    due = rules.deadline(Level.L3, local(2025, 3, 28, 10, 0, zone=BERLIN), berlin)
    assert due == datetime(2025, 4, 3, 22, 0, tzinfo=UTC)
    # 2 hours are elapsed hours: 01:30 CET + 2 h = 04:30 CEST (the clock skipped 02:00-03:00)
    night = local(2025, 3, 30, 1, 30, zone=BERLIN)
    assert rules.deadline(Level.L1, night, berlin).astimezone(BERLIN) == local(
        2025, 3, 30, 4, 30, zone=BERLIN
    )


# --- escalation by danger words ---------------------------------------------------------------
OPENED = local(2025, 3, 3, 10, 0)


def test_given_danger_on_a_level_4_ticket_then_level_1_two_hours_and_danger_priority():
    step = rules.escalate_for_danger(
        level=Level.L4,
        deadline_at=rules.deadline(Level.L4, OPENED, PLAIN),
        priority=20,
        opened_at=OPENED,
        calendar=PLAIN,
        danger_priority=90,
    )
    assert step == rules.Escalation(Level.L1, OPENED + timedelta(hours=2), 90, True)


def test_given_danger_never_moves_a_deadline_later_nor_a_priority_down():
    earlier = OPENED + timedelta(minutes=20)
    step = rules.escalate_for_danger(
        level=Level.L1,
        deadline_at=earlier,
        priority=100,
        opened_at=OPENED,
        calendar=PLAIN,
        danger_priority=90,
    )
    assert (step.level, step.deadline_at, step.priority) == (Level.L1, earlier, 100)


def test_given_danger_on_a_ticket_without_level_then_level_1():
    step = rules.escalate_for_danger(
        level=None, deadline_at=None, priority=0, opened_at=OPENED, calendar=PLAIN,
        danger_priority=90,
    )  # fmt: skip
    assert (step.level, step.deadline_at, step.priority) == (
        Level.L1, OPENED + timedelta(hours=2), 90,
    )  # fmt: skip
