"""``ivr tickets``: list 工单 and move them between states from the command line.

::

    ivr tickets list [--state S ...] [--overdue] [--danger] [--limit N] [--json] [--show-numbers]
    ivr tickets move ID STATE [--comment TEXT]

``--state`` takes a state (待派单 处理中 待验收 已完成, or awaiting_dispatch, in_progress,
awaiting_acceptance, done) or ``open`` (everything not done); repeat it for several. Callers'
numbers are masked unless ``--show-numbers``. A move is recorded (transition and audit log)
as ``cli:<login>``; an illegal move exits 1 naming the states allowed next.

``cli.py`` wires this in: :func:`register` adds the subcommand, :func:`run` executes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import tickets as store
from ivr.adapters.sql.db import Ticket
from ivr.adapters.sql.schema import require_head
from ivr.cli_users import cli_actor
from ivr.core import tickets as rules
from ivr.errors import InvalidInput
from ivr.logging_setup import mask_number
from ivr.settings import Settings


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tickets", help="工单: list them, move them")
    sub = parser.add_subparsers(dest="tickets_command", required=True)

    listing = sub.add_parser("list", help="tickets, most urgent first")
    listing.add_argument(
        "--state", action="append", default=[], help="a state, or 'open' (repeatable)"
    )
    listing.add_argument("--overdue", action="store_true", help="only tickets past deadline")
    listing.add_argument("--danger", action="store_true", help="only tickets with danger words")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("--show-numbers", action="store_true", help="unmasked callers")

    move = sub.add_parser("move", help="move a ticket to another state")
    move.add_argument("ticket_id", type=int, metavar="ID")
    move.add_argument("state", metavar="STATE", help="处理中, in_progress, ...")
    move.add_argument("--comment", default="", help="why (required to send work back)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = sql.settings_engine(settings)
    try:
        require_head(engine)
        with Session(engine, expire_on_commit=False) as db:
            if args.tickets_command == "list":
                return _list(db, args, datetime.now(UTC))
            if args.tickets_command == "move":
                return _move(db, args)
            raise ValueError(f"unknown tickets command {args.tickets_command!r}")
    finally:
        engine.dispose()


def _row(ticket: Ticket, now: datetime, show_numbers: bool) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "state": ticket.state.value,
        "desk": ticket.desk,
        "caller": ticket.caller if show_numbers else mask_number(ticket.caller),
        "level": ticket.level,
        "priority": ticket.priority,
        "deadline_at": ticket.deadline_at.isoformat() if ticket.deadline_at else None,
        "overdue": rules.is_overdue(ticket.state, ticket.deadline_at, now),
        "danger": ticket.danger,
        "danger_words": list(ticket.danger_words or []),
        "emergency": ticket.emergency,
        "created_at": ticket.created_at.isoformat(),
    }


def _list(db: Session, args: argparse.Namespace, now: datetime) -> int:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    query = store.TicketQuery(
        states=rules.parse_states(args.state),
        overdue=True if args.overdue else None,
        danger=True if args.danger else None,
        limit=args.limit,
    )
    _, found = store.search(db, query, now)
    rows = [_row(t, now, args.show_numbers) for t in found]
    if args.json:
        _out(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        _out("no tickets")
        return 0
    _out(f"{'ID':>6}  {'STATE':<4}  {'LVL':<3}  {'PRI':>3}  {'DESK':<13} {'CALLER':<14} "
         "DEADLINE (UTC)     FLAGS")  # fmt: skip
    for r in rows:
        deadline = r["deadline_at"][:16].replace("T", " ") if r["deadline_at"] else "-"
        flags = " ".join(
            flag
            for flag, on in (
                ("OVERDUE", r["overdue"]),
                ("EMERGENCY", r["emergency"]),
                (f"DANGER:{'/'.join(r['danger_words'])}", r["danger"]),
            )
            if on
        )
        _out(
            f"{r['id']:>6}  {r['state']:<4}  {r['level'] or '-':<3}  {r['priority']:>3}  "
            f"{r['desk'] or '-':<13} {r['caller']:<14} {deadline:<18} {flags}".rstrip()
        )
    return 0


def _move(db: Session, args: argparse.Namespace) -> int:
    to = rules.parse_state(args.state)
    actor = cli_actor()
    ticket = store.move(db, args.ticket_id, to, None, args.comment, actor=actor)
    db.commit()
    _out(f"ticket {ticket.id} is now {ticket.state.value} (by {actor})")
    return 0
