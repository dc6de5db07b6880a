"""The automatic 后处理 pauses in SQL (the rules: :mod:`ivr.core.wrapup`; the caller commits)::

    start(session, member_name, queue, wrapup_s)  -> Wrapup | None   paused 后处理, or nothing
    pending(session)                              -> [LastChange]    agents paused 后处理
    end_if_due(session, work_number, now)         -> bool            resumed: its time ran out

Both changes are presence changes like the API's and the CLI's (the agent's row locked, an
``agent_changes`` row and an audit row by the actor ``ami:后处理 <seconds>s``); the ami role's
membership keeper makes the queues follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql.db import Agent, AgentChange
from ivr.core.agent_intro import work_number_of
from ivr.core.agent_presence import ACTIONS
from ivr.core.agent_states import WRAPUP_REASON
from ivr.core.wrapup import LastChange, Wrapup, actor_of, due, seconds_of_actor, start_of


def start(
    session: Session, member_name: str | None, queue: str, wrapup_s: Mapping[str, int]
) -> Wrapup | None:
    """Pause the agent of an ``AgentComplete`` for its desk's wrap-up, when one applies."""
    work_number = work_number_of(member_name)
    if work_number is None:
        return None
    agent = session.scalar(select(Agent).where(Agent.work_number == work_number))
    if agent is None or not agent.active:
        return None
    presence = agent_store.presence_of(agent_store.locked(session, work_number))
    wrapup = start_of(member_name, queue, presence, wrapup_s)
    if wrapup is None:
        return None
    actor = agent_store.Actor(actor_of(wrapup.seconds))
    agent_store.change_presence(session, work_number, "pause", WRAPUP_REASON, actor)
    return wrapup


def _last_change(session: Session, agent: Agent) -> LastChange | None:
    row = session.scalar(
        select(AgentChange)
        .where(AgentChange.agent_id == agent.id, AgentChange.action.in_(ACTIONS))
        .order_by(AgentChange.at.desc(), AgentChange.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    presence = agent_store.presence_of(agent)
    return LastChange(agent.work_number, presence, row.action, row.actor, row.at)


def pending(session: Session) -> list[LastChange]:
    """The latest presence change of every agent paused 后处理 now (by hand or not)."""
    agents = session.scalars(
        select(Agent).where(
            Agent.active.is_(True), Agent.paused.is_(True), Agent.pause_reason == WRAPUP_REASON
        )
    ).all()
    found = (_last_change(session, a) for a in agents)
    return [change for change in found if change is not None]


def end_if_due(session: Session, work_number: str, now: datetime) -> bool:
    """Resume the agent when its automatic wrap-up has run out (read again under the row's
    lock: a save, a pause or a resume meanwhile wins); True when it did."""
    agent = agent_store.locked(session, work_number)
    change = _last_change(session, agent)
    if change is None or not due(change, now):
        return False
    seconds = seconds_of_actor(change.actor)
    actor = agent_store.Actor(actor_of(seconds or 0))
    agent_store.change_presence(session, work_number, "resume", "", actor)
    return True
