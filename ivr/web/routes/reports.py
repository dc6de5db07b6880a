"""The service-standard figures over HTTP (the report page's API; docs/figures.md).

Routes::

    GET /api/reports/definitions                every figure: names, formula, target, notes
    GET /api/reports/calls                      the call figures of a window, per total,
                                                desk or agent, each against its target
    GET /api/reports/calls/{figure}/{part}      the calls behind one number (part:
                                                numerator or denominator), paged, each with
                                                its recording and ticket ids

The window is ``month=YYYY-MM`` or ``from=YYYY-MM-DD&to=YYYY-MM-DD`` (local days of
``metrics.timezone``, both included); ``by`` is ``total`` (default), ``desk`` (the queue
first entered) or ``agent`` (the 工号 of who answered); the list takes ``group`` (a desk or
a 工号; ``""``, the default, is the total with ``by=total``), ``page`` and ``per_page``
(1..500, default 100). Roles: ``supervisor`` (and ``admin``). A bad window is 422
``invalid-report-query``; a figure or part that is not one of the call figures' is 404
``figure-not-found``. Answers are ``no-store``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from sqlalchemy import Engine

from ivr.adapters.sql.call_figures import (
    CALL_FIGURES,
    CallFigure,
    call_figures,
    call_rows,
    calls_of,
    figures_config,
)
from ivr.adapters.sql.db import Role, User
from ivr.core.figures import BY_KEY, FIGURES, Window, days_window, month_window
from ivr.errors import HotlineError
from ivr.settings import Settings
from ivr.web.auth import DbDep, require_roles
from ivr.web.deps import SettingsDep
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["reports"])
SupervisorUser = Annotated[User, require_roles(Role.supervisor)]
Grouping = Literal["total", "desk", "agent"]
PARTS: Final = ("numerator", "denominator")
MONTH_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}$"
DAY_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class InvalidReportQuery(HotlineError):
    """The window of a report is not one month (``month=YYYY-MM``) or one range of days
    (``from`` and ``to``, YYYY-MM-DD, ``to`` not before ``from``)."""

    slug = "invalid-report-query"
    status = 422


class FigureNotFound(HotlineError):
    """The list of calls asked for names no call figure, or a part other than numerator or
    denominator (or numerator for a figure that is not a ratio)."""

    slug = "figure-not-found"
    status = 404


def _window(settings: Settings, month: str | None, first: str | None, last: str | None) -> Window:
    tz = ZoneInfo(settings.metrics.timezone)
    try:
        if month and not (first or last):
            return month_window(month, tz)
        if first and last and not month:
            return days_window(first, last, tz)
    except ValueError as exc:
        raise InvalidReportQuery(str(exc)) from None
    raise InvalidReportQuery("give month=YYYY-MM, or from and to (YYYY-MM-DD), not both")


def _engine(db: DbDep) -> Engine:
    bind = db.get_bind()
    assert isinstance(bind, Engine)
    return bind


def definition_json(key: str) -> dict[str, Any]:
    figure = BY_KEY[key]
    target = figure.target
    return {
        "key": figure.key,
        "zh": figure.zh,
        "en": figure.en,
        "family": figure.family,
        "unit": figure.unit,
        "formula": figure.formula,
        "numerator": figure.numerator,
        "denominator": figure.denominator,
        "target": None if target is None else {"op": target.op, "value": target.value},
        "target_text": None if target is None else target.text(figure.unit),
        "notes": list(figure.notes),
    }


def _figure_json(figure: CallFigure) -> dict[str, Any]:
    target = BY_KEY[figure.key].target
    meets = None if target is None or figure.value is None else target.met(figure.value)
    return {
        "value": figure.value,
        "numerator": figure.numerator,
        "denominator": figure.denominator,
        "meets_target": meets,
    }


Month = Annotated[str | None, Query(pattern=MONTH_PATTERN)]
First = Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN)]
Last = Annotated[str | None, Query(alias="to", pattern=DAY_PATTERN)]


@router.get("/api/reports/definitions")
def definitions(_: SupervisorUser, response: Response) -> dict[str, Any]:
    """Every figure's definition (the same data as docs/figures.md)."""
    response.headers.update(NO_STORE)
    return {"figures": [definition_json(figure.key) for figure in FIGURES]}


@router.get("/api/reports/calls")
def calls(
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    month: Month = None,
    first: First = None,
    last: Last = None,
    by: Grouping = "total",
) -> dict[str, Any]:
    """The call figures of a month or a day range, from the stored call facts."""
    window = _window(settings, month, first, last)
    groups = call_figures(_engine(db), window, figures_config(settings.metrics), by)
    response.headers.update(NO_STORE)
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "timezone": settings.metrics.timezone,
        "by": by,
        "groups": {
            name: {key: _figure_json(figure) for key, figure in figures.items()}
            for name, figures in groups.items()
        },
    }


@router.get("/api/reports/calls/{figure}/{part}")
def calls_behind(
    figure: str,
    part: str,
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    month: Month = None,
    first: First = None,
    last: Last = None,
    by: Grouping = "total",
    group: Annotated[str, Query(max_length=40)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The calls one number counts, in the order they were counted, with where they lead."""
    config = figures_config(settings.metrics)
    if figure not in CALL_FIGURES or part not in PARTS:
        raise FigureNotFound(f"no call figure {figure[:40]!r} with a {part[:20]!r}")
    if part == "numerator" and BY_KEY[figure].unit != "rate":
        raise FigureNotFound(f"{figure} is not a ratio: it has no numerator")
    window = _window(settings, month, first, last)
    engine = _engine(db)
    ids = calls_of(engine, window, figure, "numerator" if part == "numerator" else "denominator",
                   config, grouping=by, group=group)  # fmt: skip
    start = (page - 1) * per_page
    rows = call_rows(engine, ids[start : start + per_page])
    response.headers.update(NO_STORE)
    return {
        "figure": definition_json(figure),
        "part": part,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "by": by,
        "group": group,
        "total": len(ids),
        "page": page,
        "per_page": per_page,
        "calls": [_call_json(row) for row in rows],
    }


def _call_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "linkedid": row["linkedid"],
        "class": row["klass"],
        "desk": row["queue"],
        "emergency": row["emergency"],
        "wait_s": round(row["wait_s"], 3),
        "threshold_s": row["threshold_s"],
        "counted_at": row["counted_at"].isoformat(),
        "closed_at": row["closed_at"].isoformat(),
        "agent": row["agent"],
        "work_number": row["work_number"],
        "talk_s": row["talk_s"],
        "source": row["source"],
        "recording_id": row["recording_id"],
        "ticket_id": row["ticket_id"],
    }
