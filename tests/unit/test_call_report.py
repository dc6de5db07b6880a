"""summarize(): one call's AMI events (by Linkedid) into a CallReport."""

from __future__ import annotations

import pytest

from ivr.core.call_report import agi_route, summarize

LINKEDID = "ivrcall-34d3dc8ee5934eee"
CALLER = "Local/95158@from-pstn-00000003;1"
HOTLINE = "Local/95158@from-pstn-00000003;2"
AGENT = "Local/agent@sim-agents-00000004;1"


def ev(event: str, linkedid: str = LINKEDID, **fields: str) -> dict[str, str]:
    return {"Event": event, "Linkedid": linkedid, **fields}


def varset(name: str, value: str, channel: str = HOTLINE) -> dict[str, str]:
    return ev("VarSet", Channel=channel, Variable=name, Value=value)


def call_events() -> list[dict[str, str]]:
    """An inbound call as Asterisk 22 reports it: greeted, queued, answered by an agent."""
    return [
        ev("Newchannel", Channel=CALLER, Context="caller-sim"),
        ev("Newchannel", Channel=HOTLINE, Context="from-pstn"),
        ev("Newexten", Channel=CALLER, Context="caller-sim", Application="NoOp", AppData=""),
        ev("Newexten", Channel=HOTLINE, Context="from-pstn", Application="NoOp", AppData="x"),
        varset("__IVR_DID", "95158"),
        ev(
            "Newexten",
            Channel=HOTLINE,
            Context="from-pstn",
            Application="AGI",
            AppData="agi://127.0.0.1:4573/inbound,/srv/hotline-hotline/prompts",
        ),
        ev("AGIExecStart", Channel=HOTLINE, Command="ANSWER", CommandId="1"),
        ev("AGIExecEnd", Channel=HOTLINE, Command="ANSWER", ResultCode="200"),
        ev("AGIExecStart", Channel=HOTLINE, Command='STREAM FILE /srv/p/zh/greeting ""'),
        ev("AGIExecStart", Channel=HOTLINE, Command="SET VARIABLE IVR_QUEUE consultation"),
        varset("IVR_QUEUE", "consultation"),
        varset("IVR_NEXT", "queue"),
        varset("AGISTATUS", "SUCCESS"),
        varset("MIXMONITOR_FILENAME", "/tmp/x.wav"),
        varset("CHANNEL(language)", "zh"),
        ev("QueueCallerJoin", Channel=HOTLINE, Queue="consultation", Position="1"),
        ev("Newchannel", Channel=AGENT, Context="sim-agents"),
        ev("QueueCallerLeave", Channel=HOTLINE, Queue="consultation"),
        ev("QueueCallerJoin", Channel=HOTLINE, Queue="fallback", Position="1"),
        ev("Hangup", Channel=AGENT, Cause="17", **{"Cause-txt": "User busy"}),
        varset("QUEUESTATUS", "CONTINUE"),
        ev("Hangup", Channel=HOTLINE, Cause="16", **{"Cause-txt": "Normal Clearing"}),
        ev("Hangup", Channel=CALLER, Cause="16", **{"Cause-txt": "Normal Clearing"}),
    ]


def other_call_events() -> list[dict[str, str]]:
    other = "Local/95158@from-pstn-00000009;2"
    return [
        ev("Newchannel", "other", Channel=other, Context="from-pstn"),
        ev("Newexten", "other", Channel=other, Context="from-pstn", Application="AGI", AppData="x"),
        varset("IVR_QUEUE", "repair", channel=other) | {"Linkedid": "other"},
        ev("QueueCallerJoin", "other", Channel=other, Queue="repair"),
        ev("Hangup", "other", Channel=other, Cause="21", **{"Cause-txt": "Call Rejected"}),
        {"Event": "FullyBooted"},  # no Linkedid at all
    ]


def test_given_inbound_call_when_summarized_then_full_report():
    report = summarize(LINKEDID, call_events())

    assert report.linkedid == LINKEDID
    assert report.channels == [CALLER, HOTLINE, AGENT]
    assert report.agi_routes == ["inbound"]
    assert report.agi_commands == [
        "ANSWER",
        'STREAM FILE /srv/p/zh/greeting ""',
        "SET VARIABLE IVR_QUEUE consultation",
    ]
    assert report.queue == "consultation"
    assert report.hangup_cause == "Normal Clearing (16)"


def test_given_events_of_other_calls_when_summarized_then_ignored():
    events = other_call_events() + call_events() + other_call_events()

    assert summarize(LINKEDID, events) == summarize(LINKEDID, call_events())


def test_given_unknown_linkedid_when_summarized_then_empty_report():
    report = summarize("nobody", call_events())

    assert report.to_json() == {
        "linkedid": "nobody",
        "agi_routes": [],
        "agi_commands": [],
        "queue": None,
        "queue_position": None,
        "queues": [],
        "variables": {},
        "hangup_cause": None,
        "channels": [],
        "event_counts": {},
    }


def test_given_inherited_variable_when_summarized_then_leading_underscores_stripped():
    report = summarize(LINKEDID, call_events())

    assert report.variables["IVR_DID"] == "95158"
    assert "__IVR_DID" not in report.variables


def test_given_variables_when_summarized_then_ivr_and_dialplan_statuses_only():
    report = summarize(LINKEDID, call_events())

    assert report.variables == {
        "IVR_DID": "95158",
        "IVR_QUEUE": "consultation",
        "IVR_NEXT": "queue",
        "AGISTATUS": "SUCCESS",
        "QUEUESTATUS": "CONTINUE",
    }


def test_given_variable_set_twice_when_summarized_then_last_value_wins():
    events = [varset("IVR_NEXT", "queue"), varset("IVR_NEXT", "hangup")]

    assert summarize(LINKEDID, events).variables == {"IVR_NEXT": "hangup"}


def test_given_two_queue_joins_when_summarized_then_first_queue_reported():
    report = summarize(LINKEDID, call_events())

    assert report.queue == "consultation"
    assert report.event_counts["QueueCallerJoin"] == 2


def test_given_agent_hangs_up_first_when_summarized_then_cause_of_hotline_channel():
    events = call_events()
    events.append(ev("Hangup", Channel=AGENT, Cause="3", **{"Cause-txt": "No route"}))

    assert summarize(LINKEDID, events).hangup_cause == "Normal Clearing (16)"


def test_given_only_agent_hangup_after_hotline_seen_when_summarized_then_no_cause():
    events = [e for e in call_events() if not (e["Event"] == "Hangup" and e["Channel"] != AGENT)]

    assert summarize(LINKEDID, events).hangup_cause is None


def test_given_no_dialplan_events_when_summarized_then_any_hangup_gives_cause():
    events = [ev("Hangup", Channel="PJSIP/pstn-00000001", Cause="19", **{"Cause-txt": "No answer"})]

    assert summarize(LINKEDID, events).hangup_cause == "No answer (19)"


def test_given_unknown_events_when_summarized_then_counted():
    events = [*call_events(), ev("BridgeEnter"), ev("SomethingNewInAsterisk23"), ev("BridgeEnter")]

    counts = summarize(LINKEDID, events).event_counts

    assert counts["BridgeEnter"] == 2
    assert counts["SomethingNewInAsterisk23"] == 1
    assert counts["VarSet"] == 7
    assert counts["Hangup"] == 3
    assert sum(counts.values()) == len(events)


def test_given_same_channel_announced_twice_when_summarized_then_listed_once():
    events = [ev("Newchannel", Channel=HOTLINE), ev("Newchannel", Channel=HOTLINE)]

    assert summarize(LINKEDID, events).channels == [HOTLINE]


@pytest.mark.parametrize(
    ("app_data", "route"),
    [
        ("agi://127.0.0.1:4573/inbound,/srv/hotline/prompts", "inbound"),
        ("agi://127.0.0.1:4573/inbound?lang=en,/srv/p", "inbound"),
        ("agi://ivr/menus/main", "menus/main"),
        ("agi://127.0.0.1:4573/", ""),
        ("hotline_inbound.py,/srv/p", "hotline_inbound.py"),
        ("", ""),
    ],
)
def test_given_agi_app_data_when_route_read_then_script_name(app_data, route):
    assert agi_route(app_data) == route


def test_given_overflow_when_summarized_then_every_queue_and_first_position():
    events = [
        {"Event": "QueueCallerJoin", "Queue": "emergency", "Position": "2", "Linkedid": "L"},
        {"Event": "QueueCallerJoin", "Queue": "emergency-backup", "Position": "1", "Linkedid": "L"},
    ]

    report = summarize("L", events)

    assert report.queues == ["emergency", "emergency-backup"]
    assert (report.queue, report.queue_position) == ("emergency", 2)
