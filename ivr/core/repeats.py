"""Repeat complaints (重复投诉), pure: is a new complaint a repeat, of which one, and its level.

A new complaint is a **repeat** when an earlier complaint, from the same number or the same
account, about the same matter, was accepted (a ticket was opened for it) within the window
before it: ``window_days`` (30 by default) counted in local calendar days, so a complaint on
the window's last day is a repeat and one on the day after is not. The first complaint must
be earlier than the new one (by its opening time); complaints the agent unlinked (marked "not
a repeat") still count as earlier complaints of their own matter.

Same number: the digits of both numbers (:func:`number_key`) are equal and not empty. Same
account: both account numbers, stripped, equal and not empty. Same matter: both complaints'
problem category, when both have one, is the same; a complaint with no category yet matches
any (the agent confirms or unlinks the link).

The link goes to the **first** complaint of the chain: if the earlier complaint found is
itself a repeat, its own first complaint is the one linked (so every repeat of one matter
points at one ticket). When several earlier complaints qualify, the oldest first one wins.

A repeat complaint is escalated one level (L4 → L3 → L2 → L1; L1 stays L1), and never moved
down: :func:`escalated`.

The repeat-complaint rate (ivr.core.figures) counts them: repeat ÷ (complaints − repeat).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final

from ivr.core.tickets import Level

DEFAULT_WINDOW_DAYS: Final = 30
_ONE_UP: Final = {Level.L4: Level.L3, Level.L3: Level.L2, Level.L2: Level.L1, Level.L1: Level.L1}


@dataclass(frozen=True, slots=True)
class Complaint:
    """What the rule needs of one complaint ticket."""

    ticket_id: int
    opened_at: datetime  # aware
    number: str = ""
    account: str = ""
    category: str = ""
    repeat_of: int | None = None  # the first complaint's ticket id, when this one is a repeat


@dataclass(frozen=True, slots=True)
class RepeatLink:
    """The new complaint repeats ``first``; ``via`` is the earlier complaint that matched
    (``first`` itself, or a repeat of it); ``matched_on`` is ``number`` or ``account``."""

    first: int
    via: int
    matched_on: str


def number_key(number: str) -> str:
    """The digits of a telephone number, so that ``+86 138-0000 0000`` and ``8613800000000``
    compare equal. Letters and other characters are dropped.

    >>> number_key("+86 138-0000 0000")
    '8613800000000'
    """
    return "".join(ch for ch in number if "0" <= ch <= "9")


def _same_matter(a: Complaint, b: Complaint) -> bool:
    return not a.category or not b.category or a.category == b.category


def _matched_on(new: Complaint, earlier: Complaint) -> str | None:
    number = number_key(new.number)
    if number and number == number_key(earlier.number):
        return "number"
    account = new.account.strip()
    if account and account == earlier.account.strip():
        return "account"
    return None


def in_window(first: datetime, new: datetime, zone: tzinfo, window_days: int) -> bool:
    """``new`` is at most ``window_days`` local calendar days after ``first`` (and not before).

    >>> from datetime import UTC
    >>> a = datetime(2026, 11, 1, 9, tzinfo=UTC)
    >>> in_window(a, a + timedelta(days=30, hours=14), UTC, 30)
    True
    >>> in_window(a, a + timedelta(days=31), UTC, 30)
    False
    """
    if new < first:
        return False
    days = (new.astimezone(zone).date() - first.astimezone(zone).date()).days
    return days <= window_days


def find_repeat(
    new: Complaint,
    earlier: Iterable[Complaint],
    zone: tzinfo,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> RepeatLink | None:
    """The link of ``new`` to the first complaint it repeats, or None (see the module text).

    ``earlier``: the complaints opened before ``new`` that may match (the adapter selects them
    by number or account, opened in the window); others are ignored here anyway.
    """
    if window_days < 0:
        raise ValueError("window_days must be 0 or more")
    best: tuple[datetime, int, RepeatLink] | None = None
    for other in earlier:
        if other.ticket_id == new.ticket_id or other.opened_at >= new.opened_at:
            continue
        if not in_window(other.opened_at, new.opened_at, zone, window_days):
            continue
        matched = _matched_on(new, other)
        if matched is None or not _same_matter(new, other):
            continue
        first = other.repeat_of if other.repeat_of is not None else other.ticket_id
        key = (other.opened_at, first)
        if best is None or key < best[:2]:
            best = (
                other.opened_at,
                first,
                RepeatLink(first=first, via=other.ticket_id, matched_on=matched),
            )
    return None if best is None else best[2]


def escalated(level: Level | None, default: Level = Level.L3) -> Level:
    """A repeat complaint's level: one above its own (``default`` when it has none yet).

    >>> escalated(Level.L3)
    <Level.L2: 'L2'>
    >>> escalated(Level.L1)
    <Level.L1: 'L1'>
    """
    return _ONE_UP[level if level is not None else default]


def window_start(new_opened_at: datetime, zone: tzinfo, window_days: int) -> datetime:
    """The earliest opening time an earlier complaint may have to be in the window: local
    midnight ``window_days`` days before the new complaint's local day (for the adapter's
    query)."""
    local = new_opened_at.astimezone(zone)
    day = local.date() - timedelta(days=window_days)
    return datetime(day.year, day.month, day.day, tzinfo=zone)
