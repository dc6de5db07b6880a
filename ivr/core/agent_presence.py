"""An agent's presence (logged in, paused and why) and the queue membership it means. Pure.

The service keeps each agent's presence in SQL; Asterisk's queues only mirror it. Logged in,
an agent is a member of the queue of each of its desks: ``Interface`` the endpoint of the
device it chose at log-in (``PJSIP/<工号>`` for the desk phone, ``PJSIP/<工号>-webrtc`` for the
browser's softphone: so ringing and busy are that device's), ``MemberName`` ``<工号> <name>`` and
the desk's penalty (no wrap-up time of Asterisk's: the wrap-up is a 后处理 pause,
:mod:`ivr.core.wrapup`). Paused,
it stays a member, paused with its reason in every queue. :func:`plan` compares that with
what Asterisk holds (``QueueStatus``) and gives the actions that make Asterisk agree; members
that are not agents (no ``PJSIP/<digits>`` or ``PJSIP/<digits>-webrtc`` interface: the dev
stack's simulated agents) are never touched.

>>> p = transition(Presence(), "login")
>>> p
Presence(logged_in=True, paused=False, reason='', device='desk')
>>> transition(p, "pause", "培训")
Presence(logged_in=True, paused=True, reason='培训', device='desk')
>>> transition(p, "login", device="browser")  # logged in again: now on the browser
Presence(logged_in=True, paused=False, reason='', device='browser')
>>> transition(Presence(), "pause", "小休")
Traceback (most recent call last):
...
ivr.core.agent_presence.PresenceRefused: log in before pausing
>>> transition(p, "pause", "午饭")
Traceback (most recent call last):
...
ivr.core.agent_presence.PresenceRefused: pause reason '午饭' is not one of 小休, 培训, 会议, 后处理
>>> FEATURE_CODES["*232"], reason_of_digit("3")
(('pause', '培训'), '会议')
>>> seat = Seat("1001", "张三", (("repair", 0), ("billing", 2)), transition(p, "pause", "会议"))
>>> [m.queue for m in members(seat)]
['billing', 'repair']
>>> m = members(seat)[1]
>>> m.interface, m.name, m.penalty, m.paused, m.reason
('PJSIP/1001', '1001 张三', 0, True, '会议')
>>> interface_of("1001", "browser"), is_agent_interface("PJSIP/1001-webrtc")
('PJSIP/1001-webrtc', True)
>>> seat_of_endpoint("1001-webrtc"), seat_of_endpoint("1001"), seat_of_endpoint("pstn")
(('1001', 'browser'), ('1001', 'desk'), None)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ivr.errors import HotlineError

PAUSE_REASONS: Final = ("小休", "培训", "会议", "后处理")  # break, training, meeting, wrap-up
ACTIONS: Final = ("login", "logout", "pause", "resume")
# Which device rings, chosen at log-in: the desk phone (endpoint <工号>) or the browser's
# softphone on the agent desk page (endpoint <工号>-webrtc).
DEVICES: Final = ("desk", "browser")
BROWSER_SUFFIX: Final = "-webrtc"
# The phone's feature codes (dialplan/extensions-agents.conf): *21 log in, *22 log out,
# *23N pause with reason N (1 小休, 2 培训, 3 会议, 4 后处理), *24 resume.
FEATURE_CODES: Final[Mapping[str, tuple[str, str]]] = {
    "*21": ("login", ""),
    "*22": ("logout", ""),
    **{f"*23{n}": ("pause", reason) for n, reason in enumerate(PAUSE_REASONS, start=1)},
    "*24": ("resume", ""),
}
_AGENT_INTERFACE: Final = re.compile(r"PJSIP/([0-9]{1,12})(-webrtc)?")
_AGENT_ENDPOINT: Final = re.compile(r"([0-9]{1,12})(-webrtc)?")


class PresenceRefused(HotlineError):
    """A login, logout, pause or resume that the agent's present state does not allow, or an
    unknown pause reason (HTTP 409; the message says why)."""

    slug = "presence-refused"
    status = 409


@dataclass(frozen=True, slots=True)
class Presence:
    logged_in: bool = False
    paused: bool = False
    reason: str = ""  # the pause reason, "" when not paused
    device: str = "desk"  # which device rings while logged in: one of DEVICES


def describe(p: Presence) -> str:
    """One line for people: 已登录 logged in, 小休 paused (break), 未登录 logged out."""
    if not p.logged_in:
        return "未登录 logged out"
    if p.paused:
        return f"{p.reason} paused"
    return "已登录 logged in"


def reason_of_digit(digit: str) -> str:
    """The pause reason a phone's *23N means (N from 1)."""
    index = int(digit) - 1 if digit.isdigit() else -1
    if not 0 <= index < len(PAUSE_REASONS):
        raise PresenceRefused(f"no pause reason {digit!r}: 1 to {len(PAUSE_REASONS)}")
    return PAUSE_REASONS[index]


def transition(now: Presence, action: str, reason: str = "", device: str = "desk") -> Presence:
    """The presence after ``action``. Logging in twice on the same device, or resuming while
    not paused, is allowed and changes nothing; logging in again on the other ``device``
    moves the agent's memberships there (a pause is kept); logging out also ends a pause."""
    if action == "login":
        if device not in DEVICES:
            raise PresenceRefused(f"device {device!r} is not one of {', '.join(DEVICES)}")
        if not now.logged_in:
            return Presence(logged_in=True, device=device)
        return Presence(True, now.paused, now.reason, device)
    if action == "logout":
        return Presence()
    if action == "pause":
        if not now.logged_in:
            raise PresenceRefused("log in before pausing")
        if reason not in PAUSE_REASONS:
            raise PresenceRefused(
                f"pause reason {reason!r} is not one of {', '.join(PAUSE_REASONS)}"
            )
        return Presence(logged_in=True, paused=True, reason=reason, device=now.device)
    if action == "resume":
        if not now.logged_in:
            raise PresenceRefused("not logged in: log in instead")
        return Presence(logged_in=True, device=now.device)
    raise PresenceRefused(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")


@dataclass(frozen=True, slots=True)
class Seat:
    """One active agent with its desks' queues and penalties, and its presence."""

    work_number: str
    name: str
    queues: tuple[tuple[str, int], ...]  # (queue, penalty) of each desk
    presence: Presence


@dataclass(frozen=True, slots=True)
class Member:
    """A queue membership as Asterisk holds it (``QueueStatus``'s ``QueueMember``)."""

    queue: str
    interface: str
    name: str
    penalty: int
    paused: bool
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue, self.interface)


def interface_of(work_number: str, device: str = "desk") -> str:
    """The queue member interface of the agent's ``device``."""
    return f"PJSIP/{work_number}{BROWSER_SUFFIX if device == 'browser' else ''}"


def members(seat: Seat) -> list[Member]:
    """The memberships ``seat`` should have (none while logged out), by queue."""
    p = seat.presence
    if not p.logged_in:
        return []
    by_queue: dict[str, int] = {}
    for queue, penalty in seat.queues:  # two desks on one queue: the lower penalty
        if queue not in by_queue or penalty < by_queue[queue]:
            by_queue[queue] = penalty
    return [
        Member(
            queue,
            interface_of(seat.work_number, p.device),
            f"{seat.work_number} {seat.name}",
            penalty,
            p.paused,
            p.reason,
        )
        for queue, penalty in sorted(by_queue.items())
    ]


@dataclass(frozen=True, slots=True)
class Add:
    member: Member


@dataclass(frozen=True, slots=True)
class Remove:
    queue: str
    interface: str


@dataclass(frozen=True, slots=True)
class Pause:
    queue: str
    interface: str
    paused: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Penalty:
    queue: str
    interface: str
    penalty: int


QueueAction = Add | Remove | Pause | Penalty


def seat_of_endpoint(endpoint: str) -> tuple[str, str] | None:
    """``(工号, device)`` of an agent's SIP endpoint: ``1001`` is 1001's desk phone,
    ``1001-webrtc`` its browser; None for any other endpoint (the trunk)."""
    found = _AGENT_ENDPOINT.fullmatch(endpoint)
    if found is None:
        return None
    return found.group(1), "browser" if found.group(2) else "desk"


def is_agent_interface(interface: str) -> bool:
    return _AGENT_INTERFACE.fullmatch(interface) is not None


def plan(wanted: Iterable[Member], held: Iterable[Member]) -> list[QueueAction]:
    """What to do so that Asterisk's agent memberships are exactly ``wanted``.

    >>> m = Member("repair", "PJSIP/1001", "1001 张三", 0, False, "")
    >>> plan([m], []) == [Add(m)]
    True
    >>> sim = Member("repair", "Local/agent@sim-agents/n", "", 0, False, "")
    >>> plan([], [m, sim])
    [Remove(queue='repair', interface='PJSIP/1001')]
    >>> for action in plan([Member("repair", "PJSIP/1001", "1001 张三", 1, True, "小休")], [m]):
    ...     print(action)
    Pause(queue='repair', interface='PJSIP/1001', paused=True, reason='小休')
    Penalty(queue='repair', interface='PJSIP/1001', penalty=1)
    """
    want = {m.key: m for m in wanted}
    have = {m.key: m for m in held if is_agent_interface(m.interface)}
    actions: list[QueueAction] = []
    for key in sorted(have.keys() - want.keys()):
        actions.append(Remove(*key))
    for key in sorted(want):
        w, h = want[key], have.get(key)
        if h is None or h.name != w.name:  # a renamed agent: its member name is set on add
            if h is not None:
                actions.append(Remove(*key))
            actions.append(Add(w))
            continue
        if (h.paused, h.reason if h.paused else "") != (w.paused, w.reason):
            actions.append(Pause(w.queue, w.interface, w.paused, w.reason))
        if h.penalty != w.penalty:
            actions.append(Penalty(w.queue, w.interface, w.penalty))
    return actions


def wanted_members(seats: Sequence[Seat]) -> list[Member]:
    return [m for seat in seats for m in members(seat)]
