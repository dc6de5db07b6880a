"""Answer-rate metrics from AMI events: a pure reducer, the live view and the summary. No I/O.

``apply(state, event, now)`` folds one AMI event (a ``Mapping[str, str]``, as
``AmiMessage.to_dict()`` gives it) into the state and returns the state with a list of
*effects*: plain data saying what the Redis store must change (``CallClassified``,
``WaitingStarted`` ...). ``snapshot(state, now)`` is the live view, ``summarize`` and
``metrics_document`` build the summary document (docs/answer-rate.md), ``close_missing``
resyncs after an AMI reconnect. Nothing here reads a clock: ``now`` is the app's clock when
the event arrived.

>>> state = MetricsState(MetricsConfig(thresholds={"emergency": 15.0}))
>>> call = {"Linkedid": "1.7", "Uniqueid": "1.7", "CallerIDNum": "13912345678"}
>>> events = [
...     {"Event": "Newchannel", "Timestamp": "1763866500.000000", **call},
...     {"Event": "QueueCallerJoin", "Queue": "emergency", "Timestamp": "1763866504.0", **call},
...     {"Event": "QueueCallerLeave", "Queue": "emergency", "Timestamp": "1763866519.5", **call},
...     {"Event": "AgentConnect", "Queue": "emergency", "Timestamp": "1763866519.5", **call},
...     {"Event": "Hangup", "Timestamp": "1763866580.25", **call},
... ]
>>> effects = [fx for ev in events for fx in apply(state, ev, float(ev["Timestamp"]))[1]]
>>> [type(fx).__name__ for fx in effects]
['WaitingStarted', 'WaitingEnded', 'CallClassified']
>>> done = effects[-1]
>>> done.queue, done.klass.value, done.wait_s, done.threshold_s
('emergency', 'answered_late', 15.5, 15.0)
>>> summarize([done]).total.to_json()["answer_rate"]
0.0

The rules (docs/answer-rate.md defines the classes and the threshold rule), event by event:

- A call is a ``Linkedid``. It is *closed*, and then classified exactly once, when every
  channel seen for it has had its ``Hangup``: the ``Uniqueid`` of each of its events, and
  the agent's channel an ``Agent*`` event names (``DestUniqueid``, same ``DestLinkedid``).
- Wait runs from the **first** ``QueueCallerJoin`` to the first ``AgentConnect``; a join to
  an overflow queue does not restart it. Waits are differences of Asterisk timestamps.
- Threshold: that of the queue the caller **first** entered, and the call counts under that
  queue. The emergency queue stays held to 15 s when its call overflows to the backup group.
  A wait equal to the threshold is ``answered``; a microsecond more is ``answered_late``.
- Classes, from the whole sequence (``QueueCallerAbandon`` alone proves nothing: Asterisk
  raises it for timeouts and for leavewhenempty too): connected at all -> ``answered`` /
  ``answered_late``; else never joined a queue nor failed to -> ``ivr_only``; else the last
  ``QUEUESTATUS`` came after the last join and is one of ``SYSTEM_EXITS`` (the queue let the
  caller go: TIMEOUT, FULL, JOINEMPTY ...) -> ``timed_out``, even when the caller hung up
  later in the dialplan; else -> ``abandoned`` (hung up while waiting, or left the queue by
  their own action). A ``QUEUESTATUS`` of a failed join (FULL, JOINEMPTY, JOINUNAVAIL: no
  ``QueueCallerJoin`` at all) counts as ``timed_out`` under the queue named by the call
  flow's ``IVR_QUEUE`` variable, with a wait of 0.
- A call whose start was not seen (no ``Newchannel`` for the channel whose ``Uniqueid`` is
  the ``Linkedid``: the listener started mid-call) may have missed its first join, so it
  ends as ``CallUnknown``, outside the five classes.

State: ``MetricsState`` is mutable. ``apply`` updates it in place and returns the same object
(no copy per event: the listener replays thousands of events per second). Keep one state per
reducer, fed by one task in arrival order; ``clone()`` gives an independent copy.

Time: inside, instants are integer microseconds of Asterisk's clock (``Timestamp``, exact
for the threshold boundary). Every absolute time in an effect or the live view is on the
app's clock: the Asterisk instant plus the offset ``now - Timestamp`` of the latest event
that carried one. An event without a ``Timestamp`` is placed at ``now`` minus that offset.

Order: the facts of a call do not depend on arrival order (earliest join, earliest connect,
latest ``QUEUESTATUS`` against the latest join, compared by timestamp then arrival). Closing
is the one barrier: an event after the last ``Hangup`` is a ``late_event`` and changes
nothing. Asterisk writes each channel's events in order (``QueueCallerAbandon``,
``QueueCallerLeave``, ``VarSet QUEUESTATUS``, ``Hangup``; ``QueueCallerLeave`` then
``AgentConnect``), so any interleaving across channels and calls classifies the same.

Bad input never raises and is counted in ``state.anomalies`` (and an ``AnomalySeen``
effect): ``garbled`` (a known event without a required field, or an unreadable
``Timestamp``: the event is then applied at the estimated time), ``duplicate`` (the same
event twice: same fields apart from adapter keys starting with ``_``, or the same
``_event_id``), ``late_event``, ``unseen_channel`` (events for a channel without a
``Newchannel``, counted when its call closes), ``clock_skew`` (the offset between the
clocks is over ``skew_tolerance_s`` or jumps by more; a negative wait, clamped to 0) and
``unknown_outcome`` (a ``CallUnknown``). Unknown event names are ignored, uncounted. An
``AgentComplete`` without the caller's channel fields (sent when that channel is already
gone) still frees its member (``Queue`` + ``Interface``) and is no anomaly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final


class CallClass(StrEnum):
    ANSWERED = "answered"  # a person connected within the threshold of the first queue
    ANSWERED_LATE = "answered_late"  # a person connected after more than the threshold
    ABANDONED = "abandoned"  # the caller hung up or left while waiting, nobody connected
    TIMED_OUT = "timed_out"  # the queue let the caller go: timeout, full, empty, unavailable
    IVR_ONLY = "ivr_only"  # never asked for a person (served or hung up in the menu)


class AgentState(StrEnum):
    FREE = "free"  # logged in, not paused, device not in use: can take a call
    BUSY = "busy"  # on a call, ringing or on hold
    PAUSED = "paused"  # logged in but paused
    UNAVAILABLE = "unavailable"  # device invalid or unreachable (not registered)


class AnomalyKind(StrEnum):
    GARBLED = "garbled"  # a known event without a required field, or a bad Timestamp
    DUPLICATE = "duplicate"  # the same event seen again: ignored
    LATE_EVENT = "late_event"  # an event for a call already closed: ignored
    UNSEEN_CHANNEL = "unseen_channel"  # events for a channel that had no Newchannel
    CLOCK_SKEW = "clock_skew"  # the clocks disagree or jumped, or a wait came out negative
    UNKNOWN_OUTCOME = "unknown_outcome"  # a call ended as CallUnknown


#: QUEUESTATUS values meaning the queue let the caller go without a person.
SYSTEM_EXITS: Final = frozenset(
    {"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL", "WITHDRAW"}
)
#: An explicit event id the adapter may add; duplicates are then recognised by it alone.
EVENT_ID_FIELD: Final = "_event_id"

_US: Final = 1_000_000
_RECENT_MEMBER_KEYS: Final = 4096
_CALL_EVENTS: Final = frozenset(
    {
        *("Newchannel", "Hangup", "AGIExecStart"),
        *("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"),
        *("AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"),
    }
)
_NEEDS_QUEUE: Final = frozenset(
    {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentConnect", "AgentComplete"}
)
_MEMBER_EVENTS: Final = frozenset(
    {"QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause", "QueueMemberRemoved"}
)
_CALL_VARIABLES: Final = frozenset({"QUEUESTATUS", "IVR_QUEUE"})
_BUSY_DEVICE_STATES: Final = frozenset({2, 3, 6, 7, 8})  # in use, busy, ringing, ringinuse, hold
_UNAVAILABLE_DEVICE_STATES: Final = frozenset({4, 5})  # invalid, unavailable
_NO_CALLER: Final = frozenset({"", "<unknown>", "unknown"})
_CLASS_NAMES: Final = frozenset(klass.value for klass in CallClass)


# --- configuration ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetricsConfig:
    thresholds: Mapping[str, float] = field(default_factory=dict)  # seconds, per queue
    default_threshold_s: float = 60.0
    skew_tolerance_s: float = 2.0  # larger offsets between Asterisk and the app are anomalies
    max_closed: int = 100_000  # closed Linkedids remembered, to recognise late events

    def threshold_s(self, queue: str) -> float:
        return self.thresholds.get(queue, self.default_threshold_s)


# --- effects (what the store must change) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallClassified:
    linkedid: str
    queue: str  # the queue the caller first entered; "" for ivr_only
    klass: CallClass
    wait_s: float  # first entry to connect (answered), or to leaving the queues; 0 if none
    threshold_s: float
    entered_at: float | None  # first queue entry, app clock; None when never queued
    closed_at: float  # last hang-up, app clock
    caller: str  # CallerIDNum, unmasked: mask it before logging
    agent: str = ""  # the member who answered (MemberName of the first AgentConnect)
    talk_s: float | None = None  # AgentComplete's TalkTime (summed); None without one
    callid: str = ""  # Uniqueid of the channel of the first queue entry (queue_log's callid)


@dataclass(frozen=True, slots=True)
class CallUnknown:
    linkedid: str
    queue: str  # first queue entered, if seen
    closed_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class WaitingStarted:
    """The call waits (again, or in another queue): replaces any earlier entry."""

    linkedid: str
    queue: str  # the queue it waits in now
    since: float  # app clock; the first entry, an overflow does not restart it
    caller: str
    threshold_s: float


@dataclass(frozen=True, slots=True)
class WaitingEnded:
    linkedid: str


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    queue: str
    interface: str
    state: AgentState
    name: str


@dataclass(frozen=True, slots=True)
class AgentRemoved:
    queue: str
    interface: str


@dataclass(frozen=True, slots=True)
class AnomalySeen:
    kind: AnomalyKind
    detail: str


Effect = (
    CallClassified
    | CallUnknown
    | WaitingStarted
    | WaitingEnded
    | AgentStateChanged
    | AgentRemoved
    | AnomalySeen
)

_Mark = tuple[int, int]  # (Asterisk instant in us, arrival number within the call)


# --- state --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Call:
    linkedid: str
    channels: set[str] = field(default_factory=set)  # every Uniqueid seen
    created: set[str] = field(default_factory=set)  # Uniqueids with a Newchannel
    hung_up: set[str] = field(default_factory=set)
    keys: set[Any] = field(default_factory=set)  # duplicate detection
    seq: int = 0
    first_us: int | None = None  # earliest event instant
    last_us: int = 0  # latest event instant
    gap_us: int | None = None  # open across an AMI outage (resync instant): events missed?
    caller: str = ""
    requested_queue: tuple[str, _Mark] | None = None  # IVR_QUEUE
    first_join: _Mark | None = None
    first_queue: str = ""
    first_uid: str = ""  # the channel of the first join (queue_log's callid)
    last_join: _Mark | None = None
    in_queue: dict[str, tuple[str, _Mark]] = field(default_factory=dict)  # Uniqueid -> queue
    left: dict[tuple[str, str], _Mark] = field(default_factory=dict)  # (Uniqueid, queue)
    last_exit_us: int | None = None  # latest time a channel left a queue without a person
    connect: _Mark | None = None
    agent: str = ""  # MemberName (else Interface) of the earliest AgentConnect
    talk_s: float | None = None  # sum of AgentComplete TalkTime
    status: tuple[str, _Mark] | None = None  # latest QUEUESTATUS


@dataclass(slots=True)
class _Member:
    name: str = ""
    status: int = 0  # AST_DEVICE_*: 0 unknown (app_queue treats it as available)
    paused: bool = False
    in_call: bool = False

    def state(self) -> AgentState:
        if self.paused:
            return AgentState.PAUSED
        if self.in_call or self.status in _BUSY_DEVICE_STATES:
            return AgentState.BUSY
        if self.status in _UNAVAILABLE_DEVICE_STATES:
            return AgentState.UNAVAILABLE
        return AgentState.FREE


@dataclass(slots=True)
class MetricsState:
    config: MetricsConfig = field(default_factory=MetricsConfig)
    calls: dict[str, _Call] = field(default_factory=dict)  # open calls by Linkedid
    closed: dict[str, None] = field(default_factory=dict)  # recently closed, oldest first
    members: dict[tuple[str, str], _Member] = field(default_factory=dict)  # (queue, interface)
    anomalies: dict[AnomalyKind, int] = field(default_factory=dict)
    offset_us: int | None = None  # app clock minus Asterisk clock, latest measure
    member_keys: dict[Any, None] = field(default_factory=dict)  # recent member events

    def open_linkedids(self) -> frozenset[str]:
        return frozenset(self.calls)

    def clone(self) -> MetricsState:
        return copy.deepcopy(self)


# --- the reducer --------------------------------------------------------------------------
def apply(
    state: MetricsState, event: Mapping[str, str], now: float
) -> tuple[MetricsState, list[Effect]]:
    """Fold one AMI event received at ``now`` (app clock) into ``state`` (in place)."""
    name = event.get("Event")
    if not isinstance(name, str):
        return state, []
    if name in _CALL_EVENTS:
        return state, _on_call_event(state, name, event, now)
    if name == "VarSet":
        variable = _text(event, "Variable")
        if variable is None:
            return state, [_anomaly(state, AnomalyKind.GARBLED, "VarSet without Variable")]
        if variable.lstrip("_") in _CALL_VARIABLES:
            return state, _on_call_event(state, name, event, now)
        return state, []
    if name in _MEMBER_EVENTS:
        return state, _on_member_event(state, name, event)
    return state, []


def close_missing(
    state: MetricsState, live_linkedids: Iterable[str], now: float
) -> tuple[MetricsState, list[Effect]]:
    """Close the calls Asterisk no longer has, after an AMI reconnect.

    ``live_linkedids``: the Linkedids of ``CoreShowChannels``; ``now``: when that list was
    asked for (app clock). A call with an event at or after ``now`` is left open (it may have
    started after the list was made). A call already connected keeps its class; any other
    may have changed while the link was down, so it ends as ``CallUnknown``.
    """
    live = set(live_linkedids)
    at = _us(now) - (state.offset_us or 0)
    effects: list[Effect] = []
    gone = [call for lid, call in state.calls.items() if lid not in live and call.last_us < at]
    for call in gone:
        _close(state, call, at, effects, resync=True)
    for call in state.calls.values():  # still up: it lived through the outage
        if call.first_us is not None and call.first_us < at and call.gap_us is None:
            call.gap_us = at
    return state, effects


def _on_call_event(
    state: MetricsState, name: str, event: Mapping[str, str], now: float
) -> list[Effect]:
    linkedid = _text(event, "Linkedid")
    uid = _text(event, "Uniqueid")
    queue = _text(event, "Queue") or ""
    if name == "AgentComplete" and queue and not (linkedid and uid) and _text(event, "Interface"):
        # Asterisk leaves the caller's fields out when the caller's channel is already gone:
        # the agent is free all the same; the call's class comes from its other events.
        freed: list[Effect] = []
        _member_in_call(state, queue, event, False, freed)
        return freed
    if not linkedid or not uid or (name in _NEEDS_QUEUE and not queue):
        detail = f"{name} without Linkedid, Uniqueid or Queue"
        return [_anomaly(state, AnomalyKind.GARBLED, detail)]
    if linkedid in state.closed:
        return [_anomaly(state, AnomalyKind.LATE_EVENT, f"{name} for closed call {linkedid}")]
    key = _event_key(event)
    call = state.calls.get(linkedid)
    if call is None:
        call = state.calls[linkedid] = _Call(linkedid)
    elif key in call.keys:
        return [_anomaly(state, AnomalyKind.DUPLICATE, f"{name} again for call {linkedid}")]
    call.keys.add(key)

    effects: list[Effect] = []
    at = _event_time(state, event, now, effects)
    call.seq += 1
    call.last_us = max(call.last_us, at)
    call.first_us = at if call.first_us is None else min(call.first_us, at)
    mark = (at, call.seq)
    call.channels.add(uid)
    dest = _text(event, "DestUniqueid")
    if dest and name.startswith("Agent") and _text(event, "DestLinkedid") == linkedid:
        call.channels.add(dest)  # the agent's channel: the call lasts until it hangs up too
    before = _waiting(call)

    if name == "Newchannel":
        call.created.add(uid)
        if uid == linkedid:
            _set_caller(call, event)
    elif name == "Hangup":
        call.hung_up.add(uid)
        if call.in_queue.pop(uid, None) is not None:
            call.last_exit_us = _later(call.last_exit_us, at)
        if call.channels <= call.hung_up:
            _close(state, call, at, effects, resync=False, waiting=before)
            return effects
    elif name == "QueueCallerJoin":
        _joined(call, uid, queue, mark)
        _set_caller(call, event)
    elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
        _left(call, uid, queue, mark)
        call.last_exit_us = _later(call.last_exit_us, at)
    elif name == "AgentConnect":
        if call.connect is None or mark < call.connect:
            call.connect = mark
            call.agent = _text(event, "MemberName") or _text(event, "Interface") or ""
        _left(call, uid, queue, mark)
        _member_in_call(state, queue, event, True, effects)
    elif name == "AgentComplete":
        talk = _int(_text(event, "TalkTime"))
        if talk is not None and talk >= 0:
            call.talk_s = (call.talk_s or 0.0) + talk
        _member_in_call(state, queue, event, False, effects)
    elif name == "VarSet":
        variable = (_text(event, "Variable") or "").lstrip("_")
        value = (_text(event, "Value") or "").strip()
        if variable == "QUEUESTATUS" and (call.status is None or mark > call.status[1]):
            call.status = (value.upper(), mark)
        elif variable == "IVR_QUEUE" and (
            call.requested_queue is None or mark > call.requested_queue[1]
        ):
            call.requested_queue = (value, mark)
    _waiting_changed(state, call, before, effects)
    return effects


def _joined(call: _Call, uid: str, queue: str, mark: _Mark) -> None:
    if call.first_join is None or mark < call.first_join:
        call.first_join = mark
        call.first_queue = queue
        call.first_uid = uid
    if call.last_join is None or mark > call.last_join:
        call.last_join = mark
    current = call.in_queue.get(uid)
    left = call.left.get((uid, queue))
    if (
        uid not in call.hung_up
        and (current is None or mark > current[1])
        and (left is None or left < mark)
    ):
        call.in_queue[uid] = (queue, mark)


def _left(call: _Call, uid: str, queue: str, mark: _Mark) -> None:
    previous = call.left.get((uid, queue))
    if previous is None or mark > previous:
        call.left[(uid, queue)] = mark
    current = call.in_queue.get(uid)
    if current is not None and current[0] == queue and current[1] <= mark:
        del call.in_queue[uid]


def _close(
    state: MetricsState,
    call: _Call,
    at: int,
    effects: list[Effect],
    *,
    resync: bool,
    waiting: tuple[str, int] | None = None,
) -> None:
    if waiting is not None or _waiting(call) is not None:
        effects.append(WaitingEnded(call.linkedid))
    call.in_queue.clear()
    del state.calls[call.linkedid]
    state.closed[call.linkedid] = None
    if len(state.closed) > state.config.max_closed:
        del state.closed[next(iter(state.closed))]
    for uid in sorted(call.channels - call.created):
        detail = f"call {call.linkedid}: channel {uid} had no Newchannel"
        effects.append(_anomaly(state, AnomalyKind.UNSEEN_CHANNEL, detail))

    closed_at = _app_time(state, at)
    queue = call.first_queue or (call.requested_queue[0] if call.requested_queue else "")
    if call.linkedid not in call.created:
        reason = "the start of the call was not seen"
    elif resync and call.connect is None:
        reason = "the call left Asterisk while the AMI link was down"
    elif call.gap_us is not None and not (
        call.connect is not None
        and call.first_join is not None
        and call.connect[0] < call.gap_us
        and call.first_join[0] < call.gap_us
    ):
        reason = "the call was up while the AMI link was down: events may be missing"
    elif call.connect is not None and call.first_join is None:
        reason = "a person answered but the queue entry was not seen"
    else:
        effects.append(_classified(state, call, queue, at, closed_at, effects))
        return
    effects.append(CallUnknown(call.linkedid, queue, closed_at, reason))
    effects.append(_anomaly(state, AnomalyKind.UNKNOWN_OUTCOME, f"{call.linkedid}: {reason}"))


def _classified(
    state: MetricsState, call: _Call, queue: str, at: int, closed_at: float, effects: list[Effect]
) -> CallClassified:
    threshold = state.config.threshold_s(queue)
    status = call.status
    timed_out = (
        status is not None
        and status[0] in SYSTEM_EXITS
        and (call.last_join is None or status[1] > call.last_join)
    )
    if call.connect is None and call.first_join is None and not timed_out:
        threshold = state.config.default_threshold_s
        return CallClassified(
            call.linkedid, "", CallClass.IVR_ONLY, 0.0, threshold, None, closed_at, call.caller
        )
    if call.connect is not None:
        end = call.connect[0]
    elif timed_out and status is not None:
        end = _later(call.last_exit_us, status[1][0])
    else:
        end = at if call.last_exit_us is None else call.last_exit_us

    wait_us = 0
    if call.first_join is not None:
        wait_us = end - call.first_join[0]
        if wait_us < 0:
            detail = f"call {call.linkedid}: negative wait {wait_us / _US:.6f} s, counted as 0"
            effects.append(_anomaly(state, AnomalyKind.CLOCK_SKEW, detail))
            wait_us = 0
    if call.connect is not None:
        within = wait_us <= round(threshold * _US)
        klass = CallClass.ANSWERED if within else CallClass.ANSWERED_LATE
    else:
        klass = CallClass.TIMED_OUT if timed_out else CallClass.ABANDONED
    entered_at = None if call.first_join is None else _app_time(state, call.first_join[0])
    return CallClassified(
        call.linkedid, queue, klass, wait_us / _US, threshold, entered_at, closed_at, call.caller,
        call.agent, call.talk_s, call.first_uid,
    )  # fmt: skip


def _waiting(call: _Call) -> tuple[str, int] | None:
    """(queue waited in now, since when in us) or None."""
    if not call.in_queue:
        return None
    queue, mark = max(call.in_queue.values(), key=lambda entry: entry[1])
    if call.connect is None and call.first_join is not None:
        return queue, call.first_join[0]
    # Queued again after a person answered (a transfer): that wait starts at the new entry.
    return queue, min(entry[1][0] for entry in call.in_queue.values())


def _waiting_changed(
    state: MetricsState, call: _Call, before: tuple[str, int] | None, effects: list[Effect]
) -> None:
    after = _waiting(call)
    if after == before:
        return
    if after is None:
        effects.append(WaitingEnded(call.linkedid))
        return
    queue, since = after
    threshold = state.config.threshold_s(call.first_queue or queue)
    since_app = _app_time(state, since)
    effects.append(WaitingStarted(call.linkedid, queue, since_app, call.caller, threshold))


def _set_caller(call: _Call, event: Mapping[str, str]) -> None:
    if not call.caller:
        number = _text(event, "CallerIDNum") or ""
        if number.strip() not in _NO_CALLER:
            call.caller = number.strip()


# --- queue members ------------------------------------------------------------------------
def _on_member_event(state: MetricsState, name: str, event: Mapping[str, str]) -> list[Effect]:
    queue = _text(event, "Queue")
    interface = _text(event, "Interface") or _text(event, "Location")
    status = _int(_text(event, "Status"))
    paused = _text(event, "Paused")
    if not queue or not interface or status == -1 or paused not in (None, "0", "1"):
        detail = f"{name} without Queue or Interface, or with a bad Status or Paused"
        return [_anomaly(state, AnomalyKind.GARBLED, detail)]
    if EVENT_ID_FIELD in event or "Timestamp" in event:
        key = _event_key(event)
        if key in state.member_keys:
            return [_anomaly(state, AnomalyKind.DUPLICATE, f"{name} again for {interface}")]
        state.member_keys[key] = None
        if len(state.member_keys) > _RECENT_MEMBER_KEYS:
            del state.member_keys[next(iter(state.member_keys))]

    if name == "QueueMemberRemoved":
        if state.members.pop((queue, interface), None) is None:
            return []
        return [AgentRemoved(queue, interface)]
    member = state.members.get((queue, interface))
    old = None if member is None else member.state()
    if member is None:
        member = state.members[(queue, interface)] = _Member()
    member.name = _text(event, "MemberName") or member.name or interface
    if status is not None:
        member.status = status
    if paused is not None:
        member.paused = paused == "1"
    in_call = _text(event, "InCall")
    if in_call in ("0", "1"):
        member.in_call = in_call == "1"
    new = member.state()
    return [] if new == old else [AgentStateChanged(queue, interface, new, member.name)]


def _member_in_call(
    state: MetricsState, queue: str, event: Mapping[str, str], in_call: bool, effects: list[Effect]
) -> None:
    interface = _text(event, "Interface")
    if not interface:
        return
    member = state.members.get((queue, interface))
    old = None if member is None else member.state()
    if member is None:
        name = _text(event, "MemberName") or interface
        member = state.members[(queue, interface)] = _Member(name=name)
    member.in_call = in_call
    new = member.state()
    if new != old:
        effects.append(AgentStateChanged(queue, interface, new, member.name))


# --- time and small helpers ---------------------------------------------------------------
def _event_time(
    state: MetricsState, event: Mapping[str, str], now: float, effects: list[Effect]
) -> int:
    """The event's instant on Asterisk's clock (us); updates the measured clock offset."""
    now_us = _us(now)
    raw = event.get("Timestamp")
    stamp = _parse_timestamp(raw) if isinstance(raw, str) else None
    if stamp is None:
        if raw is not None:
            detail = f"{event.get('Event')}: unreadable Timestamp {raw!r}, placed at now"
            effects.append(_anomaly(state, AnomalyKind.GARBLED, detail))
        return now_us - (state.offset_us or 0)
    offset = now_us - stamp
    previous = state.offset_us
    tolerance = round(state.config.skew_tolerance_s * _US)
    if abs(offset - (previous or 0)) > tolerance:
        detail = f"app clock minus Asterisk clock is now {offset / _US:+.3f} s"
        if previous is not None:
            detail += f" (was {previous / _US:+.3f} s)"
        effects.append(_anomaly(state, AnomalyKind.CLOCK_SKEW, detail))
    state.offset_us = offset
    return stamp


def _parse_timestamp(raw: str) -> int | None:
    """``"1763866512.123456"`` -> microseconds, exactly; None when unreadable.

    >>> _parse_timestamp("1763866512.1"), _parse_timestamp("12"), _parse_timestamp("1e9")
    (1763866512100000, 12000000, None)
    """
    seconds, _, fraction = raw.strip().partition(".")
    if not _digits(seconds) or (fraction and not _digits(fraction)):
        return None
    return int(seconds) * _US + int(fraction[:6].ljust(6, "0"))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _int(text: str | None) -> int | None:
    """None when absent, -1 when not a number."""
    if text is None:
        return None
    return int(text) if _digits(text.strip()) else -1


def _us(seconds: float) -> int:
    return round(seconds * _US)


def _app_time(state: MetricsState, instant_us: int) -> float:
    return (instant_us + (state.offset_us or 0)) / _US


def _later(current: int | None, candidate: int) -> int:
    return candidate if current is None or candidate > current else current


def _text(event: Mapping[str, str], key: str) -> str | None:
    value = event.get(key)
    return value if isinstance(value, str) else None


def _event_key(event: Mapping[str, str]) -> Any:
    explicit = event.get(EVENT_ID_FIELD)
    if explicit is not None:
        return (EVENT_ID_FIELD, str(explicit))
    return hash(frozenset((str(k), str(v)) for k, v in event.items() if not str(k).startswith("_")))


def _anomaly(state: MetricsState, kind: AnomalyKind, detail: str) -> AnomalySeen:
    state.anomalies[kind] = state.anomalies.get(kind, 0) + 1
    return AnomalySeen(kind, detail)


# --- the live view ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WaitingCall:
    linkedid: str
    queue: str  # the queue it waits in now
    first_queue: str  # the queue it first entered (its threshold)
    since: float  # app clock
    waited_s: float
    caller: str
    threshold_s: float

    @property
    def over_threshold(self) -> bool:
        return self.waited_s > self.threshold_s


@dataclass(frozen=True, slots=True)
class QueueLive:
    threshold_s: float
    waiting: tuple[WaitingCall, ...] = ()  # longest wait first
    agents_free: int = 0
    agents_busy: int = 0
    agents_paused: int = 0
    agents_unavailable: int = 0

    @property
    def waiting_now(self) -> int:
        return len(self.waiting)

    @property
    def longest_wait_s(self) -> float:
        return self.waiting[0].waited_s if self.waiting else 0.0

    @property
    def over_threshold_now(self) -> tuple[WaitingCall, ...]:
        return tuple(w for w in self.waiting if w.over_threshold)


@dataclass(frozen=True, slots=True)
class LiveView:
    at: float
    total: QueueLive
    queues: Mapping[str, QueueLive]


def snapshot(state: MetricsState, now: float) -> LiveView:
    """Who waits now, for how long, and the agents, per queue and in total.

    A call counts under the queue it waits in now, its clock running from its first entry
    and held to the threshold of its first queue. In the total an agent in several queues
    counts once: busy anywhere, else free anywhere, else paused, else unavailable.
    """
    now_us = _us(now)
    config = state.config
    waiting: dict[str, list[WaitingCall]] = {queue: [] for queue in config.thresholds}
    for call in state.calls.values():
        current = _waiting(call)
        if current is None:
            continue
        queue, since = current
        since_app = since + (state.offset_us or 0)
        first = call.first_queue or queue
        waited = max(0, now_us - since_app) / _US
        entry = WaitingCall(
            call.linkedid,
            queue,
            first,
            since_app / _US,
            waited,
            call.caller,
            config.threshold_s(first),
        )
        waiting.setdefault(queue, []).append(entry)

    members = (
        (queue, interface, member.state()) for (queue, interface), member in state.members.items()
    )
    return assemble_live_view(config, now, waiting, members)


_AGENT_RANK = (AgentState.BUSY, AgentState.FREE, AgentState.PAUSED, AgentState.UNAVAILABLE)


def assemble_live_view(
    config: MetricsConfig,
    now: float,
    waiting: dict[str, list[WaitingCall]],
    agents: Iterable[tuple[str, str, AgentState]],
) -> LiveView:
    """Per queue and in total, from who waits where and each (queue, interface, state).

    Shared by :func:`snapshot` and the Redis store's read side, so both count alike.
    """
    counts: dict[str, dict[AgentState, int]] = {}
    overall: dict[str, AgentState] = {}
    for queue, interface, agent_state in agents:
        per_queue = counts.setdefault(queue, dict.fromkeys(AgentState, 0))
        per_queue[agent_state] += 1
        seen = overall.get(interface)
        if seen is None or _AGENT_RANK.index(agent_state) < _AGENT_RANK.index(seen):
            overall[interface] = agent_state
    names = sorted(set(waiting) | set(counts))
    queues = {
        q: _queue_live(config.threshold_s(q), waiting.get(q, []), counts.get(q, {})) for q in names
    }
    everyone = [w for q in names for w in waiting.get(q, [])]
    total: dict[AgentState, int] = dict.fromkeys(AgentState, 0)
    for agent_state in overall.values():
        total[agent_state] += 1
    return LiveView(now, _queue_live(config.default_threshold_s, everyone, total), queues)


def _queue_live(
    threshold: float, calls: list[WaitingCall], counts: Mapping[AgentState, int]
) -> QueueLive:
    calls.sort(key=lambda w: (-w.waited_s, w.linkedid))
    return QueueLive(
        threshold,
        tuple(calls),
        counts.get(AgentState.FREE, 0),
        counts.get(AgentState.BUSY, 0),
        counts.get(AgentState.PAUSED, 0),
        counts.get(AgentState.UNAVAILABLE, 0),
    )


# --- the summary (docs/answer-rate.md, "The summary document") -----------------------------
@dataclass(frozen=True, slots=True)
class Counters:
    answered: int = 0
    answered_late: int = 0
    abandoned: int = 0
    timed_out: int = 0
    ivr_only: int = 0

    @property
    def offered(self) -> int:
        """Calls that asked for a person: every class but ivr_only."""
        return self.answered + self.answered_late + self.abandoned + self.timed_out

    @property
    def answer_rate(self) -> float | None:
        """Answered within the threshold / offered; None when nothing was offered."""
        return self.answered / self.offered if self.offered else None

    def added(self, klass: CallClass, count: int = 1) -> Counters:
        return replace(self, **{klass.value: getattr(self, klass.value) + count})

    @classmethod
    def from_mapping(cls, counts: Mapping[Any, Any]) -> Counters:
        """From a Redis hash (``HGETALL``: class name -> count); other fields are ignored."""
        values: dict[str, int] = {}
        for name, raw in counts.items():
            key = name.decode() if isinstance(name, bytes) else str(name)
            if key in _CLASS_NAMES:
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                values[key] = int(text) if _digits(text) else 0
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            **{klass.value: getattr(self, klass.value) for klass in CallClass},
            "answer_rate": self.answer_rate,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    total: Counters
    queues: Mapping[str, Counters]  # by the queue first entered; ivr_only calls are not here


def summarize(calls: Iterable[CallClassified]) -> Summary:
    """Count classified calls per class, per queue first entered and in total."""
    total = Counters()
    queues: dict[str, Counters] = {}
    for call in calls:
        total = total.added(call.klass)
        if call.queue:
            queues[call.queue] = queues.get(call.queue, Counters()).added(call.klass)
    return Summary(total, queues)


def metrics_document(summary: Summary, live: LiveView, config: MetricsConfig) -> dict[str, Any]:
    """The JSON document of ``GET /api/metrics/summary`` and ``ivr metrics --json``."""

    def part(counters: Counters, queue_live: QueueLive | None, threshold: float) -> dict[str, Any]:
        queue_live = queue_live or QueueLive(threshold)
        return {
            **counters.to_json(),
            "threshold_s": threshold,
            "waiting_now": queue_live.waiting_now,
            "longest_wait_s": round(queue_live.longest_wait_s, 3),
            "over_threshold_now": [
                {
                    "linkedid": w.linkedid,
                    "queue": w.queue,
                    "waited_s": round(w.waited_s, 3),
                    "caller": w.caller,
                }
                for w in queue_live.over_threshold_now
            ],
            "agents_free": queue_live.agents_free,
            "agents_busy": queue_live.agents_busy,
            "agents_paused": queue_live.agents_paused,
        }

    names = sorted(set(summary.queues) | set(live.queues))
    document = part(summary.total, live.total, config.default_threshold_s)
    document["queues"] = {
        q: part(summary.queues.get(q, Counters()), live.queues.get(q), config.threshold_s(q))
        for q in names
    }
    return document
