"""回访 (follow-up within 24 h): which outbound calls to place now. Pure: the clock is an input.

:func:`plan` takes the moment (epoch seconds), the follow-ups that are due, the outbound calls
in flight and the configuration, and returns what to do with each follow-up: place a call
now, wait (until when, and why), or hand it to the agent worklist (and why); follow-ups past
their deadline are flagged ``overdue`` whatever else happens to them. Nothing here places a
call: the outbound adapter does, and feeds the results back as the next ``FollowUp`` rows.

The rules, in the order they are applied to each follow-up:

1. A follow-up whose last result is final (``answered``: the callee went through the
   questions; ``refused``: the callee declined) is finished: nothing more.
2. Its number is normalised (:func:`normalise_number`); a number that cannot be dialled goes
   to the worklist (``bad number``), never guessed at.
3. After ``max_attempts`` attempts without a final result (no answer, busy, failed) it goes to
   the worklist (``attempts exhausted``): an agent calls from their own phone.
4. Never two attempts in flight for one ticket (``ticket in flight``), nor two follow-ups of
   one ticket at a time (a ticket closed, reopened and closed again has two: the earliest is
   called, the other waits, ``ticket has another follow-up``), nor two calls to one number at
   once (``number in flight``).
5. Attempts are ``spacing_min`` minutes apart (``spacing``, until the last attempt + M).
6. Only within the calling hours (local time, start inclusive, end exclusive: 20:00 exactly is
   outside): else ``outside calling hours``, until the next window opens.
7. Never more calls in flight than ``max_concurrent``: the most urgent (earliest deadline,
   then lowest ticket id) are placed, the others wait (``cap``) until a call ends.

A follow-up is ``overdue`` once the moment is past its deadline (``due_at``: created + the
desk's ``due_within_h``, default 24 h, :func:`due_at_for`): it is still called, and flagged.
A follow-up that fell due while Asterisk (or this service) was down is simply due at the next
:func:`plan`, inside the calling hours: nothing is lost, nothing is called twice.

>>> from datetime import datetime
>>> from zoneinfo import ZoneInfo
>>> at = lambda h, m=0: datetime(2026, 12, 7, h, m, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
>>> item = FollowUp(id=1, ticket_id=7, number="+86 138 0013 8000", desk="repair",
...                 created_at=at(9), due_at=at(9) + 86400)
>>> plan(at(10), [item], [], FollowupConfig()).place
(Place(followup_id=1, ticket_id=7, number='13800138000', attempt=1),)
>>> plan(at(20), [item], [], FollowupConfig()).waiting[0].reason
'outside calling hours'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from enum import StrEnum
from zoneinfo import ZoneInfo


class Result(StrEnum):
    """What an outbound attempt ended in (the adapter's reading of the call)."""

    ANSWERED = "answered"  # the callee went through the questions: final
    REFUSED = "refused"  # the callee declined the follow-up: final
    NO_ANSWER = "no answer"
    BUSY = "busy"
    FAILED = "failed"  # the trunk refused, congestion, a network error


FINAL = frozenset({Result.ANSWERED, Result.REFUSED})


@dataclass(frozen=True, slots=True)
class FollowupConfig:
    timezone: str = "Asia/Shanghai"
    hours_start: clock_time = clock_time(8, 0)  # calling hours, local: start inclusive ...
    hours_end: clock_time = clock_time(20, 0)  # ... end exclusive
    max_attempts: int = 3  # N: then the agent worklist
    spacing_min: int = 30  # M: minutes between two attempts of one follow-up
    max_concurrent: int = 3  # outbound calls in flight at once
    due_within_h: Mapping[str, int] = field(default_factory=dict)  # per desk; default 24
    default_due_within_h: int = 24

    def __post_init__(self) -> None:
        if not self.hours_start < self.hours_end:
            raise ValueError("calling hours must start before they end (same day)")
        if self.max_attempts < 1 or self.spacing_min < 0 or self.max_concurrent < 0:
            raise ValueError("max_attempts >= 1, spacing_min >= 0, max_concurrent >= 0")


@dataclass(frozen=True, slots=True)
class FollowUp:
    """One follow-up that is due: its ticket, the number as the ticket has it, and its past."""

    id: int  # the follow-up's own id (a ticket closed twice has two)
    ticket_id: int
    number: str
    desk: str
    created_at: float  # epoch seconds: when the ticket reached 已完成 (or was replied to)
    due_at: float  # the deadline (due_at_for)
    attempts: int = 0
    last_attempt_at: float | None = None
    last_result: Result | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    """An outbound call placed and not yet ended."""

    ticket_id: int
    number: str  # normalised


@dataclass(frozen=True, slots=True)
class Place:
    followup_id: int
    ticket_id: int
    number: str  # normalised: digits only
    attempt: int  # 1 for the first


@dataclass(frozen=True, slots=True)
class Wait:
    followup_id: int
    ticket_id: int
    until: float | None  # epoch seconds; None: until a call in flight ends
    reason: str


@dataclass(frozen=True, slots=True)
class ToWorklist:
    followup_id: int
    ticket_id: int
    reason: str  # "attempts exhausted" or "bad number: ..."


@dataclass(frozen=True, slots=True)
class Plan:
    place: tuple[Place, ...] = ()
    waiting: tuple[Wait, ...] = ()
    worklist: tuple[ToWorklist, ...] = ()
    finished: tuple[int, ...] = ()  # follow-up ids with a final result
    overdue: frozenset[int] = frozenset()  # follow-up ids past their deadline


class BadNumber(ValueError):
    """A number that cannot be dialled (its reason is the message)."""


_SEPARATORS = re.compile(r"[\s\-().·]")
MIN_DIGITS, MAX_DIGITS = 7, 12  # a local landline (7-8) up to 0 + area code + number (12)


def normalise_number(raw: str) -> str:
    """The number to dial: digits only, in the national format. Spaces, hyphens, dots and
    brackets are dropped; a leading ``+86`` or ``0086`` (China) is dropped too. Refused
    (:class:`BadNumber`): letters (never guessed from a keypad), ``+`` with another country
    code or anywhere but the start, and fewer than 7 or more than 12 digits.

    >>> normalise_number("+86 138-0013-8000"), normalise_number("(0311) 8765 4321")
    ('13800138000', '031187654321')
    >>> normalise_number("138OO138000")
    Traceback (most recent call last):
    ...
    ivr.core.followup.BadNumber: letters in the number
    """
    cleaned = _SEPARATORS.sub("", raw)
    if not cleaned:
        raise BadNumber("no number")
    if any(ch.isalpha() for ch in cleaned):
        raise BadNumber("letters in the number")
    if cleaned.startswith("+86"):
        cleaned = cleaned[3:]
    elif cleaned.startswith("0086"):
        cleaned = cleaned[4:]
    elif cleaned.startswith("+"):
        raise BadNumber("a number abroad (not +86)")
    if not (cleaned.isascii() and cleaned.isdigit()):
        raise BadNumber("characters other than digits")
    if not MIN_DIGITS <= len(cleaned) <= MAX_DIGITS:
        raise BadNumber(f"{len(cleaned)} digits (a number has {MIN_DIGITS} to {MAX_DIGITS})")
    return cleaned


def due_at_for(desk: str, created_at: float, config: FollowupConfig) -> float:
    """The deadline of a follow-up created at ``created_at`` for ``desk``."""
    hours = config.due_within_h.get(desk, config.default_due_within_h)
    return created_at + hours * 3600.0


def in_calling_hours(now: float, config: FollowupConfig) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(config.timezone)).time()
    return config.hours_start <= local < config.hours_end


def next_window(now: float, config: FollowupConfig) -> float:
    """When calling may next start: ``now`` inside the hours, else the next opening."""
    zone = ZoneInfo(config.timezone)
    local = datetime.fromtimestamp(now, zone)
    if config.hours_start <= local.time() < config.hours_end:
        return now
    day = local.date() if local.time() < config.hours_start else local.date() + timedelta(days=1)
    return datetime.combine(day, config.hours_start, tzinfo=zone).timestamp()


def plan(
    now: float,
    due: Sequence[FollowUp],
    in_flight: Sequence[InFlight],
    config: FollowupConfig,
) -> Plan:
    """What to do with each due follow-up at ``now`` (see the module docstring)."""
    overdue = frozenset(f.id for f in due if now > f.due_at)
    finished: list[int] = []
    waiting: list[Wait] = []
    worklist: list[ToWorklist] = []
    candidates: list[tuple[FollowUp, str]] = []
    busy_tickets = {c.ticket_id for c in in_flight}
    busy_numbers = {c.number for c in in_flight}
    claimed: set[int] = set()  # tickets that already have a follow-up considered this round
    for item in sorted(due, key=lambda f: (f.created_at, f.id)):
        if item.last_result in FINAL:
            finished.append(item.id)
            continue
        try:
            number = normalise_number(item.number)
        except BadNumber as exc:
            worklist.append(ToWorklist(item.id, item.ticket_id, f"bad number: {exc}"))
            continue
        if item.attempts >= config.max_attempts:
            worklist.append(ToWorklist(item.id, item.ticket_id, "attempts exhausted"))
            continue
        if item.ticket_id in busy_tickets:
            waiting.append(Wait(item.id, item.ticket_id, None, "ticket in flight"))
            continue
        if item.ticket_id in claimed:
            waiting.append(Wait(item.id, item.ticket_id, None, "ticket has another follow-up"))
            continue
        claimed.add(item.ticket_id)
        if item.last_attempt_at is not None:
            ready_at = item.last_attempt_at + config.spacing_min * 60.0
            if now < ready_at:
                waiting.append(Wait(item.id, item.ticket_id, ready_at, "spacing"))
                continue
        if not in_calling_hours(now, config):
            waiting.append(
                Wait(item.id, item.ticket_id, next_window(now, config), "outside calling hours")
            )
            continue
        candidates.append((item, number))
    place: list[Place] = []
    slots = max(0, config.max_concurrent - len(in_flight))
    dialled = set(busy_numbers)
    for item, number in sorted(candidates, key=lambda c: (c[0].due_at, c[0].ticket_id)):
        if number in dialled:
            waiting.append(Wait(item.id, item.ticket_id, None, "number in flight"))
        elif len(place) >= slots:
            waiting.append(Wait(item.id, item.ticket_id, None, "cap"))
        else:
            place.append(Place(item.id, item.ticket_id, number, item.attempts + 1))
            dialled.add(number)
    return Plan(
        place=tuple(place),
        waiting=tuple(waiting),
        worklist=tuple(worklist),
        finished=tuple(finished),
        overdue=overdue,
    )
