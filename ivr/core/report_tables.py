"""The monthly report as tables (the workbook's sheets, the PDF's sections, the CSV): pure.

:func:`monthly_tables` turns a window's facts (:class:`ivr.core.figures.MonthFacts`) into
named tables of plain cells (text and numbers), Chinese first with English beside it:

- 指标 Figures: every figure, its value, numerator, denominator, target and whether it is met;
- 按坐席组 By desk, 按坐席 By agent: the figures per desk (the queue first entered, the
  ticket's desk) and per agent (工号);
- 按部门 By department: the tickets per department and cause (the problem category), their
  count and share of the department's, and the deadline kept, missed or still running;
- 月度回访报告 Follow-ups: the follow-up rates, and a line saying no follow-up data is stored
  yet when there is none (the figures table says so too).

The writers (ivr/adapters/reports/files.py) only lay the tables out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ivr.core.figures import (
    BY_KEY,
    FIGURES,
    FiguresConfig,
    FigureValue,
    MonthFacts,
    TicketFact,
    Window,
    agent_groups,
    all_figures,
    call_figures,
    group_by,
    replied_in_time,
    ticket_groups,
)

Cell = str | float | int | None
NO_FOLLOW_UP_NOTE: Final = (
    "尚无回访数据 no follow-up data yet: the follow-up rates count no follow-up"
)
NOBODY: Final = "(无 none)"


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # the sheet's name: Chinese, then English
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()


def shown(value: float | None, unit: str) -> str:
    """A figure's value as text.

    >>> shown(0.905, "rate"), shown(27.75, "seconds"), shown(3.0, "count"), shown(None, "rate")
    ('90.5%', '27.8 s', '3', '—')
    """
    if value is None:
        return "—"
    if unit == "rate":
        return f"{value:.1%}"
    if unit == "seconds":
        return f"{value:.1f} s"
    return f"{value:g}"


def _met(value: FigureValue) -> str:
    meets = value.meets_target
    return "" if meets is None else ("达标 met" if meets else "未达标 missed")


def _figure_rows(values: Mapping[str, FigureValue], group: str = "") -> list[tuple[Cell, ...]]:
    rows: list[tuple[Cell, ...]] = []
    for key, value in values.items():
        f = BY_KEY[key]
        is_rate = f.unit == "rate" and f.family != "agents"
        rows.append(
            (
                *((group,) if group else ()),
                f"{f.zh} {f.en}",
                value.value,
                shown(value.value, f.unit),
                len(value.numerator) if is_rate else None,
                len(value.denominator) if f.key != "occupancy" else None,
                f.target.text(f.unit) if f.target else "",
                _met(value),
            )
        )
    return rows


FIGURE_HEADER: Final = (
    "指标 figure", "数值 value", "显示 shown", "分子 numerator", "分母 denominator",
    "目标 target", "是否达标 met",
)  # fmt: skip


def grouped_figures(
    facts: MonthFacts, window: Window, config: FiguresConfig, by: str
) -> dict[str, dict[str, FigureValue]]:
    """The figures per ``desk`` or per ``agent`` (工号): the call figures of its calls, the
    ticket figures of its tickets, and (per agent) occupancy and the QA average. A group
    ``""`` holds what has no desk or no agent."""
    calls_key = (lambda c: c.queue) if by == "desk" else (lambda c: c.work_number)
    tickets_key = (lambda t: t.desk) if by == "desk" else (lambda t: t.agent)
    out: dict[str, dict[str, FigureValue]] = {}
    for name, calls in group_by(facts.calls, calls_key).items():
        if any(c.counted_at in window for c in calls):
            out.setdefault(name, {}).update(call_figures(calls, window, config))
    for name, values in ticket_groups(facts, window, tickets_key).items():
        out.setdefault(name, {}).update(values)
    if by == "agent":
        for name, values in agent_groups(facts, window).items():
            out.setdefault(name, {}).update(values)
    order = {f.key: i for i, f in enumerate(FIGURES)}
    return {
        name: dict(sorted(values.items(), key=lambda kv: order[kv[0]]))
        for name, values in sorted(out.items())
    }


def deadline_state(ticket: TicketFact, as_of: datetime) -> str:
    """``kept`` (replied at or before the deadline, or replied with none), ``missed``
    (replied after it, or not replied and the deadline passed by ``as_of``) or ``open``."""
    if replied_in_time(ticket):
        return "kept"
    if ticket.replied_at is not None:
        return "missed"
    if ticket.deadline_at is not None and ticket.deadline_at < as_of:
        return "missed"
    return "open"


def department_rows(
    tickets: Sequence[TicketFact], window: Window, as_of: datetime
) -> list[tuple[Cell, ...]]:
    """Per department and cause: count, share of the department's tickets, deadline kept,
    missed, still open; each department's total first."""
    opened = [t for t in tickets if t.opened_at in window]
    rows: list[tuple[Cell, ...]] = []
    for department, group in group_by(opened, lambda t: t.department).items():
        causes = [(category or NOBODY, items) for category, items in
                  group_by(group, lambda t: t.category).items()]  # fmt: skip
        for cause, items in [("合计 all", group), *causes]:
            states = [deadline_state(t, as_of) for t in items]
            rows.append(
                (
                    department or NOBODY,
                    cause,
                    len(items),
                    round(len(items) / len(group), 4),
                    states.count("kept"),
                    states.count("missed"),
                    states.count("open"),
                )
            )
    return rows


DEPARTMENT_HEADER: Final = (
    "部门 department", "原因 cause", "件数 count", "占比 share", "按时 kept", "超时 missed",
    "未到期 open",
)  # fmt: skip


def missing_notes(facts: MonthFacts) -> tuple[str, ...]:
    """What the report says is not stored yet: no follow-up call."""
    return () if facts.follow_ups else (NO_FOLLOW_UP_NOTE,)


def monthly_tables(
    facts: MonthFacts,
    window: Window,
    config: FiguresConfig,
    as_of: datetime,
) -> list[Table]:
    """The monthly report's tables, in order."""
    values = all_figures(facts, window, config)
    by_desk = grouped_figures(facts, window, config, "desk")
    by_agent = grouped_figures(facts, window, config, "agent")
    follow_keys = [f.key for f in FIGURES if f.family == "follow_up"]
    follow_notes = () if facts.follow_ups else (NO_FOLLOW_UP_NOTE,)
    return [
        Table("指标 Figures", FIGURE_HEADER, tuple(_figure_rows(values)), missing_notes(facts)),
        Table(
            "按坐席组 By desk",
            ("坐席组 desk", *FIGURE_HEADER),
            tuple(r for d, v in by_desk.items() for r in _figure_rows(v, d or NOBODY)),
        ),
        Table(
            "按坐席 By agent",
            ("工号 agent", *FIGURE_HEADER),
            tuple(r for a, v in by_agent.items() for r in _figure_rows(v, a or NOBODY)),
        ),
        Table(
            "按部门 By department",
            DEPARTMENT_HEADER,
            tuple(department_rows(facts.tickets, window, as_of)),
        ),
        Table(
            "月度回访报告 Follow-ups",
            FIGURE_HEADER,
            tuple(_figure_rows({k: values[k] for k in follow_keys})),
            follow_notes,
        ),
    ]


def figures_by(
    facts: MonthFacts, window: Window, config: FiguresConfig, by: str
) -> dict[str, dict[str, FigureValue]]:
    """Every figure in total (``by="total"``: the group ``""``), or per ``desk``, ``agent``
    (工号) or ``department`` (the ticket figures of its tickets)."""
    if by == "total":
        return {"": all_figures(facts, window, config)}
    if by == "department":
        return ticket_groups(facts, window, lambda t: t.department)
    return grouped_figures(facts, window, config, by)


#: The figures whose lists hold calls (Linkedids); the others' hold tickets (ids).
CALL_LISTS: Final = frozenset(
    f.key for f in FIGURES if f.family == "calls" or f.key in ("occupancy", "qa_average")
)
