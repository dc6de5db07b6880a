"""``ivr report``: the service-standard figures from SQL, their definitions, and the recompute.

::

    ivr report definitions                      the definitions (docs/figures.md's generated part)
    ivr report calls --month 2026-11 [--by desk|agent] [--json]
    ivr report calls --from 2026-11-01 --to 2026-11-15 [--by desk|agent] [--json]
    ivr report recompute --month 2026-11 [--queue-log PATH] [--dry-run] [--json]
    ivr report month --month 2026-11 --format xlsx|pdf|csv [-o FILE]

Months and days are the hotline's local ones (``metrics.timezone``); ``--to`` is the last
day included. ``calls`` prints the call figures of the window from the ``call_facts`` table,
each with its numerator and denominator. ``recompute`` adds the window's calls that
Asterisk's queue_log has and SQL lacks (``metrics.queue_log_path``, or ``--queue-log``),
classifies from it the calls stored as unknown, lists the stored calls whose class queue_log
contradicts (kept: the reducer's timestamps are the exact ones), and says whether anything
changed. ``month`` writes the monthly file (every figure, per desk, per agent, per department,
the follow-up summary; ivr/adapters/reports/files.py) to ``FILE`` (default
``hotline-report-<window>.<format>`` in the current folder); it takes ``--from``/``--to`` too.

``cli.py`` wires this in: :func:`register` adds the subcommand, :func:`run` executes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr.adapters.metrics.call_facts import recompute
from ivr.adapters.metrics.store import reducer_config
from ivr.adapters.reports.files import FORMATS, monthly_file, report_name, report_title
from ivr.adapters.sql import db as sql
from ivr.adapters.sql.call_figures import CallFigure, call_figures, figures_config
from ivr.adapters.sql.schema import require_head
from ivr.adapters.sql.ticket_figures import key_accounts
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.figures import (
    BY_KEY,
    Window,
    days_window,
    definitions_markdown,
    month_window,
)
from ivr.errors import InvalidInput
from ivr.settings import Settings


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("report", help="the service-standard figures (from SQL)")
    sub = parser.add_subparsers(dest="report_command", required=True)
    sub.add_parser("definitions", help="every figure's definition, as Markdown")
    calls = sub.add_parser("calls", help="the call figures of a month or a day range")
    _window_arguments(calls)
    calls.add_argument("--by", choices=("total", "desk", "agent"), default="total")
    calls.add_argument("--json", action="store_true", help="one JSON object")
    again = sub.add_parser("recompute", help="rebuild a month's call facts from queue_log")
    _window_arguments(again)
    again.add_argument("--queue-log", type=Path, help="Asterisk's queue_log (default: setting)")
    again.add_argument("--dry-run", action="store_true", help="say what would change only")
    again.add_argument("--json", action="store_true", help="one JSON object")
    month = sub.add_parser("month", help="the monthly report file (xlsx, pdf or csv)")
    _window_arguments(month)
    month.add_argument("--format", choices=FORMATS, default="xlsx", dest="fmt")
    month.add_argument("-o", "--output", type=Path, help="the file to write")


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", help="YYYY-MM, local time")
    parser.add_argument("--from", dest="first", help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", help="last day included, YYYY-MM-DD")


def window_of(args: argparse.Namespace, tz: ZoneInfo) -> Window:
    """The local month (``--month``) or days (``--from``/``--to``) as a half-open window."""
    if args.month and (args.first or args.last):
        raise InvalidInput("give either --month or --from/--to, not both")
    try:
        if args.month:
            return month_window(args.month, tz)
        if args.first and args.last:
            return days_window(args.first, args.last, tz)
    except ValueError as exc:
        raise InvalidInput(f"{'--month' if args.month else '--from/--to'}: {exc}") from None
    raise InvalidInput("give --month YYYY-MM, or --from and --to (YYYY-MM-DD)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.report_command == "definitions":
        sys.stdout.write(definitions_markdown())
        return 0
    window = window_of(args, ZoneInfo(settings.metrics.timezone))
    engine = sql.settings_engine(settings)
    try:
        require_head(engine)
        if args.report_command == "calls":
            groups = call_figures(engine, window, figures_config(settings.metrics), args.by)
            _print_calls(window, groups, args.json, _NOBODY[args.by])
            return 0
        if args.report_command == "recompute":
            return _recompute(settings, args, engine, window)
        if args.report_command == "month":
            return _month(settings, args, engine, window)
        raise ValueError(f"unknown report command {args.report_command!r}")
    finally:
        engine.dispose()


def _figure_json(figure: CallFigure) -> dict[str, Any]:
    return {
        "value": figure.value,
        "numerator": figure.numerator,
        "denominator": figure.denominator,
    }


#: How the group ``""`` is shown: the total, the calls that never queued, nobody answered.
_NOBODY = {"total": "total", "desk": "(never queued)", "agent": "(nobody answered, no 工号)"}


def _print_calls(
    window: Window, groups: dict[str, dict[str, CallFigure]], as_json: bool, nobody: str
) -> None:
    if as_json:
        document = {
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "groups": {g: {k: _figure_json(f) for k, f in v.items()} for g, v in groups.items()},
        }
        _out(json.dumps(document, ensure_ascii=False))
        return
    _out(f"calls counted from {window.start.isoformat()} to {window.end.isoformat()} (excluded)")
    for name, figures in groups.items():
        _out()
        _out(f"[{name or nobody}]")
        for key, figure in figures.items():
            definition = BY_KEY[key]
            _out(f"  {definition.zh} {definition.en}: {_shown(figure, definition.unit)}")


def _shown(figure: CallFigure, unit: str) -> str:
    if figure.value is None:
        value = "none"
    elif unit == "rate":
        value = f"{figure.value:.1%}"
    elif unit == "seconds":
        value = f"{figure.value:.1f} s"
    else:
        value = f"{figure.value:g}"
    if figure.numerator is not None:
        return f"{value} ({figure.numerator} of {figure.denominator})"
    if unit != "count":
        return f"{value} (over {figure.denominator} calls)"
    return value


def _recompute(settings: Settings, args: argparse.Namespace, engine: Any, window: Window) -> int:
    path = args.queue_log or settings.metrics.queue_log_path
    if path is None:
        raise InvalidInput("no queue_log: set IVR_METRICS__QUEUE_LOG_PATH or give --queue-log")
    try:
        result = recompute(
            engine, path, window, reducer_config(settings.metrics), dry_run=args.dry_run
        )
    except OSError as exc:
        raise InvalidInput(f"queue_log {path} not readable: {exc}") from None
    if args.json:
        document = {
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "changed": result.changed and not args.dry_run,
            "queue_log_calls": result.queue_log_calls,
            "stored_before": result.stored_before,
            "added": list(result.added),
            "resolved": list(result.resolved),
            "disagree": [
                {"linkedid": d.linkedid, "stored": d.stored, "queue_log": d.queue_log}
                for d in result.disagree
            ],
        }
        _out(json.dumps(document, ensure_ascii=False))
        return 0
    _out(
        f"{window.start.date()} to {window.end.date()} (excluded): {result.stored_before} calls "
        f"stored, {result.queue_log_calls} queued calls in queue_log"
    )
    for d in result.disagree:
        _out(f"  {d.linkedid}: stored {d.stored}, queue_log says {d.queue_log} (kept as stored)")
    if not result.changed:
        _out("nothing changed: every queued call of queue_log has its call fact")
        return 0
    verb = "would change" if args.dry_run else "changed"
    if result.added:
        _out(f"{verb}: {len(result.added)} calls added from queue_log: {' '.join(result.added)}")
    if result.resolved:
        _out(
            f"{verb}: {len(result.resolved)} unknown outcomes classified from queue_log: "
            f"{' '.join(result.resolved)}"
        )
    return 0


def _month(settings: Settings, args: argparse.Namespace, engine: Any, window: Window) -> int:
    accounts = key_accounts(load_routing(settings.routing_dir))
    data = monthly_file(
        engine, window, figures_config(settings.metrics), accounts, args.fmt,
        report_title(window), datetime.now(UTC),
    )  # fmt: skip
    path = args.output or Path(report_name(window, args.fmt))
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc}") from None
    _out(f"wrote {path} ({len(data)} bytes)")
    return 0
