"""Agent states live, from AMI events: a pure reducer, one state per agent. No I/O.

An *agent* is a person with a 工号 (work number, digits) logged in to a desk: a queue member
whose ``MemberName`` is ``<工号> <name>`` (``1001 张三``), or whose interface (or
``StateInterface``) is ``PJSIP/<工号>``. Members that follow neither (the dev stack's
``Local/agent@sim-agents/n``) are not agents and are ignored here (the answer-rate metrics
still count them, :mod:`ivr.core.metrics`).

``apply(state, event, now)`` folds one AMI event (a ``Mapping[str, str]``) into the state and
returns the views of the agents it changed; ``reconcile(state, members, now)`` makes the
``QueueMember`` entries of a ``QueueStatus`` the truth after an AMI (re)login;
``current(view, now)`` is what a view says at a later instant (wrap-up ends without an
event) and ``agent_document`` the JSON of ``GET /api/metrics/summary``'s ``agents``.

>>> state = AgentStates(AgentsConfig(ZoneInfo("Asia/Shanghai")))
>>> member = {"Queue": "repair", "Interface": "PJSIP/1001", "MemberName": "1001 张三"}
>>> call = {"Uniqueid": "1.7", "CallerIDNum": "13912345678", **member}
>>> events = [
...     ({"Event": "QueueMemberAdded", "Status": "1", "Wrapuptime": "30", **member}, 100.0),
...     ({"Event": "AgentCalled", **call}, 110.0),
...     ({"Event": "AgentConnect", **call}, 114.0),
...     ({"Event": "AgentComplete", "TalkTime": "60", **call}, 174.0),
... ]
>>> [apply(state, event, at)[1][0].activity.value for event, at in events]
['idle', 'ringing', 'talking', 'wrapup']
>>> view = state.agents["1001"].view
>>> view.name, view.since, view.wrapup_until, view.calls, view.handle_total_s
('张三', 174.0, 204.0, 1, 90.0)
>>> later = current(view, 300.0)
>>> later.activity.value, later.since
('idle', 204.0)

The state of an agent, from the first rule that holds (an agent in several queues has one):

1. 离线 ``offline``: no queue membership (logged out, or removed by a resync), or its device
   is invalid or unavailable (``Status`` 4/5 of a member, ``DeviceStateChange`` of
   ``PJSIP/<工号>`` when Asterisk sends those; a ``ContactStatus`` of
   ``Removed``/``Unreachable`` for endpoint ``<工号>``), unless it is on a call;
2. 通话 ``talking``: connected to a caller (``AgentConnect`` until its ``AgentComplete``), or a
   member of it ``InCall`` as ``QueueStatus`` says (the caller unknown then), or its device
   in use, busy or on hold (answered: Asterisk reports the device in use just before
   ``AgentConnect``; or a call outside the queues);
3. 振铃 ``ringing``: rung by a queue (``AgentCalled``) and not yet answered; the ring ends
   with ``AgentConnect`` (its own, or another agent's for the same caller),
   ``AgentRingNoAnswer``, ``AgentDump``, ``AgentComplete``, or the caller leaving the queue
   (``QueueCallerLeave``/``QueueCallerAbandon``) or hanging up;
4. 小休 ``paused`` (with the reason, ``PausedReason``: 小休, 培训, 会议 ...) when paused in
   every queue it is in; a pause whose reason is 后处理 is shown as ``wrapup``;
5. 后处理 ``wrapup``: from ``AgentComplete`` for the member's ``Wrapuptime`` seconds
   (Asterisk sends no event when it ends: ``wrapup_until``, and :func:`current` turns the
   view idle at that instant);
6. 空闲 ``idle``.

``since`` is when the state (with its reason) last changed, on the app's clock
(``now`` of the event). Today's calls and handle time count each ``AgentComplete`` once
(duplicates ignored), in the local day (``AgentsConfig.tz``) it arrived: handle time is
``TalkTime`` plus the wrap-up that followed. A new local day starts from zero.

Out of order and missing events: a member or an agent first seen in any event is created
(its ``QueueMemberAdded`` missed); an ``AgentCalled`` after the same caller's
``AgentConnect`` or ``AgentComplete`` is stale and ignored; an ``AgentComplete`` without its
``AgentConnect`` still counts and frees the agent. Events without the fields they need are
ignored (``state.ignored`` counts them); the same event twice (same fields apart from keys
starting with ``_``) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo


class Activity(StrEnum):
    IDLE = "idle"  # 空闲
    RINGING = "ringing"  # 振铃
    TALKING = "talking"  # 通话
    WRAPUP = "wrapup"  # 后处理
    PAUSED = "paused"  # 小休 (with its reason)
    OFFLINE = "offline"  # 离线


#: The states as the supervisor page names them.
LABELS: Final = {
    Activity.IDLE: "空闲",
    Activity.RINGING: "振铃",
    Activity.TALKING: "通话",
    Activity.WRAPUP: "后处理",
    Activity.PAUSED: "小休",
    Activity.OFFLINE: "离线",
}
#: The pause reasons of the desks; a pause for 后处理 is wrap-up taken by hand.
PAUSE_REASONS: Final = ("小休", "培训", "会议", "后处理")
WRAPUP_REASON: Final = "后处理"

_MEMBER_EVENTS: Final = frozenset(
    {"QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause", "QueueMemberRemoved"}
)
_AGENT_EVENTS: Final = frozenset(
    {"AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"}
)
_CALLER_EVENTS: Final = frozenset({"QueueCallerLeave", "QueueCallerAbandon", "Hangup"})
_PHONE_EVENTS: Final = frozenset({"DeviceStateChange", "ContactStatus"})
#: Every event name :func:`apply` reads.
EVENTS: Final = _MEMBER_EVENTS | _AGENT_EVENTS | _CALLER_EVENTS | _PHONE_EVENTS

_OFFLINE_DEVICE: Final = frozenset({4, 5})  # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE
_TALKING_DEVICE: Final = frozenset({2, 3, 7, 8})  # in use, busy, ring in use, on hold
_RINGING_DEVICE: Final = frozenset({6, 7})  # ringing, ring in use
#: DeviceStateChange's ``State`` -> the number QueueMember's ``Status`` uses (AST_DEVICE_*).
DEVICE_STATES: Final = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}
_UNREGISTERED: Final = frozenset({"Removed", "Unreachable"})
_REGISTERED: Final = frozenset({"Created", "Reachable", "Updated", "NonQualified", "Unqualified"})
_NO_CALLER: Final = frozenset({"", "<unknown>", "unknown"})
_RECENT_KEYS: Final = 4096
_PJSIP: Final = "PJSIP/"


@dataclass(frozen=True, slots=True)
class AgentsConfig:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))  # "today"


def local_day(at: float, tz: ZoneInfo) -> str:
    """The local day of the instant ``at`` in ``tz`` (``2025-11-30``), as the metrics' buckets.

    >>> shanghai = ZoneInfo("Asia/Shanghai")
    >>> local_day(1764518399.5, shanghai), local_day(1764518400.0, shanghai)
    ('2025-11-30', '2025-12-01')
    """
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d")


def parse_member(member_name: str, *interfaces: str) -> tuple[str, str] | None:
    """(工号, name) of a queue member, or None when it is not an agent.

    The 工号 is the first token of ``MemberName`` when it is digits (the rest is the name),
    else the digits of a ``PJSIP/<digits>`` interface (then the name is the ``MemberName``
    unless that is only the interface again).

    >>> parse_member("1001 张三", "Local/1001@sim-agents/n")
    ('1001', '张三')
    >>> parse_member("李四", "PJSIP/1002"), parse_member("PJSIP/1003", "PJSIP/1003")
    (('1002', '李四'), ('1003', ''))
    >>> parse_member("Local/agent@sim-agents/n", "Local/agent@sim-agents/n", "") is None
    True
    """
    first, _, rest = member_name.strip().partition(" ")
    if _digits(first):
        return first, rest.strip()
    for interface in interfaces:
        if interface.startswith(_PJSIP) and _digits(interface.removeprefix(_PJSIP)):
            name = member_name.strip()
            return interface.removeprefix(_PJSIP), "" if name in interfaces else name
    return None


# --- the view: what the store writes and the web reads ------------------------------------
@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent's state as of ``since``; ``caller`` unmasked: mask it before it leaves."""

    work_number: str
    name: str
    activity: Activity
    reason: str  # the pause reason (paused, or wrapup taken by hand); "" otherwise
    since: float  # app clock
    caller: str  # the caller rung or talked to; "" when none or unknown
    wrapup_until: float | None  # the end of the wrap-up (activity wrapup), app clock
    day: str  # the local day the counts below belong to
    calls: int  # AgentComplete seen that day
    handle_total_s: float  # their TalkTime + wrap-up
    queues: tuple[str, ...]  # the queues it is a member of now

    def to_json(self) -> dict[str, Any]:
        return {
            "work_number": self.work_number,
            "name": self.name,
            "state": self.activity.value,
            "reason": self.reason,
            "since": self.since,
            "caller": self.caller,
            "wrapup_until": self.wrapup_until,
            "day": self.day,
            "calls": self.calls,
            "handle_total_s": self.handle_total_s,
            "queues": list(self.queues),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentView | None:
        """Back from :meth:`to_json`; None when it is not one (a foreign or damaged value)."""
        try:
            until = data.get("wrapup_until")
            return cls(
                str(data["work_number"]),
                str(data.get("name", "")),
                Activity(str(data["state"])),
                str(data.get("reason", "")),
                float(data["since"]),
                str(data.get("caller", "")),
                None if until is None else float(until),
                str(data.get("day", "")),
                int(data.get("calls", 0)),
                float(data.get("handle_total_s", 0.0)),
                tuple(str(q) for q in data.get("queues", ())),
            )
        except (KeyError, TypeError, ValueError):
            return None


def current(view: AgentView, now: float) -> AgentView:
    """``view`` at ``now``: a wrap-up that has run out is idle since its end."""
    until = view.wrapup_until
    if view.activity is Activity.WRAPUP and until is not None and now >= until:
        return replace(view, activity=Activity.IDLE, since=until, wrapup_until=None)
    return view


def agent_document(
    view: AgentView, now: float, tz: ZoneInfo, mask: Callable[[str], str]
) -> dict[str, Any]:
    """One entry of the summary's ``agents``: the state at ``now``, today's counts (zero
    when the view's counts belong to another day), the caller masked by ``mask``."""
    view = current(view, now)
    today = view.day == local_day(now, tz)
    calls = view.calls if today else 0
    handle = view.handle_total_s if today else 0.0
    return {
        "work_number": view.work_number,
        "name": view.name,
        "state": view.activity.value,
        "label": LABELS[view.activity],
        "reason": view.reason,
        "since": round(view.since, 3),
        "until": view.wrapup_until,  # a timed wrap-up's end: idle from then on
        "caller_masked": mask(view.caller) if view.caller else "",
        "calls_today": calls,
        "mean_handle_s": round(handle / calls, 1) if calls else None,
        "queues": list(view.queues),
    }


# --- state --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Membership:
    paused: bool = False
    reason: str = ""
    paused_at: float = 0.0
    in_call: bool = False
    wrapup_s: float = 0.0  # the member's Wrapuptime (0: none)


@dataclass(slots=True)
class _Agent:
    work_number: str
    name: str = ""
    members: dict[tuple[str, str], _Membership] = field(default_factory=dict)  # (queue, iface)
    device: int = 0  # AST_DEVICE_* of its phone, the latest any event said
    registered: bool | None = None  # ContactStatus of endpoint <工号>; None: not seen
    ringing: dict[str, str] = field(default_factory=dict)  # caller Uniqueid -> caller number
    call: tuple[str, str] | None = None  # (caller Uniqueid, caller number) while connected
    # the caller that last left the queue while ringing this agent: its call if the phone
    # turns out to be in use before AgentConnect (which the 工号 announcement delays)
    left: tuple[str, str] | None = None
    done: dict[str, None] = field(default_factory=dict)  # caller Uniqueids ended, recent first
    wrapup_until: float | None = None
    day: str = ""
    calls: int = 0
    handle_total_s: float = 0.0
    view: AgentView | None = None


@dataclass(slots=True)
class AgentStates:
    config: AgentsConfig = field(default_factory=AgentsConfig)
    agents: dict[str, _Agent] = field(default_factory=dict)  # by 工号
    by_member: dict[tuple[str, str], str] = field(default_factory=dict)  # (queue, iface) -> 工号
    keys: dict[Any, None] = field(default_factory=dict)  # recent events, for duplicates
    ignored: int = 0  # events without the fields they need

    def views(self) -> list[AgentView]:
        return [agent.view for agent in self.agents.values() if agent.view is not None]


# --- the reducer --------------------------------------------------------------------------
def apply(
    state: AgentStates, event: Mapping[str, str], now: float
) -> tuple[AgentStates, list[AgentView]]:
    """Fold one AMI event received at ``now`` (app clock) into ``state`` (in place); returns
    the views of the agents whose state, counts or queues changed."""
    name = event.get("Event")
    if name not in EVENTS:
        return state, []
    if name not in _PHONE_EVENTS:  # a phone's state set twice is the same state: no key kept
        key = hash(
            frozenset((str(k), str(v)) for k, v in event.items() if not str(k).startswith("_"))
        )
        if key in state.keys:
            return state, []
        state.keys[key] = None
        if len(state.keys) > _RECENT_KEYS:
            del state.keys[next(iter(state.keys))]
    touched: dict[str, _Agent] = {}
    if name in _MEMBER_EVENTS:
        _on_member(state, name, event, now, touched)
    elif name in _AGENT_EVENTS:
        _on_agent_event(state, name, event, now, touched)
    elif name in _CALLER_EVENTS:
        uid = _text(event, "Uniqueid")
        if uid:
            for rung in state.agents.values():
                caller = rung.ringing.pop(uid, None)
                if caller is None:
                    continue
                touched[rung.work_number] = rung
                answered = any(m.in_call for m in rung.members.values()) or (
                    rung.device in _TALKING_DEVICE
                )
                if name == "QueueCallerLeave" and rung.call is None:
                    # the caller left the queue, maybe for this agent's phone: connected, though
                    # AgentConnect comes only after what plays first (the 工号 announcement);
                    # the phone's in-use state may come just before or just after this event
                    if answered:
                        rung.call = (uid, caller)
                    else:
                        rung.left = (uid, caller)
    elif name == "DeviceStateChange":
        device = _text(event, "Device") or ""
        phone = state.agents.get(device.removeprefix(_PJSIP)) if device.startswith(_PJSIP) else None
        value = DEVICE_STATES.get(_text(event, "State") or "")
        if phone is not None and value is not None:
            phone.device = value
            touched[phone.work_number] = phone
    else:  # ContactStatus
        endpoint = state.agents.get(_text(event, "EndpointName") or "")
        status = _text(event, "ContactStatus") or ""
        if endpoint is not None and status in _UNREGISTERED | _REGISTERED:
            endpoint.registered = status in _REGISTERED
            touched[endpoint.work_number] = endpoint
    return state, _refresh(state, touched.values(), now)


def reconcile(
    state: AgentStates, members: Iterable[Mapping[str, str]], now: float
) -> tuple[AgentStates, list[AgentView]]:
    """Make ``QueueStatus``'s ``QueueMember`` entries (``Queue``, ``Name``, ``Location``,
    ``StateInterface``, ``Status``, ``Paused``, ``PausedReason``, ``InCall``, ``Wrapuptime``)
    the truth: members not listed are removed, and what is listed wins (an agent in a call
    in none of its queues is not talking, nor ringing unless its phone rings)."""
    touched: dict[str, _Agent] = {}
    listed: set[tuple[str, str]] = set()
    for entry in members:
        queue = _text(entry, "Queue")
        interface = _text(entry, "Location") or _text(entry, "Interface")
        if not queue or not interface:
            continue
        listed.add((queue, interface))
        fields = {
            "Queue": queue,
            "Interface": interface,
            "MemberName": _text(entry, "Name") or _text(entry, "MemberName") or "",
            "StateInterface": _text(entry, "StateInterface") or "",
        }
        for item in ("Status", "Paused", "PausedReason", "InCall", "Wrapuptime"):
            value = _text(entry, item)
            if value is not None:
                fields[item] = value
        agent = _member_update(state, "QueueMemberStatus", fields, now, touched)
        if agent is not None and fields.get("InCall") == "0":
            if not any(m.in_call for m in agent.members.values()):
                agent.call = None
                if agent.device not in _RINGING_DEVICE:  # a phone ringing is not InCall yet
                    agent.ringing.clear()
    for member_key in [k for k in state.by_member if k not in listed]:
        _remove(state, member_key, touched)
    return state, _refresh(state, touched.values(), now)


def _on_member(
    state: AgentStates, name: str, event: Mapping[str, str], now: float, touched: dict[str, _Agent]
) -> None:
    queue = _text(event, "Queue")
    interface = _text(event, "Interface")
    if not queue or not interface:
        state.ignored += 1
        return
    if name == "QueueMemberRemoved":
        _remove(state, (queue, interface), touched)
        return
    _member_update(state, name, event, now, touched)


def _member_update(
    state: AgentStates, name: str, event: Mapping[str, str], now: float, touched: dict[str, _Agent]
) -> _Agent | None:
    queue = _text(event, "Queue") or ""
    interface = _text(event, "Interface") or ""
    found = _member(state, event, queue, interface)
    if found is None:
        return None
    agent, member = found
    touched[agent.work_number] = agent
    status = _int(_text(event, "Status"))
    if status is not None:
        agent.device = status
    paused = _text(event, "Paused")
    if paused in ("0", "1"):
        was = member.paused
        member.paused = paused == "1"
        member.reason = (_text(event, "PausedReason") or "").strip() if member.paused else ""
        if member.paused and (not was or name == "QueueMemberPause"):
            member.paused_at = now
    in_call = _text(event, "InCall")
    if in_call in ("0", "1"):
        member.in_call = in_call == "1"
    wrapup = _int(_text(event, "Wrapuptime"))
    if wrapup is not None:
        member.wrapup_s = float(wrapup)
    return agent


def _member(
    state: AgentStates, event: Mapping[str, str], queue: str, interface: str
) -> tuple[_Agent, _Membership] | None:
    """The agent and membership of (queue, interface); created when first seen."""
    work_number = state.by_member.get((queue, interface))
    member_name = _text(event, "MemberName") or ""
    parsed = parse_member(member_name, interface, _text(event, "StateInterface") or "")
    if work_number is None:
        if parsed is None:
            return None
        work_number = parsed[0]
        state.by_member[(queue, interface)] = work_number
    agent = state.agents.get(work_number)
    if agent is None:
        agent = state.agents[work_number] = _Agent(work_number)
    if parsed is not None and parsed[0] == work_number and parsed[1]:
        agent.name = parsed[1]
    member = agent.members.get((queue, interface))
    if member is None:
        member = agent.members[(queue, interface)] = _Membership()
    return agent, member


def _remove(state: AgentStates, member_key: tuple[str, str], touched: dict[str, _Agent]) -> None:
    work_number = state.by_member.pop(member_key, None)
    agent = state.agents.get(work_number or "")
    if agent is None:
        return
    agent.members.pop(member_key, None)
    if not agent.members:  # logged out: no call, no ring, no wrap-up left to show
        agent.ringing.clear()
        agent.call = None
        agent.wrapup_until = None
    touched[agent.work_number] = agent


def _on_agent_event(
    state: AgentStates, name: str, event: Mapping[str, str], now: float, touched: dict[str, _Agent]
) -> None:
    queue = _text(event, "Queue")
    interface = _text(event, "Interface")
    if not queue or not interface:
        state.ignored += 1
        return
    uid = _text(event, "Uniqueid") or ""
    caller = (_text(event, "CallerIDNum") or "").strip()
    caller = "" if caller in _NO_CALLER else caller
    if name == "AgentConnect" and uid:  # a ringall: the others stop ringing for this caller
        for other in state.agents.values():
            if other.ringing.pop(uid, None) is not None:
                touched[other.work_number] = other
    found = _member(state, event, queue, interface)
    if found is None:
        return
    agent, member = found
    touched[agent.work_number] = agent
    agent.left = None  # whatever comes now says more about the agent's call
    if name == "AgentCalled":
        if uid and uid not in agent.done and (agent.call is None or agent.call[0] != uid):
            agent.ringing[uid] = caller
    elif name == "AgentConnect":
        agent.ringing.pop(uid, None)
        if uid not in agent.done:
            agent.call = (uid, caller)
            agent.wrapup_until = None
    elif name in ("AgentRingNoAnswer", "AgentDump"):
        agent.ringing.pop(uid, None)
    else:  # AgentComplete
        agent.ringing.pop(uid, None)
        if agent.call is not None and (not uid or agent.call[0] == uid):
            agent.call = None
        if uid:
            agent.done[uid] = None
            if len(agent.done) > 64:
                del agent.done[next(iter(agent.done))]
        talk = _int(_text(event, "TalkTime"))
        _count(agent, local_day(now, state.config.tz), float(talk or 0) + member.wrapup_s)
        agent.wrapup_until = now + member.wrapup_s if member.wrapup_s > 0 else None


def _count(agent: _Agent, day: str, handle_s: float) -> None:
    if agent.day != day:
        agent.day, agent.calls, agent.handle_total_s = day, 0, 0.0
    agent.calls += 1
    agent.handle_total_s += handle_s


# --- deriving the state -------------------------------------------------------------------
def _refresh(state: AgentStates, agents: Iterable[_Agent], now: float) -> list[AgentView]:
    changed: list[AgentView] = []
    for agent in agents:
        view = _derive(agent, now, state.config.tz)
        if view != agent.view:
            agent.view = view
            changed.append(view)
    return changed


def _derive(agent: _Agent, now: float, tz: ZoneInfo) -> AgentView:
    if agent.wrapup_until is not None and now >= agent.wrapup_until:
        ended_at: float | None = agent.wrapup_until
        agent.wrapup_until = None
    else:
        ended_at = None
    activity, reason, caller = _activity(agent)
    if not agent.day:
        agent.day = local_day(now, tz)
    before = agent.view
    if before is not None and (before.activity, before.reason) == (activity, reason):
        since = before.since  # the caller may come later (a device in use, then AgentConnect)
    elif (
        before is not None
        and before.activity is Activity.WRAPUP
        and activity is Activity.IDLE
        and ended_at is not None
    ):
        since = ended_at  # the wrap-up ran out before this event
    else:
        since = now
    queues = tuple(sorted({queue for queue, _ in agent.members}))
    until = agent.wrapup_until if activity is Activity.WRAPUP else None
    return AgentView(
        agent.work_number,
        agent.name,
        activity,
        reason,
        since,
        caller,
        until,
        agent.day,
        agent.calls,
        agent.handle_total_s,
        queues,
    )


def _activity(agent: _Agent) -> tuple[Activity, str, str]:
    if not agent.members:
        return Activity.OFFLINE, "", ""
    if agent.call is not None:
        return Activity.TALKING, "", agent.call[1]
    if any(m.in_call for m in agent.members.values()) or agent.device in _TALKING_DEVICE:
        # answered (its phone in use comes around AgentConnect), or a call of its own
        if agent.ringing:
            caller = next(reversed(agent.ringing.values()))
        else:
            caller = agent.left[1] if agent.left is not None else ""
        return Activity.TALKING, "", caller
    if agent.ringing:
        return Activity.RINGING, "", next(reversed(agent.ringing.values()))
    if agent.device in _OFFLINE_DEVICE or agent.registered is False:
        return Activity.OFFLINE, "", ""
    if all(m.paused for m in agent.members.values()):
        latest = max(agent.members.values(), key=lambda m: m.paused_at)
        if latest.reason == WRAPUP_REASON:
            return Activity.WRAPUP, latest.reason, ""
        return Activity.PAUSED, latest.reason, ""
    if agent.wrapup_until is not None:
        return Activity.WRAPUP, "", ""
    return Activity.IDLE, "", ""


# --- small helpers ------------------------------------------------------------------------
def _digits(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def _int(text: str | None) -> int | None:
    if text is None or not _digits(text.strip()):
        return None
    return int(text.strip())


def _text(event: Mapping[str, str], key: str) -> str | None:
    value = event.get(key)
    return value if isinstance(value, str) else None
