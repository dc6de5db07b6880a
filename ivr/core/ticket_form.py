"""The 工单 the agent fills in while talking: its fields, drafts, and the check of a save. Pure.

The fields follow the operator's record standard (docs/tickets.md, "The agent's record")::

    surname, title            form of address: surname + 先生/女士
    contact_number            pre-filled from the caller; contact_confirmed: read back to them
    estate, building, unit, room   address: 小区, 楼栋, 单元, 门牌
    account                   account number (户号)
    category, subcategory     problem type, from routing/problem_types.yaml
    happened_at, place        when it happened (local time), where: indoors / public area
    description, urgency      what the caller said; 一般 / 紧急 / 特急
    complaint, level          a complaint, and its level L1-L4 (which sets the deadline)
    outcome                   resolved on the call (reply) or dispatched (department)

A **draft** is whatever the agent has typed so far: :func:`clean_draft` keeps the known fields
(text, cut to their length; booleans), nothing is required. A **save** is checked by
:func:`check_record`: every problem is listed, each naming its field, and a save with any is
refused whole (:class:`TicketFormRefused`, HTTP 422). Text is stored as typed: pages show it
as text (``textContent``), never as HTML.

Required on every save: surname, title, contact number (read back: ``contact_confirmed``),
category and subcategory (known to the routing, the subcategory of that category), description,
urgency, outcome. A complaint needs its level. Resolved on the call needs the reply given;
dispatched needs the department (known to the routing), the estate (小区), when it happened and
where.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final, TypeVar

from ivr.core.tickets import Level
from ivr.errors import HotlineError

TITLES: Final = ("先生", "女士")


class Place(enum.StrEnum):
    indoors = "indoors"  # 户内
    public = "public"  # 公共区域


class Urgency(enum.StrEnum):
    normal = "normal"  # 一般
    urgent = "urgent"  # 紧急
    critical = "critical"  # 特急


class Outcome(enum.StrEnum):
    resolved = "resolved"  # 当场解答: a consultation answered on the call
    dispatched = "dispatched"  # 派单: sent to a department


#: Text fields and their longest length.
TEXT_FIELDS: Final[Mapping[str, int]] = {
    "surname": 16,
    "title": 4,
    "contact_number": 20,
    "estate": 60,
    "building": 20,
    "unit": 20,
    "room": 20,
    "account": 32,
    "category": 40,
    "subcategory": 40,
    "happened_at": 16,  # "YYYY-MM-DDTHH:MM", local time (an <input type=datetime-local>)
    "place": 16,
    "description": 2000,
    "urgency": 16,
    "level": 4,
    "outcome": 16,
    "reply": 2000,
    "department": 40,
}
BOOL_FIELDS: Final = ("contact_confirmed", "complaint")
#: Every field, in the form's order (a refusal names its fields in this order).
FIELDS: Final = (
    "surname", "title", "contact_number", "contact_confirmed", "estate", "building", "unit",
    "room", "account", "category", "subcategory", "happened_at", "place", "description",
    "urgency", "complaint", "level", "outcome", "reply", "department",
)  # fmt: skip
_CONTACT: Final = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
_ACCOUNT: Final = re.compile(r"^[0-9A-Za-z-]{1,32}$")
_LOCAL_MINUTE: Final = "%Y-%m-%dT%H:%M"
_E = TypeVar("_E", bound=enum.StrEnum)
YEARS: Final = (2000, 2100)  # when it happened: typing errors such as 0202 are refused


class TicketFormRefused(HotlineError):
    """A 工单 saved with a field missing or not valid; ``details.fields`` names every one
    (HTTP 422)."""

    slug = "ticket-form-refused"
    status = 422


class InvalidDraft(HotlineError):
    """A draft that is not a JSON object of the form's fields (HTTP 422)."""

    slug = "invalid-ticket-draft"
    status = 422


@dataclass(frozen=True, slots=True)
class FormChoices:
    """What the routing offers: problem types (category -> subcategories) and departments."""

    problem_types: Mapping[str, frozenset[str]]
    departments: frozenset[str]


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A checked save: what goes into the ticket's columns."""

    surname: str
    title: str
    contact_number: str
    contact_confirmed: bool
    estate: str | None
    building: str | None
    unit: str | None
    room: str | None
    account: str | None
    category: str
    subcategory: str
    happened_at: datetime | None
    place: Place | None
    description: str
    urgency: Urgency
    complaint: bool
    level: Level | None
    outcome: Outcome
    reply: str | None
    department: str | None


def clean_draft(raw: Any) -> dict[str, Any]:
    """A draft as stored: the known fields only, text cut to length, booleans as given.

    >>> clean_draft({"surname": " 王 ", "contact_confirmed": True, "x": 1})
    {'surname': ' 王 ', 'contact_confirmed': True}
    """
    if not isinstance(raw, dict):
        raise InvalidDraft("a draft is a JSON object of the form's fields")
    draft: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TEXT_FIELDS:
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidDraft(f"{key}: text expected", field=key)
            draft[key] = value[: TEXT_FIELDS[key]]
        elif key in BOOL_FIELDS:
            if not isinstance(value, bool):
                raise InvalidDraft(f"{key}: true or false expected", field=key)
            draft[key] = value
    return draft


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def check_record(raw: Mapping[str, Any], choices: FormChoices, zone: tzinfo) -> TicketRecord:
    """The save ``raw`` (the form's fields) checked: a :class:`TicketRecord`, or
    :class:`TicketFormRefused` naming every field at fault (``details.fields``, in the
    form's order, and ``details.problems``).

    >>> from datetime import UTC
    >>> choices = FormChoices({"gas": frozenset({"smell"})}, frozenset({"repair"}))
    >>> check_record({"surname": "王"}, choices, UTC)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ivr.core.ticket_form.TicketFormRefused: title: ...
    """
    problems: dict[str, str] = {}

    def need(key: str, what: str) -> str | None:
        value = _text(raw, key)
        if value is None:
            problems[key] = f"{key}: required ({what})"
        elif len(value) > TEXT_FIELDS[key]:
            problems[key] = f"{key}: at most {TEXT_FIELDS[key]} characters"
        return value

    def optional(key: str) -> str | None:
        value = _text(raw, key)
        if value is not None and len(value) > TEXT_FIELDS[key]:
            problems[key] = f"{key}: at most {TEXT_FIELDS[key]} characters"
        return value

    def choice(key: str, kind: type[_E], what: str, required: bool) -> _E | None:
        value = need(key, what) if required else optional(key)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            problems[key] = f"{key}: one of {', '.join(m.value for m in kind)}"
            return None

    surname = need("surname", "the caller's surname")
    title = need("title", "先生 or 女士")
    if title is not None and title not in TITLES:
        problems["title"] = "title: 先生 or 女士"
    contact = need("contact_number", "the number to call back")
    if contact is not None and not _CONTACT.fullmatch(contact):
        problems["contact_number"] = "contact_number: 5 to 20 digits (a leading + and - allowed)"
    confirmed = raw.get("contact_confirmed") is True
    if contact is not None and not confirmed and "contact_number" not in problems:
        problems["contact_confirmed"] = "contact_confirmed: read the number back to the caller"
    estate = optional("estate")
    building, unit, room = optional("building"), optional("unit"), optional("room")
    account = optional("account")
    if account is not None and not _ACCOUNT.fullmatch(account):
        problems["account"] = "account: letters, digits and - only"
    category = need("category", "the problem type")
    subcategory = need("subcategory", "the problem's subcategory")
    if category is not None and category not in choices.problem_types:
        problems["category"] = f"category: unknown problem type {category!r}"
    elif category is not None and subcategory is not None:
        if subcategory not in choices.problem_types[category]:
            problems["subcategory"] = f"subcategory: {subcategory!r} is not one of {category!r}"
    happened_text = optional("happened_at")
    happened_at = None
    if happened_text is not None:
        try:
            happened_at = datetime.strptime(happened_text, _LOCAL_MINUTE).replace(tzinfo=zone)
        except ValueError:
            problems["happened_at"] = "happened_at: a local date and time, YYYY-MM-DDTHH:MM"
        else:
            if not YEARS[0] <= happened_at.year <= YEARS[1]:
                problems["happened_at"] = f"happened_at: a year from {YEARS[0]} to {YEARS[1]}"
                happened_at = None
    place = choice("place", Place, "indoors or public", required=False)
    description = need("description", "what the caller reports")
    urgency = choice("urgency", Urgency, "normal, urgent or critical", required=True)
    complaint = raw.get("complaint") is True
    level = None
    if complaint:
        level = choice("level", Level, "the complaint's level L1-L4", required=True)
    outcome = choice("outcome", Outcome, "resolved on the call or dispatched", required=True)
    reply = department = None
    if outcome is Outcome.resolved:
        reply = need("reply", "the answer given to the caller")
    elif outcome is Outcome.dispatched:
        department = need("department", "where the ticket goes")
        if department is not None and department not in choices.departments:
            problems["department"] = f"department: unknown department {department!r}"
        if estate is None:
            problems["estate"] = "estate: required (the 小区 to send someone to)"
        if happened_text is None:
            problems["happened_at"] = "happened_at: required (when it happened)"
        if place is None and "place" not in problems:
            problems["place"] = "place: required (indoors or public)"
    if problems:
        ordered = [key for key in FIELDS if key in problems]
        messages = [problems[key] for key in ordered]
        raise TicketFormRefused("; ".join(messages), fields=ordered, problems=messages)
    assert surname and title and contact and category and subcategory and description
    assert urgency is not None and outcome is not None
    return TicketRecord(
        surname=surname,
        title=title,
        contact_number=contact,
        contact_confirmed=confirmed,
        estate=estate,
        building=building,
        unit=unit,
        room=room,
        account=account,
        category=category,
        subcategory=subcategory,
        happened_at=happened_at,
        place=place,
        description=description,
        urgency=urgency,
        complaint=complaint,
        level=level,
        outcome=outcome,
        reply=reply,
        department=department,
    )
