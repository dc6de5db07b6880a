"""Agents (坐席) in SQL: add, list, change, disable, reset the SIP password; every change audited.

The rules (工号, names, desks and penalties, the active flag, what changed) are
:mod:`ivr.core.agents`; the SIP account's form is :mod:`ivr.core.sip_accounts`. This module
reads and writes the rows in the caller's session and transaction (nothing here commits,
except :func:`sip_accounts`, which only reads)::

    add(session, work_number, name, desks, known_desks, realm, actor, user=None)
                                            -> (AgentInfo, the SIP password, shown once)
    list_agents(session)                    -> [AgentInfo], by 工号
    get(session, work_number)               -> AgentInfo
    update(session, work_number, known_desks, actor, name=, desks=, user=)   -> AgentInfo
    set_active(session, work_number, active, actor)                          -> AgentInfo
    reset_password(session, work_number, realm, actor)     -> (AgentInfo, the new password)
    history(session, work_number)           -> [AgentChange], oldest first
    sip_accounts(engine)                    -> [SipAccount], enabled and disabled
    known_desks(settings)                   -> the desk ids of routing/
    phone_settings(agent, settings)         -> what a phone is configured with, but the password

The SIP password is generated here, returned once and never stored: the row keeps its
HA1 (``MD5(工号:realm:password)``) and the realm it was made with, so an agent whose HA1 was
made for another realm than ``asterisk.sip_realm`` shows as needing a password reset.

Every change writes an ``agent_changes`` row (who, when, from where, the action, each field
old -> new: never the password, only that one was set) and an audit-log row
``agent.<action>`` with the target ``agent:<工号>``, in the same transaction.

A duplicate 工号 is :class:`~ivr.core.agents.AgentExists` (also when another process added
it meanwhile: the insert fails on the unique constraint inside a SAVEPOINT, which alone is
rolled back); a web account linked to another agent is :class:`UserTaken`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import (
    Agent,
    AgentChange,
    AgentDesk,
    Role,
    User,
    audit,
    in_savepoint,
    utcnow,
)
from ivr.adapters.sql.users import InvalidUserInput, get_user, normalize_username
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import agents as rules
from ivr.core.agent_presence import Presence, PresenceRefused, Seat, transition
from ivr.core.agents import AgentExists, AgentInfo, DeskAssignment, InvalidAgentInput
from ivr.core.sip_accounts import SipAccount, digest_ha1, generate_password
from ivr.errors import HotlineError
from ivr.settings import Settings

logger = logging.getLogger(__name__)


class AgentNotFound(HotlineError):
    """No agent has this 工号 (HTTP 404)."""

    slug = "agent-not-found"
    status = 404


class UserTaken(HotlineError):
    """The web account is linked to another agent already (HTTP 409): one agent per account."""

    slug = "agent-user-taken"
    status = 409


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, for the audit: a signed-in user, or ``cli:<login>``."""

    name: str
    user: User | None = None
    ip: str | None = None

    @classmethod
    def of(cls, user: User, ip: str | None = None) -> Actor:
        return cls(user.username, user, ip)


class _Keep:
    """Leave the linked web account as it is (``update``'s default)."""


KEEP: Final = _Keep()


def known_desks(settings: Settings) -> frozenset[str]:
    """The desk ids ``routing/`` defines (a broken routing is a ConfigError naming the line)."""
    return frozenset(desk.id for desk in load_routing(settings.routing_dir).desks)


def phone_settings(agent: AgentInfo, settings: Settings) -> dict[str, Any]:
    """What a phone (or a softphone) is configured with, beside the password."""
    return {
        "username": agent.work_number,
        "auth_id": agent.work_number,
        "realm": settings.asterisk.sip_realm,
        "sip_port": settings.asterisk.sip_port,
    }


# --- reading ----------------------------------------------------------------------------------
def _row(session: Session, work_number: str) -> Agent:
    number = work_number.strip()
    agent = (
        session.scalar(select(Agent).where(Agent.work_number == number))
        if rules.WORK_NUMBER.fullmatch(number)
        else None
    )
    if agent is None:
        raise AgentNotFound(f"no agent with 工号 {number[:40]!r}")
    return agent


def locked(session: Session, work_number: str) -> Agent:
    """The agent's row, held until the caller's transaction ends (an UPDATE that changes
    nothing: a row lock on PostgreSQL, the write lock on SQLite) and read again once held: two
    changes to one agent take turns, and the second one's "old" is what the first one left."""
    agent = _row(session, work_number)
    session.execute(
        sql_update(Agent)
        .where(Agent.id == agent.id)
        .values(updated_at=Agent.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.refresh(agent)
    return agent


def _desks_of(session: Session, agent_ids: Iterable[int]) -> dict[int, list[DeskAssignment]]:
    found: dict[int, list[DeskAssignment]] = {i: [] for i in agent_ids}
    if found:
        rows = session.scalars(select(AgentDesk).where(AgentDesk.agent_id.in_(list(found))))
        for row in rows:
            found[row.agent_id].append(DeskAssignment(row.desk, row.penalty))
    return found


def _usernames(session: Session, user_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all()
    return dict(rows)  # a list of (id, username) rows


def _info(agent: Agent, desks: list[DeskAssignment], usernames: dict[int, str]) -> AgentInfo:
    return AgentInfo(
        work_number=agent.work_number,
        name=agent.name,
        desks=tuple(sorted(desks)),
        active=agent.active,
        user=usernames.get(agent.user_id) if agent.user_id is not None else None,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        password_set_at=agent.password_set_at,
        password_realm=agent.sip_realm,
    )


def _info_of(session: Session, agent: Agent) -> AgentInfo:
    return _info(
        agent, _desks_of(session, [agent.id])[agent.id], _usernames(session, [agent.user_id])
    )


def list_agents(session: Session) -> list[AgentInfo]:
    """Every agent, active and disabled, by 工号."""
    rows = list(session.scalars(select(Agent).order_by(Agent.work_number)))
    desks = _desks_of(session, [a.id for a in rows])
    names = _usernames(session, [a.user_id for a in rows])
    return [_info(a, desks[a.id], names) for a in rows]


def get(session: Session, work_number: str) -> AgentInfo:
    return _info_of(session, _row(session, work_number))


def history(session: Session, work_number: str) -> list[AgentChange]:
    agent = _row(session, work_number)
    return list(
        session.scalars(
            select(AgentChange)
            .where(AgentChange.agent_id == agent.id)
            .order_by(AgentChange.at, AgentChange.id)
        )
    )


def sip_accounts(engine: Engine) -> list[SipAccount]:
    """Every agent's SIP account, enabled and disabled, by 工号: what the Asterisk side
    projects (a disabled one must not be known to Asterisk at all)."""
    with Session(engine) as session:
        rows = session.execute(
            select(Agent.work_number, Agent.sip_ha1, Agent.name, Agent.active).order_by(
                Agent.work_number
            )
        ).all()
        return [
            SipAccount(username=number, ha1=ha1, display_name=name, enabled=active)
            for number, ha1, name, active in rows
        ]


# --- writing ----------------------------------------------------------------------------------
def _record(
    session: Session, agent: Agent, action: str, changed: Mapping[str, object], actor: Actor
) -> None:
    """The agent's change row and the audit-log row, in the caller's transaction."""
    at = utcnow()
    session.add(
        AgentChange(
            agent_id=agent.id,
            at=at,
            user_id=actor.user.id if actor.user is not None else None,
            actor=actor.name[:128],
            action=action,
            changes=dict(changed),
            ip=actor.ip[:64] if actor.ip else None,
        )
    )
    audit(
        session,
        actor.user,
        f"agent.{action.replace('-', '_')}",
        target=f"agent:{agent.work_number}",
        ip=actor.ip,
        actor=actor.name,
    )
    session.flush()
    logger.info(
        "agent changed",
        extra={"agent": agent.work_number, "action": action, "fields": sorted(changed),
               "actor": actor.name},
    )  # fmt: skip


def _linkable_user(session: Session, username: str, agent_id: int | None) -> User:
    try:
        name = normalize_username(username)
    except InvalidUserInput as exc:
        raise InvalidAgentInput(f"user: {exc.message}", field="user") from None
    user = get_user(session, name)
    if user is None:
        raise InvalidAgentInput(
            f"user: no web account {name!r} (add one with `ivr users add NAME --role agent`)",
            field="user",
        )
    if user.role is not Role.agent:
        raise InvalidAgentInput(
            f"user: {user.username!r} has the role {user.role.value}; an agent's web account "
            f"has the role agent (`ivr users set-role {user.username} agent`)",
            field="user",
        )
    holder = session.scalar(select(Agent).where(Agent.user_id == user.id))
    if holder is not None and holder.id != agent_id:
        raise UserTaken(
            f"user: {user.username!r} is the web account of agent {holder.work_number} already",
            user=user.username,
            agent=holder.work_number,
        )
    return user


def _set_desks(session: Session, agent: Agent, desks: tuple[DeskAssignment, ...]) -> None:
    for row in session.scalars(select(AgentDesk).where(AgentDesk.agent_id == agent.id)):
        session.delete(row)
    session.flush()
    session.add_all(AgentDesk(agent_id=agent.id, desk=d.desk, penalty=d.penalty) for d in desks)


def add(
    session: Session,
    work_number: str,
    name: str,
    desks: Iterable[DeskAssignment],
    known: frozenset[str],
    realm: str,
    actor: Actor,
    *,
    user: str | None = None,
) -> tuple[AgentInfo, str]:
    """A new, active agent with a new SIP password: returns the agent and the password (to
    show once: only its HA1 is kept)."""
    number = rules.work_number(work_number)
    shown = rules.agent_name(name)
    checked = rules.check_desks(desks, known)
    if session.scalar(select(Agent.id).where(Agent.work_number == number)) is not None:
        raise AgentExists(f"an agent with 工号 {number} exists already", work_number=number)
    linked = _linkable_user(session, user, None) if user is not None else None
    password = generate_password()
    now = utcnow()
    agent = Agent(
        work_number=number,
        name=shown,
        active=True,
        user_id=linked.id if linked is not None else None,
        sip_ha1=digest_ha1(number, realm, password),
        sip_realm=realm,
        password_set_at=now,
        created_at=now,
        updated_at=now,
    )

    def insert() -> None:
        session.add(agent)
        session.flush()

    refused = in_savepoint(session, insert)
    if refused is not None:
        if session.scalar(select(Agent.id).where(Agent.work_number == number)) is not None:
            raise AgentExists(f"an agent with 工号 {number} exists already", work_number=number)
        if linked is not None:
            _linkable_user(session, linked.username, None)  # taken meanwhile: says by whom
        raise refused
    _set_desks(session, agent, checked)
    session.flush()
    info = _info_of(session, agent)
    _record(session, agent, "add", {**rules.changes(None, info), "password": "set"}, actor)
    return info, password


def update(
    session: Session,
    work_number: str,
    known: frozenset[str],
    actor: Actor,
    *,
    name: str | None = None,
    desks: Iterable[DeskAssignment] | None = None,
    user: str | None | _Keep = KEEP,
) -> AgentInfo:
    """Change the name, the desks (all of them: the new list replaces the old) or the web
    account (None unlinks it). A change that changes nothing writes nothing."""
    agent = locked(session, work_number)
    before = _info_of(session, agent)
    after = before
    if name is not None:
        after = after.replace(name=rules.agent_name(name))
    if desks is not None:
        after = after.replace(desks=rules.check_desks(desks, known))
    linked: User | None = None
    if isinstance(user, str):
        linked = _linkable_user(session, user, agent.id)
        after = after.replace(user=linked.username)
    elif user is None:
        after = after.replace(user=None)
    changed = rules.changes(before, after)
    if not changed:
        return before
    agent.name = after.name
    if "desks" in changed:
        _set_desks(session, agent, after.desks)
    agent.updated_at = utcnow()
    if "user" in changed:
        linked_id = linked.id if linked is not None else None

        def link() -> None:  # in a SAVEPOINT: the unique web account may be taken meanwhile
            agent.user_id = linked_id
            session.flush()

        refused = in_savepoint(session, link)
        if refused is not None:
            if linked is not None:
                _linkable_user(session, linked.username, agent.id)  # says by whom
            raise refused
    _record(session, agent, "set", changed, actor)
    return _info_of(session, agent)


def set_active(session: Session, work_number: str, active: bool, actor: Actor) -> AgentInfo:
    """Disable (Asterisk must then drop the agent's endpoint) or enable an agent."""
    agent = locked(session, work_number)
    rules.check_active_change(agent.work_number, agent.active, active)
    agent.active = active
    agent.updated_at = utcnow()
    changed: dict[str, object] = {"active": {"old": not active, "new": active}}
    if not active and agent.logged_in:  # out of its queues (a call it is on goes on)
        changed["logged_in"] = {"old": True, "new": False}
        agent.logged_in, agent.paused, agent.pause_reason = False, False, None
        agent.presence_at = agent.updated_at
    session.flush()
    _record(session, agent, "enable" if active else "disable", changed, actor)
    return _info_of(session, agent)


def reset_password(
    session: Session, work_number: str, realm: str, actor: Actor
) -> tuple[AgentInfo, str]:
    """A new SIP password (the old one stops working once Asterisk has the new HA1)."""
    agent = locked(session, work_number)
    password = generate_password()
    changed: dict[str, object] = {"password": "set"}
    if agent.sip_realm != realm:
        changed["realm"] = {"old": agent.sip_realm, "new": realm}
    now = utcnow()
    agent.sip_ha1 = digest_ha1(agent.work_number, realm, password)
    agent.sip_realm = realm
    agent.password_set_at = now
    agent.updated_at = now
    session.flush()
    _record(session, agent, "reset-password", changed, actor)
    return _info_of(session, agent), password


# --- presence (logged in, paused) -------------------------------------------------------------
class NoAgentForUser(HotlineError):
    """The signed-in web account is linked to no agent (HTTP 403): an admin links it with
    ``ivr agents set 工号 --user NAME``."""

    slug = "no-agent-for-user"
    status = 403
    public_message = "this account is not linked to an agent"


def presence_of(agent: Agent) -> Presence:
    return Presence(agent.logged_in, agent.paused, agent.pause_reason or "", agent.device)


def agent_of_user(session: Session, user: User) -> str:
    """The 工号 of the agent the web account ``user`` is linked to."""
    found = session.scalar(select(Agent.work_number).where(Agent.user_id == user.id))
    if found is None:
        raise NoAgentForUser(f"the account {user.username!r} is linked to no agent")
    return found


def get_presence(session: Session, work_number: str) -> Presence:
    return presence_of(_row(session, work_number))


def change_presence(
    session: Session,
    work_number: str,
    action: str,
    reason: str,
    actor: Actor,
    device: str = "desk",
) -> Presence:
    """Log in (on the desk phone or the browser: ``device``), log out, pause (with a reason)
    or resume; recorded like every change. A disabled agent cannot log in; logging in on the
    same device or out twice changes nothing and records nothing."""
    agent = locked(session, work_number)
    if action == "login" and not agent.active:
        raise PresenceRefused(f"agent {agent.work_number} is disabled")
    before = presence_of(agent)
    after = transition(before, action, reason, device)
    if after == before:
        return before
    agent.logged_in, agent.paused = after.logged_in, after.paused
    agent.pause_reason = after.reason or None
    agent.device = after.device
    agent.presence_at = utcnow()
    session.flush()
    changed = {
        field: {"old": getattr(before, field), "new": getattr(after, field)}
        for field in ("logged_in", "paused", "reason", "device")
        if getattr(before, field) != getattr(after, field)
    }
    _record(session, agent, action, changed, actor)
    return after


def seats(engine: Engine, queue_of_desk: Mapping[str, str]) -> list[Seat]:
    """Every active agent with its desks' queues (desks routing/ no longer has are left out)
    and its presence: what the ami role makes Asterisk's queues hold."""
    with Session(engine) as session:
        agents = session.scalars(
            select(Agent).where(Agent.active.is_(True)).order_by(Agent.work_number)
        ).all()
        desks = _desks_of(session, [a.id for a in agents])
        return [
            Seat(
                a.work_number,
                a.name,
                tuple(
                    (queue_of_desk[d.desk], d.penalty)
                    for d in desks.get(a.id, [])
                    if d.desk in queue_of_desk
                ),
                presence_of(a),
            )
            for a in agents
        ]
