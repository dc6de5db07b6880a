"""Failed SIP authentications counted per source address, and the block after too many. Pure.

Asterisk reports each failed authentication as an AMI security event (read class
``security``): ``ChallengeResponseFailed`` (a wrong digest), ``InvalidPassword``,
``InvalidAccountID`` (no such endpoint). :func:`failure_address` picks the source address
out of one; :func:`record_failure` counts it and decides the block: ``max_failures`` failures
within ``window_s`` seconds block the address for ``block_s`` seconds. Addresses inside
``never_block`` (the carrier trunk's: the emergency calls come in there) are counted but
never blocked. :func:`expire` lifts the blocks whose time is up.

Asterisk reports one refused request as several events (an unknown account's REGISTER with
credentials: ``InvalidAccountID`` and ``ChallengeResponseFailed``; the unauthenticated one
before it: ``InvalidAccountID``), so failures from one address in the same SIP dialog
(``SessionID``, the Call-ID) within :data:`SAME_ATTEMPT_S` count once.

>>> policy = GuardPolicy(max_failures=3, window_s=60, block_s=600)
>>> state = GuardState()
>>> for at in (0.0, 1.0):
...     state, block = record_failure(state, policy, "192.0.2.7", at, f"call-{at}")
>>> block is None, state.recent("192.0.2.7")
(True, 2)
>>> state, block = record_failure(state, policy, "192.0.2.7", 1.01, "call-1.0")  # same request
>>> block is None, state.recent("192.0.2.7"), state.totals["192.0.2.7"]
(True, 2, 2)
>>> state, block = record_failure(state, policy, "192.0.2.7", 2.0, "call-2")
>>> block
Block(address='192.0.2.7', until=602.0, failures=3)
>>> state, lifted = expire(state, 700.0)
>>> lifted, state.blocks
(['192.0.2.7'], {})
>>> failure_address({"Event": "InvalidPassword", "RemoteAddress": "IPV4/UDP/192.0.2.7/5060"})
'192.0.2.7'
>>> failure_address({"Event": "ChallengeSent", "RemoteAddress": "IPV4/UDP/192.0.2.7/5060"})
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network

# The security events that mean a failed authentication (ChallengeSent, SuccessfulAuth and
# the rest are not failures).
FAILURE_EVENTS = frozenset({"ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID"})
SAME_ATTEMPT_S = 1.0  # events of one dialog this close together are one refused attempt


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    max_failures: int
    window_s: float
    block_s: float
    never_block: tuple[IPv4Network | IPv6Network, ...] = ()

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s <= 0 or self.block_s <= 0:
            raise ValueError("max_failures must be at least 1, window_s and block_s positive")


@dataclass(frozen=True, slots=True)
class Block:
    """An address to refuse until ``until`` (seconds, the clock the events were given)."""

    address: str
    until: float
    failures: int  # failures within the window when it was blocked


@dataclass(frozen=True, slots=True)
class GuardState:
    """Failure times within the window, per address; blocked addresses and until when;
    all failures ever counted per address."""

    failures: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    blocks: Mapping[str, float] = field(default_factory=dict)
    totals: Mapping[str, int] = field(default_factory=dict)
    last: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # (session, at)

    def recent(self, address: str) -> int:
        """Failures from ``address`` in the window of its last failure."""
        return len(self.failures.get(address, ()))


def failure_address(event: Mapping[str, str]) -> str | None:
    """The source address of a failed-authentication security event, else None.

    ``RemoteAddress`` reads ``IPV4/UDP/192.0.2.7/5060`` (``IPV6/TCP/[2001:db8::1]/5060``
    for IPv6); anything that is not an address is ignored."""
    if event.get("Event") not in FAILURE_EVENTS:
        return None
    parts = event.get("RemoteAddress", "").split("/")
    if len(parts) < 3:
        return None
    try:
        return str(ipaddress.ip_address(parts[2].strip("[]")))
    except ValueError:
        return None


def record_failure(
    state: GuardState, policy: GuardPolicy, address: str, at: float, session: str = ""
) -> tuple[GuardState, Block | None]:
    """Count one failure from ``address`` at ``at`` (``session``: the event's SessionID);
    a :class:`Block` when it reaches the limit (an address already blocked is not blocked
    again: its time is not extended)."""
    previous = state.last.get(address)
    last = {**state.last, address: (session, at)}
    if session and previous is not None and previous[0] == session:
        if 0 <= at - previous[1] < SAME_ATTEMPT_S:
            return state, None  # the time of the attempt counted is kept
    window = tuple(t for t in state.failures.get(address, ()) if t > at - policy.window_s)
    window = (*window, at)
    totals = {**state.totals, address: state.totals.get(address, 0) + 1}
    failures = {**state.failures, address: window}
    new = replace(state, failures=failures, totals=totals, last=last)
    already = address in state.blocks
    if already or len(window) < policy.max_failures or _exempt(address, policy.never_block):
        return new, None
    block = Block(address, at + policy.block_s, len(window))
    return replace(new, blocks={**state.blocks, address: block.until}), block


def expire(
    state: GuardState, now: float, window_s: float | None = None
) -> tuple[GuardState, list[str]]:
    """Lift the blocks whose time is up (returned, sorted); with ``window_s``, also forget
    failures older than the window (so the state does not grow without end)."""
    lifted = sorted(a for a, until in state.blocks.items() if until <= now)
    blocks = {a: until for a, until in state.blocks.items() if until > now}
    failures = dict(state.failures)
    if window_s is not None:
        failures = {
            a: kept
            for a, times in failures.items()
            if (kept := tuple(t for t in times if t > now - window_s))
        }
    last = {a: seen for a, seen in state.last.items() if a in failures or a in blocks}
    return replace(state, blocks=blocks, failures=failures, last=last), lifted


def restored(blocks: Sequence[tuple[str, float]]) -> GuardState:
    """The state after a restart: the blocks still recorded (address, until), no failures."""
    return GuardState(blocks=dict(blocks))


def _exempt(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in networks)
