"""What the AMI event stream keeps of an event (ivr.adapters.metrics.event_sink.redacted): no
caller's number, keyed digit or account number in clear; what the replay needs, as it was."""

from __future__ import annotations

import pytest

from ivr.adapters.metrics.event_sink import redacted
from ivr.core.metrics import MetricsConfig, MetricsState, apply, snapshot

CALLER = "13800138000"
ACCOUNT = "14002233"


def channel(event: str, **fields: str) -> dict[str, str]:
    return {
        "Event": event,
        "Channel": "Local/95158@from-pstn-00000001;2",
        "CallerIDNum": CALLER,
        "CallerIDName": CALLER,
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Exten": "95158",
        "Uniqueid": "ivrcall-1-2",
        "Linkedid": "ivrcall-1",
        "Timestamp": "1764000000.000000",
        **fields,
    }


@pytest.mark.parametrize(
    "event",
    [
        channel("Newchannel"),
        channel("Hangup", Cause="16"),
        channel("QueueCallerJoin", Queue="billing", Position="1", Count="1"),
        channel("AgentConnect", Queue="billing", DestCallerIDNum=CALLER,
                DestConnectedLineNum=CALLER, DestCallerIDName="张三"),
        channel("DTMFEnd", Digit="1", Direction="Received", DurationMs="150"),
        channel("DTMFBegin", Digit="4", Direction="Received"),
        channel("VarSet", Variable="IVR_ACCOUNT", Value=ACCOUNT),
        channel("VarSet", Variable="__IVR_ACCOUNT", Value=ACCOUNT),
        channel("AGIExecStart", Command=f"SET VARIABLE IVR_ACCOUNT {ACCOUNT}", CommandId="7"),
        channel("AGIExecStart", Command='STREAM FILE /srv/h/prompts/zh/digit-4 ""'),
        channel("AGIExecStart", Command=f'SAY DIGITS {ACCOUNT} ""'),
        channel("AGIExecEnd", Command="GET DATA /srv/h/prompts/zh/account 5000 12",
                ResultCode="200", Result=f"{ACCOUNT} (timeout)"),
        channel("DialBegin", DialString=f"PJSIP/{CALLER}@trunk", DestAccountCode=ACCOUNT),
    ],
    ids=lambda e: f"{e['Event']}-{e.get('Variable') or e.get('Command', '')[:12]}",
)  # fmt: skip
def test_no_number_digit_or_account_is_kept_in_clear(event):
    kept = redacted(event)
    text = repr(kept)
    assert CALLER not in text and ACCOUNT not in text
    assert "Digit" not in kept and "Result" not in kept
    assert "digit-4" not in text
    for key in ("Event", "Channel", "Uniqueid", "Linkedid", "Timestamp", "Exten"):
        assert kept[key] == event[key]  # what the replay and the reader need


def test_numbers_and_names_are_masked_as_in_the_logs_and_placeholders_kept():
    kept = redacted(channel("Newchannel", DestCallerIDName="张三丰"))
    assert kept["CallerIDNum"] == kept["CallerIDName"] == "138******00"
    assert kept["ConnectedLineNum"] == "<unknown>"
    assert kept["DestCallerIDName"] == "***"


def test_the_call_flows_decisions_are_kept_as_they_are():
    for variable, value in (("IVR_QUEUE", "billing"), ("QUEUESTATUS", "TIMEOUT"),
                            ("__IVR_DID", "95158"), ("IVR_NEXT", "queue")):  # fmt: skip
        assert redacted(channel("VarSet", Variable=variable, Value=value))["Value"] == value
    for command in ("ANSWER", "GET DATA /srv/h/prompts/zh/menu 3000 1",
                    'STREAM FILE /srv/h/prompts/zh/greeting "9"',
                    "SET VARIABLE IVR_QUEUE billing"):  # fmt: skip
        assert redacted(channel("AGIExecStart", Command=command))["Command"] == command


def test_a_redacted_stream_replays_to_the_same_classes_and_waits():
    """The replay at start (MetricsListener.replay) rebuilds the reducer from stored events:
    the redacted ones give the same outcomes as the events Asterisk sent."""
    config = MetricsConfig(thresholds={}, default_threshold_s=60.0, skew_tolerance_s=2.0)
    member = {"Queue": "billing", "Interface": "Local/agent@sim-agents/n", "MemberName": "a1",
              "DestUniqueid": "ivrcall-1-agent", "DestLinkedid": "ivrcall-1"}  # fmt: skip
    caller = {"Uniqueid": "ivrcall-1"}
    agent_leg = {"Uniqueid": "ivrcall-1-agent", "Channel": "Local/agent@sim-agents-00000002;1"}
    events = [
        channel("Newchannel", **caller, Timestamp="1764000000.0"),
        channel("VarSet", **caller, Variable="IVR_ACCOUNT", Value=ACCOUNT,
                Timestamp="1764000005.0"),
        channel("VarSet", **caller, Variable="IVR_QUEUE", Value="billing",
                Timestamp="1764000006.0"),
        channel("QueueCallerJoin", **caller, Queue="billing", Timestamp="1764000007.0"),
        channel("Newchannel", **agent_leg, Timestamp="1764000008.5"),
        channel("AgentCalled", **caller, **member, Timestamp="1764000008.5"),
        channel("QueueCallerLeave", **caller, Queue="billing", Timestamp="1764000009.0"),
        channel("AgentConnect", **caller, **member, Timestamp="1764000009.0"),
        channel("AgentComplete", **caller, **member, Timestamp="1764000030.0"),
        channel("Hangup", **agent_leg, Timestamp="1764000030.0"),
        channel("Hangup", **caller, Timestamp="1764000030.01"),
    ]  # fmt: skip

    def outcomes(stream: list[dict[str, str]]) -> list[tuple[str, str, float]]:
        state = MetricsState(config)
        out = []
        for event in stream:
            _, effects = apply(state, event, float(event["Timestamp"]))
            out += [(type(e).__name__, str(getattr(e, "klass", "")), getattr(e, "wait_s", 0.0))
                    for e in effects]  # fmt: skip
        assert snapshot(state, 1764000040.0).total.waiting == ()
        return out

    sent = outcomes(events)
    assert [o for o in sent if o[0] == "CallClassified"] == [("CallClassified", "answered", 2.0)]
    assert outcomes([redacted(e) for e in events]) == sent
