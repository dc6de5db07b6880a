"""The people who answer (坐席): an agent's rules, pure.

An agent has a 工号 (work number: ASCII digits, 1 to 12 of them, unique; it is also the SIP
username of the agent's phone), a name, one or more desks with a penalty each (the desks of
``routing/desks.yaml``; the penalty is Asterisk's queue member penalty: 0 is asked first, then
1 ... up to :data:`MAX_PENALTY`), an active flag, and optionally the web account (role
``agent``) the person signs in with.

>>> work_number(" 1001 ")
'1001'
>>> work_number("10a1")
Traceback (most recent call last):
...
ivr.core.agents.InvalidAgentInput: 工号 '10a1': 1 to 12 digits (0-9)
>>> parse_desk("repair:1"), parse_desk("billing")
(DeskAssignment(desk='repair', penalty=1), DeskAssignment(desk='billing', penalty=0))
>>> check_desks([parse_desk("repair:1"), parse_desk("billing:2")], {"repair", "billing"})
(DeskAssignment(desk='billing', penalty=2), DeskAssignment(desk='repair', penalty=1))
>>> check_desks([parse_desk("meter:1")], {"repair", "billing"})
Traceback (most recent call last):
...
ivr.core.agents.UnknownDesk: unknown desk 'meter'; the desks are: billing, repair
>>> check_desks([], {"repair"})
Traceback (most recent call last):
...
ivr.core.agents.AgentWithoutDesk: an agent needs at least one desk (e.g. repair:0)

Changes are described field by field, old and new (the audit of :mod:`ivr.adapters.sql.agents`
keeps them; a SIP password never appears in them):

>>> a = AgentInfo("1001", "张三", (DeskAssignment("repair", 1),), True, None)
>>> changes(a, a.replace(name="张三丰", active=False))
{'name': {'old': '张三', 'new': '张三丰'}, 'active': {'old': True, 'new': False}}
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ivr.core.sip_accounts import Registration
from ivr.errors import HotlineError

WORK_NUMBER: Final = re.compile(r"[0-9]{1,12}")  # as ivr.core.sip_accounts.SipAccount.username
MAX_NAME: Final = 64
MIN_PENALTY: Final = 0
MAX_PENALTY: Final = 10
MAX_DESKS: Final = 32


class InvalidAgentInput(HotlineError):
    """An agent's 工号, name, desk, penalty or web account that the rules refuse (HTTP 422);
    the message names the field and what it takes."""

    slug = "invalid-agent-input"
    status = 422


class UnknownDesk(InvalidAgentInput):
    """A desk that ``routing/desks.yaml`` does not define; the message lists the desks."""

    slug = "unknown-desk"


class AgentWithoutDesk(InvalidAgentInput):
    """An agent must answer at least one desk: none was given (or all were taken away)."""

    slug = "agent-without-desk"


class AgentExists(HotlineError):
    """Another agent has this 工号 already (HTTP 409): nothing was changed."""

    slug = "agent-exists"
    status = 409


class AgentStateUnchanged(HotlineError):
    """Disabling an agent who is disabled, or enabling one who is active (HTTP 409)."""

    slug = "agent-state-unchanged"
    status = 409


@dataclass(frozen=True, slots=True, order=True)
class DeskAssignment:
    """One desk (skill) an agent answers, and how early: penalty 0 is asked first."""

    desk: str
    penalty: int = 0


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent as the rules and the listings see it (desks sorted by name)."""

    work_number: str
    name: str
    desks: tuple[DeskAssignment, ...]
    active: bool
    user: str | None  # the linked web account's username
    created_at: datetime | None = None
    updated_at: datetime | None = None
    password_set_at: datetime | None = None
    password_realm: str | None = None  # the realm the stored HA1 was made with

    def replace(self, **fields: Any) -> AgentInfo:
        return dataclasses.replace(self, **fields)


# --- input ------------------------------------------------------------------------------------
def work_number(value: str) -> str:
    """A 工号 as given (spaces around it dropped), or :class:`InvalidAgentInput`. Leading
    zeros are kept: ``0012`` and ``12`` are two different SIP usernames."""
    number = value.strip()
    if not WORK_NUMBER.fullmatch(number):
        raise InvalidAgentInput(f"工号 {value[:40]!r}: 1 to 12 digits (0-9)", field="work_number")
    return number


def agent_name(value: str) -> str:
    """A name to show (1 to 64 characters, no control characters), spaces around dropped."""
    name = value.strip()
    if not name:
        raise InvalidAgentInput("name: empty", field="name")
    if len(name) > MAX_NAME:
        raise InvalidAgentInput(f"name: at most {MAX_NAME} characters", field="name")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidAgentInput("name: no control or invisible format characters", field="name")
    return name


def penalty(value: int) -> int:
    if isinstance(value, bool) or not MIN_PENALTY <= value <= MAX_PENALTY:
        raise InvalidAgentInput(
            f"penalty {value!r}: a whole number from {MIN_PENALTY} (asked first) to {MAX_PENALTY}",
            field="penalty",
        )
    return value


def parse_desk(spec: str) -> DeskAssignment:
    """``DESK`` or ``DESK:PENALTY`` (the command line's ``--desk repair:1``)."""
    desk, sep, level = spec.strip().partition(":")
    if not desk:
        raise InvalidAgentInput(f"desk {spec[:40]!r}: DESK or DESK:PENALTY", field="desks")
    if not sep:
        return DeskAssignment(desk, 0)
    if not level.isascii() or not level.isdigit() or len(level) > 3:
        raise InvalidAgentInput(
            f"desk {spec[:40]!r}: the penalty after ':' is a whole number from "
            f"{MIN_PENALTY} to {MAX_PENALTY}",
            field="desks",
        )
    return DeskAssignment(desk, penalty(int(level)))


def check_desks(
    assignments: Iterable[DeskAssignment], known: Collection[str]
) -> tuple[DeskAssignment, ...]:
    """The desks, each known and once, at least one, sorted by desk; or a clear error."""
    given = list(assignments)
    if not given:
        example = min(known) if known else "repair"
        raise AgentWithoutDesk(
            f"an agent needs at least one desk (e.g. {example}:0)", field="desks"
        )
    if len(given) > MAX_DESKS:
        raise InvalidAgentInput(f"at most {MAX_DESKS} desks", field="desks")
    seen: set[str] = set()
    for item in given:
        if item.desk not in known:
            raise UnknownDesk(
                f"unknown desk {item.desk[:40]!r}; the desks are: {', '.join(sorted(known))}",
                field="desks",
                known=sorted(known),
            )
        if item.desk in seen:
            raise InvalidAgentInput(f"desk {item.desk!r} given twice", field="desks")
        seen.add(item.desk)
        penalty(item.penalty)
    return tuple(sorted(given))


def check_active_change(work_no: str, active: bool, wanted: bool) -> None:
    """Refuse a change of the active flag that changes nothing, saying so."""
    if active == wanted:
        state = "active" if active else "disabled"
        raise AgentStateUnchanged(f"agent {work_no} is {state} already", active=active)


# --- what changed -----------------------------------------------------------------------------
def _shown(field: str, value: Any) -> Any:
    if field == "desks" and value is not None:
        return [{"desk": d.desk, "penalty": d.penalty} for d in value]
    return value


AUDITED: Final = ("work_number", "name", "desks", "active", "user")


def changes(old: AgentInfo | None, new: AgentInfo) -> dict[str, dict[str, Any]]:
    """Each audited field whose value differs, as ``{"old": ..., "new": ...}`` (all of them,
    old None, for a new agent)."""
    found: dict[str, dict[str, Any]] = {}
    for field in AUDITED:
        before = getattr(old, field) if old is not None else None
        after = getattr(new, field)
        if old is None or before != after:
            found[field] = {"old": _shown(field, before), "new": _shown(field, after)}
    return found


# --- listings ---------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def registration_document(found: Registration) -> dict[str, Any]:
    return {
        "contact": found.contact,
        "user_agent": found.user_agent,
        "since": _iso(found.since),
        "expires": _iso(found.expires),
    }


def document(
    agent: AgentInfo, realm: str, registrations: Mapping[str, Sequence[Registration]] | None
) -> dict[str, Any]:
    """An agent as the CLI's ``--json`` and the admin API show it. ``registered`` is None when
    nobody asked Asterisk (``registrations`` None), else the agent's contacts (maybe none).
    ``password_reset_needed``: the stored HA1 was made for another realm than ``realm``."""
    return {
        "work_number": agent.work_number,
        "name": agent.name,
        "desks": _shown("desks", agent.desks),
        "active": agent.active,
        "user": agent.user,
        "sip_username": agent.work_number,
        "password_set_at": _iso(agent.password_set_at),
        "password_reset_needed": agent.password_realm != realm,
        "created_at": _iso(agent.created_at),
        "updated_at": _iso(agent.updated_at),
        "registered": (
            None
            if registrations is None
            else [registration_document(r) for r in registrations.get(agent.work_number, ())]
        ),
    }
