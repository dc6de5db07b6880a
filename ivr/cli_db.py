"""``ivr db``: the SQL store's schema revision (Alembic), and bringing it to head.

::

    ivr db upgrade                  create, adopt or upgrade the database to this code's head
    ivr db current [--json]         its revision and state; exit 0 at head, 1 otherwise
    ivr db history [--json]         the revisions this code knows, oldest first
    ivr db check                    the models and the migrations agree (scripts/lint runs it)
    ivr db revision -m MSG [--autogenerate]
                                    for developers: a new ivr/adapters/sql/migrations/versions/ file

Every role refuses to start on a database that is not at head, naming ``ivr db upgrade``;
``ivr up`` runs it itself for the dev stack. The database is the one the roles use
(``IVR_DATABASE__URL``, or the SQLite file in the run dir). Details in
:mod:`ivr.adapters.sql.schema`.

``cli.py`` wires this in: :func:`register` adds the subcommand, :func:`run` executes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ivr.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="the database's schema revision: upgrade, current")
    sub = parser.add_subparsers(dest="db_command", required=True)
    sub.add_parser(
        "upgrade",
        help="bring the database to this code's revision (creates an empty one, adopts one "
        "from before migrations); one transaction, safe to run again",
    )
    current = sub.add_parser("current", help="the database's revision (exit 1 unless at head)")
    current.add_argument("--json", action="store_true", help="one JSON object")
    history = sub.add_parser("history", help="the revisions this code knows, oldest first")
    history.add_argument("--json", action="store_true", help="one JSON array")
    sub.add_parser(
        "check", help="developers: fail when the models and the migrations differ (no database)"
    )
    revision = sub.add_parser("revision", help="developers: write a new revision file")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.add_argument(
        "--autogenerate",
        action="store_true",
        help="fill it with what the models have and the migrations lack (review it!)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.sql import db as sql  # imported here: Alembic is no cost to other commands
    from ivr.adapters.sql import schema

    match args.db_command:
        case "history":
            return _history(args)
        case "check":
            return _check()
        case "revision":
            path = schema.new_revision(args.message, autogenerate=args.autogenerate)
            _out(f"wrote {path}: review it, then run `ivr db upgrade`")
            return 0
    engine = sql.settings_engine(settings)
    try:
        if args.db_command == "upgrade":
            return _upgrade(engine)
        return _current(engine, args)
    finally:
        engine.dispose()


def _upgrade(engine: Engine) -> int:
    from ivr.adapters.sql import schema

    done = schema.upgrade(engine)
    where = done.before.where
    if not done.applied and not done.adopted:
        _out(f"database {where} is at revision {done.head} (head): nothing to do")
        return 0
    if done.adopted:
        _out(
            f"database {where}: its tables from before migrations are those of revision "
            f"{schema.BASELINE}; recorded as {schema.BASELINE}"
        )
        if done.indexes_created:
            _out(f"  indexes it lacked, created: {', '.join(done.indexes_created)}")
    elif done.before.state is schema.SchemaState.empty:
        _out(f"database {where} was empty: tables created")
    if done.applied:
        _out(f"  revisions applied: {', '.join(done.applied)}")
    _out(f"database {where} is at revision {done.head} (head)")
    return 0


def _current(engine: Engine, args: argparse.Namespace) -> int:
    from ivr.adapters.sql import schema

    found = schema.current(engine)
    if args.json:
        _out(
            json.dumps(
                {"database": found.where, "state": found.state.value,
                 "revision": found.revision, "head": found.head}
            )
        )  # fmt: skip
    else:
        _out(found.describe())
    return 0 if found.state is schema.SchemaState.current else 1


def _check() -> int:
    from ivr.adapters.sql import schema

    diffs = schema.check()
    if not diffs:
        _out(f"the models and the migrations agree (head {schema.head()})")
        return 0
    _out(f"the models differ from the migrations' head ({schema.head()}):")
    for diff in diffs:
        _out(f"  {diff}")
    _out("add a revision: ivr db revision -m MSG --autogenerate, then review it")
    return 1


def _history(args: argparse.Namespace) -> int:
    from ivr.adapters.sql import schema

    revisions = schema.history()
    if args.json:
        _out(json.dumps([
            {"revision": r.revision, "down_revision": r.down_revision, "message": r.message,
             "head": r.is_head}
            for r in revisions
        ], ensure_ascii=False))  # fmt: skip
        return 0
    for r in revisions:
        _out(f"{r.revision}  {'(head)' if r.is_head else '      '}  {r.message}")
    return 0
