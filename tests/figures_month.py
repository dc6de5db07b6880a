"""The synthetic month (November 2026, Asia/Shanghai) with a known answer for every figure.

Shared by the pure test (tests/unit/test_figures.py) and the SQL test
(tests/integration/test_call_facts.py). The calls are real AMI event sequences folded
through the answer-rate reducer (:mod:`ivr.core.metrics`), so the 60.0 s / 60.5 s boundary
is the reducer's, to the microsecond. Every boundary of the issue is in it:

- a wait of exactly 60.0 s (answered) and one of 60.5 s (answered late);
- an abandon after 3 s (a short abandon) and one after exactly 5.0 s (not short);
- an emergency call answered at 15.0 s (in time) and one at 16 s (late);
- a call on the last minute of the month (in) and one just after midnight (out);
- a complaint replied one minute before its deadline, one a minute after, one at it;
- a repeat complaint on the last day of the month (counted) and one on the day after (not);
- a survey with no answer; a ticket answered by both the survey and a follow-up (the
  follow-up counts, once); a survey answer submitted twice (counted once);
- a key-account complaint;
- follow-ups with known answers: reached and resolved (6, 10, 12, 15), reached and not
  resolved (5: dissatisfied, where its survey said satisfied), called three times and never
  reached (8), refused (13), and reached with no satisfaction key (12, 15); a new-supply
  case (15, problem type 报装).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ivr.core.figures import (
    AgentShift,
    AnswerSource,
    CallFact,
    FollowUp,
    SatisfactionAnswer,
    SpotCheck,
    TicketFact,
    TicketKind,
    Window,
    fact_of,
)
from ivr.core.metrics import CallClassified, MetricsConfig, MetricsState, apply

TZ = ZoneInfo("Asia/Shanghai")
MONTH = Window(datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ))
CONFIG = MetricsConfig(thresholds={"emergency": 15.0, "emergency-backup": 15.0})


def local(day: int, hour: int = 10, minute: int = 0, second: float = 0.0, month: int = 11) -> float:
    at = datetime(2026, month, day, hour, minute, tzinfo=TZ) + timedelta(seconds=second)
    return at.timestamp()


def _events(
    linkedid: str,
    start: float,
    queue: str | None,
    wait: float = 0.0,
    *,
    member: str | None = None,
    talk: int | None = None,
    status: str | None = None,
) -> list[dict[str, str]]:
    """One call: Newchannel, (join, then answer by ``member`` or leave), Hangup."""
    ch = {"Linkedid": linkedid, "Uniqueid": linkedid, "CallerIDNum": "13800138000"}

    def at(seconds: float) -> str:
        return f"{start + seconds:.6f}"

    events = [{"Event": "Newchannel", "Timestamp": at(0), **ch}]
    if queue is None:
        return [*events, {"Event": "Hangup", "Timestamp": at(20), **ch}]
    events.append({"Event": "QueueCallerJoin", "Queue": queue, "Timestamp": at(5), **ch})
    end = 5 + wait
    if member is not None:
        agent = {"Queue": queue, "MemberName": member, "Interface": f"PJSIP/{member[:4]}"}
        events += [
            {"Event": "QueueCallerLeave", "Queue": queue, "Timestamp": at(end), **ch},
            {"Event": "AgentConnect", "Timestamp": at(end), **agent, **ch},
        ]
        if talk is not None:
            done = {"Event": "AgentComplete", "TalkTime": str(talk), **agent, **ch}
            events.append({**done, "Timestamp": at(end + talk)})
        end += talk or 30
    else:
        events += [
            {"Event": "QueueCallerAbandon", "Queue": queue, "Timestamp": at(end), **ch},
            {"Event": "QueueCallerLeave", "Queue": queue, "Timestamp": at(end), **ch},
        ]
        if status is not None:
            var = {"Event": "VarSet", "Variable": "QUEUESTATUS", "Value": status}
            events.append({**var, "Timestamp": at(end), **ch})
    return [*events, {"Event": "Hangup", "Timestamp": at(end + 1), **ch}]


ZHANG, LI = "1001 张三", "1002 李四"

#: (linkedid, start, queue, wait, member, talk, QUEUESTATUS)
_CALLS: list[tuple[str, float, str | None, float, str | None, int | None, str | None]] = [
    ("a60", local(3), "repair", 60.0, ZHANG, 120, None),  # exactly 60.0 s: answered
    ("a605", local(3, 11), "repair", 60.5, ZHANG, 60, None),  # 60.5 s: answered late
    ("a10", local(4), "billing", 10.0, LI, 300, None),
    ("ab3", local(5), "repair", 3.0, None, None, None),  # a short abandon
    ("ab5", local(5, 11), "repair", 5.0, None, None, None),  # exactly 5.0 s: not short
    ("ab30", local(6), "billing", 30.0, None, None, None),
    ("to", local(6, 11), "billing", 45.0, None, None, "TIMEOUT"),  # let go by the queue
    ("ivr", local(7), None, 0.0, None, None, None),  # the menu only: not offered
    ("em15", local(8), "emergency", 15.0, LI, 90, None),  # emergency at 15.0 s: in time
    ("em16", local(8, 11), "emergency", 16.0, LI, None, None),  # 16 s: late, talk unknown
    # joins at 23:59:35 on the 30th: in November; the next one joins in December
    ("last", local(30, 23, 59, 30.0), "billing", 5.0, LI, 30, None),
    ("next", local(30, 23, 59, 56.0), "billing", 5.0, LI, 30, None),
]


def classified_calls() -> list[CallClassified]:
    state = MetricsState(CONFIG)
    out: list[CallClassified] = []
    for linkedid, start, queue, wait, member, talk, status in _CALLS:
        events = _events(linkedid, start, queue, wait, member=member, talk=talk, status=status)
        for event in events:
            for effect in apply(state, event, float(event["Timestamp"]))[1]:
                if isinstance(effect, CallClassified):
                    out.append(effect)
    return out


def call_facts() -> list[CallFact]:
    return [fact_of(effect) for effect in classified_calls()]


def _t(day: int, hour: int = 10, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


_C, _Q = TicketKind.consultation, TicketKind.complaint
_DUE = timedelta(days=6)

TICKETS: list[TicketFact] = [
    TicketFact(1, _C, _t(2), _t(2) + _DUE, replied_at=_t(3)),
    TicketFact(
        2, _C, _t(2, 11), _t(2, 11) + _DUE, replied_at=_t(2, 11) + _DUE + timedelta(hours=1)
    ),
    TicketFact(3, _C, _t(3), _t(3) + _DUE),  # never replied
    # opened on the last evening of November, replied in December (in time): November's
    TicketFact(4, _C, _t(30, 23), _t(30, 23) + _DUE, replied_at=_t(2, 9, month=12)),
    TicketFact(
        5,
        _Q,
        _t(5),
        _t(9),
        replied_at=_t(9) - timedelta(minutes=1),
        closed_at=_t(10),
        level="L3",
        desk="complaints",
        agent=LI,
    ),
    TicketFact(
        6,
        _Q,
        _t(5, 11),
        _t(9, 11),
        replied_at=_t(9, 11, 1),
        closed_at=_t(10),
        level="L3",
        desk="complaints",
        agent=LI,
    ),
    TicketFact(7, _Q, _t(6), _t(10), level="L3", desk="complaints"),  # never replied
    # a repeat complaint on the last day of the window: counted
    TicketFact(
        8,
        _Q,
        _t(30, 23, 59),
        _t(4, 23, 59, month=12),
        replied_at=_t(1, 9, month=12),
        closed_at=_t(2, month=12),
        level="L3",
        repeat=True,
    ),
    TicketFact(
        10,
        _Q,
        _t(12),
        _t(12, 12),
        replied_at=_t(12, 11),
        closed_at=_t(13),
        level="L1",
        key_account=True,
    ),
    TicketFact(11, _Q, _t(14), _t(18), replied_at=_t(18), level="L3"),  # at the deadline itself
    TicketFact(12, TicketKind.repair, _t(15), _t(17), replied_at=_t(15, 12), closed_at=_t(16)),
    TicketFact(13, TicketKind.repair, _t(16), _t(18), replied_at=_t(16, 12), closed_at=_t(17)),
    TicketFact(14, TicketKind.repair, _t(20), _t(22)),  # still open: no follow-up owed yet
    TicketFact(15, TicketKind.new_supply, _t(21), None, closed_at=_t(25)),
    # a repeat complaint on the day after the window: December's
    TicketFact(9, _Q, _t(1, 0, 1, month=12), _t(7, month=12), level="L3", repeat=True),
    TicketFact(20, _C, _t(1, 8, month=12), _t(7, month=12), replied_at=_t(1, 9, month=12)),
]

_S, _F = AnswerSource.survey, AnswerSource.follow_up
ANSWERS: list[SatisfactionAnswer] = [
    SatisfactionAnswer(1, _S, _t(2, 10, 5), True),
    SatisfactionAnswer(2, _S, _t(2, 11, 5), None),  # a survey with no answer
    SatisfactionAnswer(4, _S, _t(30, 23, 5), True),
    SatisfactionAnswer(5, _S, _t(5, 10, 5), True),
    SatisfactionAnswer(5, _F, _t(10, 15), False),  # the follow-up's answer counts
    SatisfactionAnswer(6, _F, _t(10, 15), True),
    SatisfactionAnswer(8, _S, _t(30, 23, 59), True),
    SatisfactionAnswer(8, _S, _t(30, 23, 59), True),  # the same answer again: counted once
    SatisfactionAnswer(10, _F, _t(13, 15), True),
    SatisfactionAnswer(11, _S, _t(14, 10, 5), None),
    SatisfactionAnswer(9, _S, _t(1, 1, month=12), True),  # December's ticket
    SatisfactionAnswer(12, _F, _t(16, 15), None),  # reached, no satisfaction key
    SatisfactionAnswer(15, _F, _t(25, 15), None),
]

FOLLOW_UPS: list[FollowUp] = [
    FollowUp(5, _t(10, 15), reached=True, resolved=False),  # not resolved: dissatisfied
    FollowUp(6, _t(10, 15), reached=True, resolved=True),
    # nobody answered three times: not a follow-up
    FollowUp(8, _t(2, 15, month=12), reached=False, attempts=3),
    FollowUp(10, _t(13, 15), reached=True, resolved=True),
    FollowUp(12, _t(16, 15), reached=True, resolved=True),
    FollowUp(13, _t(17, 15), reached=False, refused=True),  # declined: not a follow-up
    FollowUp(15, _t(25, 15), reached=True, resolved=True),
]

#: The follow-up report's known counts (ivr.core.report_tables.follow_up_summary).
FOLLOW_UP_SUMMARY: Mapping[str, Mapping[str, int]] = {
    "follow_up_complaints": {
        "owed": 4, "called": 4, "reached": 3, "resolved": 2, "not_resolved": 1, "satisfied": 2,
        "dissatisfied": 1, "refused": 0, "not_reached": 1, "not_called": 0,
    },
    "follow_up_repairs": {
        "owed": 2, "called": 2, "reached": 1, "resolved": 1, "not_resolved": 0, "satisfied": 0,
        "dissatisfied": 0, "refused": 1, "not_reached": 0, "not_called": 0,
    },
    "follow_up_new_supply": {
        "owed": 1, "called": 1, "reached": 1, "resolved": 1, "not_resolved": 0, "satisfied": 0,
        "dissatisfied": 0, "refused": 0, "not_reached": 0, "not_called": 0,
    },
}  # fmt: skip

SHIFTS: list[AgentShift] = [AgentShift(ZHANG, 1800.0), AgentShift(ZHANG, 1800.0)]

CHECKS: list[SpotCheck] = [
    SpotCheck(ZHANG, "a60", 80.0, _t(4)),
    SpotCheck(ZHANG, "a605", 90.0, _t(4)),
    SpotCheck(LI, "a10", 70.0, _t(5)),
    SpotCheck(LI, "next", 10.0, _t(1, month=12)),  # December's
]

#: The known answer: figure key -> (value, numerator ids, denominator ids).
EXPECTED: Mapping[str, tuple[float | None, tuple[str, ...], tuple[str, ...]]] = {
    "answer_rate": (
        0.4,
        ("a60", "a10", "em15", "last"),
        ("a60", "a605", "a10", "ab3", "ab5", "ab30", "to", "em15", "em16", "last"),
    ),
    "emergency_in_time": (0.5, ("em15",), ("em15", "em16")),
    "offered": (
        10.0,
        (),
        ("a60", "a605", "a10", "ab3", "ab5", "ab30", "to", "em15", "em16", "last"),
    ),
    "answered": (6.0, (), ("a60", "a605", "a10", "em15", "em16", "last")),
    "abandoned": (4.0, (), ("ab3", "ab5", "ab30", "to")),
    "short_abandons": (1.0, (), ("ab3",)),
    "wait_mean": (27.75, (), ("a60", "a605", "a10", "em15", "em16", "last")),  # 166.5 / 6
    "wait_p90": (60.5, (), ("a60", "a605", "a10", "em15", "em16", "last")),  # 6th of 6
    "handle_mean": (120.0, (), ("a60", "a605", "a10", "em15", "last")),  # 600 / 5
    "consultation_reply_rate": (0.75, ("1", "2", "4"), ("1", "2", "3", "4")),
    "complaint_reply_rate": (5 / 6, ("5", "6", "8", "10", "11"), ("5", "6", "7", "8", "10", "11")),
    "consultation_reply_timely_rate": (0.5, ("1", "4"), ("1", "2", "3", "4")),
    "complaint_reply_timely_rate": (
        4 / 6,
        ("5", "8", "10", "11"),
        ("5", "6", "7", "8", "10", "11"),
    ),
    "repeat_complaint_rate": (0.2, ("8",), ("5", "6", "7", "10", "11")),
    "consultation_satisfaction": (0.5, ("1", "4"), ("1", "2", "3", "4")),
    "complaint_satisfaction": (0.5, ("6", "8", "10"), ("5", "6", "7", "8", "10", "11")),
    "key_account_complaint_satisfaction": (1.0, ("10",), ("10",)),
    "follow_up_complaints": (0.75, ("5", "6", "10"), ("5", "6", "8", "10")),
    "follow_up_repairs": (0.5, ("12",), ("12", "13")),
    "follow_up_new_supply": (1.0, ("15",), ("15",)),
    "occupancy": (0.05, ("a60", "a605"), ()),  # 1001: 180 s talk / 3600 s logged in
    "qa_average": (85.0, (), ("a60", "a605")),  # 1001's spot checks
}
