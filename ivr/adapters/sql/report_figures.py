"""Every figure of a window, as the report page shows it, fast enough for a busy month.

The call figures are counted in SQL (:mod:`ivr.adapters.sql.call_figures`: a month of 200,000
calls is never loaded into Python), the others computed by :mod:`ivr.core.figures` from the
facts :func:`ivr.adapters.sql.ticket_figures.month_facts` reads without the calls. Occupancy
joins the two: the talk time of the answered calls with a known talk time (SQL, the handle
time's sum) over the logged-in time (the core's shifts). The lists behind a number come from
the same places (:func:`items_of`), so a count and its list cannot disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Literal

from sqlalchemy import Engine

from ivr.adapters.sql.call_figures import CALL_FIGURES, CallFigure, call_figures, calls_of
from ivr.adapters.sql.ticket_figures import (
    STORED_FOLLOW_UPS,
    STORED_REPEATS,
    FollowUpReader,
    RepeatReader,
    month_facts,
)
from ivr.core.figures import (
    BY_KEY,
    FIGURES,
    FiguresConfig,
    FigureValue,
    MonthFacts,
    Window,
    follow_up_records,
)
from ivr.core.report_tables import figures_by

Grouping = Literal["total", "desk", "agent", "department"]
Part = Literal["numerator", "denominator"]
_ORDER: Final = {f.key: i for i, f in enumerate(FIGURES)}


@dataclass(frozen=True, slots=True)
class Counted:
    """A figure's value with how many items are above and below the line."""

    key: str
    value: float | None
    numerator: int | None  # None: not a ratio
    denominator: int | None  # None: not a count of items (occupancy divides by time)
    sources: Mapping[str, int] = field(default_factory=dict)  # survey / follow_up -> answers

    @property
    def meets_target(self) -> bool | None:
        target = BY_KEY[self.key].target
        return None if target is None or self.value is None else target.met(self.value)


def _of_value(value: FigureValue) -> Counted:
    figure = BY_KEY[value.key]
    ratio = figure.unit == "rate" and figure.family != "agents"
    sources = list(value.sources.values())
    return Counted(
        value.key,
        value.value,
        len(value.numerator) if ratio else None,
        len(value.denominator) if value.key != "occupancy" else None,
        {s: sources.count(s) for s in sorted(set(sources))},
    )


def _of_call(figure: CallFigure) -> Counted:
    return Counted(figure.key, figure.value, figure.numerator, figure.denominator)


def _occupancy(talk: CallFigure | None, logged_in: float) -> Counted:
    seconds = 0.0 if talk is None or talk.value is None else talk.value * talk.denominator
    count = 0 if talk is None else talk.denominator
    return Counted("occupancy", seconds / logged_in if logged_in > 0 else None, count, None)


def report_figures(
    engine: Engine,
    window: Window,
    config: FiguresConfig,
    accounts: Collection[str],
    by: Grouping = "total",
    *,
    follow_ups: FollowUpReader = STORED_FOLLOW_UPS,
    repeats: RepeatReader = STORED_REPEATS,
) -> tuple[dict[str, dict[str, Counted]], MonthFacts]:
    """Group name -> figure key -> :class:`Counted`, in FIGURES' order; and the facts read
    (without the calls).

    The call figures' SQL runs on a second connection while this thread reads and computes
    the rest: the two are independent, and the database works on the first while Python
    builds the facts of the second (a busy month per agent: 200,000 calls, 50,000 tickets)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = (
            pool.submit(call_figures, engine, window, config, by) if by != "department" else None
        )
        facts = month_facts(engine, window, accounts, follow_ups, repeats, calls=False)
        pure = figures_by(facts, window, config, by)
        calls = counting.result() if counting is not None else None
    out: dict[str, dict[str, Counted]] = {
        name: {key: _of_value(value) for key, value in values.items() if key not in CALL_FIGURES}
        for name, values in pure.items()
    }
    if calls is not None:  # not per department: its groups are the tickets' only
        for name, called in calls.items():
            out.setdefault(name, {}).update({k: _of_call(v) for k, v in called.items()})
        if by != "desk":  # per agent: the agents (工号), not the calls nobody answered
            for name, values in out.items():
                if by == "agent" and not name:
                    continue
                shifts = [s for s in facts.shifts if by == "total" or s.agent == name]
                talk = calls.get(name, {}).get("handle_mean")
                values["occupancy"] = _occupancy(talk, sum(s.logged_in_s for s in shifts))
    return {
        name: dict(sorted(values.items(), key=lambda kv: _ORDER[kv[0]]))
        for name, values in sorted(out.items())
    }, facts


def items_of(
    engine: Engine,
    window: Window,
    config: FiguresConfig,
    accounts: Collection[str],
    key: str,
    part: Part,
    by: Grouping = "total",
    group: str = "",
    *,
    follow_ups: FollowUpReader = STORED_FOLLOW_UPS,
    repeats: RepeatReader = STORED_REPEATS,
) -> tuple[list[str], Mapping[str, str], Mapping[str, str]] | None:
    """The ids one number counts (Linkedids for the call figures, occupancy and the QA
    average; ticket ids for the others), the satisfaction answers' sources and the follow-up
    state of each ticket that owes a follow-up (ticket id -> :class:`FollowUpState`); None
    when the group has no such figure."""
    if key in CALL_FIGURES or key == "occupancy":
        if by == "department" or (key == "occupancy" and (by == "desk" or part != "numerator")):
            return None
        condition = "handle_mean" if key == "occupancy" else key
        grouping: Literal["total", "desk", "agent"] = by
        return calls_of(engine, window, condition, "denominator" if key == "occupancy" else part,
                        config, grouping=grouping, group=group), {}, {}  # fmt: skip
    facts = month_facts(engine, window, accounts, follow_ups, repeats, calls=False)
    values = figures_by(facts, window, config, by).get(group, {})
    if key not in values:
        return None
    value = values[key]
    records = follow_up_records(facts.tickets, facts.follow_ups, facts.answers, window)
    states = {str(r.ticket.id): r.state.value for r in records}
    ids = list(value.numerator if part == "numerator" else value.denominator)
    return ids, value.sources, states
