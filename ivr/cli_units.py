"""``ivr restart ROLE``: the dev stack of ``ivr up``, one role stopped and started again.

::

    ivr restart ROLE                                            dev stack: stop, start, wait ready

``cli.py`` wires these in with :func:`register` and :func:`run`.
"""

from __future__ import annotations

import argparse
import sys

from ivr.settings import Settings

COMMANDS = frozenset({"restart"})


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ivr.stack import ROLE_ORDER

    restart = subparsers.add_parser(
        "restart", help="dev stack (ivr up): stop one role and start it again, until ready"
    )
    restart.add_argument("role", choices=ROLE_ORDER)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return restart(settings, args)


# --- ivr restart ------------------------------------------------------------------------
def restart(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.stack import Stack

    rec = Stack(settings).restart_role(args.role)
    _out(f"{rec.name}: running again and ready, pid {rec.pid}, {rec.endpoint}  log {rec.log}")
    return 0
