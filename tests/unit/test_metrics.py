"""The metrics reducer (ivr.core.metrics): call classes, live view, summary and bad input.

Event sequences come from small builders that write what Asterisk 22 writes (app_queue's
order: QueueCallerAbandon, QueueCallerLeave, VarSet QUEUESTATUS; QueueCallerLeave before
AgentConnect), with ``timestampevents = yes``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivr.core import metrics
from ivr.core.metrics import (
    AgentRemoved,
    AgentState,
    AgentStateChanged,
    AnomalyKind,
    AnomalySeen,
    CallClass,
    CallClassified,
    CallUnknown,
    Counters,
    Effect,
    MetricsConfig,
    MetricsState,
    WaitingEnded,
    WaitingStarted,
    apply,
    close_missing,
    metrics_document,
    snapshot,
    summarize,
)
from ivr.protocols.ami import AmiFramer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BASE_US = 1_763_866_512_123_456  # every Timestamp uses all six decimals
DELIVERY_S = 0.002  # the app receives each event this long after Asterisk stamped it
CONFIG = MetricsConfig(thresholds={"emergency": 15.0, "emergency-backup": 15.0})

Event = dict[str, str]


def stamp(t: float) -> str:
    """Seconds after BASE_US as an AMI Timestamp, exact to the microsecond."""
    us = BASE_US + round(t * 1_000_000)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def seconds(event: Event) -> float:
    return float(event["Timestamp"])


# --- what Asterisk 22 writes for one call --------------------------------------------------------
@dataclass
class Call:
    """One call's events. PSTN: one trunk channel whose Uniqueid is the Linkedid. ``local``:
    an ``ivr call`` Local pair, the caller half ``;1`` (the Linkedid) and the hotline half
    ``;2`` that runs the dialplan and sits in the queue."""

    linkedid: str
    local: bool = False
    caller: str = "13912345678"
    events: list[Event] = field(default_factory=list)
    channels: dict[str, str] = field(default_factory=dict)  # open: Uniqueid -> name
    agents: int = 0

    @property
    def queued(self) -> str:
        return f"{self.linkedid};2" if self.local else self.linkedid

    def ev(self, name: str, t: float, uid: str | None = None, **fields: str) -> Call:
        uid = uid or self.queued
        self.events.append(
            {
                "Event": name,
                "Privilege": "call,all",
                "Timestamp": stamp(t),
                "Channel": self.channels.get(uid, f"PJSIP/gone-{uid}"),
                "CallerIDNum": self.caller,
                "CallerIDName": "张三",
                "Uniqueid": uid,
                "Linkedid": self.linkedid,
                **fields,
            }
        )
        return self

    def new_channel(self, t: float, uid: str, name: str) -> Call:
        self.channels[uid] = name
        return self.ev("Newchannel", t, uid, ChannelState="0", ChannelStateDesc="Down")

    def hang_up(self, t: float, uid: str) -> Call:
        self.ev("Hangup", t, uid, Cause="16", **{"Cause-txt": "Normal Clearing"})
        del self.channels[uid]
        return self

    def arrive(self, t: float, queue: str | None = None) -> Call:
        if self.local:
            self.new_channel(t, self.linkedid, f"Local/95158@from-pstn-{self.linkedid};1")
            self.new_channel(t, self.queued, f"Local/95158@from-pstn-{self.linkedid};2")
        else:
            self.new_channel(t, self.linkedid, f"PJSIP/pstn-trunk-{self.linkedid}")
        self.ev("AGIExecStart", t + 0.1, Command="ANSWER", CommandId="1")
        if queue is not None:
            self.ev("VarSet", t + 1, Variable="IVR_QUEUE", Value=queue)
        return self

    def join(self, t: float, queue: str) -> Call:
        return self.ev("QueueCallerJoin", t, Queue=queue, Position="1", Count="1")

    def ring(self, t: float, queue: str, agent: int = 1) -> str:
        self.agents += 1
        uid = f"{self.linkedid}-agent{self.agents}"
        self.new_channel(t, uid, f"PJSIP/agent-100{agent}-{self.agents:08x}")
        member = {"Interface": f"PJSIP/agent-100{agent}", "MemberName": f"agent {agent}"}
        self.ev(
            "AgentCalled", t, Queue=queue, DestUniqueid=uid, DestLinkedid=self.linkedid, **member
        )
        return uid

    def ring_no_answer(self, t: float, queue: str, agent_uid: str, agent: int = 1) -> Call:
        member = {"Interface": f"PJSIP/agent-100{agent}", "MemberName": f"agent {agent}"}
        self.ev(
            "AgentRingNoAnswer",
            t,
            Queue=queue,
            DestUniqueid=agent_uid,
            DestLinkedid=self.linkedid,
            **member,
        )
        return self.hang_up(t, agent_uid)

    def answer(self, t: float, queue: str, agent_uid: str, held: float, agent: int = 1) -> Call:
        self.ev("QueueCallerLeave", t, Queue=queue, Count="0", Position="1")
        member = {"Interface": f"PJSIP/agent-100{agent}", "MemberName": f"agent {agent}"}
        return self.ev(
            "AgentConnect",
            t,
            Queue=queue,
            DestUniqueid=agent_uid,
            DestLinkedid=self.linkedid,
            HoldTime=str(int(held)),
            RingTime="2",
            **member,
        )

    def complete(self, t: float, queue: str, agent: int = 1) -> Call:
        member = {"Interface": f"PJSIP/agent-100{agent}", "MemberName": f"agent {agent}"}
        return self.ev("AgentComplete", t, Queue=queue, TalkTime="30", Reason="caller", **member)

    def abandon(self, t: float, queue: str, held: float) -> Call:
        """The caller hangs up while waiting: no QUEUESTATUS is set."""
        if self.local:  # the caller half goes first; the hotline half leaves the queue
            self.hang_up(t, self.linkedid)
        self.ev("QueueCallerAbandon", t, Queue=queue, Position="1", OriginalPosition="1")
        self.events[-1]["HoldTime"] = str(int(held))
        self.ev("QueueCallerLeave", t, Queue=queue, Count="0", Position="1")
        return self.hang_up_all(t)

    def queue_gives_up(self, t: float, queue: str, held: float, status: str = "TIMEOUT") -> Call:
        """Queue() returns without a person: QueueCallerAbandon is raised here too."""
        self.ev("QueueCallerAbandon", t, Queue=queue, Position="1", OriginalPosition="1")
        self.events[-1]["HoldTime"] = str(int(held))
        self.ev("QueueCallerLeave", t, Queue=queue, Count="0", Position="1")
        return self.ev("VarSet", t, Variable="QUEUESTATUS", Value=status)

    def hang_up_all(self, t: float) -> Call:
        for uid in sorted(self.channels, key=lambda u: u != self.queued):
            self.hang_up(t, uid)
        return self


def answered_after(
    wait: float,
    queue: str = "repair",
    linkedid: str = "c1",
    start: float = 0.0,
    local: bool = False,
) -> list[Event]:
    call = Call(linkedid, local=local).arrive(start, queue)
    joined = start + 5
    call.join(joined, queue)
    agent = call.ring(joined + 0.5, queue)
    call.answer(joined + wait, queue, agent, wait)
    call.complete(joined + wait + 30, queue)
    return call.hang_up_all(joined + wait + 30).events


def abandoned_after(
    wait: float,
    queue: str = "repair",
    linkedid: str = "c1",
    start: float = 0.0,
    local: bool = False,
) -> list[Event]:
    call = Call(linkedid, local=local).arrive(start, queue)
    joined = start + 5
    call.join(joined, queue)
    if wait > 2:
        call.ring_no_answer(joined + 2, queue, call.ring(joined + 0.5, queue))
    return call.abandon(joined + wait, queue, wait).events


def timed_out_after(
    wait: float,
    queue: str = "repair",
    linkedid: str = "c1",
    start: float = 0.0,
    status: str = "TIMEOUT",
    local: bool = False,
) -> list[Event]:
    """The queue gives up; the dialplan plays a goodbye and hangs up 2 s later."""
    call = Call(linkedid, local=local).arrive(start, queue)
    call.join(start + 5, queue)
    call.queue_gives_up(start + 5 + wait, queue, wait, status)
    return call.hang_up_all(start + 5 + wait + 2).events


def overflow_answered(
    timeout: float,
    answer: float,
    first: str = "repair",
    second: str = "consultation",
    linkedid: str = "c1",
    start: float = 0.0,
) -> list[Event]:
    """Timed out in ``first``, queued at once in ``second``, answered ``answer`` s later."""
    call = Call(linkedid).arrive(start, first)
    call.join(start + 5, first)
    call.queue_gives_up(start + 5 + timeout, first, timeout)
    rejoined = start + 5 + timeout + 0.01
    call.join(rejoined, second)
    agent = call.ring(rejoined + 0.5, second, agent=2)
    call.answer(rejoined + answer, second, agent, answer, agent=2)
    call.complete(rejoined + answer + 30, second, agent=2)
    return call.hang_up_all(rejoined + answer + 30).events


def ivr_only(linkedid: str = "c1", start: float = 0.0, local: bool = False) -> list[Event]:
    call = Call(linkedid, local=local).arrive(start)
    call.ev("AGIExecStart", start + 2, Command='STREAM FILE /srv/p/zh/hours ""')
    return call.hang_up_all(start + 12).events


# --- running the reducer -------------------------------------------------------------------------
def run(
    events: Iterable[Event],
    state: MetricsState | None = None,
    skew: float = 0.0,
    config: MetricsConfig = CONFIG,
) -> tuple[MetricsState, list[Effect]]:
    """Apply every event; the app's clock is Asterisk's plus ``skew``, plus delivery."""
    state = state if state is not None else MetricsState(config)
    effects: list[Effect] = []
    now = seconds({"Timestamp": stamp(0)}) + skew
    for event in events:
        if "Timestamp" in event and metrics._parse_timestamp(event["Timestamp"]) is not None:
            now = seconds(event) + skew + DELIVERY_S
        effects.extend(apply(state, event, now)[1])
    return state, effects


def classified(effects: Iterable[Effect]) -> list[CallClassified]:
    return [fx for fx in effects if isinstance(fx, CallClassified)]


def only(effects: Iterable[Effect]) -> CallClassified:
    (result,) = classified(effects)
    return result


def anomalies(effects: Iterable[Effect]) -> list[AnomalyKind]:
    return [fx.kind for fx in effects if isinstance(fx, AnomalySeen)]


def without_anomalies(state: MetricsState) -> MetricsState:
    copied = copy.deepcopy(state)
    copied.anomalies = {}
    return copied


def at(t: float) -> float:
    """App clock ``t`` seconds after BASE_US (no skew)."""
    return seconds({"Timestamp": stamp(t)})


# --- each class ----------------------------------------------------------------------------------
def test_given_call_answered_after_20s_when_last_channel_hangs_up_then_answered_once():
    state, effects = run(answered_after(20))
    call = only(effects)
    assert (call.linkedid, call.queue, call.klass) == ("c1", "repair", CallClass.ANSWERED)
    assert call.wait_s == 20.0
    assert call.threshold_s == 60.0
    assert call.caller == "13912345678"
    assert call.entered_at == pytest.approx(at(5) + DELIVERY_S)
    assert call.closed_at == pytest.approx(at(55) + DELIVERY_S)
    assert not state.calls and "c1" in state.closed
    assert state.anomalies == {}


def test_given_caller_hangs_up_after_40s_in_queue_when_closed_then_abandoned():
    _, effects = run(abandoned_after(40))
    call = only(effects)
    assert (call.klass, call.queue, call.wait_s) == (CallClass.ABANDONED, "repair", 40.0)


def test_given_queue_timeout_then_dialplan_hangs_up_when_closed_then_timed_out():
    _, effects = run(timed_out_after(300))
    call = only(effects)
    assert (call.klass, call.queue, call.wait_s) == (CallClass.TIMED_OUT, "repair", 300.0)


@pytest.mark.parametrize("status", ["FULL", "LEAVEEMPTY", "LEAVEUNAVAIL", "WITHDRAW", "timeout"])
def test_given_queue_lets_caller_go_with_status_when_closed_then_timed_out(status):
    _, effects = run(timed_out_after(30, status=status))
    assert only(effects).klass is CallClass.TIMED_OUT


@pytest.mark.parametrize("status", ["JOINEMPTY", "JOINUNAVAIL", "FULL"])
def test_given_caller_never_admitted_to_queue_when_closed_then_timed_out_under_ivr_queue(status):
    call = Call("c1").arrive(0, "billing")
    call.ev("VarSet", 3, Variable="QUEUESTATUS", Value=status)
    _, effects = run(call.hang_up_all(5).events)
    result = only(effects)
    assert (result.klass, result.queue, result.wait_s) == (CallClass.TIMED_OUT, "billing", 0.0)
    assert result.entered_at is None


def test_given_caller_hangs_up_in_menu_when_closed_then_ivr_only_without_queue():
    _, effects = run(ivr_only())
    call = only(effects)
    assert (call.klass, call.queue, call.wait_s, call.entered_at) == (
        CallClass.IVR_ONLY,
        "",
        0.0,
        None,
    )


def test_given_queuestatus_continue_after_agent_hangs_up_then_still_answered():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    agent = call.ring(6, "repair")
    call.answer(15, "repair", agent, 10).complete(40, "repair")
    call.ev("VarSet", 40, Variable="QUEUESTATUS", Value="CONTINUE")
    _, effects = run(call.hang_up_all(41).events)
    assert only(effects).klass is CallClass.ANSWERED


# --- the threshold -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("queue", "wait", "expected"),
    [
        ("repair", 59.999999, CallClass.ANSWERED),
        ("repair", 60.0, CallClass.ANSWERED),
        ("repair", 60.000001, CallClass.ANSWERED_LATE),
        ("repair", 60.001, CallClass.ANSWERED_LATE),
        ("emergency", 15.0, CallClass.ANSWERED),
        ("emergency", 15.001, CallClass.ANSWERED_LATE),
        ("emergency", 30.0, CallClass.ANSWERED_LATE),
    ],
)
def test_given_wait_at_the_threshold_boundary_when_answered_then_exact_class(queue, wait, expected):
    _, effects = run(answered_after(wait, queue=queue))
    call = only(effects)
    assert call.klass is expected
    assert call.wait_s == pytest.approx(wait, abs=1e-9)


def test_given_thresholds_configured_per_queue_then_unlisted_queue_uses_default():
    config = MetricsConfig(thresholds={"billing": 20.0}, default_threshold_s=45.0)
    _, effects = run(
        answered_after(30, queue="billing") + answered_after(30, linkedid="c2"), config=config
    )
    assert [(c.queue, c.klass, c.threshold_s) for c in classified(effects)] == [
        ("billing", CallClass.ANSWERED_LATE, 20.0),
        ("repair", CallClass.ANSWERED, 45.0),
    ]


# --- overflow ------------------------------------------------------------------------------------
def test_given_timeout_then_overflow_answered_when_closed_then_late_from_first_join():
    _, effects = run(overflow_answered(timeout=300, answer=20))
    call = only(effects)
    assert (call.klass, call.queue) == (CallClass.ANSWERED_LATE, "repair")
    assert call.wait_s == pytest.approx(320.01)


def test_given_short_timeout_then_overflow_answered_quickly_then_answered_not_restarted():
    _, effects = run(overflow_answered(timeout=30, answer=20))
    call = only(effects)
    assert call.klass is CallClass.ANSWERED
    assert call.wait_s == pytest.approx(50.01)


def test_given_overflow_where_second_wait_alone_is_short_then_clock_not_restarted():
    _, effects = run(overflow_answered(timeout=50, answer=15))  # 15 s in the 2nd queue only
    assert only(effects).klass is CallClass.ANSWERED_LATE


@pytest.mark.parametrize(
    ("answer", "expected"), [(4.99, CallClass.ANSWERED), (6, CallClass.ANSWERED_LATE)]
)
def test_given_emergency_overflow_to_backup_then_held_to_15s_of_first_queue(answer, expected):
    events = overflow_answered(10, answer, first="emergency", second="emergency-backup")
    call = only(run(events)[1])
    assert (call.queue, call.threshold_s, call.klass) == ("emergency", 15.0, expected)


def test_given_timeout_then_overflow_then_caller_hangs_up_then_abandoned():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    call.queue_gives_up(305, "repair", 300)
    call.join(305.01, "consultation")
    _, effects = run(call.abandon(330, "consultation", 25).events)
    result = only(effects)
    assert (result.klass, result.queue, result.wait_s) == (CallClass.ABANDONED, "repair", 325.0)


def test_given_timeout_in_both_queues_then_timed_out_once():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    call.queue_gives_up(305, "repair", 300)
    call.join(305.01, "consultation").queue_gives_up(605.01, "consultation", 300)
    _, effects = run(call.hang_up_all(606).events)
    result = only(effects)
    assert (result.klass, result.queue) == (CallClass.TIMED_OUT, "repair")
    assert result.wait_s == pytest.approx(600.01)


def test_given_overflow_when_waiting_then_waiting_restated_with_first_since():
    events = overflow_answered(timeout=300, answer=20)
    _, effects = run(events)
    waits = [fx for fx in effects if isinstance(fx, WaitingStarted | WaitingEnded)]
    assert [type(fx).__name__ for fx in waits] == [
        "WaitingStarted",
        "WaitingEnded",
        "WaitingStarted",
        "WaitingEnded",
    ]
    first, second = (fx for fx in waits if isinstance(fx, WaitingStarted))
    assert (first.queue, second.queue) == ("repair", "consultation")
    assert first.since == second.since == pytest.approx(at(5) + DELIVERY_S)
    assert second.threshold_s == 60.0


# --- abandon vs timeout: both raise QueueCallerAbandon -------------------------------------------
def test_given_queuecallerabandon_in_both_when_classifying_then_queuestatus_decides():
    _, effects = run(abandoned_after(45, linkedid="a") + timed_out_after(45, linkedid="t"))
    assert sum(1 for e in abandoned_after(45) if e["Event"] == "QueueCallerAbandon") == 1
    assert sum(1 for e in timed_out_after(45) if e["Event"] == "QueueCallerAbandon") == 1
    assert {c.linkedid: c.klass for c in classified(effects)} == {
        "a": CallClass.ABANDONED,
        "t": CallClass.TIMED_OUT,
    }


def test_given_timeout_status_from_first_queue_then_abandon_in_second_then_not_timed_out():
    call = Call("c1").arrive(0, "repair").join(5, "repair").queue_gives_up(20, "repair", 15)
    call.join(20, "consultation")  # same microsecond as the QUEUESTATUS: arrival order decides
    _, effects = run(call.abandon(40, "consultation", 20).events)
    assert only(effects).klass is CallClass.ABANDONED


# --- Local channels (``ivr call``) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (answered_after(10, local=True), CallClass.ANSWERED),
        (abandoned_after(70, local=True), CallClass.ABANDONED),
        (timed_out_after(70, local=True), CallClass.TIMED_OUT),
        (ivr_only(local=True), CallClass.IVR_ONLY),
    ],
)
def test_given_local_channel_pair_when_both_halves_hang_up_then_classified(events, expected):
    _, effects = run(events)
    assert only(effects).klass is expected


def test_given_local_pair_when_only_caller_half_hung_up_then_call_still_open():
    events = abandoned_after(70, local=True)
    first_hangup = next(
        i for i, e in enumerate(events) if e["Event"] == "Hangup" and e["Uniqueid"] == "c1"
    )
    state, effects = run(events[: first_hangup + 1])
    assert not classified(effects)
    assert "c1" in state.open_linkedids()


# --- several calls interleaved -------------------------------------------------------------------
def test_given_interleaved_calls_when_replayed_in_time_order_then_each_counted_once():
    streams = [
        answered_after(10, linkedid="a", start=0),
        answered_after(70, linkedid="b", start=1, local=True),
        abandoned_after(30, linkedid="c", start=2),
        timed_out_after(300, linkedid="d", start=3),
        overflow_answered(300, 10, linkedid="e", start=4),
        ivr_only(linkedid="f", start=5),
        answered_after(14, queue="emergency", linkedid="g", start=6),
    ]
    merged = sorted((e for s in streams for e in s), key=seconds)
    state, effects = run(merged)
    assert {c.linkedid: c.klass for c in classified(effects)} == {
        "a": CallClass.ANSWERED,
        "b": CallClass.ANSWERED_LATE,
        "c": CallClass.ABANDONED,
        "d": CallClass.TIMED_OUT,
        "e": CallClass.ANSWERED_LATE,
        "f": CallClass.IVR_ONLY,
        "g": CallClass.ANSWERED,
    }
    assert len(classified(effects)) == 7
    assert not state.calls
    assert state.anomalies == {}


# --- out-of-order arrival ------------------------------------------------------------------------
def test_given_caller_hangup_delivered_before_agentconnect_of_same_instant_then_answered():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    agent = call.ring(6, "repair")
    call.answer(20, "repair", agent, 15)
    connect = call.events.pop()  # deliver the trunk's Hangup first, the agent still up
    call.hang_up(20, "c1")
    call.events.append(connect)
    call.complete(20, "repair").hang_up_all(20.5)
    state, effects = run(call.events)
    assert only(effects).klass is CallClass.ANSWERED
    assert only(effects).wait_s == 15.0


def test_given_queuecallerleave_delivered_after_the_last_hangup_then_abandoned_and_late_event():
    events = abandoned_after(1)  # Abandon, Leave, Hangup on the one trunk channel
    leave = next(e for e in events if e["Event"] == "QueueCallerLeave")
    events.remove(leave)
    events.append(leave)
    state, effects = run(events)
    assert only(effects).klass is CallClass.ABANDONED
    assert anomalies(effects) == [AnomalyKind.LATE_EVENT]


def test_given_agentconnect_before_queuecallerleave_then_answered_and_waiting_ended_once():
    events = answered_after(20)
    i = next(i for i, e in enumerate(events) if e["Event"] == "QueueCallerLeave")
    events[i], events[i + 1] = events[i + 1], events[i]
    _, effects = run(events)
    assert only(effects).klass is CallClass.ANSWERED
    assert sum(isinstance(fx, WaitingEnded) for fx in effects) == 1


def test_given_overflow_join_delivered_before_the_first_join_then_wait_from_earliest_join():
    call = Call("c1").arrive(0, "repair")
    call.join(5, "repair").queue_gives_up(35, "repair", 30).join(35.01, "consultation")
    first_join = call.events.pop(3)
    assert first_join["Queue"] == "repair" and first_join["Event"] == "QueueCallerJoin"
    call.events.append(first_join)  # arrives after the overflow join, and after its own exit
    agent = call.ring(36, "consultation")
    call.answer(45, "consultation", agent, 10).complete(60, "consultation").hang_up_all(60)
    state, effects = run(call.events)
    result = only(effects)
    assert (result.queue, result.wait_s, result.klass) == ("repair", 40.0, CallClass.ANSWERED)


def test_given_leave_delivered_before_its_join_then_caller_not_left_waiting():
    call = Call("c1").arrive(0, "repair").join(5, "repair").queue_gives_up(20, "repair", 15)
    join = next(e for e in call.events if e["Event"] == "QueueCallerJoin")
    call.events.remove(join)
    call.events.append(join)
    state, effects = run(call.events)
    assert not [fx for fx in effects if isinstance(fx, WaitingStarted)]
    assert snapshot(state, at(30)).total.waiting_now == 0
    _, effects = run(call.hang_up_all(25).events[-1:], state)
    assert only(effects).klass is CallClass.TIMED_OUT


# --- idempotence ---------------------------------------------------------------------------------
def test_given_every_event_delivered_twice_then_classified_once_and_duplicates_counted():
    events = answered_after(20)
    doubled = [e for event in events for e in (event, dict(event))]
    state, effects = run(doubled)
    assert only(effects).klass is CallClass.ANSWERED
    kinds = anomalies(effects)
    assert kinds.count(AnomalyKind.DUPLICATE) == len(events) - 1
    assert kinds.count(AnomalyKind.LATE_EVENT) == 1  # the repeated last Hangup


def test_given_same_event_twice_when_applied_then_second_changes_nothing():
    events = answered_after(20)
    state, _ = run(events[:6])
    before = without_anomalies(state)
    _, effects = apply(state, dict(events[5]), at(99))
    assert anomalies(effects) == [AnomalyKind.DUPLICATE] and len(effects) == 1
    assert without_anomalies(state) == before
    assert state.anomalies == {AnomalyKind.DUPLICATE: 1}


def test_given_adapter_fields_differ_then_still_a_duplicate():
    events = answered_after(20)
    state, _ = run(events[:3])
    copy_ = {**events[2], "_received_at": "1763866999.000000"}
    assert anomalies(apply(state, copy_, at(99))[1]) == [AnomalyKind.DUPLICATE]


def test_given_explicit_event_id_then_duplicates_recognised_by_it_alone():
    events = [{**e, "_event_id": f"1763866512123-{i}"} for i, e in enumerate(answered_after(20))]
    state, _ = run(events[:4])
    again = {**events[3], "Timestamp": stamp(4)}  # a different copy of the same event
    assert anomalies(apply(state, again, at(99))[1]) == [AnomalyKind.DUPLICATE]


def test_given_whole_stream_replayed_twice_then_nothing_changes():
    events = answered_after(20) + abandoned_after(30, linkedid="c2", start=1)
    events.sort(key=seconds)
    state, first = run(events)
    counted = without_anomalies(state)
    _, second = run(events, state)
    assert not classified(second)
    assert all(isinstance(fx, AnomalySeen) for fx in second)
    assert without_anomalies(state) == counted
    assert len(classified(first)) == 2


# --- late events ---------------------------------------------------------------------------------
def test_given_closed_call_when_more_events_arrive_then_late_event_and_no_change():
    events = timed_out_after(30)
    state, _ = run(events)
    before = without_anomalies(state)
    late = Call("c1").join(40, "consultation").events
    _, effects = run(late, state)
    assert anomalies(effects) == [AnomalyKind.LATE_EVENT]
    assert without_anomalies(state) == before
    assert snapshot(state, at(41)).total.waiting_now == 0


def test_given_many_closed_calls_then_memory_of_closed_calls_is_bounded():
    config = MetricsConfig(max_closed=3)
    state = MetricsState(config)
    for n in range(5):
        run(ivr_only(linkedid=f"c{n}", start=n * 20), state)
    assert list(state.closed) == ["c2", "c3", "c4"]


# --- clock skew ----------------------------------------------------------------------------------
def test_given_asterisk_clock_30s_ahead_then_one_anomaly_and_waits_unchanged():
    state, effects = run(
        answered_after(20) + answered_after(80, linkedid="c2", start=100), skew=-30
    )
    assert [c.klass for c in classified(effects)] == [CallClass.ANSWERED, CallClass.ANSWERED_LATE]
    assert anomalies(effects) == [AnomalyKind.CLOCK_SKEW]
    assert classified(effects)[0].closed_at == pytest.approx(at(55) - 30 + DELIVERY_S)


def test_given_asterisk_clock_ahead_when_live_view_then_wait_on_the_app_clock():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    state, _ = run(call.events, skew=-30)  # app clock = Asterisk clock - 30 s
    live = snapshot(state, at(65) - 30)
    assert live.total.waiting_now == 1
    assert live.total.longest_wait_s == pytest.approx(60 - DELIVERY_S, abs=1e-6)


def test_given_agentconnect_stamped_before_the_join_then_wait_clamped_to_zero_and_anomaly():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    agent = call.ring(5, "repair")
    call.answer(4.5, "repair", agent, 0)  # Asterisk's clock stepped back 0.5 s
    _, effects = run(call.complete(30, "repair").hang_up_all(30).events)
    result = only(effects)
    assert (result.klass, result.wait_s) == (CallClass.ANSWERED, 0.0)
    assert anomalies(effects) == [AnomalyKind.CLOCK_SKEW]


def test_given_clock_offset_jumps_mid_stream_then_clock_skew_counted():
    events = answered_after(20)
    state, effects = run(events[:5])
    for event in events[5:]:
        effects += apply(state, event, seconds(event) + 10)[1]
    assert anomalies(effects) == [AnomalyKind.CLOCK_SKEW]
    assert only(effects).klass is CallClass.ANSWERED


def test_given_events_without_timestamp_then_placed_at_now_minus_measured_offset():
    events = answered_after(20)
    state, _ = run(events[:3])  # offset measured: app = Asterisk + DELIVERY_S
    rest = [{k: v for k, v in e.items() if k != "Timestamp"} for e in events[3:]]
    effects: list[Effect] = []
    for event, original in zip(rest, events[3:], strict=True):
        effects += apply(state, event, seconds(original) + DELIVERY_S)[1]
    assert only(effects).wait_s == pytest.approx(20.0, abs=1e-6)
    assert anomalies(effects) == []


def test_given_waiting_since_is_in_the_future_when_live_view_then_wait_is_zero():
    state, _ = run(Call("c1").arrive(0, "repair").join(5, "repair").events)
    live = snapshot(state, at(0))
    assert live.total.longest_wait_s == 0.0
    assert live.total.waiting[0].waited_s == 0.0


# --- garbled and unknown input -------------------------------------------------------------------
def _one_call_state() -> MetricsState:
    return run(Call("c1").arrive(0, "repair").join(5, "repair").events)[0]


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "QueueCallerJoin", "Uniqueid": "c1", "Queue": "repair"},
        {"Event": "QueueCallerJoin", "Linkedid": "c1", "Queue": "repair"},
        {"Event": "AgentConnect", "Linkedid": "c1", "Uniqueid": "c1"},
        {"Event": "Hangup", "Linkedid": "", "Uniqueid": "c1"},
        {"Event": "VarSet", "Linkedid": "c1", "Uniqueid": "c1", "Value": "TIMEOUT"},
        {"Event": "QueueMemberStatus", "Queue": "repair", "Status": "1"},
        {"Event": "QueueMemberStatus", "Interface": "PJSIP/a", "Status": "1"},
        {"Event": "QueueMemberStatus", "Queue": "repair", "Interface": "PJSIP/a", "Status": "x"},
        {"Event": "QueueMemberPause", "Queue": "repair", "Interface": "PJSIP/a", "Paused": "yes"},
        {"Event": "Hangup", "Linkedid": ["c1"], "Uniqueid": "c1"},
    ],
)
def test_given_known_event_missing_a_required_field_then_garbled_and_no_change(event):
    state = _one_call_state()
    before = without_anomalies(state)
    _, effects = apply(state, event, at(10))
    assert anomalies(effects) == [AnomalyKind.GARBLED]
    assert len(effects) == 1
    assert without_anomalies(state) == before


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "TestEvent", "Type": "StateChange"},
        {"Event": "Newstate", "Linkedid": "c1", "Uniqueid": "c1"},
        {"Event": "QueueCallerJoin2"},
        {"Response": "Success", "ActionID": "7"},
        {"Event": ["Hangup"], "Linkedid": "c1"},
        {"Event": "VarSet", "Linkedid": "c1", "Uniqueid": "c1", "Variable": "CDR(x)"},
        {},
    ],
)
def test_given_unknown_or_irrelevant_event_then_ignored_without_anomaly(event):
    state = _one_call_state()
    before = copy.deepcopy(state)
    assert apply(state, event, at(10)) == (state, [])
    assert state == before


def test_given_unreadable_timestamp_then_garbled_but_applied_at_estimated_time():
    call = Call("c1").arrive(0, "repair").join(5, "repair").abandon(20, "repair", 15)
    call.events[-1]["Timestamp"] = "12:00:05"
    state, effects = run(call.events)
    assert anomalies(effects) == [AnomalyKind.GARBLED]
    assert only(effects).klass is CallClass.ABANDONED


def test_given_events_for_a_channel_never_created_then_unseen_channel_counted_at_close():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    agent = call.ring(6, "repair")
    del call.events[-2]  # the agent channel's Newchannel was lost
    call.answer(10, "repair", agent, 4).complete(40, "repair")
    _, effects = run(call.hang_up_all(40).events)
    assert only(effects).klass is CallClass.ANSWERED
    assert anomalies(effects) == [AnomalyKind.UNSEEN_CHANNEL]


def test_given_listener_started_mid_call_then_call_unknown_not_classified():
    events = overflow_answered(timeout=30, answer=5)
    late_start = [e for e in events if seconds(e) >= seconds({"Timestamp": stamp(35.01)})]
    _, effects = run(late_start)
    assert not classified(effects)
    (unknown,) = [fx for fx in effects if isinstance(fx, CallUnknown)]
    assert (unknown.linkedid, unknown.queue) == ("c1", "consultation")
    assert AnomalyKind.UNKNOWN_OUTCOME in anomalies(effects)
    assert AnomalyKind.UNSEEN_CHANNEL in anomalies(effects)


def test_given_connect_seen_but_queue_entry_lost_then_call_unknown():
    events = [e for e in answered_after(20) if e["Event"] != "QueueCallerJoin"]
    _, effects = run(events)
    assert not classified(effects)
    assert [type(fx) for fx in effects if isinstance(fx, CallUnknown)] == [CallUnknown]


def test_given_random_corruption_then_never_raises_and_never_counts_a_call_twice():
    rng = random.Random(20241123)
    base = sorted(
        answered_after(20, linkedid="a")
        + abandoned_after(30, linkedid="b", start=1, local=True)
        + overflow_answered(30, 10, linkedid="c", start=2),
        key=seconds,
    )
    for _ in range(200):
        events = [dict(e) for e in base]
        for event in rng.sample(events, 8):
            event.pop(rng.choice(sorted(event)))
        for event in rng.sample(events, 3):
            event[rng.choice(sorted(event))] = rng.choice(["", "x", "-1", "1e99", "\x00"])
        events += rng.sample(events, 5)
        rng.shuffle(events)
        _, effects = run(events)
        done = [fx.linkedid for fx in effects if isinstance(fx, CallClassified | CallUnknown)]
        assert len(done) == len(set(done))


# --- agents --------------------------------------------------------------------------------------
def member(event: str, queue: str = "repair", interface: str = "PJSIP/agent-1001", **fields: str):
    return {"Event": event, "Queue": queue, "Interface": interface, "MemberName": "李四", **fields}


def test_given_member_events_then_agent_goes_free_busy_paused_free_unavailable_removed():
    state = MetricsState(CONFIG)
    steps = [
        member("QueueMemberAdded", Status="1", Paused="0", InCall="0"),
        member("QueueMemberStatus", Status="2", Paused="0", InCall="1"),
        member("QueueMemberStatus", Status="1", Paused="0", InCall="0"),
        member("QueueMemberPause", Status="1", Paused="1", PausedReason="lunch"),
        member("QueueMemberStatus", Status="2", Paused="1", InCall="0"),
        member("QueueMemberPause", Status="1", Paused="0"),
        member("QueueMemberStatus", Status="5", Paused="0"),
        member("QueueMemberStatus", Status="6", Paused="0"),
        member("QueueMemberStatus", Status="0", Paused="0"),
        member("QueueMemberRemoved"),
        member("QueueMemberRemoved"),
    ]
    seen = [apply(state, event, at(i))[1] for i, event in enumerate(steps)]
    states = [fx[0].state if fx and isinstance(fx[0], AgentStateChanged) else fx for fx in seen]
    assert states == [
        AgentState.FREE,
        AgentState.BUSY,
        AgentState.FREE,
        AgentState.PAUSED,
        [],  # in use while paused: still paused
        AgentState.FREE,
        AgentState.UNAVAILABLE,
        AgentState.BUSY,  # ringing
        AgentState.FREE,  # unknown device state: app_queue rings it
        [AgentRemoved("repair", "PJSIP/agent-1001")],
        [],
    ]
    assert state.anomalies == {}


def test_given_agentconnect_and_agentcomplete_then_agent_busy_then_free():
    _, effects = run(answered_after(20))
    changes = [
        (fx.queue, fx.interface, fx.state) for fx in effects if isinstance(fx, AgentStateChanged)
    ]
    assert changes == [
        ("repair", "PJSIP/agent-1001", AgentState.BUSY),
        ("repair", "PJSIP/agent-1001", AgentState.FREE),
    ]


def test_given_agentcomplete_without_caller_fields_then_agent_freed_without_anomaly():
    """Asterisk omits the caller's channel fields when that channel is already gone."""
    events = answered_after(20)
    complete = next(e for e in events if e["Event"] == "AgentComplete")
    for name in ("Linkedid", "Uniqueid", "Channel", "CallerIDNum"):
        complete.pop(name, None)
    state, effects = run(events)
    changes = [fx.state for fx in effects if isinstance(fx, AgentStateChanged)]
    assert changes == [AgentState.BUSY, AgentState.FREE]
    assert state.anomalies == {}
    assert only(effects).klass is CallClass.ANSWERED
    # Without the member either, there is nothing to act on: garbled.
    bare = {"Event": "AgentComplete", "Queue": "repair"}
    assert anomalies(apply(_one_call_state(), bare, at(10))[1]) == [AnomalyKind.GARBLED]


def test_given_duplicate_stamped_member_event_then_duplicate_anomaly():
    state = MetricsState(CONFIG)
    event = member("QueueMemberStatus", Status="2", Paused="0", Timestamp=stamp(1))
    apply(state, event, at(1))
    assert anomalies(apply(state, dict(event), at(1))[1]) == [AnomalyKind.DUPLICATE]


def test_given_agents_in_several_queues_when_live_view_then_counted_per_queue_and_once_in_total():
    state = MetricsState(CONFIG)
    for event in [
        member("QueueMemberAdded", "repair", "PJSIP/a1", Status="1", Paused="0"),
        member("QueueMemberAdded", "billing", "PJSIP/a1", Status="1", Paused="1"),
        member("QueueMemberAdded", "repair", "PJSIP/a2", Status="2", Paused="0", InCall="1"),
        member("QueueMemberAdded", "billing", "PJSIP/a2", Status="2", Paused="0", InCall="0"),
        member("QueueMemberAdded", "billing", "PJSIP/a3", Status="1", Paused="1"),
        member("QueueMemberAdded", "emergency", "PJSIP/a4", Status="5", Paused="0"),
    ]:
        apply(state, event, at(0))
    live = snapshot(state, at(1))
    repair, billing, emergency = (
        live.queues["repair"],
        live.queues["billing"],
        live.queues["emergency"],
    )
    assert (repair.agents_free, repair.agents_busy, repair.agents_paused) == (1, 1, 0)
    assert (billing.agents_free, billing.agents_busy, billing.agents_paused) == (0, 1, 2)
    assert (emergency.agents_unavailable, emergency.agents_free) == (1, 0)
    total = live.total
    assert (total.agents_free, total.agents_busy, total.agents_paused) == (1, 1, 1)
    assert total.agents_unavailable == 1


# --- the live view -------------------------------------------------------------------------------
def test_given_callers_waiting_when_live_view_then_counts_longest_and_red_list():
    streams = [
        Call("r61", caller="13800000061").arrive(0, "repair").join(5, "repair"),
        Call("r30").arrive(0, "repair").join(36, "repair"),
        Call("e16", caller="13800000016").arrive(0, "emergency").join(50, "emergency"),
        Call("e14").arrive(0, "emergency").join(52, "emergency"),
        Call("gone").arrive(0, "repair").join(1, "repair").abandon(20, "repair", 19),
    ]
    state, _ = run(sorted((e for c in streams for e in c.events), key=seconds))
    live = snapshot(state, at(66))
    repair, emergency = live.queues["repair"], live.queues["emergency"]
    assert (repair.waiting_now, emergency.waiting_now, live.total.waiting_now) == (2, 2, 4)
    assert repair.longest_wait_s == pytest.approx(61 - DELIVERY_S, abs=1e-6)
    assert emergency.longest_wait_s == pytest.approx(16 - DELIVERY_S, abs=1e-6)
    red = [(w.linkedid, w.queue, w.caller, w.threshold_s) for w in live.total.over_threshold_now]
    assert red == [
        ("r61", "repair", "13800000061", 60.0),
        ("e16", "emergency", "13800000016", 15.0),
    ]
    assert [w.linkedid for w in repair.over_threshold_now] == ["r61"]
    assert live.queues["emergency-backup"].waiting_now == 0  # configured queues always listed
    assert live.total.threshold_s == 60.0 and emergency.threshold_s == 15.0


def test_given_caller_overflowed_when_live_view_then_listed_in_new_queue_with_first_clock():
    call = Call("c1").arrive(0, "emergency").join(5, "emergency")
    call.queue_gives_up(15, "emergency", 10).join(15.01, "emergency-backup")
    state, _ = run(call.events)
    live = snapshot(state, at(21))
    assert live.queues["emergency"].waiting_now == 0
    (waiting,) = live.queues["emergency-backup"].waiting
    assert (waiting.first_queue, waiting.over_threshold) == ("emergency", True)
    assert waiting.waited_s == pytest.approx(16 - DELIVERY_S, abs=1e-6)


def test_given_caller_answered_when_live_view_then_no_longer_waiting():
    events = answered_after(20)
    connect = next(i for i, e in enumerate(events) if e["Event"] == "AgentConnect")
    state, _ = run(events[: connect + 1])
    assert snapshot(state, at(30)).total.waiting_now == 0
    assert snapshot(state, at(30)).total.agents_busy == 1


def test_given_transfer_back_into_a_queue_after_answer_then_waits_again_from_new_entry():
    call = Call("c1").arrive(0, "repair").join(5, "repair")
    agent = call.ring(6, "repair")
    call.answer(10, "repair", agent, 5).complete(100, "repair").join(100, "billing")
    state, effects = run(call.events)
    started = [fx for fx in effects if isinstance(fx, WaitingStarted)]
    assert started[-1].queue == "billing"
    assert started[-1].since == pytest.approx(at(100) + DELIVERY_S)
    assert snapshot(state, at(110)).total.longest_wait_s == pytest.approx(10 - DELIVERY_S, abs=1e-6)
    _, effects = run(call.hang_up_all(120).events[-2:], state)
    assert only(effects).klass is CallClass.ANSWERED


# --- summary -------------------------------------------------------------------------------------
def _call(linkedid: str, queue: str, klass: CallClass) -> CallClassified:
    return CallClassified(linkedid, queue, klass, 1.0, 60.0, None, 0.0, "")


def test_given_classified_calls_when_summarized_then_counts_per_first_queue_and_total():
    calls = [
        _call("1", "repair", CallClass.ANSWERED),
        _call("2", "repair", CallClass.ANSWERED),
        _call("3", "repair", CallClass.ANSWERED_LATE),
        _call("4", "repair", CallClass.ABANDONED),
        _call("5", "emergency", CallClass.ANSWERED),
        _call("6", "emergency", CallClass.TIMED_OUT),
        _call("7", "", CallClass.IVR_ONLY),
        _call("8", "", CallClass.IVR_ONLY),
    ]
    summary = summarize(calls)
    assert summary.total == Counters(
        answered=3, answered_late=1, abandoned=1, timed_out=1, ivr_only=2
    )
    assert summary.total.offered == 6
    assert summary.total.answer_rate == pytest.approx(0.5)
    assert summary.queues["repair"].answer_rate == pytest.approx(0.5)
    assert summary.queues["emergency"].to_json() == {
        "offered": 2,
        "answered": 1,
        "answered_late": 0,
        "abandoned": 0,
        "timed_out": 1,
        "ivr_only": 0,
        "answer_rate": 0.5,
    }
    assert set(summary.queues) == {"repair", "emergency"}


def test_given_only_ivr_calls_when_summarized_then_answer_rate_none():
    summary = summarize([_call("1", "", CallClass.IVR_ONLY)])
    assert (summary.total.offered, summary.total.answer_rate) == (0, None)
    assert summarize([]).total.to_json()["answer_rate"] is None


def test_given_redis_hash_when_read_as_counters_then_classes_parsed_and_rest_ignored():
    counters = Counters.from_mapping(
        {b"answered": b"9", b"abandoned": b"1", "timed_out": "x", "offered": "99", "junk": "1"}
    )
    assert counters == Counters(answered=9, abandoned=1)
    assert counters.answer_rate == pytest.approx(0.9)


def test_given_summary_and_live_view_when_document_built_then_design_interface_fields():
    events = sorted(
        answered_after(20)
        + answered_after(20, linkedid="e", queue="emergency")
        + ivr_only(linkedid="i")
        + Call("w").arrive(0, "repair").join(1, "repair").events,
        key=seconds,
    )
    state, effects = run(events)
    document = metrics_document(summarize(classified(effects)), snapshot(state, at(70)), CONFIG)
    expected_keys = {
        *("offered", "answered", "answered_late", "abandoned", "timed_out", "ivr_only"),
        *("answer_rate", "threshold_s", "waiting_now", "longest_wait_s", "over_threshold_now"),
    }
    assert expected_keys <= set(document)
    assert (document["offered"], document["answered"], document["ivr_only"]) == (2, 1, 1)
    assert document["answer_rate"] == 0.5
    assert document["waiting_now"] == 1
    assert document["over_threshold_now"] == [
        {"linkedid": "w", "queue": "repair", "waited_s": 68.998, "caller": "13912345678"}
    ]
    assert expected_keys <= set(document["queues"]["emergency"])
    assert document["queues"]["emergency"]["threshold_s"] == 15.0
    assert document["queues"]["emergency"]["answer_rate"] == 0.0
    assert document["queues"]["repair"]["answer_rate"] == 1.0
    assert document["queues"]["emergency-backup"]["answer_rate"] is None


# --- resync --------------------------------------------------------------------------------------
def test_given_calls_gone_after_reconnect_when_close_missing_then_connected_kept_others_unknown():
    talking = Call("talking").arrive(0, "repair").join(5, "repair")
    talking.answer(30, "repair", talking.ring(6, "repair"), 25)
    waiting = Call("waiting").arrive(0, "repair").join(5, "repair")
    live = Call("live").arrive(0, "billing").join(5, "billing")
    state, _ = run(sorted(talking.events + waiting.events + live.events, key=seconds))
    _, effects = close_missing(state, {"live"}, at(100))
    talked = only(effects)
    assert (talked.linkedid, talked.klass, talked.wait_s) == ("talking", CallClass.ANSWERED, 25.0)
    (unknown,) = [fx for fx in effects if isinstance(fx, CallUnknown)]
    assert (unknown.linkedid, unknown.queue) == ("waiting", "repair")
    assert WaitingEnded("waiting") in effects
    assert anomalies(effects) == [AnomalyKind.UNKNOWN_OUTCOME]
    assert state.open_linkedids() == {"live"}
    _, late = run(waiting.hang_up_all(120).events[-1:], state)
    assert anomalies(late) == [AnomalyKind.LATE_EVENT]


def test_given_call_started_after_the_channel_list_when_close_missing_then_left_open():
    state, _ = run(Call("new").arrive(10, "repair").events)
    _, effects = close_missing(state, set(), at(9))
    assert effects == []
    assert state.open_linkedids() == {"new"}


def test_given_every_call_still_live_when_close_missing_then_no_effect_but_gap_marked():
    state, _ = run(Call("a").arrive(0, "repair").join(5, "repair").events)
    assert close_missing(state, {"a", "other"}, at(10)) == (state, [])
    assert state.calls["a"].gap_us is not None  # lived through the outage: may miss events


# --- a real frame sequence -----------------------------------------------------------------------
def _frames(path: Path) -> list[Event]:
    return [m.to_dict() for m in AmiFramer().feed(path.read_bytes()) if m.event]


def test_given_recorded_overflow_call_frames_then_answered_late_under_first_queue():
    state, effects = run(_frames(FIXTURES / "metrics" / "overflow_answered.ami"))
    call = only(effects)
    assert (call.linkedid, call.queue, call.klass) == (
        "1763866800.17",
        "repair",
        CallClass.ANSWERED_LATE,
    )
    assert call.wait_s == pytest.approx(320.02)
    assert call.caller == "13912345678"
    assert state.anomalies == {}
    live = snapshot(state, at(0))
    assert live.queues["repair"].agents_paused == 1
    assert live.queues["consultation"].agents_free == 1


def test_given_recorded_session_without_timestamps_then_abandoned_at_receipt_times():
    state = MetricsState(CONFIG)
    effects: list[Effect] = []
    for n, event in enumerate(_frames(FIXTURES / "ami" / "session_inbound_call.ami")):
        effects += apply(state, event, 1732329601.0 + n)[1]
    call = only(effects)
    assert (call.queue, call.klass, call.wait_s) == ("gas-repair", CallClass.ABANDONED, 1.0)


# --- property: arrival order within an instant, and replays --------------------------------------
def causal_shuffle(events: Sequence[Event], rng: random.Random) -> list[Event]:
    """Order by timestamp; within one instant, mix channels but keep each channel's order."""
    ordered = sorted(events, key=seconds)
    result: list[Event] = []
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j]["Timestamp"] == ordered[i]["Timestamp"]:
            j += 1
        lanes: dict[tuple[str, str], list[Event]] = {}
        for event in ordered[i:j]:
            lanes.setdefault((event["Linkedid"], event["Uniqueid"]), []).append(event)
        while lanes:
            lane = rng.choice(sorted(lanes))
            result.append(lanes[lane].pop(0))
            if not lanes[lane]:
                del lanes[lane]
        i = j
    return result


def random_calls(rng: random.Random, count: int) -> tuple[list[Event], dict[str, CallClass]]:
    events: list[Event] = []
    expected: dict[str, CallClass] = {}
    for n in range(count):
        linkedid, start, local = f"p{n}", float(rng.randrange(0, 20)), rng.random() < 0.4
        queue = rng.choice(["repair", "emergency", "billing"])
        threshold = CONFIG.threshold_s(queue)
        wait = float(rng.choice([1, 10, 15, 16, 30, 60, 61, 90]))
        kind = rng.randrange(5)
        if kind == 0:
            events += answered_after(wait, queue, linkedid, start, local)
            expected[linkedid] = (
                CallClass.ANSWERED if wait <= threshold else CallClass.ANSWERED_LATE
            )
        elif kind == 1:
            events += abandoned_after(wait, queue, linkedid, start, local)
            expected[linkedid] = CallClass.ABANDONED
        elif kind == 2:
            events += timed_out_after(wait, queue, linkedid, start, local=local)
            expected[linkedid] = CallClass.TIMED_OUT
        elif kind == 3:
            events += overflow_answered(wait, 5, queue, "consultation", linkedid, start)
            within = wait + 5.01 <= threshold
            expected[linkedid] = CallClass.ANSWERED if within else CallClass.ANSWERED_LATE
        else:
            events += ivr_only(linkedid, start, local)
            expected[linkedid] = CallClass.IVR_ONLY
    return events, expected


@pytest.mark.parametrize("seed", range(25))
def test_property_given_same_instant_reordered_and_replayed_then_same_classes_once(seed):
    rng = random.Random(seed)
    events, expected = random_calls(rng, 12)
    reference = {c.linkedid: c for c in classified(run(sorted(events, key=seconds))[1])}
    assert {lid: c.klass for lid, c in reference.items()} == expected
    shuffled = causal_shuffle(events, rng)
    state, effects = run(shuffled)
    got = {c.linkedid: c for c in classified(effects)}
    assert len(classified(effects)) == len(expected)
    assert got == reference
    assert state.anomalies == {} and not state.calls
    counted = without_anomalies(state)
    _, again = run(shuffled, state)
    assert all(isinstance(fx, AnomalySeen) for fx in again)
    assert without_anomalies(state) == counted
