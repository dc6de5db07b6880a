"""``ivr agents``: the people who answer (坐席), their desks and their SIP accounts.

::

    ivr agents add 工号 --name NAME --desk DESK[:PENALTY] ... [--user WEB-USER] [--json]
    ivr agents list [--json]
    ivr agents set 工号 [--name NAME] [--desk DESK[:PENALTY] ...] [--user WEB-USER | --no-user]
                        [--reset-password] [--json]
    ivr agents disable 工号          # Asterisk drops the agent's endpoint
    ivr agents enable 工号
    ivr agents history 工号 [--json]   # every change: who, when, old -> new
    ivr agents login 工号 [--device desk|browser]; ivr agents logout|resume 工号;
    ivr agents pause 工号 --reason 小休|培训|会议|后处理

``add`` and ``set --reset-password`` print the generated SIP password once, with what a phone
needs (username = 工号, the realm, the server's SIP port); only its HA1 is stored, so it
cannot be shown again: a lost one is reset. ``--desk`` (repeatable) names a desk of
``routing/desks.yaml``, with the queue penalty after ``:`` (0, the default, is asked first);
given to ``set``, the desks replace all of the agent's desks. ``--user`` links the web account
(role ``agent``) the person signs in with. Every change is recorded (``agent_changes`` and
the audit log) as ``cli:<login>``.

``list`` shows each agent's registrations when it is given them (:func:`run`'s
``registrations``: the contacts Asterisk holds, by 工号); without them the ``registered``
column says ``?`` (``null`` in ``--json``). Below the agents it lists the addresses with
failed SIP logins, and until when each blocked one is refused (``--json``: the agents only).

``cli.py`` wires this in: :func:`register` adds the subcommand, :func:`run` executes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql import db as sql
from ivr.adapters.sql.schema import require_head
from ivr.adapters.telephony import sip_directory
from ivr.cli_users import cli_actor
from ivr.core import agents as rules
from ivr.core.agent_presence import ACTIONS, DEVICES, PAUSE_REASONS, describe
from ivr.core.agents import AgentInfo
from ivr.core.sip_accounts import Registration
from ivr.errors import InvalidInput, SipDirectoryError
from ivr.settings import Settings

Registrations = Mapping[str, Sequence[Registration]]


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("agents", help="坐席: the people who answer, their desks, SIP")
    sub = parser.add_subparsers(dest="agents_command", required=True)
    desk_help = "DESK[:PENALTY] of routing/desks.yaml (repeatable; penalty 0 is asked first)"

    add = sub.add_parser("add", help="add an agent; prints the SIP password once")
    add.add_argument("work_number", metavar="工号")
    add.add_argument("--name", required=True)
    add.add_argument("--desk", action="append", default=[], help=desk_help)
    add.add_argument("--user", help="the web account (role agent) the person signs in with")
    add.add_argument("--json", action="store_true", help="one JSON object")

    listing = sub.add_parser("list", help="every agent, active and disabled")
    listing.add_argument("--json", action="store_true", help="one JSON array")

    change = sub.add_parser("set", help="change an agent (desks given replace all desks)")
    change.add_argument("work_number", metavar="工号")
    change.add_argument("--name")
    change.add_argument("--desk", action="append", help=desk_help)
    link = change.add_mutually_exclusive_group()
    link.add_argument("--user", help="link this web account (role agent)")
    link.add_argument("--no-user", action="store_true", help="unlink the web account")
    change.add_argument(
        "--reset-password", action="store_true", help="a new SIP password, printed once"
    )
    change.add_argument("--json", action="store_true", help="one JSON object")

    for command, what in (("disable", "Asterisk drops the agent's phone"), ("enable", "again")):
        one = sub.add_parser(command, help=f"{command} an agent ({what})")
        one.add_argument("work_number", metavar="工号")

    for command, what in (
        ("login", "log in to its desks (the ami role adds it to their queues)"),
        ("logout", "log out of every desk"),
        ("pause", "pause with a reason: no call rings it"),
        ("resume", "end the pause"),
    ):
        one = sub.add_parser(command, help=what)
        one.add_argument("work_number", metavar="工号")
        if command == "pause":
            one.add_argument("--reason", required=True, choices=PAUSE_REASONS)
        if command == "login":
            one.add_argument(
                "--device", choices=DEVICES, default="desk",
                help="which device rings: the desk phone (default) or the browser's softphone",
            )  # fmt: skip

    changes = sub.add_parser("history", help="every change to an agent, oldest first")
    changes.add_argument("work_number", metavar="工号")
    changes.add_argument("--json", action="store_true", help="one JSON array")


def run(
    settings: Settings, args: argparse.Namespace, registrations: Registrations | None = None
) -> int:
    """Run ``ivr agents …``. ``registrations`` (the contacts Asterisk holds, by 工号) fills
    the ``registered`` column of ``list``; None: not asked."""
    engine = sql.settings_engine(settings)
    try:
        require_head(engine)
        with Session(engine, expire_on_commit=False) as db:
            return _run(db, settings, args, registrations)
    finally:
        engine.dispose()


def _run(
    db: Session, settings: Settings, args: argparse.Namespace, registrations: Registrations | None
) -> int:
    command: str = args.agents_command
    realm = settings.asterisk.sip_realm
    if command == "list":
        _list(store.list_agents(db), realm, registrations, as_json=args.json)
        if not args.json:
            _addresses(settings)
        return 0
    if command == "history":
        _history(db, args.work_number, as_json=args.json)
        return 0
    actor = store.Actor(cli_actor())
    if command == "add":
        desks = [rules.parse_desk(spec) for spec in args.desk]
        agent, password = store.add(
            db, args.work_number, args.name, desks, store.known_desks(settings), realm, actor,
            user=args.user,
        )  # fmt: skip
        db.commit()
        _show(agent, settings, password, "added", as_json=args.json)
    elif command == "set":
        agent = _set(db, settings, args, actor)
    elif command in ACTIONS:
        presence = store.change_presence(
            db, args.work_number, command, getattr(args, "reason", ""), actor,
            getattr(args, "device", "desk"),
        )  # fmt: skip
        db.commit()
        on = f" on the {presence.device}" if presence.logged_in else ""
        _out(f"agent {args.work_number}: {describe(presence)}{on} (Asterisk follows within 2 s)")
    elif command in ("disable", "enable"):
        agent = store.set_active(db, args.work_number, command == "enable", actor)
        db.commit()
        _out(f"agent {agent.work_number} ({agent.name}) {command}d")
    else:
        raise ValueError(f"unknown agents command {command!r}")
    return 0


def _set(
    db: Session, settings: Settings, args: argparse.Namespace, actor: store.Actor
) -> AgentInfo:
    if (
        args.name is None
        and args.desk is None
        and args.user is None
        and not args.no_user
        and not args.reset_password
    ):
        raise InvalidInput(
            "ivr agents set: say what to change (--name, --desk, --user, --no-user, "
            "--reset-password)"
        )
    desks = [rules.parse_desk(spec) for spec in args.desk] if args.desk is not None else None
    changes: dict[str, Any] = {"name": args.name, "desks": desks}
    if args.user is not None or args.no_user:
        changes["user"] = None if args.no_user else args.user
    known = store.known_desks(settings) if desks is not None else frozenset()
    before = store.get(db, args.work_number)
    agent = store.update(db, args.work_number, known, actor, **changes)
    password = None
    if args.reset_password:
        agent, password = store.reset_password(
            db, args.work_number, settings.asterisk.sip_realm, actor
        )
    db.commit()
    done = "unchanged" if agent == before and password is None else "changed"
    _show(agent, settings, password, done, as_json=args.json)
    return agent


def _show(
    agent: AgentInfo, settings: Settings, password: str | None, done: str, *, as_json: bool
) -> None:
    realm = settings.asterisk.sip_realm
    if as_json:
        doc: dict[str, Any] = {"agent": rules.document(agent, realm, None)}
        if password is not None:
            doc |= {"sip_password": password, "phone": store.phone_settings(agent, settings)}
        _out(json.dumps(doc, ensure_ascii=False))
        return
    desks = ", ".join(f"{d.desk} (penalty {d.penalty})" for d in agent.desks)
    user = f", web account {agent.user}" if agent.user else ""
    _out(f"agent {agent.work_number} ({agent.name}) {done}: desks {desks}{user}")
    if password is None:
        return
    phone = store.phone_settings(agent, settings)
    _out("SIP password (shown this once; only its digest is kept, a lost one is reset):")
    _out(f"  {password}")
    _out(
        f"phone: username and auth ID {phone['username']}, this password, realm "
        f"{phone['realm']}, server: this PBX's SIP address, port {phone['sip_port']}"
    )


def _registered(doc: dict[str, Any]) -> str:
    found = doc["registered"]
    if found is None:
        return "?"
    if not found:
        return "no"
    first = found[0]
    since = (first["since"] or "")[:16].replace("T", " ")
    more = f" (+{len(found) - 1})" if len(found) > 1 else ""
    return f"{first['contact']} {first['user_agent']} since {since or '?'}{more}"


def _list(
    found: list[AgentInfo], realm: str, registrations: Registrations | None, *, as_json: bool
) -> None:
    docs = [rules.document(agent, realm, registrations) for agent in found]
    if as_json:
        _out(json.dumps(docs, ensure_ascii=False))
        return
    if not docs:
        _out("no agents (add one with `ivr agents add 工号 --name NAME --desk DESK:0`)")
        return
    _out(f"{'工号':<10} {'NAME':<12} {'STATE':<9} {'WEB USER':<14} {'DESK:PENALTY':<30} "
         "REGISTERED")  # fmt: skip
    for doc in docs:
        desks = " ".join(f"{d['desk']}:{d['penalty']}" for d in doc["desks"])
        state = "active" if doc["active"] else "disabled"
        if doc["password_reset_needed"]:
            state += " (reset password: realm changed)"
        _out(
            f"{doc['work_number']:<12} {doc['name']:<12} {state:<9} {doc['user'] or '-':<14} "
            f"{desks:<30} {_registered(doc)}"
        )


def _addresses(settings: Settings) -> None:
    try:
        states = sip_directory.address_states(settings)
    except SipDirectoryError:
        return  # no Asterisk instance beside this host
    if not states:
        return
    _out("\nfailed SIP logins by address (counted from Asterisk's security events):")
    for state in states:
        last = state.last_failure.isoformat(timespec="seconds") if state.last_failure else "-"
        blocked = (
            f"BLOCKED until {state.blocked_until.isoformat(timespec='seconds')}"
            if state.blocked_until
            else "not blocked"
        )
        _out(f"  {state.address:<40} {state.failures:>4} failures, last {last}  {blocked}")


def _history(db: Session, work_number: str, *, as_json: bool) -> None:
    rows = store.history(db, work_number)
    docs: list[dict[str, Any]] = [
        {"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "changes": r.changes}
        for r in rows
    ]
    if as_json:
        _out(json.dumps(docs, ensure_ascii=False))
        return
    for doc in docs:
        parts = []
        for field, change in doc["changes"].items():
            if isinstance(change, dict):
                old, new = (json.dumps(change[k], ensure_ascii=False) for k in ("old", "new"))
                parts.append(f"{field}: {old} -> {new}")
            else:
                parts.append(f"{field} {change}")
        _out(f"{doc['at'][:19].replace('T', ' ')}  {doc['actor']:<16} {doc['action']:<15} "
             + "; ".join(parts))  # fmt: skip
