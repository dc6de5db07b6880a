"""Asterisk's queue_log: the parser and the call classifier (ivr.adapters.metrics.queue_log).

The lines below are what Asterisk 22's app_queue writes (``log_membername_as_agent = yes``,
the dev stack's queues.conf): the first block was recorded from the dev stack (an ``ivr
call`` Local pair, whose queue callid is the ``-2`` half, and a SIP call); the rest follow
app_queue.c's formats for each outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.adapters.metrics.queue_log import (
    QueueLogRecord,
    classify,
    classify_calls,
    parse,
    parse_line,
    read_since,
    records_of,
    summarize,
)
from ivr.core.metrics import CallClass, Counters, MetricsConfig

CONFIG = MetricsConfig(thresholds={"emergency": 15.0, "emergency-backup": 15.0})
AGENT = "Local/agent@sim-agents/n"

RECORDED = """\
1795402557|NONE|NONE|NONE|QUEUESTART|
1795402557|CLI|consultation|Local/agent@sim-agents/n|ADDMEMBER|
1795402557|CLI|emergency|Local/agent@sim-agents/n|ADDMEMBER|
1795402570|ivrcall-2dfe4ff419cf40fd-2|consultation|NONE|ENTERQUEUE||13800138000|1
1795402571|ivrcall-2dfe4ff419cf40fd-2|consultation|Local/agent@sim-agents/n|CONNECT|1|t28759-1795402570.2|1
1795402574|ivrcall-2dfe4ff419cf40fd-2|consultation|Local/agent@sim-agents/n|COMPLETEAGENT|1|3|1
1795402585|t28759-1795402575.4|consultation|NONE|ENTERQUEUE||13912345678|1
1795402586|t28759-1795402575.4|consultation|Local/agent@sim-agents/n|CONNECT|1|t28759-1795402585.5|1
1795402589|t28759-1795402575.4|consultation|Local/agent@sim-agents/n|COMPLETEAGENT|1|3|1
"""

# One call per outcome; epochs from 1763866500 (2025-11-23 10:55 in Shanghai).
OUTCOMES = """\
1763866500|late.1|consultation|NONE|ENTERQUEUE||13900000001|1
1763866515|late.1|consultation|李四|RINGNOANSWER|15000
1763866575|late.1|consultation|王五|CONNECT|75|late.2|3
1763866700|late.1|consultation|王五|COMPLETECALLER|75|125|1
1763866500|aband.1|repair|NONE|ENTERQUEUE||13900000002|1
1763866515|aband.1|repair|李四|RINGNOANSWER|15000
1763866540|aband.1|repair|NONE|ABANDON|1|1|40
1763866500|over.1|emergency|NONE|ENTERQUEUE||13900000003|1
1763866510|over.1|emergency|李四|RINGCANCELED|10000
1763866515|over.1|emergency|NONE|EXITWITHTIMEOUT|1|1|15
1763866516|over.1|emergency-backup|NONE|ENTERQUEUE||13900000003|1
1763866525|over.1|emergency-backup|赵六|CONNECT|9|over.3|4
1763866600|over.1|emergency-backup|赵六|COMPLETEAGENT|9|75|1
1763866500|quick.1|emergency|NONE|ENTERQUEUE||13900000004|1
1763866505|quick.1|emergency|NONE|EXITWITHTIMEOUT|1|1|5
1763866505|quick.1|emergency-backup|NONE|ENTERQUEUE||13900000004|1
1763866509|quick.1|emergency-backup|赵六|CONNECT|4|quick.3|2
1763866530|quick.1|emergency-backup|赵六|COMPLETECALLER|4|21|1
1763866500|both.1|emergency|NONE|ENTERQUEUE||13900000005|1
1763866515|both.1|emergency|NONE|EXITWITHTIMEOUT|1|1|15
1763866515|both.1|emergency-backup|NONE|ENTERQUEUE||13900000005|1
1763866530|both.1|emergency-backup|NONE|EXITWITHTIMEOUT|1|1|15
1763866500|gave.1|emergency|NONE|ENTERQUEUE||13900000006|1
1763866515|gave.1|emergency|NONE|EXITWITHTIMEOUT|1|1|15
1763866515|gave.1|emergency-backup|NONE|ENTERQUEUE||13900000006|1
1763866522|gave.1|emergency-backup|NONE|ABANDON|1|1|7
1763866500|empty.1|billing|NONE|ENTERQUEUE||13900000007|1
1763866503|empty.1|billing|NONE|EXITEMPTY|1|1|3
1763866500|key.1|billing|NONE|ENTERQUEUE||13900000008|1
1763866508|key.1|billing|NONE|EXITWITHKEY|0|1|1|8
1763866500|edge.1|complaints|NONE|ENTERQUEUE||13900000009|1
1763866560|edge.1|complaints|王五|CONNECT|60|edge.2|3
1763866600|edge.1|complaints|王五|COMPLETEAGENT|60|40|1
1763866500|edge2.1|complaints|NONE|ENTERQUEUE||13900000010|1
1763866561|edge2.1|complaints|王五|CONNECT|61|edge2.2|3
1763866600|edge2.1|complaints|王五|ATTENDEDTRANSFER|BRIDGE|1763866599.3|61|39|1
1763866590|wait.1|consultation|NONE|ENTERQUEUE||13900000011|2
"""


def log_of(text: str) -> list[QueueLogRecord]:
    return parse(text.splitlines()).records


# --- parsing ------------------------------------------------------------------------------------
def test_given_recorded_connect_line_when_parsed_then_every_field():
    line = RECORDED.splitlines()[4]
    record = parse_line(line, 4)
    assert record == QueueLogRecord(
        1795402571,
        "ivrcall-2dfe4ff419cf40fd-2",
        "consultation",
        AGENT,
        "CONNECT",
        ("1", "t28759-1795402570.2", "1"),
        4,
    )
    assert record.datum(0) == "1" and record.datum(7) == ""


def test_given_enterqueue_line_then_caller_is_its_callerid_field():
    record = parse_line("1763866500|late.1|consultation|NONE|ENTERQUEUE||13900000001|1")
    assert record is not None and record.caller == "13900000001"
    connect = parse_line("1763866575|late.1|consultation|王五|CONNECT|75|late.2|3")
    assert connect is not None and connect.caller == "" and connect.agent == "王五"


def test_given_event_without_data_then_empty_data():
    record = parse_line("1795402557|NONE|NONE|NONE|QUEUESTART|")
    assert record is not None and record.event == "QUEUESTART" and record.data == ("",)


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "1795402557|NONE|NONE|NONE",  # too few fields
        "17954x2557|c|q|NONE|ENTERQUEUE||1|1",  # bad epoch
        "-1795402557|c|q|NONE|ENTERQUEUE||1|1",
        "1795402557|c|q|NONE||",  # no event
        "1795402557||q|NONE|ENTERQUEUE||1|1",  # no callid
    ],
)
def test_given_garbled_line_when_parsed_then_none(line):
    assert parse_line(line) is None


def test_given_log_with_garbled_and_blank_lines_then_garbled_counted_and_rest_kept():
    log = parse(["", "garbage\n", *RECORDED.splitlines(keepends=True), "\r\n", "x|y"])
    assert log.garbled == 2
    assert len(log.records) == 9
    assert [r.line_no for r in log.records] == list(range(2, 11))


def test_given_epoch_with_fraction_then_whole_seconds_kept():
    record = parse_line("1795402570.640|c.1|consultation|NONE|ENTERQUEUE||1|1")
    assert record is not None and record.time == 1795402570


# --- classifying --------------------------------------------------------------------------------
def test_given_recorded_local_and_sip_calls_then_both_answered_after_one_second():
    calls = classify_calls(log_of(RECORDED), CONFIG)
    assert list(calls) == ["ivrcall-2dfe4ff419cf40fd-2", "t28759-1795402575.4"]
    local = calls["ivrcall-2dfe4ff419cf40fd-2"]
    assert (local.klass, local.queue, local.wait_s, local.threshold_s) == (
        CallClass.ANSWERED, "consultation", 1.0, 60.0,
    )  # fmt: skip
    assert (local.caller, local.agent, local.entered_at, local.ended_at) == (
        "13800138000", AGENT, 1795402570.0, 1795402571.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("callid", "klass", "queue", "wait"),
    [
        ("late.1", CallClass.ANSWERED_LATE, "consultation", 75.0),
        ("aband.1", CallClass.ABANDONED, "repair", 40.0),
        # overflow: the clock runs from the first entry, held to the first queue's 15 s
        ("over.1", CallClass.ANSWERED_LATE, "emergency", 25.0),
        ("quick.1", CallClass.ANSWERED, "emergency", 9.0),
        ("both.1", CallClass.TIMED_OUT, "emergency", 30.0),
        ("gave.1", CallClass.ABANDONED, "emergency", 22.0),
        ("empty.1", CallClass.TIMED_OUT, "billing", 3.0),
        ("key.1", CallClass.ABANDONED, "billing", 8.0),
        ("edge.1", CallClass.ANSWERED, "complaints", 60.0),  # equal to the threshold
        ("edge2.1", CallClass.ANSWERED_LATE, "complaints", 61.0),
    ],
)
def test_given_outcome_lines_when_classified_then_same_class_as_the_reducer(
    callid, klass, queue, wait
):
    call = classify_calls(log_of(OUTCOMES), CONFIG)[callid]
    assert (call.klass, call.queue, call.wait_s) == (klass, queue, wait)
    assert call.threshold_s == CONFIG.threshold_s(queue)


def test_given_overflow_then_every_queue_listed_in_order():
    call = classify_calls(log_of(OUTCOMES), CONFIG)["over.1"]
    assert call.queues == ("emergency", "emergency-backup")
    assert call.agent == "赵六" and call.ended_at == 1763866525.0


def test_given_caller_still_in_queue_then_no_class_yet():
    call = classify_calls(log_of(OUTCOMES), CONFIG)["wait.1"]
    assert call.klass is None and call.ended_at is None and call.queue == "consultation"


def test_given_timeout_then_overflow_not_ended_yet_then_no_class():
    lines = [r for r in log_of(OUTCOMES) if r.callid == "both.1"][:3]
    call = classify(lines, CONFIG)
    assert call is not None and call.klass is None


def test_given_lines_out_of_order_then_same_class():
    lines = [r for r in log_of(OUTCOMES) if r.callid == "over.1"]
    assert classify(reversed(lines), CONFIG) == classify(lines, CONFIG)


def test_given_member_events_only_then_no_call():
    assert classify(log_of(RECORDED)[:3], CONFIG) is None
    assert classify([], CONFIG) is None


def test_given_connect_stamped_before_entry_then_wait_clamped_to_zero():
    lines = log_of("100|c.1|repair|NONE|ENTERQUEUE||1|1\n99|c.1|repair|a|CONNECT|0|c.2|1\n")
    call = classify(lines, CONFIG)
    assert call is not None and call.klass is CallClass.ANSWERED and call.wait_s == 0.0


def test_given_per_queue_threshold_then_same_wait_differs_by_queue():
    config = MetricsConfig(thresholds={"repair": 30.0}, default_threshold_s=20.0)
    text = (
        "0|a.1|repair|NONE|ENTERQUEUE||1|1\n25|a.1|repair|x|CONNECT|25|a.2|1\n"
        "0|b.1|billing|NONE|ENTERQUEUE||1|1\n25|b.1|billing|x|CONNECT|25|b.2|1\n"
    )
    calls = classify_calls(log_of(text), config)
    assert calls["a.1"].klass is CallClass.ANSWERED
    assert calls["b.1"].klass is CallClass.ANSWERED_LATE


def test_given_linkedid_channels_when_selecting_records_then_only_that_call():
    records = log_of(RECORDED)
    mine = records_of(records, {"ivrcall-2dfe4ff419cf40fd", "ivrcall-2dfe4ff419cf40fd-2"})
    assert {r.callid for r in mine} == {"ivrcall-2dfe4ff419cf40fd-2"}
    assert [r.event for r in mine] == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    assert records_of(records, {"CLI", "NONE"}) == []  # member events are not calls


def test_given_classified_calls_when_summarized_then_counts_per_first_queue():
    summary = summarize(classify_calls(log_of(OUTCOMES + RECORDED), CONFIG).values())
    assert summary.total == Counters(answered=4, answered_late=3, abandoned=3, timed_out=2)
    assert summary.queues["emergency"] == Counters(
        answered=1, answered_late=1, abandoned=1, timed_out=1
    )
    assert "emergency-backup" not in summary.queues
    assert summary.total.offered == 12  # the caller still waiting is not counted


# --- reading the file ---------------------------------------------------------------------------
def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def test_given_file_when_reading_since_then_only_newer_records(tmp_path):
    path = tmp_path / "queue_log"
    path.write_text(OUTCOMES, encoding="utf-8")
    log = read_since(path, 1763866560)
    assert {r.time for r in log.records} == {t for t in _times(OUTCOMES) if t >= 1763866560}
    assert read_since(path, 0).records == log_of(OUTCOMES)


def test_given_big_file_when_reading_recent_then_reads_back_across_blocks(tmp_path):
    path = tmp_path / "queue_log"
    lines = [
        f"{1763860000 + i}|c.{i}|consultation|NONE|ENTERQUEUE||1390000{i:04d}|1"
        for i in range(5000)
    ]
    _write(path, lines)
    assert path.stat().st_size > 4 * 64 * 1024
    log = read_since(path, 1763860000 + 4000)
    assert [r.callid for r in log.records] == [f"c.{i}" for i in range(4000, 5000)]
    assert log.garbled == 0
    everything = read_since(path, 0)
    assert len(everything.records) == 5000 and everything.garbled == 0


def test_given_line_being_written_when_reading_then_partial_line_counted_not_raised(tmp_path):
    path = tmp_path / "queue_log"
    path.write_text(RECORDED + "1795402590|t28759-17954", encoding="utf-8")
    log = read_since(path, 0)
    assert len(log.records) == 9 and log.garbled == 1


def test_given_missing_file_when_reading_then_oserror(tmp_path):
    with pytest.raises(OSError):
        read_since(tmp_path / "nope", 0)


def _times(text: str) -> list[int]:
    return [int(line.split("|", 1)[0]) for line in text.splitlines()]
