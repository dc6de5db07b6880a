"""后处理 (wrap-up) after a queue call, as a pause the agent's save ends early. Pure.

Asterisk's own queue wrap-up (``wrapuptime``) cannot be ended early, so the queues have none
(dialplan/queues.conf, :mod:`ivr.core.queue_ringing`) and the ami role makes it a pause
instead: when a member with a 工号 completes a queue call (AMI ``AgentComplete``) and the
queue's desk has a wrap-up time (``routing/desks.yaml``, section ``ringing``, ``wrapup_s``),
the agent is paused with reason 后处理 in SQL, like any presence change, by the actor
``ami:后处理 <seconds>s``, and so in every queue of its desks. The pause ends

- when the agent saves the ticket's record (:func:`ivr.adapters.sql.ticket_desk.end_wrapup_pause`
  resumes any 后处理 pause), or
- when its time runs out: the ami role resumes the agent, but only while the agent's latest
  presence change is still that automatic pause. An agent who resumed, paused for another
  reason (小休, 培训, ...), paused 后处理 by hand or logged out meanwhile is left alone.

The deadline is read back from SQL (the change's time plus the seconds in its actor), never
kept in memory only, so an ami role restarted mid-wrap-up ends the overdue pauses at once
and the others on time. An agent that is not logged in, or already paused, gets no wrap-up.

>>> start_of("1001 张三", "repair", Presence(True), {"repair": 20})
Wrapup(work_number='1001', seconds=20)
>>> start_of("1001 张三", "billing", Presence(True), {"repair": 20}) is None  # no wrap-up there
True
>>> start_of("1001 张三", "repair", Presence(True, True, "小休"), {"repair": 20}) is None
True
>>> actor_of(20), seconds_of_actor("ami:后处理 20s"), seconds_of_actor("admin")
('ami:后处理 20s', 20, None)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from ivr.core.agent_intro import work_number_of
from ivr.core.agent_presence import Presence
from ivr.core.agent_states import WRAPUP_REASON

_ACTOR: Final = re.compile(r"ami:后处理 ([0-9]{1,4})s")


@dataclass(frozen=True, slots=True)
class Wrapup:
    """The agent to pause 后处理 and for how long."""

    work_number: str
    seconds: int


@dataclass(frozen=True, slots=True)
class LastChange:
    """An agent's latest presence change, as SQL holds it."""

    work_number: str
    presence: Presence  # the presence now
    action: str  # the change's action: login, logout, pause, resume
    actor: str
    at: datetime


def actor_of(seconds: int) -> str:
    """Who pauses for an automatic wrap-up of ``seconds``: in the audit, and read back."""
    return f"ami:{WRAPUP_REASON} {seconds}s"


def seconds_of_actor(actor: str) -> int | None:
    """The wrap-up seconds of an automatic 后处理 pause's actor; None for any other actor."""
    found = _ACTOR.fullmatch(actor)
    return int(found.group(1)) if found else None


def start_of(
    member_name: str | None, queue: str, presence: Presence, wrapup_s: Mapping[str, int]
) -> Wrapup | None:
    """The wrap-up an ``AgentComplete`` of ``member_name`` in ``queue`` starts: none for a
    member without a 工号, a queue without wrap-up, or an agent not logged in or paused."""
    work_number = work_number_of(member_name)
    seconds = wrapup_s.get(queue, 0)
    if work_number is None or seconds <= 0 or not presence.logged_in or presence.paused:
        return None
    return Wrapup(work_number, seconds)


def deadline(change: LastChange) -> datetime | None:
    """When the agent's automatic 后处理 pause ends; None when its presence is anything else
    (resumed, paused by hand or for another reason, logged out)."""
    seconds = seconds_of_actor(change.actor)
    p = change.presence
    if seconds is None or change.action != "pause":
        return None
    if not (p.logged_in and p.paused and p.reason == WRAPUP_REASON):
        return None
    return change.at + timedelta(seconds=seconds)


def due(change: LastChange, now: datetime) -> bool:
    """Whether the ami role resumes the agent now: its automatic wrap-up has run out."""
    end = deadline(change)
    return end is not None and now >= end
