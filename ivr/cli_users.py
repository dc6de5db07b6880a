"""``ivr users``: manage the people who sign in to the web app.

::

    ivr users add NAME --role qa|supervisor|admin|agent [--password-stdin]
    ivr users add NAME --role department --department ID [--department ID ...]
    ivr users set-departments NAME ID [ID ...]   # routing/departments.yaml ids
    ivr users list [--json]
    ivr users set-password NAME [--password-stdin]
    ivr users set-role NAME ROLE
    ivr users disable NAME          # ends the user's sessions at once
    ivr users enable NAME

Passwords never come from the command line: they are prompted for twice on a terminal, or
read as one line from stdin with ``--password-stdin``. Every change is written to the audit
log as ``cli:<login>``. The database must be at head (``ivr db upgrade``).

``cli.py`` wires this in: :func:`register` adds the subcommand, :func:`run` executes it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import ticket_desk, users
from ivr.adapters.sql.schema import require_head
from ivr.adapters.telephony.routing_files import load_routing
from ivr.settings import Settings

ROLE_NAMES = [role.value for role in sql.Role]


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("users", help="people who sign in to the web app")
    sub = parser.add_subparsers(dest="users_command", required=True)

    add = sub.add_parser("add", help="add a user (password prompted, or --password-stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLE_NAMES)
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    add.add_argument(
        "--department", action="append", default=[], metavar="ID",
        help="role department: a department of routing/departments.yaml (repeatable)",
    )  # fmt: skip

    listing = sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="one JSON array")

    password = sub.add_parser("set-password", help="new password; ends the user's sessions")
    password.add_argument("username")
    password.add_argument("--password-stdin", action="store_true", help="read it from stdin")

    role = sub.add_parser("set-role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("role", choices=ROLE_NAMES)

    departments = sub.add_parser(
        "set-departments", help="a department user's departments (replaces them all)"
    )
    departments.add_argument("username")
    departments.add_argument("department", nargs="+", help="ids of routing/departments.yaml")
    disable = sub.add_parser("disable", help="refuse sign-in and end the user's sessions")
    disable.add_argument("username")
    enable = sub.add_parser("enable", help="allow a disabled user to sign in again")
    enable.add_argument("username")


def read_password(from_stdin: bool) -> str:
    """One line from stdin, or a prompt (twice) on the terminal; never from argv."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise users.InvalidUserInput("no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise users.InvalidUserInput("no terminal to ask for the password: use --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise users.InvalidUserInput("the two passwords differ")
    return password


def cli_actor() -> str:
    """Who acts from the command line, for the audit log: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = sql.settings_engine(settings)
    try:
        require_head(engine)
        with Session(engine) as db:
            return _run(db, args, settings)
    finally:
        engine.dispose()


def checked_departments(settings: Settings, role: str, given: list[str]) -> list[str]:
    """The departments given for a user of ``role``: the role ``department`` needs one or
    more, each defined in routing/departments.yaml; other roles take none."""
    if role != sql.Role.department.value:
        if given:
            raise users.InvalidUserInput("--department: only for the role department")
        return []
    if not given:
        raise users.InvalidUserInput("the role department needs --department ID (one or more)")
    known = [d.id for d in load_routing(settings.routing_dir).departments]
    unknown = [d for d in given if d not in known]
    if unknown:
        raise users.InvalidUserInput(
            f"unknown department(s) {', '.join(unknown)}; routing/ defines: {', '.join(known)}"
        )
    return sorted(set(given))


def _run(db: Session, args: argparse.Namespace, settings: Settings) -> int:
    command: str = args.users_command
    if command == "list":
        _list(db, as_json=args.json)
        return 0
    actor = cli_actor()
    if command == "add":
        departments = checked_departments(settings, args.role, args.department)
        password = read_password(args.password_stdin)
        user = users.create_user(db, args.username, password, args.role)
        sql.audit(db, None, "user.add", target=user.username, actor=actor)
        if departments:
            ticket_desk.set_departments(db, user, departments)
            sql.audit(db, None, "user.set_departments",
                      target=f"{user.username}:{','.join(departments)}", actor=actor)  # fmt: skip
        db.commit()
        with_departments = f" ({', '.join(departments)})" if departments else ""
        _out(f"user {user.username} added with role {user.role.value}{with_departments}")
    elif command == "set-departments":
        user = users.require_user(db, args.username)
        departments = checked_departments(settings, user.role.value, args.department)
        ticket_desk.set_departments(db, user, departments)
        sql.audit(db, None, "user.set_departments",
                  target=f"{user.username}:{','.join(departments)}", actor=actor)  # fmt: skip
        db.commit()
        _out(f"{user.username} now works for {', '.join(departments)}")
    elif command == "set-password":
        password = read_password(args.password_stdin)
        user, ended = users.set_password(db, args.username, password)
        sql.audit(db, None, "user.set_password", target=user.username, actor=actor)
        db.commit()
        _out(f"password of {user.username} changed; {ended} session(s) ended")
    elif command == "set-role":
        user = users.set_role(db, args.username, args.role)
        sql.audit(
            db, None, "user.set_role", target=f"{user.username}:{user.role.value}", actor=actor
        )
        db.commit()
        _out(f"{user.username} now has role {user.role.value}")
    elif command in ("disable", "enable"):
        user, ended = users.set_disabled(db, args.username, command == "disable")
        sql.audit(db, None, f"user.{command}", target=user.username, actor=actor)
        db.commit()
        _out(f"{user.username} {command}d" + (f"; {ended} session(s) ended" if ended else ""))
    else:
        raise ValueError(f"unknown users command {command!r}")
    return 0


def _list(db: Session, *, as_json: bool) -> None:
    rows = users.list_users(db)
    departments = {u.id: ticket_desk.departments_of(db, u) for u in rows}
    if as_json:
        _out(
            json.dumps(
                [
                    {
                        "username": u.username,
                        "role": u.role.value,
                        "disabled": u.disabled,
                        "created_at": u.created_at.isoformat(),
                        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                        "departments": departments[u.id],
                    }
                    for u in rows
                ]
            )
        )
        return
    if not rows:
        _out("no users (add one with `ivr users add NAME --role ROLE`)")
        return
    _out(f"{'USERNAME':<24} {'ROLE':<11} {'STATE':<9} LAST SIGN-IN (UTC)")
    for u in rows:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
        state = "disabled" if u.disabled else "active"
        works_for = f"  departments: {', '.join(departments[u.id])}" if departments[u.id] else ""
        _out(f"{u.username:<24} {u.role.value:<11} {state:<9} {last}{works_for}")
