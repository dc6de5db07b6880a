"""Call-backs for abandoned callers (pure): who is owed one, and the 30-minute share."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ivr.core.callbacks import (
    Answered,
    Left,
    Owed,
    agent_device,
    owed,
    refuse_agent_call,
    share_called_back,
)
from ivr.core.followup import FollowupConfig

ZONE = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZONE).timestamp()


def left(caller: str, when: float, klass: str = "abandoned", wait: float = 40.0) -> Left:
    return Left(f"L{when}", caller, "repair", klass, wait, when - wait, when)


def test_abandoned_and_timed_out_with_a_known_number_are_owed_with_wait_and_when() -> None:
    calls = [
        left("13800138000", at(7, 10), wait=75.0),
        left("13900139000", at(7, 11), klass="timed_out", wait=300.0),
        left("", at(7, 12)),  # no number
        left("anonymous", at(7, 12, 5)),  # letters: not dialled
        left("13700137000", at(7, 12, 10), klass="answered"),  # not let go
    ]
    got = owed(calls, [], ZONE)
    assert [(e.number, e.klass, e.wait_s, e.left_at) for e in got] == [
        ("13800138000", "abandoned", 75.0, at(7, 10)),
        ("13900139000", "timed_out", 300.0, at(7, 11)),
    ]


def test_a_later_call_that_got_through_the_same_day_removes_the_entry_only_that_day() -> None:
    calls = [left("+86 138 0013 8000", at(7, 10)), left("13800138000", at(8, 9))]
    through = [Answered("13800138000", at(7, 15)), Answered("13800138000", at(8, 8))]
    got = owed(calls, through, ZONE)
    assert [e.left_at for e in got] == [at(8, 9)]  # day 8: got through before, not after


def test_one_entry_per_number_and_day_the_latest_call_counted() -> None:
    calls = [left("13800138000", at(7, 10)), left("138-0013-8000", at(7, 10, 30), wait=90.0)]
    (entry,) = owed(calls, [], ZONE)
    assert (entry.calls, entry.wait_s, entry.left_at) == (2, 90.0, at(7, 10, 30))


def test_the_share_called_back_within_30_minutes() -> None:
    entries = [
        Owed("13800138000", "a", "repair", "abandoned", 10.0, 0.0, at(7, 10), 1),
        Owed("13900139000", "b", "repair", "abandoned", 10.0, 0.0, at(7, 10), 1),
        Owed("13700137000", "c", "repair", "abandoned", 10.0, 0.0, at(7, 10), 1),
    ]
    callbacks = [
        Answered("13800138000", at(7, 10, 30)),  # exactly 30 min: counted
        Answered("13900139000", at(7, 10, 31)),  # late
        Answered("13700137000", at(7, 9, 59)),  # before it left: not a call-back of it
    ]
    share = share_called_back(entries, callbacks)
    assert (share.called_back, share.owed) == (1, 3)
    assert share_called_back([], callbacks).rate is None


def test_an_agent_call_is_refused_for_unknown_busy_numbers_waiting_callers_and_late_hours() -> None:
    day = FollowupConfig()  # 08:00-20:00 Shanghai
    ok = {"number": "13800138000", "known": {"13800138000"}, "in_flight": set(),
          "waiting_queues": set(), "agent_queues": {"repair"}, "now": at(7, 10),
          "config": day}  # fmt: skip
    assert refuse_agent_call(**ok) is None  # type: ignore[arg-type]
    cases = {
        "number": ("13900139000", "not a number of the worklist or the call-back list"),
        "in_flight": ({"13800138000"}, "this number is being called already"),
        "waiting_queues": ({"repair", "billing"}, "callers are waiting in repair: they come first"),
        "now": (at(7, 20), "outside the calling hours"),
    }
    for field, (value, reason) in cases.items():
        assert refuse_agent_call(**{**ok, field: value}) == reason, field  # type: ignore[arg-type]
    assert agent_device("1001", "desk") == "PJSIP/1001"
    assert agent_device("1001", "browser") == "PJSIP/1001-webrtc"
