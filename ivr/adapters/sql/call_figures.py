"""The call figures of a window from the ``call_facts`` table, in SQL, on SQLite and PostgreSQL.

The same definitions as :func:`ivr.core.figures.call_figures` (docs/figures.md), each figure
a numerator condition and a denominator condition on a call fact (:func:`conditions`), so the
counts (one ``GROUP BY`` for the total, per desk or per agent) and the lists of calls behind
a number (:func:`calls_of`) cannot drift apart. ``tests/integration/test_call_facts.py``
checks both against the pure functions on the synthetic month.

- per desk: by the queue first entered (``queue``; ``""`` for calls that never queued);
- per agent: by the 工号 of who answered (``work_number``); calls nobody answered, or a
  member without a 工号 answered (the dev stack's simulated agents), are in the group ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Engine, and_, case, false, func, literal, select
from sqlalchemy.engine import Connection

from ivr.adapters.sql.db import CallFactRow, Recording, Ticket
from ivr.core.figures import (
    CONNECTED_CLASSES,
    DEFAULT_CONFIG,
    OFFERED_CLASSES,
    FiguresConfig,
    Window,
)
from ivr.core.metrics import CallClass
from ivr.settings import MetricsSettings

Grouping = Literal["total", "desk", "agent"]
TOTAL: Final = ""  # the group name of the total
CALL_FIGURES: Final = (
    "answer_rate", "emergency_in_time", "offered", "answered", "abandoned", "short_abandons",
    "wait_mean", "wait_p90", "handle_mean",
)  # fmt: skip

_Condition = ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class CallFigure:
    key: str
    value: float | None  # None: nothing to divide by (or no call to average)
    numerator: int | None  # how many calls above the line; None when not a ratio
    denominator: int  # the calls below the line, counted, or averaged over


def figures_config(settings: MetricsSettings) -> FiguresConfig:
    """The short-abandon time and the emergency queue's threshold from the settings."""
    emergency = settings.thresholds.get("emergency", DEFAULT_CONFIG.emergency_s)
    return FiguresConfig(short_abandon_s=settings.short_abandon_s, emergency_s=emergency)


def conditions(config: FiguresConfig) -> dict[str, tuple[_Condition | None, _Condition]]:
    """Figure key -> (numerator condition or None, denominator condition)."""
    f = CallFactRow
    offered = f.klass.in_([c.value for c in OFFERED_CLASSES])
    connected = f.klass.in_([c.value for c in CONNECTED_CLASSES])
    gave_up = f.klass.in_([CallClass.ABANDONED.value, CallClass.TIMED_OUT.value])
    short = and_(f.klass == CallClass.ABANDONED.value, f.wait_s < config.short_abandon_s)
    emergency = and_(f.emergency, offered)
    return {
        "answer_rate": (f.klass == CallClass.ANSWERED.value, offered),
        "emergency_in_time": (
            and_(f.emergency, connected, f.wait_s <= config.emergency_s),
            emergency,
        ),
        "offered": (None, offered),
        "answered": (None, connected),
        "abandoned": (None, gave_up),
        "short_abandons": (None, short),
        "wait_mean": (None, connected),
        "wait_p90": (None, connected),
        "handle_mean": (None, and_(connected, f.talk_s.is_not(None))),
    }


def _group_column(grouping: Grouping) -> ColumnElement[Any]:
    if grouping == "desk":
        return CallFactRow.__table__.c.queue
    if grouping == "agent":
        return CallFactRow.__table__.c.work_number
    return literal(TOTAL)


def _in_window(window: Window) -> _Condition:
    return and_(CallFactRow.counted_at >= window.start, CallFactRow.counted_at < window.end)


def _count(condition: _Condition) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def call_figures(
    engine: Engine,
    window: Window,
    config: FiguresConfig = DEFAULT_CONFIG,
    grouping: Grouping = "total",
) -> dict[str, dict[str, CallFigure]]:
    """Group name (``""`` for the total) -> figure key -> its value and counts.

    The total has an entry even with no call in the window (every count 0, rates None).
    """
    cond = conditions(config)
    group = _group_column(grouping).label("grp")
    named = {"n_" + key: den for key, (_, den) in cond.items()}
    named |= {"p_" + key: num for key, (num, _) in cond.items() if num is not None}
    columns: list[Any] = [group]
    columns += [_count(c).label(name) for name, c in named.items()]
    columns.append(func.sum(case((cond["wait_mean"][1], CallFactRow.wait_s))).label("wait_sum"))
    columns.append(func.sum(case((cond["handle_mean"][1], CallFactRow.talk_s))).label("talk_sum"))
    query = select(*columns).where(_in_window(window)).group_by(group)
    out: dict[str, dict[str, CallFigure]] = {}
    with engine.connect() as conn:
        rows: list[Mapping[str, Any]] = [dict(row._mapping) for row in conn.execute(query)]
        if grouping == "total" and not rows:
            rows = [{"grp": TOTAL}]
        p90s = _p90s(conn, window, cond["wait_p90"][1], grouping)
    for row in rows:
        name = str(row["grp"])
        counts = {k: int(row.get(k) or 0) for k in named}
        out[name] = _figures(row, counts, p90s.get(name))
    return dict(sorted(out.items()))


def _figures(
    row: Mapping[str, Any], counts: Mapping[str, int], p90: float | None
) -> dict[str, CallFigure]:
    result: dict[str, CallFigure] = {}
    for key in CALL_FIGURES:
        den = counts["n_" + key]
        num = counts.get("p_" + key)
        if num is not None:
            value = num / den if den else None
        elif key == "wait_mean":
            value = float(row["wait_sum"]) / den if den else None
        elif key == "handle_mean":
            value = float(row["talk_sum"]) / den if den else None
        elif key == "wait_p90":
            value = p90
        else:
            value = float(den)
        result[key] = CallFigure(key, value, num, den)
    return result


def _p90s(
    conn: Connection, window: Window, connected: _Condition, grouping: Grouping
) -> dict[str, float]:
    """Per group, the nearest-rank 90th percentile of the answered calls' waits: the
    ceil(0.9 n)-th of its n waits in order (one query for every group: each group's waits
    numbered in a window function; a group with no answered call has none)."""
    column = _group_column(grouping)
    part = None if grouping == "total" else column
    ranked = (
        select(
            column.label("grp"),
            CallFactRow.wait_s,
            func.row_number().over(partition_by=part, order_by=CallFactRow.wait_s).label("rn"),
            func.count().over(partition_by=part).label("n"),
        )
        .where(_in_window(window), connected)
        .subquery()
    )
    # rn = ceil(0.9 n), in integers: 10 rn >= 9 n > 10 (rn - 1)
    query = select(ranked.c.grp, ranked.c.wait_s).where(
        ranked.c.rn * 10 >= ranked.c.n * 9, (ranked.c.rn - 1) * 10 < ranked.c.n * 9
    )
    return {str(row.grp): float(row.wait_s) for row in conn.execute(query)}


def calls_of(
    engine: Engine,
    window: Window,
    key: str,
    part: Literal["numerator", "denominator"],
    config: FiguresConfig = DEFAULT_CONFIG,
    *,
    grouping: Grouping = "total",
    group: str = TOTAL,
) -> list[str]:
    """The Linkedids a figure counts above (``numerator``) or below the line, in the order
    the calls were counted (first queue entry, then Linkedid). Raises KeyError for a figure
    that is not a call figure."""
    numerator, denominator = conditions(config)[key]
    condition = denominator if part == "denominator" else numerator
    where = [_in_window(window), condition if condition is not None else false()]
    if grouping != "total":
        where.append(_group_column(grouping) == group)
    query = (
        select(CallFactRow.linkedid)
        .where(*where)
        .order_by(CallFactRow.counted_at, CallFactRow.linkedid)
    )
    with engine.connect() as conn:
        return list(conn.scalars(query))


def call_rows(engine: Engine, linkedids: Sequence[str]) -> list[dict[str, Any]]:
    """The facts of these calls, in the order given, each with the id of its recording and
    of its ticket when it has them (``None`` otherwise): where a number leads on to."""
    if not linkedids:
        return []
    f = CallFactRow
    query = (
        select(
            f.linkedid, f.klass, f.queue, f.emergency, f.wait_s, f.threshold_s, f.counted_at,
            f.closed_at, f.agent, f.work_number, f.talk_s, f.source,
            Recording.id.label("recording_id"), Ticket.id.label("ticket_id"),
        )
        .outerjoin(Recording, Recording.linkedid == f.linkedid)
        .outerjoin(Ticket, Ticket.linkedid == f.linkedid)
        .where(f.linkedid.in_(list(linkedids)))
    )  # fmt: skip
    with engine.connect() as conn:
        found = {row.linkedid: dict(row._mapping) for row in conn.execute(query)}
    return [found[linkedid] for linkedid in linkedids if linkedid in found]
