"""The monthly report as tables (the workbook's sheets, the PDF's sections, the CSV): pure.

:func:`monthly_tables` turns a window's facts (:class:`ivr.core.figures.MonthFacts`) into
named tables of plain cells (text and numbers), Chinese first with English beside it:

- 指标 Figures: every figure, its value, numerator, denominator, target and whether it is met;
- 按坐席组 By desk, 按坐席 By agent: the figures per desk (the queue first entered, the
  ticket's desk) and per agent (工号);
- 按部门 By department: the tickets per department and cause (the problem category), their
  count and share of the department's, and the deadline kept, missed or still running;
- 月度回访报告 Follow-ups: per follow-up figure (complaints, repaired faults, new supply) the
  tickets owing a follow-up, how many were called, reached (resolved or not), satisfied,
  refused, not reached or not called yet, and the rate (:func:`follow_up_summary`);
- 回访明细 Follow-up records: each ticket owing a follow-up and where it stands (a detail
  table: in the workbook and the CSV, not the PDF);
- 满意度来源 Satisfaction sources: per satisfaction figure, how many counted answers came from
  the post-call survey and how many from a follow-up call, and how many of each were
  satisfied (each answer's source is in the page's lists).

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
    AnswerSource,
    FiguresConfig,
    FigureValue,
    FollowUpRecord,
    FollowUpState,
    MonthFacts,
    TicketFact,
    Window,
    agent_groups,
    all_figures,
    call_figures,
    follow_up_records,
    group_by,
    replied_in_time,
    ticket_groups,
)

Cell = str | float | int | None
NOBODY: Final = "(无 none)"


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # the sheet's name: Chinese, then English
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()
    detail: bool = False  # one row per item: the PDF names it instead of printing it


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


#: How the follow-up report names each state (Chinese, then English).
STATE_NAMES: Final = {
    FollowUpState.resolved: "已解决 resolved",
    FollowUpState.not_resolved: "未解决 not resolved",
    FollowUpState.refused: "拒访 refused",
    FollowUpState.not_reached: "未接通 not reached",
    FollowUpState.not_called: "未拨打 not called yet",
}
SUMMARY_FIELDS: Final = (
    "owed", "called", "reached", "resolved", "not_resolved", "satisfied", "dissatisfied",
    "refused", "not_reached", "not_called",
)  # fmt: skip
SUMMARY_HEADER: Final = (
    "回访指标 figure", "应回访 owed", "已拨打 called", "已回访 reached", "已解决 resolved",
    "未解决 not resolved", "满意 satisfied", "不满意 dissatisfied", "拒访 refused",
    "未接通 not reached", "未拨打 not called", "回访率 rate", "是否达标 met",
)  # fmt: skip


def follow_up_summary(records: Sequence[FollowUpRecord]) -> dict[str, dict[str, int]]:
    """Per follow-up figure (in FIGURES' order): the counts of :data:`SUMMARY_FIELDS`."""
    out: dict[str, dict[str, int]] = {}
    for f in FIGURES:
        if f.family != "follow_up":
            continue
        mine = [r for r in records if r.figure == f.key]
        states = [r.state for r in mine]
        reached = states.count(FollowUpState.resolved) + states.count(FollowUpState.not_resolved)
        out[f.key] = {
            "owed": len(mine),
            "called": sum(1 for r in mine if r.attempts > 0),
            "reached": reached,
            "resolved": states.count(FollowUpState.resolved),
            "not_resolved": states.count(FollowUpState.not_resolved),
            "satisfied": sum(1 for r in mine if r.satisfied is True),
            "dissatisfied": sum(1 for r in mine if r.satisfied is False),
            "refused": states.count(FollowUpState.refused),
            "not_reached": states.count(FollowUpState.not_reached),
            "not_called": states.count(FollowUpState.not_called),
        }
    return out


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("是 yes" if value else "否 no")


def follow_up_tables(
    facts: MonthFacts, window: Window, values: Mapping[str, FigureValue]
) -> list[Table]:
    """The follow-up summary (月度回访报告), its records, and the satisfaction answers counted
    with their sources."""
    records = follow_up_records(facts.tickets, facts.follow_ups, facts.answers, window)
    summary = [
        (
            f"{BY_KEY[key].zh} {BY_KEY[key].en}",
            *(counts[field] for field in SUMMARY_FIELDS),
            values[key].value,
            _met(values[key]),
        )
        for key, counts in follow_up_summary(records).items()
    ]
    record_rows = tuple(
        (
            r.ticket.id, f"{BY_KEY[r.figure].zh} {BY_KEY[r.figure].en}", STATE_NAMES[r.state],
            r.attempts, r.last_at.isoformat() if r.last_at else None, _yes_no(r.satisfied),
        )
        for r in records
    )  # fmt: skip
    return [
        Table("月度回访报告 Follow-ups", SUMMARY_HEADER, tuple(summary)),
        Table(
            "回访明细 Follow-up records",
            (
                "工单 ticket",
                "回访指标 figure",
                "结果 state",
                "拨打次数 attempts",
                "最近拨打 last attempt",
                "满意 satisfied",
            ),
            record_rows,
            detail=True,
        ),  # fmt: skip
        Table(
            "满意度来源 Satisfaction sources",
            SOURCE_HEADER,
            tuple(source_rows(values)),
            (ONE_ANSWER_NOTE,),
        ),
    ]


SOURCE_HEADER: Final = (
    "满意度指标 figure", "工单 tickets", "调查答复 survey answers", "调查满意 survey satisfied",
    "回访答复 follow-up answers", "回访满意 follow-up satisfied", "未答复 no answer",
)  # fmt: skip


def source_rows(values: Mapping[str, FigureValue]) -> list[tuple[Cell, ...]]:
    """Per satisfaction figure: its tickets, the counted answers from each source and how
    many of them were satisfied, and the tickets with no answer."""
    rows: list[tuple[Cell, ...]] = []
    for f in FIGURES:
        if f.family != "satisfaction":
            continue
        value = values[f.key]
        satisfied = set(value.numerator)
        counts: list[int] = []
        for source in AnswerSource:
            ids = [i for i, s in value.sources.items() if s == source.value]
            counts += [len(ids), sum(1 for i in ids if i in satisfied)]
        unanswered = len(value.denominator) - len(value.sources)
        rows.append((f"{f.zh} {f.en}", len(value.denominator), *counts, unanswered))
    return rows


ONE_ANSWER_NOTE: Final = (
    "每件工单一个答案 one answer per ticket: the follow-up call's when it has one, else the "
    "post-call survey's (docs/figures.md)"
)


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
    return [
        Table("指标 Figures", FIGURE_HEADER, tuple(_figure_rows(values))),
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
        *follow_up_tables(facts, window, values),
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
