"""AMI framing and encoding, fed with byte strings and recorded Asterisk 22 traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import AmiFrameError
from ivr.protocols.ami import AmiFramer, AmiMessage, encode_action

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"

NEWCHANNEL = (
    "Event: Newchannel\r\n"
    "Privilege: call,all\r\n"
    "Channel: PJSIP/pstn-trunk-00000007\r\n"
    "CallerIDNum: 13912345678\r\n"
    "CallerIDName: 张三\r\n"
    "Uniqueid: 1732329601.7\r\n"
    "\r\n"
).encode()


def trace(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def feed_in_chunks(framer: AmiFramer, data: bytes, size: int) -> list[AmiMessage]:
    messages = []
    for start in range(0, len(data), size):
        messages.extend(framer.feed(data[start : start + size]))
    return messages


def test_given_recorded_session_when_fed_at_once_then_banner_and_every_message_parsed():
    framer = AmiFramer()

    messages = framer.feed(trace("session_inbound_call.ami"))

    assert framer.banner == "Asterisk Call Manager/9.0.0"
    assert messages[0].response == "Success"
    assert messages[0].get("Message") == "Authentication accepted"
    assert [m.event for m in messages[1:]] == [
        "FullyBooted",
        "Newchannel",
        "VarSet",
        "TestEvent",
        "QueueCallerJoin",
        "Hangup",
    ]
    assert framer.malformed_lines == 0


def test_given_recorded_session_then_chinese_values_empty_values_and_repeats_kept():
    messages = AmiFramer().feed(trace("session_inbound_call.ami"))
    newchannel, varset, hangup = messages[2], messages[3], messages[-1]

    assert newchannel.get("CallerIDName") == "张三"
    assert newchannel.get("AccountCode") == ""
    assert varset.get("Variable") == "IVR_SERVICE"
    assert varset.get("Value") == "燃气抢修"
    assert hangup.get_all("ChanVariable") == [
        "IVR_CALL_ID=c-20241123-0007",
        "IVR_SERVICE=燃气抢修",
    ]
    assert hangup.get("Cause-txt") == "Normal Clearing"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_given_recorded_session_when_fed_in_chunks_then_same_messages(size):
    data = trace("session_inbound_call.ami")
    framer = AmiFramer()

    messages = feed_in_chunks(framer, data, size)

    assert messages == AmiFramer().feed(data)
    assert framer.banner == "Asterisk Call Manager/9.0.0"


def test_given_recorded_queue_status_list_then_every_item_carries_the_action_id():
    messages = AmiFramer().feed(trace("queue_status.ami"))

    assert [m.event for m in messages] == [
        None,
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
    ]
    assert {m.action_id for m in messages} == {"hotline-5f3a9c01-9"}
    assert messages[0].get("EventList") == "start"
    assert messages[-1].get("EventList") == "Complete"
    assert messages[2].get("Name") == "李四"
    assert messages[2].get("PausedReason") == ""


def test_given_chinese_caller_name_split_at_every_byte_offset_then_name_arrives_intact():
    for offset in range(len(NEWCHANNEL) + 1):
        framer = AmiFramer()

        messages = framer.feed(NEWCHANNEL[:offset]) + framer.feed(NEWCHANNEL[offset:])

        assert len(messages) == 1, offset
        assert messages[0].get("CallerIDName") == "张三", offset
        assert messages[0].get("Uniqueid") == "1732329601.7", offset


def test_given_banner_split_across_reads_then_recognised_and_not_parsed_as_a_line():
    framer = AmiFramer()

    assert framer.feed(b"Asterisk Call") == []
    assert framer.banner is None
    messages = framer.feed(b" Manager/9.0.0\r\nResponse: Success\r\n\r\n")

    assert framer.banner == "Asterisk Call Manager/9.0.0"
    assert [m.fields for m in messages] == [(("Response", "Success"),)]
    assert framer.malformed_lines == 0


def test_given_stream_without_banner_then_banner_is_none_and_first_frame_kept():
    framer = AmiFramer()

    messages = framer.feed(b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n")

    assert framer.banner is None
    assert messages[0].event == "FullyBooted"


def test_given_bare_lf_separators_then_frames_are_split():
    framer = AmiFramer()

    messages = framer.feed(b"Event: A\nX: 1\n\nEvent: B\n\n")

    assert [m.to_dict() for m in messages] == [{"Event": "A", "X": "1"}, {"Event": "B"}]


def test_given_extra_blank_lines_between_frames_then_no_empty_messages():
    messages = AmiFramer().feed(b"Event: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n")

    assert [m.event for m in messages] == ["A", "B"]


def test_given_line_without_colon_then_skipped_counted_and_frame_kept():
    framer = AmiFramer()
    framer.feed(b"Asterisk Call Manager/9.0.0\r\n")

    messages = framer.feed(b"Event: Hangup\r\ngarbage line\r\nCause: 16\r\n\r\n")

    assert messages[0].fields == (("Event", "Hangup"), ("Cause", "16"))
    assert framer.malformed_lines == 1


def test_given_value_with_colons_and_padding_then_split_on_first_colon_and_stripped():
    framer = AmiFramer()

    messages = framer.feed(b"  Event :  Cdr \r\nStartTime: 2024-11-23 10:00:01\r\nKey:bare\r\n\r\n")

    assert messages[0].fields == (
        ("Event", "Cdr"),
        ("StartTime", "2024-11-23 10:00:01"),
        ("Key", "bare"),
    )


def test_given_invalid_utf8_then_replaced_not_dropped():
    messages = AmiFramer().feed(b"Event: X\r\nCallerIDName: a\xffb\r\n\r\n")

    assert messages[0].get("CallerIDName") == "a\ufffdb"


def test_given_frame_over_limit_without_end_then_frame_error_and_buffer_reset():
    framer = AmiFramer(max_frame_bytes=64)
    framer.feed(b"Asterisk Call Manager/9.0.0\r\n")

    with pytest.raises(AmiFrameError) as raised:
        framer.feed(b"Event: Flood\r\nData: " + b"x" * 64)

    assert raised.value.details["limit"] == 64
    assert framer.feed(b"Event: After\r\n\r\n")[0].event == "After"


def test_given_complete_frames_before_an_oversize_tail_then_frames_returned_first():
    framer = AmiFramer(max_frame_bytes=32)

    messages = framer.feed(b"Event: A\r\n\r\nData: " + b"y" * 40)

    assert [m.event for m in messages] == ["A"]
    with pytest.raises(AmiFrameError):
        framer.feed(b"y")


def test_message_lookups_are_case_insensitive_and_first_value_wins():
    message = AmiMessage((("Event", "VarSet"), ("actionid", "a-1"), ("EVENT", "other")))

    assert message.event == "VarSet"
    assert message.action_id == "a-1"
    assert message.get("ACTIONID") == "a-1"
    assert message.response is None
    assert message.get_all("event") == ["VarSet", "other"]
    assert message.to_dict() == {"Event": "VarSet", "actionid": "a-1"}


def test_encode_action_writes_action_id_fields_and_repeated_lines():
    data = encode_action(
        "Originate",
        "id-1",
        {"Channel": "Local/100@callers", "Variable": ["A=1", "NAME=张三"], "Async": "true"},
    )

    assert (
        data
        == (
            "Action: Originate\r\nActionID: id-1\r\nChannel: Local/100@callers\r\n"
            "Variable: A=1\r\nVariable: NAME=张三\r\nAsync: true\r\n\r\n"
        ).encode()
    )


def test_encoded_action_parses_back_to_the_same_fields():
    data = encode_action("Setvar", "id-2", {"Variable": "X", "Value": "燃气"})

    (message,) = AmiFramer().feed(data)

    assert message.fields == (
        ("Action", "Setvar"),
        ("ActionID", "id-2"),
        ("Variable", "X"),
        ("Value", "燃气"),
    )


@pytest.mark.parametrize(
    ("action", "action_id", "fields"),
    [
        ("Ping\r\nAction: Reload", "id", {}),
        ("Ping", "id\nAction: Reload", {}),
        ("Ping", "id", {"Channel": "x\r\nAction: Hangup"}),
        ("Ping", "id", {"Channel\n": "x"}),
        ("Ping", "id", {"Variable": ["A=1", "B=2\rAction: Hangup"]}),
        ("Ping", "id", {"Bad:Key": "x"}),
        ("Ping", "id", {"": "x"}),
        ("Ping", "id", {"ActionID": "spoofed"}),
        ("Ping", "id", {"action": "Hangup"}),
    ],
)
def test_given_line_break_or_bad_key_when_encoding_then_value_error(action, action_id, fields):
    with pytest.raises(ValueError):
        encode_action(action, action_id, fields)
