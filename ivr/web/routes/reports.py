"""The service-standard figures over HTTP (the report page's API; docs/figures.md).

Routes::

    GET /api/reports/definitions                every figure: names, formula, target, notes
    GET /api/reports/calls                      the call figures of a window, per total,
                                                desk or agent, each against its target
    GET /api/reports/calls/{figure}/{part}      the calls behind one number (part:
                                                numerator or denominator), paged, each with
                                                its recording and ticket ids
    GET /api/reports/figures                    every figure (calls, tickets, satisfaction,
                                                follow-ups, agents) of a window, per total,
                                                desk, agent or department, against its target
    GET /api/reports/figures/{figure}/{part}    the calls or tickets behind one number, paged,
                                                each with where it leads (recording, ticket)
    GET /api/reports/trend                      each figure's total over the 12 months ending
                                                with ``month``
    GET /api/reports/file                       the monthly file (``format``: xlsx, pdf, csv)
    GET /reports                                the report page (static/reports.html)

The window is ``month=YYYY-MM`` or ``from=YYYY-MM-DD&to=YYYY-MM-DD`` (local days of
``metrics.timezone``, both included); ``by`` is ``total`` (default), ``desk`` (the queue
first entered) or ``agent`` (the 工号 of who answered); the list takes ``group`` (a desk or
a 工号; ``""``, the default, is the total with ``by=total``), ``page`` and ``per_page``
(1..500, default 100). ``/figures`` also takes ``by=department``; its numbers come from
ivr/adapters/sql/ticket_figures.py (tickets, survey answers, follow-ups, QA reviews, logins)
and the call facts, computed by ivr/core/figures.py; with ``by=total`` its ``follow_ups`` is the
follow-up report of the window (per follow-up figure: owed, called, reached, resolved,
satisfied, refused, not reached, not called; ivr/core/report_tables.py) and the ticket lists
give each ticket's follow-up state. Roles: ``supervisor`` (and ``admin``). A bad
window is 422 ``invalid-report-query``; a figure or part that does not exist (or a group
without that figure) is 404 ``figure-not-found``. Answers are ``no-store``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Engine

from ivr.adapters.reports.files import FORMATS, MEDIA_TYPES, monthly_file, report_name, report_title
from ivr.adapters.sql.call_figures import (
    CALL_FIGURES,
    CallFigure,
    call_figures,
    call_rows,
    calls_of,
    figures_config,
)
from ivr.adapters.sql.db import Role, User
from ivr.adapters.sql.report_figures import Counted, Part, items_of, report_figures
from ivr.adapters.sql.ticket_figures import key_accounts, ticket_rows
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.figures import (
    BY_KEY,
    FIGURES,
    MonthFacts,
    Window,
    days_window,
    follow_up_records,
    month_window,
    months_back,
)
from ivr.core.report_tables import CALL_LISTS, follow_up_summary
from ivr.errors import HotlineError
from ivr.settings import Settings
from ivr.web import static_pages
from ivr.web.auth import DbDep, require_roles
from ivr.web.deps import SettingsDep
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["reports"])
SupervisorUser = Annotated[User, require_roles(Role.supervisor)]
static_pages.add_page(
    router,
    "reports",
    SupervisorUser,
    description="The report page (signed out: 303 to /login?next=/reports).",
    media=True,  # it plays the recordings behind a figure
)
Grouping = Literal["total", "desk", "agent"]
AnyGrouping = Literal["total", "desk", "agent", "department"]
PARTS: Final = ("numerator", "denominator")
MONTH_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}$"
DAY_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class InvalidReportQuery(HotlineError):
    """The window of a report is not one month (``month=YYYY-MM``) or one range of days
    (``from`` and ``to``, YYYY-MM-DD, ``to`` not before ``from``)."""

    slug = "invalid-report-query"
    status = 422


class FigureNotFound(HotlineError):
    """The list of calls or tickets asked for names no figure (no call figure, for the calls'
    list), a part other than numerator or denominator (or numerator for a figure that is not a
    ratio), or a group that has no such figure in the window."""

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
Group = Annotated[str, Query(max_length=40)]
Page = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]


def report_window(
    settings: SettingsDep, month: Month = None, first: First = None, last: Last = None
) -> Window:
    """The report's window from ``month=YYYY-MM`` or ``from`` and ``to`` (422 otherwise)."""
    return _window(settings, month, first, last)


WindowDep = Annotated[Window, Depends(report_window)]


def _checked_part(figure: str, part: str, known: Container[str], what: str) -> Part:
    """``part`` of ``figure`` as the lists read it; 404 for an unknown figure or part, or a
    numerator of a figure that is not a ratio."""
    if figure not in known or part not in PARTS:
        raise FigureNotFound(f"no {what} {figure[:40]!r} with a {part[:20]!r}")
    if part == "numerator" and BY_KEY[figure].unit != "rate":
        raise FigureNotFound(f"{figure} is not a ratio: it has no numerator")
    return "numerator" if part == "numerator" else "denominator"


def _list_head(
    figure: str, part: str, window: Window, by: str, group: str, total: int, page: int,
    per_page: int,
) -> dict[str, Any]:  # fmt: skip
    """What every list of calls or tickets behind a number starts with."""
    return {
        "figure": definition_json(figure),
        "part": part,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "by": by,
        "group": group,
        "total": total,
        "page": page,
        "per_page": per_page,
    }


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
    window: WindowDep,
    by: Grouping = "total",
) -> dict[str, Any]:
    """The call figures of a month or a day range, from the stored call facts."""
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
    window: WindowDep,
    by: Grouping = "total",
    group: Group = "",
    page: Page = 1,
    per_page: PerPage = 100,
) -> dict[str, Any]:
    """The calls one number counts, in the order they were counted, with where they lead."""
    which = _checked_part(figure, part, CALL_FIGURES, "call figure")
    engine = _engine(db)
    ids = calls_of(engine, window, figure, which, figures_config(settings.metrics),
                   grouping=by, group=group)  # fmt: skip
    rows = call_rows(engine, ids[(page - 1) * per_page : page * per_page])
    response.headers.update(NO_STORE)
    document = _list_head(figure, part, window, by, group, len(ids), page, per_page)
    return {**document, "calls": [_call_json(row) for row in rows]}


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


def _accounts(settings: Settings) -> frozenset[str]:
    return key_accounts(load_routing(settings.routing_dir))


def _counted_json(value: Counted) -> dict[str, Any]:
    return {
        "value": value.value,
        "numerator": value.numerator,
        "denominator": value.denominator,
        "meets_target": value.meets_target,
        "lists": "calls" if value.key in CALL_LISTS else "tickets",
        "sources": dict(value.sources),
    }


@router.get("/api/reports/figures")
def all_figures(
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    window: WindowDep,
    by: AnyGrouping = "total",
) -> dict[str, Any]:
    """Every figure of a month or a day range, from SQL, each against its target."""
    config = figures_config(settings.metrics)
    groups, facts = report_figures(_engine(db), window, config, _accounts(settings), by)
    response.headers.update(NO_STORE)
    return {
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "timezone": settings.metrics.timezone,
        "by": by,
        "groups": {
            name: {key: _counted_json(value) for key, value in values.items()}
            for name, values in groups.items()
        },
        **({"follow_ups": _follow_ups(facts, window)} if by == "total" else {}),
    }


def _follow_ups(facts: MonthFacts, window: Window) -> dict[str, dict[str, int]]:
    return follow_up_summary(
        follow_up_records(facts.tickets, facts.follow_ups, facts.answers, window)
    )


@router.get("/api/reports/figures/{figure}/{part}")
def figure_items(
    figure: str,
    part: str,
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    window: WindowDep,
    by: AnyGrouping = "total",
    group: Group = "",
    page: Page = 1,
    per_page: PerPage = 100,
) -> dict[str, Any]:
    """The calls or tickets one number counts, with where each leads (recording, ticket)."""
    which = _checked_part(figure, part, BY_KEY, "figure")
    engine = _engine(db)
    config = figures_config(settings.metrics)
    found = items_of(engine, window, config, _accounts(settings), figure, which, by, group)
    if found is None:
        raise FigureNotFound(f"no {figure} {part} for the group {group[:40]!r}")
    ids, sources, states = found
    chosen = ids[(page - 1) * per_page : page * per_page]
    response.headers.update(NO_STORE)
    document = _list_head(figure, part, window, by, group, len(ids), page, per_page)
    document |= {
        "lists": "calls" if figure in CALL_LISTS else "tickets",
        "calls": [],
        "tickets": [],
    }
    if figure in CALL_LISTS:
        document["calls"] = [_call_json(row) for row in call_rows(engine, chosen)]
    else:
        rows = ticket_rows(engine, [int(i) for i in chosen])
        document["tickets"] = [_ticket_json(row, sources, states) for row in rows]
    return document


def _when(at: object) -> str | None:
    return at.isoformat() if isinstance(at, datetime) else None


def _ticket_json(
    row: dict[str, Any], sources: Mapping[str, str], states: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "linkedid": row["linkedid"],
        "recording_id": row["recording_id"],
        "desk": row["desk"],
        "agent": row["agent"],
        "department": row["department"],
        "state": str(row["state"]),
        "level": row["level"],
        "complaint": row["complaint"],
        "category": row["problem_category"],
        "opened_at": _when(row["created_at"]),
        "deadline_at": _when(row["deadline_at"]),
        "replied_at": _when(row["replied_at"]),
        "customer_reply_at": _when(row["customer_reply_at"]),
        "closed_at": _when(row["closed_at"]),
        "answer_source": sources.get(str(row["id"])),
        "follow_up": states.get(str(row["id"])),
    }


@router.get("/api/reports/trend")
def trend(
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    month: Annotated[str, Query(pattern=MONTH_PATTERN)],
) -> dict[str, Any]:
    """Each figure's total in each of the 12 months ending with ``month`` (oldest first)."""
    window = _window(settings, month, None, None)
    config = figures_config(settings.metrics)
    accounts = _accounts(settings)
    try:
        months = months_back(window, 12)
    except ValueError as exc:
        raise InvalidReportQuery(str(exc)) from None
    values: dict[str, list[float | None]] = {f.key: [] for f in FIGURES}
    for one in months:
        totals = report_figures(_engine(db), one, config, accounts)[0][""]
        for key in values:
            values[key].append(totals[key].value if key in totals else None)
    response.headers.update(NO_STORE)
    return {"months": [m.start.strftime("%Y-%m") for m in months], "figures": values}


@router.get("/api/reports/file")
def report_file(
    _: SupervisorUser,
    db: DbDep,
    settings: SettingsDep,
    window: WindowDep,
    format: Literal["xlsx", "pdf", "csv"] = "xlsx",
) -> Response:
    """The monthly file (as ``ivr report month`` writes it), as a download."""
    assert format in FORMATS
    accounts = _accounts(settings)
    data = monthly_file(
        _engine(db), window, figures_config(settings.metrics), accounts, format,
        report_title(window), datetime.now(UTC),
    )  # fmt: skip
    name = report_name(window, format)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=MEDIA_TYPES[format], headers=headers)
