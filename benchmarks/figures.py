"""The month's figures and the monthly file from SQL (issue #16's benchmark), on this machine.

A month of ``--calls`` call facts (200,000 by default: five desks, 40 agents, 3 % emergency,
the classes mixed as a busy month's) is written to the ``call_facts`` table of a SQLite file
and of a private PostgreSQL server (Debian's, as the tests start it), each at the newest
schema. Then, best of ``--repeat`` runs each, through :mod:`ivr.adapters.sql.call_figures`
exactly as ``ivr report calls`` runs it:

- the month's figures in total, per desk and per agent;
- the list of calls behind the answer rate's denominator (every offered call's Linkedid);
- with ``--tickets`` tickets (50,000 by default: a third complaints, a third consultations,
  the rest faults; half with a survey answer; a follow-up for each closed complaint and
  fault) written beside them: every figure of the month
  as ``/api/reports/figures`` computes it (:mod:`ivr.adapters.sql.report_figures`: the calls
  counted in SQL, the rest by the core), in total and per agent; the same with every call
  loaded into the core (:func:`ivr.core.figures.all_figures`, as the monthly file does); and
  the monthly workbook (``ivr report month --format xlsx``);

each as a ratio against the baseline measured in the same run on the same database: a plain
``SELECT COUNT(*)`` of the month's rows.

    .venv/bin/python benchmarks/figures.py [--calls 200000] [--tickets 50000] [--repeat 5]
                                           [--no-postgres]

Not a test: it prints figures. About a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg_support

from ivr.adapters.reports.files import monthly_file
from ivr.adapters.sql.call_figures import call_figures, calls_of
from ivr.adapters.sql.db import (
    CallFactRow,
    Followup,
    SurveyAnswer,
    Ticket,
    create_db_engine,
    utcnow,
)
from ivr.adapters.sql.report_figures import report_figures
from ivr.adapters.sql.schema import upgrade
from ivr.adapters.sql.ticket_figures import month_facts
from ivr.core.figures import DEFAULT_CONFIG, Window, all_figures
from ivr.core.metrics import CallClass

START = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai
MONTH = Window(START, datetime(2026, 11, 30, 16, tzinfo=UTC))
DESKS = ("repair", "billing", "complaints", "consultation", "emergency")
KINDS = (
    CallClass.ANSWERED, CallClass.ANSWERED_LATE, CallClass.ABANDONED, CallClass.TIMED_OUT,
    CallClass.IVR_ONLY,
)  # fmt: skip
WEIGHTS = (0.78, 0.08, 0.08, 0.02, 0.04)


def facts(count: int, seed: int = 16) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    span = (MONTH.end - MONTH.start).total_seconds()
    rows = []
    for n in range(count):
        klass = rng.choices(KINDS, WEIGHTS)[0]
        desk = "emergency" if rng.random() < 0.03 else rng.choice(DESKS[:4])
        at = MONTH.start + timedelta(seconds=rng.random() * span)
        queued = klass is not CallClass.IVR_ONLY
        connected = klass in (CallClass.ANSWERED, CallClass.ANSWERED_LATE)
        number = 1001 + rng.randrange(40)
        wait = rng.uniform(0, 60) if klass is not CallClass.ANSWERED_LATE else rng.uniform(60, 300)
        rows.append(
            {
                "linkedid": f"1762000000.{n}", "callid": f"1762000000.{n}",
                "klass": klass.value, "queue": desk if queued else "",
                "emergency": queued and desk == "emergency",
                "threshold_s": 15.0 if desk == "emergency" else 60.0,
                "wait_s": wait if queued else 0.0, "counted_at": at,
                "entered_at": at if queued else None, "closed_at": at + timedelta(minutes=3),
                "agent": f"{number} 坐席" if connected else "",
                "work_number": str(number) if connected else "",
                "talk_s": rng.uniform(30, 600) if connected else None,
                "source": "ami", "stored_at": utcnow(),
            }
        )  # fmt: skip
    return rows


Made = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def tickets(count: int, seed: int = 17) -> Made:
    """``count`` tickets of the month, a survey answer for half of them, and a follow-up for
    each closed complaint and fault (answered, refused or not reached, as the role leaves
    them)."""
    rng = random.Random(seed)
    span = (MONTH.end - MONTH.start).total_seconds()
    rows, answers, follow_ups = [], [], []
    results = ("answered", "answered", "answered", "refused", "no answer")
    outcomes = ("satisfied", "basically satisfied", "dissatisfied", "no answer")
    for n in range(count):
        at = MONTH.start + timedelta(seconds=rng.random() * span)
        kind = n % 3
        replied = at + timedelta(hours=rng.uniform(1, 200)) if rng.random() < 0.9 else None
        rows.append(
            {
                "id": n + 1, "linkedid": f"t{n}", "caller": f"138{n:08d}",
                "desk": ("complaints", "consultation", "repair")[kind], "complaint": kind == 0,
                "level": "L3" if kind == 0 else None, "created_at": at,
                "deadline_at": at + timedelta(hours=96), "customer_reply_at": replied,
                "closed_at": replied, "agent": f"{1001 + rng.randrange(40)} 坐席",
                "department": rng.choice(("repair", "billing", "customer-service")),
                "problem_category": rng.choice(("gas", "water", "heating", "billing")),
            }
        )  # fmt: skip
        if n % 2:
            answers.append(
                {"linkedid": f"t{n}", "outcome": rng.choice(outcomes), "call_ended_at": at}
            )
        if replied is not None and kind != 1:
            result = rng.choice(results)
            follow_ups.append(
                {
                    "ticket_id": n + 1, "number": f"138{n:08d}", "created_at": replied,
                    "status": "finished", "attempts": 1 + rng.randrange(3),
                    "last_attempt_at": replied + timedelta(days=1), "last_result": result,
                    "resolved": rng.random() < 0.9 if result == "answered" else None,
                    "satisfaction": rng.choice(outcomes[:3]) if result == "answered" else None,
                    "finished_at": replied + timedelta(days=1),
                }
            )  # fmt: skip
    return rows, answers, follow_ups


def fill(
    engine: Engine, rows: list[dict[str, Any]], ticket_rows: list[dict[str, Any]],
    answers: list[dict[str, Any]], follow_ups: list[dict[str, Any]],
) -> float:  # fmt: skip
    upgrade(engine)
    began = time.perf_counter()
    tables = ((CallFactRow, rows), (Ticket, ticket_rows), (SurveyAnswer, answers),
              (Followup, follow_ups))  # fmt: skip
    with engine.begin() as conn:
        for table, items in tables:
            for start in range(0, len(items), 10_000):
                conn.execute(insert(table), items[start : start + 10_000])
    return time.perf_counter() - began


def best(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return min(times)


def run(
    name: str, engine: Engine, rows: list[dict[str, Any]],
    made: Made, repeat: int,
) -> None:  # fmt: skip
    loaded = fill(engine, rows, *made)
    in_month = (CallFactRow.counted_at >= MONTH.start) & (CallFactRow.counted_at < MONTH.end)

    def baseline() -> object:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(in_month)).scalar_one()

    base = best(baseline, repeat)
    total = call_figures(engine, MONTH)[""]
    print(f"\n{name}: {len(rows):,} call facts, {len(made[0]):,} tickets written in {loaded:.1f} s")
    print(f"  baseline COUNT(*) of the month: {base * 1000:.1f} ms")
    answer = total["answer_rate"]
    print(f"  (answer rate {answer.value:.1%}, {answer.numerator} of {answer.denominator})")

    def offered() -> object:
        return calls_of(engine, MONTH, "answer_rate", "denominator")

    for label, action in (
        ("figures, total", lambda: call_figures(engine, MONTH)),
        ("figures, per desk", lambda: call_figures(engine, MONTH, grouping="desk")),
        ("figures, per agent", lambda: call_figures(engine, MONTH, grouping="agent")),
        ("calls behind the denominator", offered),
        ("every figure (as /reports)", lambda: every_figure(engine)),
        ("every figure, per agent", lambda: report_figures(
            engine, MONTH, DEFAULT_CONFIG, (), "agent")),
        ("every figure, calls loaded", lambda: every_figure_loaded(engine)),
        ("the monthly xlsx", lambda: monthly_file(
            engine, MONTH, DEFAULT_CONFIG, (), "xlsx", "bench", MONTH.end)),
    ):  # fmt: skip
        seconds = best(action, repeat)
        print(f"  {label:<30} {seconds * 1000:8.1f} ms  {seconds / base:6.1f}x the COUNT(*)")


def every_figure(engine: Engine) -> object:
    return report_figures(engine, MONTH, DEFAULT_CONFIG, ())


def every_figure_loaded(engine: Engine) -> object:
    return all_figures(month_facts(engine, MONTH, ()), MONTH)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = facts(args.calls)
    made = tickets(args.tickets)
    with tempfile.TemporaryDirectory(prefix="hotline-bench-figures-") as folder:
        engine = create_db_engine(f"sqlite:///{Path(folder) / 'figures.db'}")
        try:
            run("SQLite", engine, rows, made, args.repeat)
        finally:
            engine.dispose()
    if args.no_postgres:
        return 0
    # the tests' private server (tests/pg_support.py, not type-checked: imported by name)
    server = importlib.import_module("tests.pg_support").PostgresServer.start()
    try:
        engine = create_db_engine(server.url(server.create_database()))
        try:
            run("PostgreSQL", engine, rows, made, args.repeat)
        finally:
            engine.dispose()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
