"""Call-backs for abandoned callers: who is owed one, and how fast they got it. Pure.

A caller who left a queue without a person (``abandoned``: hung up while waiting;
``timed_out``: the queue let them go) is owed a call-back when their number is known and can
be dialled (:func:`ivr.core.followup.normalise_number`), unless the same number got through
to a person later that same local day. Each entry keeps the original wait and when the call
left the queue. Several abandoned calls of one number that day are one entry (the latest;
``calls`` counts them): one call-back, never two at once.

The figure: the share of those entries called back (an outbound call to the number, purpose
``callback``) within :data:`WITHIN_S` (30 min) of leaving the queue.

>>> from zoneinfo import ZoneInfo
>>> left = [Left("a", "13800138000", "repair", "abandoned", 75.0, 1000.0, 1075.0)]
>>> owed(left, answered=[], zone=ZoneInfo("Asia/Shanghai"))[0].wait_s
75.0
>>> owed(left, answered=[Answered("+86 138 0013 8000", 2000.0)],
...      zone=ZoneInfo("Asia/Shanghai"))
[]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Final

from ivr.core.agent_presence import interface_of
from ivr.core.followup import BadNumber, FollowupConfig, in_calling_hours, normalise_number

WITHIN_S: Final = 30 * 60.0  # the figure: called back within 30 minutes
KINDS: Final = frozenset({"abandoned", "timed_out"})  # call_facts.klass of a caller let go


@dataclass(frozen=True, slots=True)
class Left:
    """A call that left a queue without a person (a ``call_facts`` row)."""

    linkedid: str
    caller: str  # as Asterisk had it
    queue: str
    klass: str  # abandoned or timed_out
    wait_s: float
    entered_at: float  # epoch seconds
    left_at: float


@dataclass(frozen=True, slots=True)
class Answered:
    """A call from ``caller`` that reached a person at ``at``."""

    caller: str
    at: float


@dataclass(frozen=True, slots=True)
class Owed:
    """One entry of the call-back list."""

    number: str  # normalised: what is dialled
    linkedid: str  # the latest abandoned call of that number that day
    queue: str
    klass: str
    wait_s: float  # how long that caller waited
    entered_at: float
    left_at: float
    calls: int  # abandoned calls of this number that day


def _number(raw: str) -> str | None:
    try:
        return normalise_number(raw)
    except BadNumber:
        return None


def _day(at: float, zone: tzinfo) -> date:
    return datetime.fromtimestamp(at, zone).date()


def owed(left: Sequence[Left], answered: Sequence[Answered], zone: tzinfo) -> list[Owed]:
    """The call-back list, oldest first (see the module docstring)."""
    got_through: dict[str, list[float]] = {}
    for through in answered:
        number = _number(through.caller)
        if number is not None:
            got_through.setdefault(number, []).append(through.at)
    entries: dict[tuple[str, date], Owed] = {}
    for call in sorted(left, key=lambda c: (c.left_at, c.linkedid)):
        number = _number(call.caller)
        if call.klass not in KINDS or number is None:
            continue
        day = _day(call.left_at, zone)
        later = [at for at in got_through.get(number, ()) if at > call.left_at]
        if any(_day(at, zone) == day for at in later):
            continue
        before = entries.get((number, day))
        calls = 1 if before is None else before.calls + 1
        entries[(number, day)] = Owed(
            number, call.linkedid, call.queue, call.klass, call.wait_s, call.entered_at,
            call.left_at, calls,
        )  # fmt: skip
    return sorted(entries.values(), key=lambda e: (e.left_at, e.number))


@dataclass(frozen=True, slots=True)
class CallbackShare:
    """Abandoned callers called back within 30 min: numerator / denominator."""

    called_back: int
    owed: int

    @property
    def rate(self) -> float | None:
        return None if self.owed == 0 else self.called_back / self.owed


def share_called_back(entries: Sequence[Owed], callbacks: Sequence[Answered]) -> CallbackShare:
    """Of the list's entries, how many got a call-back (``callbacks``: outbound call-backs,
    their number and start) within :data:`WITHIN_S` of leaving the queue.

    >>> entry = Owed("13800138000", "a", "repair", "abandoned", 75.0, 0.0, 100.0, 1)
    >>> share_called_back([entry], [Answered("13800138000", 100.0 + 29 * 60)]).rate
    1.0
    >>> share_called_back([entry], [Answered("13800138000", 100.0 + 31 * 60)]).rate
    0.0
    """
    done = 0
    for entry in entries:
        if any(
            _number(cb.caller) == entry.number and 0 <= cb.at - entry.left_at <= WITHIN_S
            for cb in callbacks
        ):
            done += 1
    return CallbackShare(done, len(entries))


def agent_device(work_number: str, device: str) -> str:
    """The device an agent's click-to-call rings first: the one the agent chose at log-in
    (``agents.device``): the desk phone, or the agent desk page's softphone.

    >>> agent_device("1001", "desk"), agent_device("1001", "browser")
    ('PJSIP/1001', 'PJSIP/1001-webrtc')
    """
    return interface_of(work_number, device)


def refuse_agent_call(
    *,
    number: str,
    known: Collection[str],
    in_flight: Collection[str],
    waiting_queues: Collection[str],
    agent_queues: Collection[str],
    now: float,
    config: FollowupConfig,
) -> str | None:
    """Why an agent may not call ``number`` back now, or None. Only numbers that came from a
    ticket or a call record (``known``: the worklist's and the call-back list's), never one
    already being called, never while a caller waits in one of the agent's queues (a call-back
    never jumps ahead of them), only within the calling hours.

    >>> from datetime import time
    >>> day = FollowupConfig(hours_start=time(0), hours_end=time(23, 59))
    >>> refuse_agent_call(number="13800138000", known={"13800138000"}, in_flight=(),
    ...                   waiting_queues={"billing"}, agent_queues={"repair"}, now=1.8e9,
    ...                   config=day)
    >>> refuse_agent_call(number="13800138000", known={"13800138000"}, in_flight=(),
    ...                   waiting_queues={"repair"}, agent_queues={"repair"}, now=1.8e9,
    ...                   config=day)
    'callers are waiting in repair: they come first'
    """
    if number not in known:
        return "not a number of the worklist or the call-back list"
    if number in in_flight:
        return "this number is being called already"
    waiting = sorted(set(waiting_queues) & set(agent_queues))
    if waiting:
        return f"callers are waiting in {', '.join(waiting)}: they come first"
    if not in_calling_hours(now, config):
        return "outside the calling hours"
    return None
