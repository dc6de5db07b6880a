"""Asterisk's ``queue_log``: parse its lines and classify the calls it records.

Each line is ``epoch|callid|queue|agent|event|data1|data2|...``; ``callid`` is the
``Uniqueid`` of the caller's channel in the queue (for an ``ivr call`` it is the ``;2`` half
of the Local pair, not the Linkedid). The events used here, with their data fields
(app_queue.c, Asterisk 22)::

    ENTERQUEUE       url|callerid|position
    CONNECT          holdtime|bridged channel Uniqueid|ringtime
    COMPLETECALLER   holdtime|calltime|origposition
    COMPLETEAGENT    holdtime|calltime|origposition
    ABANDON          position|origposition|waittime
    EXITWITHTIMEOUT  position|origposition|waittime
    EXITEMPTY        position|origposition|waittime
    EXITWITHKEY      key|position|origposition|waittime
    RINGNOANSWER     ringtime (ms)
    RINGCANCELED     ringtime (ms)

Everything else (QUEUESTART, ADDMEMBER, PAUSE, ...) is parsed and ignored by the classifier.

The classifier follows the reducer's rules (:mod:`ivr.core.metrics`): the wait runs from the
**first** ENTERQUEUE of the call to its first CONNECT, whatever queue it overflowed to; the
threshold is that of the first queue; answered calls are ``answered`` (wait <= threshold) or
``answered_late``; otherwise the exit that ended the **last** queue entry decides:
EXITWITHTIMEOUT / EXITEMPTY -> ``timed_out`` (the queue let the caller go), ABANDON /
EXITWITHKEY -> ``abandoned``. A call still inside a queue (no exit after its last entry) has
no class yet. Times are whole seconds (queue_log's own resolution), so a wait within a second
of the threshold may land on the other side than the reducer's exact timestamps put it.
app_queue writes nothing for a caller it refuses (QUEUESTATUS FULL, JOINEMPTY, JOINUNAVAIL),
and nothing for calls that never reached a queue: queue_log cannot tell those apart.

>>> log = parse([
...     "1763866504|1763866500.17|emergency|NONE|ENTERQUEUE||13912345678|1",
...     "1763866520|1763866500.17|emergency|PJSIP/agent-1001|CONNECT|16|1763866519.18|2",
...     "1763866580|1763866500.17|emergency|PJSIP/agent-1001|COMPLETECALLER|16|60|1",
... ])
>>> call = classify(log.records, MetricsConfig(thresholds={"emergency": 15.0}))
>>> call.klass.value, call.queue, call.wait_s, call.agent
('answered_late', 'emergency', 16.0, 'PJSIP/agent-1001')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ivr.core.metrics import CallClass, Counters, MetricsConfig, Summary

logger = logging.getLogger(__name__)

ENTER: Final = "ENTERQUEUE"
CONNECT: Final = "CONNECT"
TIMEOUT_EXITS: Final = frozenset({"EXITWITHTIMEOUT", "EXITEMPTY"})  # the queue let go
CALLER_EXITS: Final = frozenset({"ABANDON", "EXITWITHKEY"})  # the caller left
COMPLETIONS: Final = frozenset({"COMPLETECALLER", "COMPLETEAGENT"})
RING_EVENTS: Final = frozenset({"RINGNOANSWER", "RINGCANCELED"})
CALL_EVENTS: Final = frozenset(
    {ENTER, CONNECT, *TIMEOUT_EXITS, *CALLER_EXITS, *COMPLETIONS, *RING_EVENTS}
)
_READ_BLOCK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class QueueLogRecord:
    time: int  # epoch seconds, Asterisk's clock
    callid: str  # Uniqueid of the caller's channel; NONE, CLI ... for member events
    queue: str
    agent: str  # member name (log_membername_as_agent) or interface; NONE when none
    event: str
    data: tuple[str, ...]
    line_no: int = 0  # position in what was parsed: keeps the file's order within a second

    def datum(self, index: int) -> str:
        return self.data[index] if index < len(self.data) else ""

    @property
    def caller(self) -> str:
        """ENTERQUEUE's caller id (unmasked: mask it before logging)."""
        return self.datum(1) if self.event == ENTER else ""


@dataclass(frozen=True, slots=True)
class QueueLog:
    records: list[QueueLogRecord] = field(default_factory=list)
    garbled: int = 0  # non-blank lines that are not queue_log records


@dataclass(frozen=True, slots=True)
class QueueLogCall:
    """One call as queue_log tells it."""

    callid: str  # callid of its first ENTERQUEUE
    queue: str  # the queue first entered: its threshold, and where the call counts
    queues: tuple[str, ...]  # every queue entered, in order (overflow)
    klass: CallClass | None  # None: still in a queue (no exit after the last entry)
    wait_s: float  # first entry to connect, or to the exit that ended the last entry
    threshold_s: float
    entered_at: float  # first ENTERQUEUE, Asterisk's clock
    ended_at: float | None  # the CONNECT or the last exit; None while still queued
    caller: str  # caller id of the first ENTERQUEUE (unmasked)
    agent: str  # who answered; "" if nobody
    talk_s: float | None = None  # COMPLETECALLER/COMPLETEAGENT's calltime; None without one


# --- parsing (pure) -----------------------------------------------------------------------
def parse_line(line: str, line_no: int = 0) -> QueueLogRecord | None:
    """One line, or None when it is not a queue_log record.

    >>> parse_line("1763866504|1763866500.17|repair|NONE|ENTERQUEUE||13912345678|1").data
    ('', '13912345678', '1')
    >>> parse_line("garbage") is None, parse_line("x|a|b|c|ENTERQUEUE") is None
    (True, True)
    """
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5:
        return None
    epoch, callid, queue, agent, event, *data = parts
    seconds, _, fraction = epoch.strip().partition(".")
    if not (seconds.isascii() and seconds.isdigit()) or (fraction and not fraction.isdigit()):
        return None
    if not event or not callid:
        return None
    return QueueLogRecord(int(seconds), callid, queue, agent, event, tuple(data), line_no)


def parse(lines: Iterable[str]) -> QueueLog:
    """Every record of ``lines``, in order; unreadable lines are counted, never raised."""
    records: list[QueueLogRecord] = []
    garbled = 0
    for number, line in enumerate(lines):
        record = parse_line(line, number)
        if record is not None:
            records.append(record)
        elif line.strip():
            garbled += 1
    return QueueLog(records, garbled)


# --- classification (pure) ----------------------------------------------------------------
def classify(records: Iterable[QueueLogRecord], config: MetricsConfig) -> QueueLogCall | None:
    """The class of ONE call from its records (one callid, or several for one Linkedid).

    None when the records hold no ENTERQUEUE: the call never waited in a queue, as far as
    queue_log knows.
    """
    ordered = sorted((r for r in records if r.event in CALL_EVENTS), key=_order)
    entries = [i for i, r in enumerate(ordered) if r.event == ENTER]
    if not entries:
        return None
    first = ordered[entries[0]]
    threshold = config.threshold_s(first.queue)
    queues = tuple(ordered[i].queue for i in entries)
    connect = next((r for r in ordered if r.event == CONNECT), None)
    if connect is not None:
        wait = float(max(0, connect.time - first.time))
        klass = CallClass.ANSWERED if wait <= threshold else CallClass.ANSWERED_LATE
        completed = next((r for r in ordered if r.event in COMPLETIONS), None)
        talk = completed.datum(1) if completed is not None else ""
        return QueueLogCall(
            first.callid, first.queue, queues, klass, wait, threshold,
            float(first.time), float(connect.time), first.caller, connect.agent,
            float(talk) if talk.isascii() and talk.isdigit() else None,
        )  # fmt: skip
    after_last = ordered[entries[-1] + 1 :]
    exit_ = next((r for r in after_last if r.event in TIMEOUT_EXITS | CALLER_EXITS), None)
    if exit_ is None:
        return QueueLogCall(
            first.callid, first.queue, queues, None, 0.0, threshold,
            float(first.time), None, first.caller, "",
        )  # fmt: skip
    klass = CallClass.TIMED_OUT if exit_.event in TIMEOUT_EXITS else CallClass.ABANDONED
    wait = float(max(0, exit_.time - first.time))
    return QueueLogCall(
        first.callid, first.queue, queues, klass, wait, threshold,
        float(first.time), float(exit_.time), first.caller, "",
    )  # fmt: skip


def classify_calls(
    records: Iterable[QueueLogRecord], config: MetricsConfig
) -> dict[str, QueueLogCall]:
    """Every call of the log, by callid (the caller channel's Uniqueid), in entry order."""
    by_callid: dict[str, list[QueueLogRecord]] = {}
    for record in records:
        if record.event in CALL_EVENTS:
            by_callid.setdefault(record.callid, []).append(record)
    calls = {}
    for callid, own in by_callid.items():
        call = classify(own, config)
        if call is not None:
            calls[callid] = call
    return dict(sorted(calls.items(), key=lambda item: (item[1].entered_at, item[0])))


def summarize(calls: Iterable[QueueLogCall]) -> Summary:
    """Counters per first queue and in total, of the calls that have a class."""
    total = Counters()
    queues: dict[str, Counters] = {}
    for call in calls:
        if call.klass is None:
            continue
        total = total.added(call.klass)
        queues[call.queue] = queues.get(call.queue, Counters()).added(call.klass)
    return Summary(total, queues)


def records_of(records: Sequence[QueueLogRecord], callids: Iterable[str]) -> list[QueueLogRecord]:
    """The call records whose callid is one of ``callids`` (a Linkedid's channels)."""
    wanted = set(callids)
    return [r for r in records if r.callid in wanted and r.event in CALL_EVENTS]


def _order(record: QueueLogRecord) -> tuple[int, int]:
    return record.time, record.line_no


# --- reading the file ---------------------------------------------------------------------
def read_since(path: Path, since: float, *, max_bytes: int = 64 * 1024 * 1024) -> QueueLog:
    """The records at or after ``since`` (epoch s), reading ``path`` backwards from its end.

    queue_log only grows (rotation starts a new file), so reading stops at the first line
    older than ``since``, or after ``max_bytes``. Raises OSError when the file is unreadable.
    """
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        chunks: list[bytes] = []
        while position > 0 and end - position < max_bytes:
            step = min(_READ_BLOCK, position)
            position -= step
            handle.seek(position)
            chunks.insert(0, handle.read(step))
            head = b"".join(chunks[:2]).split(b"\n", 2)
            first_complete = head[1] if position > 0 and len(head) > 2 else head[0]
            record = parse_line(first_complete.decode("utf-8", "replace"))
            if record is not None and record.time < since:
                break
    text = b"".join(chunks).decode("utf-8", "replace")
    lines = text.split("\n")
    if position > 0:
        lines = lines[1:]  # the first line was cut by the block boundary
    log = parse(lines)
    kept = [r for r in log.records if r.time >= since]
    return QueueLog(kept, log.garbled)
