"""Call-backs for abandoned callers from SQL: the day's list and its 30-minute share.

Reads ``call_facts`` (each call's class, queue, wait and, since revision 0008, the caller's
number) and ``outbound_calls`` (purpose ``callback``); the rules are
:mod:`ivr.core.callbacks`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import CallFactRow, OutboundCall
from ivr.core import callbacks as rules
from ivr.core.metrics import CallClass

GOT_THROUGH = (CallClass.ANSWERED.value, CallClass.ANSWERED_LATE.value)


def day_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day ``now`` falls in, as UTC bounds [start, end)."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def left_and_answered(
    session: Session, start: datetime, end: datetime
) -> tuple[list[rules.Left], list[rules.Answered]]:
    rows = session.execute(
        select(CallFactRow).where(
            CallFactRow.closed_at >= start, CallFactRow.closed_at < end, CallFactRow.caller != ""
        )
    ).scalars()
    left: list[rules.Left] = []
    answered: list[rules.Answered] = []
    for row in rows:
        if row.klass in rules.KINDS:
            entered = (row.entered_at or row.closed_at).timestamp()
            left.append(rules.Left(row.linkedid, row.caller, row.queue, row.klass, row.wait_s,
                                   entered, entered + row.wait_s))  # fmt: skip
        elif row.klass in GOT_THROUGH:
            answered.append(rules.Answered(row.caller, row.counted_at.timestamp()))
    return left, answered


def owed_on(session: Session, now: datetime, zone: ZoneInfo) -> list[rules.Owed]:
    """The call-back list of ``now`` 's local day."""
    start, end = day_bounds(now, zone)
    left, answered = left_and_answered(session, start, end)
    return rules.owed(left, answered, zone)


def share_on(session: Session, now: datetime, zone: ZoneInfo) -> rules.CallbackShare:
    """The share of that day's list called back within 30 minutes."""
    start, end = day_bounds(now, zone)
    left, answered = left_and_answered(session, start, end)
    made = session.execute(
        select(OutboundCall.number, OutboundCall.started_at).where(
            OutboundCall.purpose == "callback",
            OutboundCall.started_at >= start,
            OutboundCall.started_at < end + timedelta(seconds=rules.WITHIN_S),
        )
    )
    callbacks = [rules.Answered(number, at.timestamp()) for number, at in made]
    return rules.share_called_back(rules.owed(left, answered, zone), callbacks)
