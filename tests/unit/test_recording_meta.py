"""The recorded call's facts line, when a call is ready to catalogue, file names, WAV legs."""

from __future__ import annotations

import io
import random
import struct
import wave
from datetime import UTC, datetime

import pytest

from ivr.core.recording_meta import (
    CallFacts,
    Readiness,
    desk_for,
    parse_facts,
    readiness,
    recording_stem,
    reversed_digits,
)
from ivr.core.wav import HEADER_READ, NotWav, parse_wav_header

# Written by the dialplan for a sipp call through the menu to the repair desk (real output).
SIP_CALL = (
    "v=1&linkedid=recexp-1795412386.0&uniqueid=recexp-1795412386.0&did=95158&caller=13912345678"
    "&account=&category=repair&ivr_queue=repair&queue=repair"
    "&agent=Local%2Fagent%40sim-agents%2Fn&agent_interface=Local%2Fagent%40sim-agents%2Fn"
    "&started=1795412386.470&answered=1795412386.482&queued=1795412397.625"
    "&connected=1795412398.628&holdtime=1&ended=1795412401.533&emergency=&fallback="
    "&reason=menu&language=zh&message=&hangupcause=16&end=1"
)


def test_given_real_line_when_parsed_then_every_fact_and_wait_and_duration():
    facts = parse_facts(SIP_CALL + "\n")
    assert facts == CallFacts(
        linkedid="recexp-1795412386.0",
        uniqueid="recexp-1795412386.0",
        did="95158",
        caller="13912345678",
        account=None,
        category="repair",
        queue="repair",
        agent="Local/agent@sim-agents/n",
        started_at=1795412386.470,
        answered_at=1795412386.482,
        queued_at=1795412397.625,
        connected_at=1795412398.628,
        hold_s=1.0,
        ended_at=1795412401.533,
        emergency=False,
        fallback=False,
        reason="menu",
        language="zh",
        message=None,
        hangup_cause="16",
        complete=True,
        problems=(),
    )
    assert facts.wait_s == 1.003
    assert facts.duration_s == 15.051


def test_given_hostile_caller_id_then_kept_as_text_without_control_characters():
    facts = parse_facts(
        "v=1&caller=%22%3B%20rm%20-rf%20%2F%3B%0A%00x&did=9%2F..%2F..&account=1%26b%3D2&end=1"
    )
    assert facts.caller == '"; rm -rf /;x'
    assert facts.did == "9/../.."
    assert facts.account == "1&b=2"
    assert facts.problems == ()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "no version (v=1)"),
        ("v=2&end=1", "version 2: read as version 1"),
        ("v=1&answered=nan&end=1", "answered: not a time: nan"),
        ("v=1&ended=inf&end=1", "ended: not a time: inf"),
        ("v=1&queued=-5&end=1", "queued: not a time: -5"),
        ("v=1&connected=12&end=1", "connected: not a time: 12"),
        ("v=1&holdtime=abc&end=1", "holdtime: not a number of seconds: abc"),
        ("v=1&holdtime=%EF%BC%91&end=1", "holdtime: not a number of seconds: １"),
        ("v=1&message_s=4.5&end=1", "message_s: not a number of seconds: 4.5"),
        ("v=1&message=a%2Fb&end=1", "message: not a file name: a/b"),
        ("v=1&message=.hidden&end=1", "message: not a file name: .hidden"),
        ("v=1&answered=1700000010&ended=1700000000&end=1", "ended before it was answered"),
        ("v=1&queued=1700000010&connected=1700000000&end=1", "connected before it was queued"),
        ("v=1&caller=1&caller=2&end=1", "caller: given twice, the first is used"),
        ("v=1&linkedid=" + "L" * 151 + "&end=1", "linkedid: longer than 150 characters"),
        ("v=1&caller=" + "1" * 40 + "&end=1", "caller: longer than 32 characters, cut"),
        ("v=1&did=95158", "no end=1: the line was cut short"),
        ("v=1&end=1\nv=1&end=1", "more than one line: the first is used"),
        ("v=1&direction=sideways&end=1", "direction: not inbound or outbound: sideways"),
    ],
)
def test_given_bad_field_then_none_and_a_reason(line, problem):
    facts = parse_facts(line)
    assert any(p.startswith(problem) for p in facts.problems), facts.problems


def test_given_an_agents_outbound_call_then_outbound_the_customer_the_caller_and_no_wait():
    line = ("v=1&direction=outbound&linkedid=agentcall-1&uniqueid=1764900000.7"
            "&caller=13800138010&agent=1001&started=1700000000.5&answered=1700000000.5"
            "&ended=1700000012.5&hangupcause=16&end=1")  # fmt: skip
    facts = parse_facts(line)
    assert (facts.direction, facts.caller, facts.agent, facts.linkedid) == (
        "outbound", "13800138010", "1001", "agentcall-1"
    )  # fmt: skip
    assert (facts.duration_s, facts.wait_s, facts.may_hold_message, facts.problems) == (
        12.0, None, False, ()
    )  # fmt: skip
    assert parse_facts("v=1&end=1").direction == "inbound"
    assert parse_facts("v=1&direction=sideways&end=1").direction == "inbound"


def test_given_missing_or_cut_fields_then_nones_not_exceptions():
    cut = parse_facts(SIP_CALL[: SIP_CALL.index("&ended=")])
    assert not cut.complete and cut.ended_at is None and cut.duration_s is None
    assert cut.wait_s == 1.003  # what was written before the cut still counts
    long = parse_facts("v=1&linkedid=" + "L" * 151 + "&caller=" + "1" * 40 + "&end=1")
    assert long.linkedid is None and long.caller == "1" * 32


def test_given_any_bytes_then_parse_never_raises():
    rng = random.Random(5)
    alphabet = "v=1&%;=\n\x00endcallerdi0123456789.,-+ 中\ufffd"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        facts = parse_facts(text)
        assert isinstance(facts, CallFacts)


def test_wait_and_started_fallbacks():
    base = "v=1&agent=PJSIP%2Fa1&answered=1700000000&end=1"
    assert parse_facts(base).started_at == 1700000000.0  # no started: the answer
    assert parse_facts(base + "&holdtime=7").wait_s == 7.0  # fallback queue: QEHOLDTIME
    assert parse_facts(base).wait_s is None
    no_agent = parse_facts("v=1&queued=1700000000&connected=1700000001&end=1")
    assert no_agent.wait_s is None  # nobody answered: no wait to speak of
    assert parse_facts("v=1&agent_interface=PJSIP%2Fa2&ivr_queue=repair").agent == "PJSIP/a2"
    assert parse_facts("v=1&agent_interface=PJSIP%2Fa2&ivr_queue=repair").queue == "repair"
    assert parse_facts("v=1&emergency=1&fallback=1").emergency is True


FACTS = CallFacts(complete=True, reason="menu")  # the call flow finished
IN_FLOW = CallFacts(complete=True)  # hung up while the call flow ran
MESSAGE = CallFacts(complete=True, reason="message", message="complaints-x")


@pytest.mark.parametrize(
    ("done_age", "newest_age", "facts", "message_row", "expected"),
    [
        (None, 5.0, FACTS, False, Readiness.WAIT),  # still recording
        (None, 100.0, None, False, Readiness.INCOMPLETE),  # nothing written for too long
        (0.1, 0.1, FACTS, False, Readiness.READY),
        (0.1, 0.1, None, False, Readiness.WAIT),  # facts not there yet
        (0.1, 0.1, CallFacts(complete=False, reason="menu"), False, Readiness.WAIT),  # half
        (0.1, 0.1, MESSAGE, False, Readiness.WAIT),  # voice message row not in SQL yet
        (0.1, 0.1, MESSAGE, True, Readiness.READY),
        (0.1, 0.1, IN_FLOW, False, Readiness.WAIT),  # a message may be on its way
        (2.5, 2.5, IN_FLOW, False, Readiness.READY),  # ... for a short while only
        (0.1, 0.1, IN_FLOW, True, Readiness.READY),
        (0.1, 0.1, CallFacts(complete=True, emergency=True), False, Readiness.READY),
        (0.1, 0.1, CallFacts(complete=True, agent="PJSIP/a1"), False, Readiness.READY),
        (30.0, 30.0, None, False, Readiness.READY),  # grace over: catalogue what there is
        (30.0, 30.0, MESSAGE, False, Readiness.READY),
    ],
)
def test_readiness(done_age, newest_age, facts, message_row, expected):
    got = readiness(
        done_age_s=done_age,
        newest_age_s=newest_age,
        facts=facts,
        message_row=message_row,
        grace_s=30.0,
        incomplete_after_s=100.0,
    )
    assert got is expected


def test_recording_stem_is_dated_hashed_and_never_from_caller_input():
    started = datetime(2026, 5, 1, 23, 59, 58, 900_000, tzinfo=UTC)
    stem = recording_stem("../../etc/passwd", started)
    assert stem.startswith("2026/05/01/20260501T235958Z-")
    tail = stem.rsplit("-", 1)[1]
    assert len(tail) == 16 and set(tail) <= set("0123456789abcdef")
    assert recording_stem("../../etc/passwd", started) == stem
    assert recording_stem("other", started) != stem
    local = datetime.fromisoformat("2026-05-02T07:59:58+08:00")
    assert recording_stem("x", local) == recording_stem("x", started)  # always UTC


def test_reversed_digits_and_desk():
    assert reversed_digits("13912345678") == "87654321931"
    assert reversed_digits("") == ""
    assert reversed_digits("anonymous") == ""
    by_category = {"repair": "repair", "complaints": "complaints"}
    by_queue = {"repair": "repair", "emergency": "emergency"}
    assert desk_for("complaints", "emergency", by_category, by_queue) == "complaints"
    assert desk_for(None, "emergency", by_category, by_queue) == "emergency"
    assert desk_for("unknown", "elsewhere", by_category, by_queue) is None


# --- WAV legs ------------------------------------------------------------------------------
def _wav(frames: bytes, channels: int = 1, rate: int = 8000, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def _layout(blob: bytes):
    return parse_wav_header(blob[:HEADER_READ], len(blob))


def test_given_closed_wav_then_where_its_pcm_lies():
    samples = struct.pack("<4h", 1, -1, 300, -300)
    blob = _wav(samples)
    layout = _layout(blob)
    assert (layout.channels, layout.sample_rate, layout.sample_width) == (1, 8000, 2)
    assert (layout.data_offset, layout.data_size, layout.frames) == (44, 8, 4)
    assert layout.header_ok and blob[44:52] == samples


def test_given_header_never_finished_then_every_whole_frame_to_the_end():
    closed = _wav(b"\x10\x00" * 800)
    unfinished = closed[:40] + struct.pack("<I", 0) + closed[44:] + b"\x07"  # half a frame
    layout = _layout(unfinished)
    assert layout.frames == 800 and not layout.header_ok
    too_small = closed[:40] + struct.pack("<I", 2) + closed[44:]
    assert _layout(too_small).frames == 1  # a wrong, non-zero size is believed only ...
    too_big = closed[:40] + struct.pack("<I", 10**6) + closed[44:]
    assert _layout(too_big).frames == 800 and not _layout(too_big).header_ok  # ... if it fits
    assert _layout(closed[:44]).frames == 0  # a header and nothing after it


def test_given_stereo_and_extensible_pcm_then_read():
    assert _layout(_wav(b"\x00\x00\x01\x00" * 10, channels=2)).frames == 10
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 16000, 2, 16) + struct.pack("<HHI", 22, 16, 4)
    fmt += b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    blob = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    blob += b"data" + struct.pack("<I", 4) + b"\x01\x00\x02\x00"
    assert _layout(blob).frames == 2 and _layout(blob).data_offset == len(blob) - 4


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"\x00" * 44, "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00WAVE", "no fmt chunk"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00", "data before the fmt chunk"),
        (_wav(b"")[:36], "no data chunk"),
        (_wav(b"\x00\x00")[:20] + struct.pack("<H", 6) + _wav(b"\x00\x00")[22:], "not PCM"),
        (_wav(b"\x00\x00")[:24] + struct.pack("<I", 5) + _wav(b"\x00\x00")[28:], "unusable"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00", "fmt chunk too short"),
    ],
)
def test_given_not_pcm_wav_then_why(blob, reason):
    with pytest.raises(NotWav, match=reason):
        _layout(blob)


def test_given_message_named_then_its_file_stem_and_length():
    facts = parse_facts("v=1&message=complaints-pbx-1790000000.9&message_s=4&end=1")
    assert (facts.message, facts.message_s, facts.problems) == (
        "complaints-pbx-1790000000.9", 4.0, ()
    )  # fmt: skip
    assert facts.may_hold_message
