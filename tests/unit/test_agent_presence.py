"""Presence rules and the queue-membership plan (ivr/core/agent_presence.py), pure."""

from __future__ import annotations

import dataclasses

import pytest

from ivr.core.agent_presence import (
    FEATURE_CODES,
    PAUSE_REASONS,
    Add,
    Member,
    Pause,
    Penalty,
    Presence,
    PresenceRefused,
    Remove,
    Seat,
    describe,
    members,
    plan,
    reason_of_digit,
    transition,
    wanted_members,
)

IN = Presence(logged_in=True)


def member(queue: str = "repair", **fields: object) -> Member:
    base = Member("repair", "PJSIP/1001", "1001 张三", 0, False, "")
    return dataclasses.replace(base, queue=queue, **fields)


def test_transitions_from_every_state():
    assert transition(Presence(), "logout") == Presence()
    assert transition(IN, "login") == IN  # twice: unchanged
    paused = transition(IN, "pause", "后处理")
    assert transition(paused, "pause", "小休").reason == "小休"  # another reason
    assert transition(paused, "logout") == Presence()  # a logout ends the pause
    assert transition(paused, "resume") == IN
    assert transition(IN, "resume") == IN
    with pytest.raises(PresenceRefused, match="log in instead"):
        transition(Presence(), "resume")
    with pytest.raises(PresenceRefused, match="unknown action"):
        transition(IN, "sleep")


def test_feature_codes_cover_every_action_and_reason():
    assert {action for action, _ in FEATURE_CODES.values()} == {
        "login", "logout", "pause", "resume",
    }  # fmt: skip
    assert [FEATURE_CODES[f"*23{n}"][1] for n in range(1, 5)] == list(PAUSE_REASONS)
    for bad in ("0", "5", "x", ""):
        with pytest.raises(PresenceRefused):
            reason_of_digit(bad)
    assert describe(Presence()) == "未登录 logged out" and describe(IN) == "已登录 logged in"


def test_members_take_the_lowest_penalty_when_two_desks_share_a_queue():
    seat = Seat("1001", "张三", (("consultation", 3), ("consultation", 1), ("repair", 2)), IN)
    found = {m.queue: m.penalty for m in members(seat)}
    assert found == {"consultation": 1, "repair": 2}
    assert members(Seat("1001", "张三", (("repair", 0),), Presence())) == []
    assert wanted_members([seat, Seat("1002", "李四", (), IN)]) == members(seat)


def test_the_plan_leaves_what_agrees_and_non_agents_alone():
    sim = member(interface="Local/agent@sim-agents/n", name="")
    assert plan([member()], [member(), sim]) == []
    assert plan([], [sim]) == []


def test_the_plan_renames_by_removing_and_adding_and_unpauses():
    renamed = member(name="1001 张三丰")
    assert plan([renamed], [member()]) == [Remove("repair", "PJSIP/1001"), Add(renamed)]
    paused = member(paused=True, reason="小休")
    assert plan([member()], [paused]) == [Pause("repair", "PJSIP/1001", False, "")]
    # a reason Asterisk keeps on an unpaused member does not count
    assert plan([member()], [member(reason="小休")]) == []
    assert plan([member(penalty=3)], [member()]) == [Penalty("repair", "PJSIP/1001", 3)]


def test_the_plan_removes_agents_no_longer_wanted_first():
    other = member(interface="PJSIP/1002", name="1002 李四")
    actions = plan([member("billing")], [member(), other])
    assert actions == [
        Remove("repair", "PJSIP/1001"), Remove("repair", "PJSIP/1002"), Add(member("billing")),
    ]  # fmt: skip


def test_the_device_chosen_at_log_in_is_the_member_interface_and_a_switch_moves_it():
    browser = transition(Presence(), "login", device="browser")
    seat = Seat("1001", "张三", (("repair", 0),), browser)
    assert [m.interface for m in members(seat)] == ["PJSIP/1001-webrtc"]
    paused = transition(browser, "pause", "小休")
    assert (paused.device, transition(paused, "resume").device) == ("browser", "browser")
    on_desk = transition(paused, "login", device="desk")  # switched: the pause is kept
    assert (on_desk.device, on_desk.paused, on_desk.reason) == ("desk", True, "小休")
    assert transition(browser, "logout") == Presence()
    with pytest.raises(PresenceRefused, match="device 'fax'"):
        transition(Presence(), "login", device="fax")
    webrtc = member(interface="PJSIP/1001-webrtc")
    assert plan([webrtc], [member()]) == [Remove("repair", "PJSIP/1001"), Add(webrtc)]
    assert plan([], [webrtc]) == [Remove("repair", "PJSIP/1001-webrtc")]
