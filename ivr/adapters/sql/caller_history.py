"""What SQL knows of a caller for the screen pop (:mod:`ivr.core.screen_pop`): the tickets
opened for the caller's number or the account number keyed in (the newest, and every open
one), the calls catalogued from that number or account within the repeat window, the
complaints from that number or account within the repeat-complaint window
(``tickets.repeat_window_days``), of which :func:`ivr.core.screen_pop.possible_repeat` says
whether this call may repeat one, and the popped call's own ticket (a transferred call's,
opened at the first agent's connect).

Calls are counted from ``recordings`` (every call the hotline answered has a row, the
menu-only ones too); the call being popped is left out (its Linkedid), so is a call still
going on (not catalogued yet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, Ticket
from ivr.adapters.sql.ticket_desk import complaint_of
from ivr.core import repeats
from ivr.core.screen_pop import REPEAT_DAYS, CallTicket, History, PastTicket, possible_repeat
from ivr.core.tickets import TicketState

RECENT = 5  # the newest tickets shown
OPEN_MAX = 10  # open tickets shown at most


def caller_history(
    session: Session,
    caller: str,
    account: str,
    linkedid: str,
    now: float,
    *,
    zone: tzinfo = UTC,
    window_days: int = repeats.DEFAULT_WINDOW_DAYS,
) -> History:
    """The history of ``caller`` (a number) and ``account`` (either may be ""); ``zone`` and
    ``window_days``: the repeat-complaint window's local days."""
    own = session.scalar(select(Ticket).where(Ticket.linkedid == linkedid))
    this_call = CallTicket(own.id, own.agent, own.state.value) if own is not None else None
    if not caller and not account:
        return History(this_call=this_call)
    ticket_keys = []
    if caller:
        ticket_keys.append(Ticket.caller == caller)
    if account:
        ticket_keys.append(Ticket.account == account)
    base = select(Ticket).where(or_(*ticket_keys), Ticket.linkedid != linkedid)
    newest = base.order_by(Ticket.created_at.desc(), Ticket.id.desc())
    recent = session.scalars(newest.limit(RECENT)).all()
    still_open = session.scalars(
        newest.where(Ticket.state != TicketState.done).limit(OPEN_MAX)
    ).all()
    since = datetime.fromtimestamp(now, UTC) - timedelta(days=REPEAT_DAYS)
    call_keys = []
    if caller:
        call_keys.append(Recording.caller == caller)
    if account:
        call_keys.append(Recording.account == account)
    earlier = session.scalar(
        select(func.count())
        .select_from(Recording)
        .where(or_(*call_keys), Recording.started_at >= since, Recording.linkedid != linkedid)
    )

    def past(ticket: Ticket) -> PastTicket:
        return PastTicket(
            id=ticket.id,
            linkedid=ticket.linkedid,
            created_at=ticket.created_at.timestamp(),
            state=ticket.state.value,
            desk=ticket.desk,
            category=ticket.category,
            level=ticket.level,
            emergency=ticket.emergency,
            danger=ticket.danger,
            by_account=bool(account) and ticket.account == account and ticket.caller != caller,
            closed=ticket.state is TicketState.done,
        )

    moment = datetime.fromtimestamp(now, UTC)
    complaints = session.scalars(
        base.where(
            Ticket.complaint.is_(True),
            Ticket.created_at >= repeats.window_start(moment, zone, window_days),
        )
    ).all()
    earlier_complaints = [(complaint_of(t), t.state.value) for t in complaints]
    return History(
        recent=[past(t) for t in recent],
        open=[past(t) for t in still_open],
        earlier_calls=int(earlier or 0),
        this_call=this_call,
        possible_repeat=possible_repeat(
            caller, account, moment, earlier_complaints, zone, window_days
        ),
    )
