"""The 回访 calling policy: every rule and its boundaries, the clock an input."""

from __future__ import annotations

from datetime import datetime
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest

from ivr.core.followup import (
    BadNumber,
    FollowUp,
    FollowupConfig,
    InFlight,
    Place,
    Result,
    ToWorklist,
    Wait,
    due_at_for,
    in_calling_hours,
    next_window,
    normalise_number,
    plan,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONFIG = FollowupConfig(max_attempts=3, spacing_min=30, max_concurrent=3)
NUMBER = "13800138000"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=SHANGHAI).timestamp()


def item(fid: int = 1, ticket: int = 10, number: str = NUMBER, **kw: object) -> FollowUp:
    fields: dict[str, object] = {"created_at": at(7, 9), "due_at": at(8, 9), "desk": "repair"}
    fields.update(kw)
    return FollowUp(id=fid, ticket_id=ticket, number=number, **fields)  # type: ignore[arg-type]


# --- calling hours ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at(7, 7, 59, 59), False),
        (at(7, 8, 0, 0), True),  # the start is inside
        (at(7, 12), True),
        (at(7, 19, 59, 59), True),
        (at(7, 20, 0, 0), False),  # 20:00 exactly is outside
        (at(7, 23, 30), False),
    ],
)
def test_calling_hours_start_inclusive_end_exclusive(moment, inside):
    assert in_calling_hours(moment, CONFIG) is inside
    result = plan(moment, [item()], [], CONFIG)
    assert bool(result.place) is inside


def test_given_20_00_exactly_then_waits_until_08_00_next_day():
    [wait] = plan(at(7, 20), [item()], [], CONFIG).waiting
    assert wait == Wait(1, 10, at(8, 8), "outside calling hours")


def test_given_before_opening_then_waits_until_08_00_the_same_day():
    assert next_window(at(7, 3), CONFIG) == at(7, 8)
    assert next_window(at(7, 10), CONFIG) == at(7, 10)


def test_given_the_clock_shifted_into_the_window_then_the_waiting_call_is_placed():
    due = [item()]
    assert plan(at(7, 21), due, [], CONFIG).place == ()
    assert plan(at(8, 8), due, [], CONFIG).place == (Place(1, 10, NUMBER, 1),)


def test_calling_hours_are_configurable():
    config = FollowupConfig(hours_start=clock_time(9, 0), hours_end=clock_time(18, 0))
    assert not in_calling_hours(at(7, 8, 30), config)
    assert in_calling_hours(at(7, 17, 59), config)
    with pytest.raises(ValueError, match="start before"):
        FollowupConfig(hours_start=clock_time(20, 0), hours_end=clock_time(8, 0))


# --- attempts and spacing -------------------------------------------------------------------------
def test_given_an_attempt_m_minutes_ago_then_the_next_is_placed_exactly_then():
    last = at(7, 10)
    due = [item(attempts=1, last_attempt_at=last, last_result=Result.BUSY)]
    [wait] = plan(last + 30 * 60 - 1, due, [], CONFIG).waiting
    assert wait == Wait(1, 10, last + 30 * 60, "spacing")
    assert plan(last + 30 * 60, due, [], CONFIG).place == (Place(1, 10, NUMBER, 2),)


@pytest.mark.parametrize("result", [Result.NO_ANSWER, Result.BUSY, Result.FAILED])
def test_given_n_failed_attempts_then_the_agent_worklist(result):
    due = [item(attempts=3, last_attempt_at=at(7, 10), last_result=result)]
    outcome = plan(at(7, 15), due, [], CONFIG)
    assert outcome.worklist == (ToWorklist(1, 10, "attempts exhausted"),)
    assert outcome.place == () and outcome.waiting == ()
    assert plan(at(7, 15), [item(attempts=2, last_attempt_at=at(7, 10),
                                 last_result=result)], [], CONFIG).place  # fmt: skip


@pytest.mark.parametrize("result", [Result.ANSWERED, Result.REFUSED])
def test_given_a_final_result_then_finished_and_never_called_again(result):
    outcome = plan(at(7, 15), [item(attempts=1, last_result=result)], [], CONFIG)
    assert outcome.finished == (1,) and outcome.place == () and outcome.worklist == ()


# --- in flight, one ticket at a time, one number at a time -----------------------------------
def test_given_the_ticket_in_flight_then_no_second_attempt():
    outcome = plan(at(7, 10), [item()], [InFlight(10, NUMBER)], CONFIG)
    assert outcome.place == () and outcome.waiting == (Wait(1, 10, None, "ticket in flight"),)


def test_given_a_ticket_closed_reopened_and_closed_again_then_one_follow_up_at_a_time():
    first = item(fid=1, created_at=at(7, 9))
    second = item(fid=2, created_at=at(7, 11), due_at=at(8, 11))
    outcome = plan(at(7, 12), [second, first], [], CONFIG)
    assert outcome.place == (Place(1, 10, NUMBER, 1),)
    assert outcome.waiting == (Wait(2, 10, None, "ticket has another follow-up"),)
    # While the first is in flight, neither is placed.
    busy = plan(at(7, 12), [second, first], [InFlight(10, NUMBER)], CONFIG)
    assert busy.place == () and {w.reason for w in busy.waiting} == {"ticket in flight"}
    # The first answered: the second is called next.
    done = item(fid=1, created_at=at(7, 9), attempts=1, last_result=Result.ANSWERED)
    after = plan(at(7, 13), [second, done], [], CONFIG)
    assert after.finished == (1,) and after.place == (Place(2, 10, NUMBER, 1),)


def test_given_two_tickets_of_one_number_then_never_dialled_twice_at_once():
    due = [item(fid=1, ticket=10), item(fid=2, ticket=11, number="+86 138 0013 8000")]
    outcome = plan(at(7, 10), due, [], CONFIG)
    assert [p.ticket_id for p in outcome.place] == [10]
    assert outcome.waiting == (Wait(2, 11, None, "number in flight"),)
    outcome = plan(at(7, 10), due[1:], [InFlight(10, NUMBER)], CONFIG)
    assert outcome.place == () and outcome.waiting[0].reason == "number in flight"


# --- the cap ------------------------------------------------------------------------------------
def test_given_a_burst_of_20_due_with_a_cap_of_3_then_3_placed_most_urgent_first():
    due = [
        item(fid=i, ticket=100 + i, number=f"1390000{i:04d}", due_at=at(8, 9) - i * 60)
        for i in range(20)
    ]
    outcome = plan(at(7, 10), due, [], CONFIG)
    assert [p.ticket_id for p in outcome.place] == [119, 118, 117]  # earliest deadlines
    assert len(outcome.waiting) == 17 and {w.reason for w in outcome.waiting} == {"cap"}
    # Two still in flight: one slot.
    in_flight = [InFlight(119, "13900000019"), InFlight(118, "13900000018")]
    rest = [d for d in due if d.ticket_id not in (119, 118)]
    assert len(plan(at(7, 10), rest, in_flight, CONFIG).place) == 1
    # Cap reached by calls in flight (even more than the cap): nothing.
    full = [InFlight(900 + i, f"1370000{i:04d}") for i in range(4)]
    assert plan(at(7, 10), due, full, CONFIG).place == ()


def test_given_a_cap_of_zero_then_nothing_is_placed():
    outcome = plan(at(7, 10), [item()], [], FollowupConfig(max_concurrent=0))
    assert outcome.place == () and outcome.waiting[0].reason == "cap"


# --- numbers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "dialled"),
    [
        ("13800138000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("0086-138-0013-8000", "13800138000"),
        ("(0311) 8765-4321", "031187654321"),
        (" 8765 4321 ", "87654321"),
        ("0311.87654321", "031187654321"),
    ],
)
def test_numbers_are_normalised(raw, dialled):
    assert normalise_number(raw) == dialled


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("138OO138000", "letters in the number"),
        ("call me", "letters in the number"),
        ("+1 415 555 0100", "a number abroad (not +86)"),
        ("138+00138000", "characters other than digits"),
        ("", "no number"),
        ("   ", "no number"),
        ("123456", "6 digits (a number has 7 to 12)"),
        ("1380013800011", "13 digits (a number has 7 to 12)"),
        ("１３８００１３８０００", "characters other than digits"),  # full-width digits
    ],
)
def test_bad_numbers_are_refused_with_a_reason(raw, reason):
    with pytest.raises(BadNumber) as caught:
        normalise_number(raw)
    assert str(caught.value) == reason


def test_given_a_bad_number_then_the_worklist_and_never_dialled():
    outcome = plan(at(7, 10), [item(number="138-OO13-8000")], [], CONFIG)
    assert outcome.worklist == (ToWorklist(1, 10, "bad number: letters in the number"),)
    assert outcome.place == ()


# --- deadlines -----------------------------------------------------------------------------------
def test_due_within_24_h_by_default_and_per_desk():
    config = FollowupConfig(due_within_h={"complaints": 12})
    assert due_at_for("repair", at(7, 9), config) == at(8, 9)
    assert due_at_for("complaints", at(7, 9), config) == at(7, 21)


def test_given_past_the_deadline_then_flagged_overdue_and_still_called():
    due = [item(due_at=at(8, 9))]
    assert plan(at(8, 9), due, [], CONFIG).overdue == frozenset()  # at the deadline: not yet
    outcome = plan(at(8, 9, 0, 1), due, [], CONFIG)
    assert outcome.overdue == frozenset({1}) and outcome.place == (Place(1, 10, NUMBER, 1),)
    # Overdue and on the worklist: still flagged.
    exhausted = [item(due_at=at(8, 9), attempts=3, last_result=Result.NO_ANSWER)]
    late = plan(at(8, 10), exhausted, [], CONFIG)
    assert late.overdue == frozenset({1}) and late.worklist


def test_given_due_while_asterisk_was_down_then_called_once_back_inside_the_hours():
    # Nothing was placed while it was down; the first plan afterwards places it, once.
    due = [item(created_at=at(7, 19), due_at=at(8, 19))]
    first = plan(at(8, 7), due, [], CONFIG)
    assert first.place == () and first.waiting[0].until == at(8, 8)
    placed = plan(at(8, 8, 5), due, [], CONFIG).place
    assert placed == (Place(1, 10, NUMBER, 1),)
    assert plan(at(8, 8, 6), due, [InFlight(10, NUMBER)], CONFIG).place == ()


def test_config_refuses_nonsense():
    with pytest.raises(ValueError):
        FollowupConfig(max_attempts=0)
