"""The agent-state reducer (ivr/core/agent_states.py) on event sequences: the states, one
per agent across queues, pause reasons, wrap-up, today's counts, resync, and events missing,
repeated or out of order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from ivr.core.agent_states import (
    Activity,
    AgentsConfig,
    AgentStates,
    AgentView,
    agent_document,
    apply,
    current,
    reconcile,
)
from ivr.logging_setup import mask_number

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1764554400.0  # 2025-12-01 10:00 in Shanghai
CALLER = "13912345678"
REPAIR = {"Queue": "repair", "Interface": "PJSIP/1001", "MemberName": "1001 张三"}
BILLING = {"Queue": "billing", "Interface": "PJSIP/1001", "MemberName": "1001 张三"}


def added(member: Mapping[str, str], **fields: str) -> dict[str, str]:
    return {"Event": "QueueMemberAdded", "Status": "1", "Paused": "0", **member, **fields}


def agent_event(
    name: str, member: Mapping[str, str], uid: str = "1.7", **fields: str
) -> dict[str, str]:
    return {"Event": name, "Uniqueid": uid, "CallerIDNum": CALLER, **member, **fields}


def run(
    events: Iterable[tuple[float, Mapping[str, str]]], state: AgentStates | None = None
) -> AgentStates:
    state = state or AgentStates(AgentsConfig(TZ))
    for at, event in events:
        apply(state, event, T0 + at)
    return state


def view(state: AgentStates, work_number: str = "1001") -> AgentView:
    found = state.agents[work_number].view
    assert found is not None
    return found


def test_given_a_call_then_idle_ringing_talking_wrapup_idle_with_since_and_caller():
    state = run([(0, added(REPAIR, Wrapuptime="20"))])
    assert (view(state).activity, view(state).name, view(state).since) == (
        Activity.IDLE,
        "张三",
        T0,
    )
    run([(5, agent_event("AgentCalled", REPAIR))], state)
    assert (view(state).activity, view(state).caller, view(state).since) == (
        Activity.RINGING,
        CALLER,
        T0 + 5,
    )
    run([(8, agent_event("AgentConnect", REPAIR, HoldTime="8", RingTime="3"))], state)
    assert (view(state).activity, view(state).caller, view(state).since) == (
        Activity.TALKING,
        CALLER,
        T0 + 8,
    )
    run([(68, agent_event("AgentComplete", REPAIR, HoldTime="8", TalkTime="60"))], state)
    done = view(state)
    assert (done.activity, done.caller, done.wrapup_until) == (Activity.WRAPUP, "", T0 + 88)
    assert (done.calls, done.handle_total_s) == (1, 80.0)
    assert current(done, T0 + 87).activity is Activity.WRAPUP
    assert (current(done, T0 + 90).activity, current(done, T0 + 90).since) == (
        Activity.IDLE,
        T0 + 88,
    )
    # the next event after the wrap-up ran out: idle since the wrap-up's end, not since now
    run([(100, {"Event": "QueueMemberStatus", **REPAIR, "Status": "1", "InCall": "0"})], state)
    assert (view(state).activity, view(state).since) == (Activity.IDLE, T0 + 88)


def test_given_an_agent_in_two_queues_then_one_state_ringing_wins_over_idle():
    state = run(
        [(0, added(REPAIR)), (0.1, added(BILLING)), (3, agent_event("AgentCalled", BILLING))]
    )
    assert list(state.agents) == ["1001"]
    assert view(state).activity is Activity.RINGING
    assert view(state).queues == ("billing", "repair")
    run([(10, agent_event("AgentRingNoAnswer", BILLING, RingTime="7"))], state)
    assert view(state).activity is Activity.IDLE
    # talking in one queue, the other queue's membership idle: talking
    run([(12, agent_event("AgentConnect", REPAIR, uid="2.1"))], state)
    assert view(state).activity is Activity.TALKING


def test_given_pause_reasons_then_paused_with_reason_only_when_paused_everywhere():
    state = run([(0, added(REPAIR)), (0, added(BILLING))])
    pause = {"Event": "QueueMemberPause", "Paused": "1", "Status": "1"}
    run([(5, {**pause, **REPAIR, "PausedReason": "培训"})], state)
    assert view(state).activity is Activity.IDLE  # still takes billing calls
    run([(6, {**pause, **BILLING, "PausedReason": "培训"})], state)
    assert (view(state).activity, view(state).reason, view(state).since) == (
        Activity.PAUSED,
        "培训",
        T0 + 6,
    )
    run(
        [
            (20, {**pause, **REPAIR, "PausedReason": "会议"}),
            (20, {**pause, **BILLING, "PausedReason": "会议"}),
        ],
        state,
    )
    assert (view(state).activity, view(state).reason, view(state).since) == (
        Activity.PAUSED,
        "会议",
        T0 + 20,
    )
    run([(30, {**pause, **BILLING, "PausedReason": "后处理"})], state)
    assert (view(state).activity, view(state).reason) == (Activity.WRAPUP, "后处理")
    unpause = {"Event": "QueueMemberPause", "Paused": "0", "PausedReason": ""}
    run([(40, {**unpause, **REPAIR})], state)
    assert (view(state).activity, view(state).reason) == (Activity.IDLE, "")


def test_given_a_ringall_when_another_agent_answers_or_the_caller_leaves_then_ringing_stops():
    other = {"Queue": "repair", "Interface": "PJSIP/1002", "MemberName": "1002 李四"}
    state = run(
        [
            (0, added(REPAIR)),
            (0, added(other)),
            (1, agent_event("AgentCalled", REPAIR)),
            (1, agent_event("AgentCalled", other)),
            (4, agent_event("AgentConnect", other)),
        ]
    )
    assert view(state, "1001").activity is Activity.IDLE
    assert view(state, "1002").activity is Activity.TALKING
    run([(10, agent_event("AgentCalled", REPAIR, uid="3.3"))], state)
    assert view(state, "1001").activity is Activity.RINGING
    run([(12, {"Event": "QueueCallerAbandon", "Queue": "repair", "Uniqueid": "3.3"})], state)
    assert view(state, "1001").activity is Activity.IDLE
    run([(13, agent_event("AgentCalled", REPAIR, uid="4.4"))], state)
    run([(14, {"Event": "Hangup", "Uniqueid": "4.4", "Linkedid": "4.4"})], state)
    assert view(state, "1001").activity is Activity.IDLE


def test_given_missing_and_out_of_order_events_then_the_state_still_holds():
    # no QueueMemberAdded, no AgentCalled, no AgentConnect: the complete still counts and frees
    state = run([(0, agent_event("AgentComplete", REPAIR, TalkTime="42"))])
    assert (view(state).activity, view(state).calls, view(state).handle_total_s) == (
        Activity.IDLE,
        1,
        42.0,
    )
    # an AgentCalled arriving after that caller's AgentComplete is stale
    run([(1, agent_event("AgentCalled", REPAIR))], state)
    assert view(state).activity is Activity.IDLE
    # connect without the ring before it
    run([(5, agent_event("AgentConnect", REPAIR, uid="9.9"))], state)
    assert view(state).activity is Activity.TALKING
    # the same complete twice counts once
    complete = agent_event("AgentComplete", REPAIR, uid="9.9", TalkTime="10", Timestamp="1.5")
    run([(15, complete), (15, dict(complete))], state)
    assert view(state).calls == 2
    # events without Queue or Interface are ignored and counted
    run(
        [(16, {"Event": "AgentCalled", "Uniqueid": "1"}), (16, {"Event": "QueueMemberStatus"})],
        state,
    )
    assert state.ignored == 2


def test_given_members_that_are_not_agents_then_they_are_ignored():
    sim = {"Queue": "repair", "Interface": "Local/agent@sim-agents/n"}
    state = run(
        [
            (0, added({**sim, "MemberName": "Local/agent@sim-agents/n"})),
            (1, agent_event("AgentCalled", {**sim, "MemberName": "Local/agent@sim-agents/n"})),
        ]
    )
    assert state.agents == {}
    # the convention's simulated agent: a Local channel, the 工号 in MemberName
    local = {"Queue": "repair", "Interface": "Local/1001@sim-agents/n", "MemberName": "1001 测试"}
    run([(2, added(local, StateInterface="PJSIP/1001"))], state)
    assert (view(state).work_number, view(state).name) == ("1001", "测试")


def test_given_the_phone_unregistered_or_logged_out_then_offline():
    state = run([(0, added(REPAIR))])
    run(
        [(1, {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "UNAVAILABLE"})], state
    )
    assert view(state).activity is Activity.OFFLINE
    run([(2, {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"})], state)
    assert view(state).activity is Activity.IDLE
    run(
        [(3, {"Event": "ContactStatus", "EndpointName": "1001", "ContactStatus": "Removed"})], state
    )
    assert view(state).activity is Activity.OFFLINE
    run(
        [(4, {"Event": "ContactStatus", "EndpointName": "1001", "ContactStatus": "Reachable"})],
        state,
    )
    assert view(state).activity is Activity.IDLE
    # a call on the phone outside the queues: talking, no caller known
    run([(5, {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "INUSE"})], state)
    assert (view(state).activity, view(state).caller) == (Activity.TALKING, "")
    run([(6, {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"})], state)
    run([(7, {"Event": "QueueMemberRemoved", **REPAIR})], state)
    assert (view(state).activity, view(state).queues, view(state).since) == (
        Activity.OFFLINE,
        (),
        T0 + 7,
    )


def test_given_a_resync_then_queue_status_wins_and_missing_members_are_removed():
    state = run(
        [
            (0, added(REPAIR)),
            (0, added(BILLING)),
            (1, agent_event("AgentCalled", REPAIR)),
            (2, agent_event("AgentConnect", REPAIR)),
        ]
    )
    other = {"Queue": "repair", "Interface": "PJSIP/1002", "MemberName": "1002 李四"}
    run([(3, added(other))], state)
    listed = [
        {
            "Event": "QueueMember",
            "Queue": "repair",
            "Name": "1001 张三",
            "Location": "PJSIP/1001",
            "StateInterface": "PJSIP/1001",
            "Status": "1",
            "Paused": "1",
            "PausedReason": "小休",
            "InCall": "0",
            "Wrapuptime": "0",
        }
    ]
    _, changed = reconcile(state, listed, T0 + 50)
    assert {v.work_number for v in changed} == {"1001", "1002"}
    assert (view(state).activity, view(state).reason, view(state).queues) == (
        Activity.PAUSED,
        "小休",
        ("repair",),
    )
    assert view(state, "1002").activity is Activity.OFFLINE  # its membership is gone
    # in a call per QueueStatus, caller unknown
    _, _ = reconcile(state, [{**listed[0], "Paused": "0", "InCall": "1"}], T0 + 60)
    assert (view(state).activity, view(state).caller) == (Activity.TALKING, "")


def test_given_midnight_then_todays_counts_start_again_and_the_document_says_today():
    before_midnight = 1764518390.0  # 2025-11-30 23:59:50 in Shanghai
    state = AgentStates(AgentsConfig(TZ))
    apply(state, added(REPAIR), before_midnight - 100)
    apply(state, agent_event("AgentComplete", REPAIR, uid="1", TalkTime="30"), before_midnight)
    assert view(state).calls == 1
    doc = agent_document(view(state), before_midnight + 20, TZ, mask_number)
    assert (doc["calls_today"], doc["mean_handle_s"]) == (0, None)  # a new day, no call yet
    apply(state, agent_event("AgentComplete", REPAIR, uid="2", TalkTime="40"), before_midnight + 30)
    apply(state, agent_event("AgentComplete", REPAIR, uid="3", TalkTime="50"), before_midnight + 90)
    doc = agent_document(view(state), before_midnight + 100, TZ, mask_number)
    assert (doc["calls_today"], doc["mean_handle_s"]) == (2, 45.0)


def test_given_a_talking_agent_then_the_document_masks_the_caller():
    state = run([(0, added(REPAIR)), (1, agent_event("AgentConnect", REPAIR))])
    doc = agent_document(view(state), T0 + 2, TZ, mask_number)
    assert doc["caller_masked"] == "139******78"
    assert CALLER not in str(doc)
    assert (doc["work_number"], doc["name"], doc["state"], doc["label"]) == (
        "1001",
        "张三",
        "talking",
        "通话",
    )
    assert AgentView.from_json(view(state).to_json()) == view(state)
    assert AgentView.from_json({"state": "dancing"}) is None


def test_given_the_sequence_asterisk_22_sends_for_a_local_member_then_states_follow():
    """As recorded from this repo's Asterisk 22 (a Local/1001@sim-agents/n member in two
    queues, Wrapuptime 3 in consultation): the device is in use before AgentConnect, and
    still in use at AgentComplete until the QueueMemberStatus right after it."""
    local = {"Interface": "Local/1001@sim-agents/n", "MemberName": "1001 测试"}
    consult, billing = {"Queue": "consultation", **local}, {"Queue": "billing", **local}
    uid = "ivrcall-7ff0-2"

    def status(member: Mapping[str, str], value: str) -> dict[str, str]:
        return {"Event": "QueueMemberStatus", **member, "Status": value, "InCall": "0"}

    state = run(
        [
            (0.0, added(consult, StateInterface="Local/1001@sim-agents/n", Wrapuptime="3")),
            (0.0, added(billing, StateInterface="Local/1001@sim-agents/n", Wrapuptime="0")),
            (11.68, agent_event("AgentCalled", consult, uid=uid)),
        ]
    )
    assert (view(state).activity, view(state).caller) == (Activity.RINGING, CALLER)
    run(
        [
            (12.681, status(billing, "2")),
            (12.682, {"Event": "QueueCallerLeave", "Queue": "consultation", "Uniqueid": uid}),
            (12.683, status(consult, "2")),
            (12.685, agent_event("AgentConnect", consult, uid=uid, HoldTime="1", RingTime="1")),
        ],
        state,
    )
    assert (view(state).activity, view(state).caller, view(state).since) == (
        Activity.TALKING,
        CALLER,
        T0 + 12.681,
    )
    run(
        [
            (15.10, agent_event("AgentComplete", consult, uid=uid, TalkTime="2", Reason="agent")),
            (15.101, status(billing, "1")),
            (15.102, status(consult, "1")),
        ],
        state,
    )
    assert (view(state).activity, view(state).calls, view(state).handle_total_s) == (
        Activity.WRAPUP,
        1,
        5.0,
    )
    assert current(view(state), T0 + 18.2).activity is Activity.IDLE


def test_given_a_resync_while_the_phone_rings_then_still_ringing_and_phone_events_repeatable():
    state = run([(0, added(REPAIR)), (1, agent_event("AgentCalled", REPAIR))])
    listed = {"Queue": "repair", "Name": "1001 张三", "Location": "PJSIP/1001", "Paused": "0",
              "InCall": "0"}  # fmt: skip
    reconcile(state, [listed | {"Status": "6"}], T0 + 2)  # ringing: InCall is 0 until answered
    assert (view(state).activity, view(state).caller) == (Activity.RINGING, CALLER)
    reconcile(state, [listed | {"Status": "1"}], T0 + 3)  # the ring ended while we were away
    assert view(state).activity is Activity.IDLE
    # the same phone state twice, apart: each time it is the phone's state now
    unavailable = {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "UNAVAILABLE"}
    back = {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"}
    run([(4, unavailable), (5, back), (6, dict(unavailable))], state)
    assert (view(state).activity, view(state).since) == (Activity.OFFLINE, T0 + 6)


def test_given_an_announcement_before_agent_connect_then_talking_with_the_caller_meanwhile():
    # The 工号 announcement plays on the caller's channel after the agent answered and before
    # AgentConnect: the phone is in use and the caller has left the queue in between.
    state = run(
        [
            (0, added(REPAIR)),
            (1, agent_event("AgentCalled", REPAIR)),
            (3, {"Event": "QueueMemberStatus", **REPAIR, "Status": "2", "InCall": "1"}),
            (3, {"Event": "QueueCallerLeave", "Queue": "repair", "Uniqueid": "1.7"}),
        ]
    )
    assert (view(state).activity, view(state).caller) == (Activity.TALKING, CALLER)
    run([(6, agent_event("AgentConnect", REPAIR))], state)
    assert (view(state).activity, view(state).caller, view(state).since) == (
        Activity.TALKING,
        CALLER,
        T0 + 3,
    )


def test_given_the_caller_leaving_before_the_phone_is_in_use_then_talking_with_the_caller():
    # the other order of the same moment: QueueCallerLeave, then the phone in use
    state = run(
        [
            (0, added(REPAIR)),
            (1, agent_event("AgentCalled", REPAIR)),
            (3, {"Event": "QueueCallerLeave", "Queue": "repair", "Uniqueid": "1.7"}),
            (3, {"Event": "QueueMemberStatus", **REPAIR, "Status": "2", "InCall": "1"}),
        ]
    )
    assert (view(state).activity, view(state).caller) == (Activity.TALKING, CALLER)
