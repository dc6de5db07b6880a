"""工单 rules (pure): states and their transitions, complaint levels, deadlines, priority.

States (docs/tickets.md)::

    待派单 awaiting dispatch ──> 处理中 in progress ──> 待验收 awaiting acceptance ──> 已完成 done
                                      ^                        │
                                      └──── rejected ──────────┘  (needs a comment: the reason)

Every other move (backwards, skipping a step, staying put, leaving 已完成) is an
:class:`IllegalTransition` naming both states and the states allowed next. 已完成 is final for
people: a caller who comes back about the same matter makes a new call, hence a new ticket
(the repeat complaint rate counts those). The one way out of 已完成 is the 回访 (follow-up
call): a customer who says the matter is *not* resolved reopens it, 已完成 -> 处理中
(:data:`REOPEN`, made only with ``reopen=True`` and a reason, which the move records).

Levels and deadlines (docs/tickets.md, the complaint levels), counted from when the call came
in::

    L1  2 hours            emergency calls, and any ticket in which a danger word was heard
    L2  48 hours           default for the repair desk (gas, heat or water not working)
    L3  4 working days     default for complaints and billing, and for a desk not listed
    L4  7 working days     default for consultation (information requests)

The per-desk defaults are the setting ``tickets.desk_levels`` (``tickets.default_level`` for
other desks). Hours are clock hours. Working days follow the civil-code rule for periods
(民法典 第二百零一条、第二百零三条): the day the call came in is not counted, and the period
ends at 24:00 (local time, ``tickets.timezone``) of the last working day. Saturdays and Sundays
are off, ``tickets.holidays`` are off, ``tickets.workdays`` (调休, make-up working days) are
worked. So a complaint on Monday 10:00 is due by the end of Friday; one on Friday 16:00 by the
end of the next Thursday.

A level only ever moves up (towards L1), never down: a danger word heard later in the
transcript makes the ticket L1 and pulls its deadline in to 2 hours after the call; an
earlier deadline is never pushed back.

Priority (higher = more urgent): emergency 100; otherwise by level L1 80, L2 60, L3 40, L4 20;
a danger word lifts it to at least ``stt.danger_priority`` (90 by default).

Overdue: not 已完成 and now past the deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from ivr.errors import HotlineError


class TicketState(enum.StrEnum):
    awaiting_dispatch = "待派单"  # opened for a call, nobody assigned yet
    in_progress = "处理中"  # dispatched: someone works on it
    awaiting_acceptance = "待验收"  # reported done, waiting for a supervisor to accept
    done = "已完成"  # accepted: closed for good


class Level(enum.StrEnum):
    L1 = "L1"  # 2 hours
    L2 = "L2"  # 48 hours
    L3 = "L3"  # 4 working days
    L4 = "L4"  # 7 working days


TRANSITIONS: Final[Mapping[TicketState, tuple[TicketState, ...]]] = {
    TicketState.awaiting_dispatch: (TicketState.in_progress,),
    TicketState.in_progress: (TicketState.awaiting_acceptance,),
    TicketState.awaiting_acceptance: (TicketState.done, TicketState.in_progress),
    TicketState.done: (),
}
REJECTION: Final = (TicketState.awaiting_acceptance, TicketState.in_progress)
# A consultation the agent answered on the call: its record closes it at once (the one move
# that skips states, made only by saving the agent's record with the outcome "resolved").
RESOLVED_ON_CALL: Final = (TicketState.awaiting_dispatch, TicketState.done)
# The 回访 found the matter not resolved: the ticket is worked on again (needs the reason).
REOPEN: Final = (TicketState.done, TicketState.in_progress)

LEVEL_HOURS: Final[Mapping[Level, int]] = {Level.L1: 2, Level.L2: 48}
LEVEL_WORKING_DAYS: Final[Mapping[Level, int]] = {Level.L3: 4, Level.L4: 7}
LEVEL_PRIORITY: Final[Mapping[Level, int]] = {
    Level.L1: 80,
    Level.L2: 60,
    Level.L3: 40,
    Level.L4: 20,
}
EMERGENCY_PRIORITY: Final = 100


class IllegalTransition(HotlineError):
    """A move the state machine does not allow (HTTP 409)."""

    slug = "illegal-transition"
    status = 409


class InvalidTicketInput(HotlineError):
    """A ticket request that cannot be carried out as given (HTTP 422)."""

    slug = "invalid-ticket-request"
    status = 422


# --- states -----------------------------------------------------------------------------------
def allowed_next(state: TicketState) -> tuple[TicketState, ...]:
    """The states a ticket in ``state`` may move to."""
    return TRANSITIONS[state]


def check_transition(
    current: TicketState,
    to: TicketState,
    comment: str = "",
    *,
    resolved_on_call: bool = False,
    reopen: bool = False,
) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> to`` is allowed
    (``resolved_on_call``: the agent's record closes a consultation, 待派单 -> 已完成;
    ``reopen``: the 回访 found it not resolved, 已完成 -> 处理中, with the reason as comment).

    >>> check_transition(TicketState.awaiting_dispatch, TicketState.done)
    Traceback (most recent call last):
    ...
    ivr.core.tickets.IllegalTransition: 待派单 -> 已完成 is not allowed; from 待派单 only: 处理中
    """
    allowed = TRANSITIONS[current]
    if resolved_on_call and (current, to) == RESOLVED_ON_CALL:
        return
    if reopen and (current, to) == REOPEN:
        if not comment.strip():
            raise InvalidTicketInput("reopening a ticket needs the reason", current=current.value)
        return
    if to not in allowed:
        after = ", ".join(s.value for s in allowed) or "none (已完成 is final)"
        raise IllegalTransition(
            f"{current.value} -> {to.value} is not allowed; from {current.value} only: {after}",
            current=current.value,
            to=to.value,
            allowed=[s.value for s in allowed],
        )
    if (current, to) == REJECTION and not comment.strip():
        raise InvalidTicketInput(
            f"{current.value} -> {to.value} sends the work back: say why in the comment",
            current=current.value,
            to=to.value,
        )


def parse_state(value: str) -> TicketState:
    """A state from its Chinese name or its English member name (``in_progress``)."""
    for state in TicketState:
        if value in (state.value, state.name):
            return state
    names = ", ".join(f"{s.value} ({s.name})" for s in TicketState)
    raise InvalidTicketInput(f"unknown ticket state {value!r}; states: {names}", state=value)


OPEN: Final = "open"  # in filters: every state but 已完成


def parse_states(values: Collection[str]) -> frozenset[TicketState]:
    """States named in a filter: names as :func:`parse_state`, or ``open`` (not done)."""
    wanted: set[TicketState] = set()
    for value in values:
        if value == OPEN:
            wanted |= set(TicketState) - {TicketState.done}
        else:
            wanted.add(parse_state(value))
    return frozenset(wanted)


def is_overdue(state: TicketState, deadline_at: datetime | None, now: datetime) -> bool:
    """Not done and past its deadline (a ticket with no deadline is never overdue)."""
    return state is not TicketState.done and deadline_at is not None and now > deadline_at


# --- levels -----------------------------------------------------------------------------------
def more_urgent(a: Level, b: Level) -> Level:
    """The more urgent of two levels (L1 is the most urgent)."""
    return min(a, b, key=lambda level: level.value)


def level_for(
    *,
    desk: str | None,
    emergency: bool,
    danger: bool,
    desk_levels: Mapping[str, str],
    default_level: str,
) -> Level:
    """The level a new ticket gets from its call's facts (see the module docstring)."""
    if emergency or danger:
        return Level.L1
    return Level(desk_levels.get(desk, default_level) if desk is not None else default_level)


def priority_for(level: Level, *, emergency: bool, danger: bool, danger_priority: int) -> int:
    base = EMERGENCY_PRIORITY if emergency else LEVEL_PRIORITY[level]
    return max(base, danger_priority) if danger else base


REOPEN_PRIORITY_STEP: Final = 20  # one level's worth (L4 20 -> L3 40 ...)


def reopened_priority(priority: int) -> int:
    """A ticket the 回访 reopened is more urgent than it was: one level up, at most that of an
    emergency.

    >>> reopened_priority(40), reopened_priority(90)
    (60, 100)
    """
    return min(EMERGENCY_PRIORITY, priority + REOPEN_PRIORITY_STEP)


# --- deadlines --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Calendar:
    """Which local days are worked: Monday to Friday, minus holidays, plus make-up days."""

    zone: tzinfo
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    @classmethod
    def of(
        cls, zone: tzinfo, holidays: Collection[date] = (), workdays: Collection[date] = ()
    ) -> Calendar:
        both = sorted(set(holidays) & set(workdays))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"a day cannot be both a holiday and a make-up workday: {days}")
        return cls(zone, frozenset(holidays), frozenset(workdays))

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start`` (``start`` itself not counted)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        day, found = start, 0
        while found < count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
        return day

    def end_of_day(self, day: date) -> datetime:
        """24:00 local of ``day``, i.e. the next day's local midnight (an aware datetime)."""
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)


def deadline(level: Level, opened_at: datetime, calendar: Calendar) -> datetime:
    """When a ticket of ``level`` opened at ``opened_at`` (aware) must be done, in UTC."""
    if opened_at.tzinfo is None:
        raise ValueError("opened_at must be timezone-aware")
    if level in LEVEL_HOURS:
        # in UTC: adding to a local time would add wall-clock hours across a DST change
        return opened_at.astimezone(UTC) + timedelta(hours=LEVEL_HOURS[level])
    local_day = opened_at.astimezone(calendar.zone).date()
    last = calendar.add_working_days(local_day, LEVEL_WORKING_DAYS[level])
    return calendar.end_of_day(last).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Escalation:
    """A ticket's level, deadline and priority after what was heard in its transcript."""

    level: Level
    deadline_at: datetime
    priority: int
    danger: bool


def escalate_for_danger(
    *,
    level: Level | None,
    deadline_at: datetime | None,
    priority: int,
    opened_at: datetime,
    calendar: Calendar,
    danger_priority: int,
) -> Escalation:
    """A danger word was heard: L1, deadline at most 2 h after the call, priority raised.

    Never moves anything down: a deadline already earlier stays, a higher priority stays.
    """
    new_level = Level.L1 if level is None else more_urgent(level, Level.L1)
    due = deadline(Level.L1, opened_at, calendar)
    if deadline_at is not None:
        due = min(due, deadline_at)
    return Escalation(new_level, due, max(priority, danger_priority), True)
