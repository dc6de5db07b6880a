"""A recorded call's facts, read from the line the dialplan leaves beside its legs. Pure.

At hang-up, ``[hotline-record]`` (dialplan/extensions-recording.conf) writes
``<name>.call`` into the monitor directory: one line of ``key=value`` pairs joined by ``&``,
every value URL-encoded by the dialplan (``URIENCODE``), ending in ``end=1``::

    v=1&linkedid=...&uniqueid=...&did=95158&caller=13912345678&account=&category=repair
    &ivr_queue=repair&queue=repair&agent=Local%2Fagent%40sim-agents%2Fn&agent_interface=...
    &started=1795412386.470&answered=1795412386.482&queued=1795412397.625
    &connected=1795412398.628&holdtime=1&ended=1795412401.533&emergency=&fallback=
    &reason=menu&language=zh&message=&message_s=&hangupcause=16&survey=satisfied
    &survey_key=1&end=1

An agent's click-to-call is recorded by ``[outbound-record]`` on the customer's channel; its
line says ``direction=outbound`` (the caller is then the customer called, the agent the
工号 who called); a line without ``direction`` is an inbound call's.

Times are Unix epochs with milliseconds, taken by Asterisk. :func:`parse_facts` never raises:
a missing or garbled field becomes ``None`` and a reason in :attr:`CallFacts.problems`, so
that a recording is never lost to a bad line. :func:`readiness` says when a call's files can
be catalogued; :func:`recording_stem` names the stereo file (never from caller input).

>>> facts = parse_facts("v=1&linkedid=L1&uniqueid=L1&did=95158&caller=%2B8613800138000"
...                     "&agent=PJSIP%2Fa1&answered=1700000000.5&queued=1700000003"
...                     "&connected=1700000004.25&ended=1700000030.5&end=1")
>>> facts.caller, facts.wait_s, facts.duration_s, facts.complete, facts.problems
('+8613800138000', 1.25, 30.0, True, ())
>>> parse_facts("answered=soon&end=1").problems
('no version (v=1)', 'answered: not a time: soon')
>>> parse_facts("v=1&direction=outbound&end=1").direction
'outbound'
>>> reversed_digits("+86 138-0013-8000")
'0008310083168'
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl

FACTS_VERSION: Final = "1"
MAX_FACTS_BYTES: Final = 16 * 1024  # a facts line is ~0.5 kB; more is not ours
SETTLE_S: Final = 2.0  # a call that ended inside the call flow: time for its message's row
# Epochs outside 2001..2286 are not times Asterisk wrote for a call.
_EPOCH_MIN: Final = 1_000_000_000.0
_EPOCH_MAX: Final = 9_999_999_999.0
# Column widths of ivr.adapters.sql.db.Recording.
LIMITS: Final = {
    "linkedid": 150, "uniqueid": 150, "did": 32, "caller": 32, "account": 32, "category": 40,
    "queue": 40, "ivr_queue": 40, "agent": 80, "agent_interface": 80, "reason": 40,
    "language": 8, "message": 200, "hangupcause": 8, "survey": 24, "survey_key": 1,
}  # fmt: skip
# A voice message's file name without extension (the call flow's ``<desk>-<call id>``).
_FILE_STEM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Identifiers must be whole to be useful: too long means None; free text is cut to size.
_WHOLE_OR_NOTHING: Final = frozenset({"linkedid", "uniqueid", "message", "survey", "survey_key"})
DIRECTIONS: Final = ("inbound", "outbound")  # a call to the hotline; an agent's click-to-call


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the dialplan knew about a recorded call when it hung up (None: not known)."""

    linkedid: str | None = None  # the call id
    uniqueid: str | None = None  # the recorded (caller's) channel
    did: str | None = None
    caller: str | None = None  # as the network sent it: unmasked, shown by role only
    account: str | None = None  # IVR_ACCOUNT, keyed in by the caller
    category: str | None = None  # IVR_CATEGORY
    queue: str | None = None  # the queue the caller was last in (QUEUENAME), else IVR_QUEUE
    agent: str | None = None  # the member who answered (MEMBERNAME, else MEMBERINTERFACE)
    started_at: float | None = None  # the call reached the hotline dialplan
    answered_at: float | None = None  # answered and recording from here
    queued_at: float | None = None  # first joined a queue
    connected_at: float | None = None  # an agent was connected
    hold_s: float | None = None  # QEHOLDTIME (whole seconds, the last queue only)
    ended_at: float | None = None  # hung up
    emergency: bool = False
    fallback: bool = False  # reached a person through the fallback (call flow failed)
    reason: str | None = None  # IVR_REASON
    language: str | None = None
    message: str | None = None  # IVR_MESSAGE: a voice message was left (its file name)
    message_s: float | None = None  # IVR_MESSAGE_S: its length, whole seconds
    hangup_cause: str | None = None
    survey: str | None = None  # IVR_SURVEY: the post-call survey's outcome (ivr.core.survey)
    survey_key: str | None = None  # IVR_SURVEY_KEY: the key the caller pressed
    complete: bool = False  # the line ended in end=1 (not caught half-written)
    problems: tuple[str, ...] = ()  # why fields are missing or were cut
    direction: str = "inbound"  # one of DIRECTIONS

    @property
    def wait_s(self) -> float | None:
        """From the first queue entry to the agent's answer; None if no agent answered."""
        if self.agent is None:
            return None
        if self.queued_at is not None and self.connected_at is not None:
            wait = self.connected_at - self.queued_at
            return round(wait, 3) if wait >= 0 else None
        return self.hold_s  # queued without our timestamp (the fallback path)

    @property
    def duration_s(self) -> float | None:
        """Answer to hang-up."""
        if self.answered_at is None or self.ended_at is None:
            return None
        duration = self.ended_at - self.answered_at
        return round(duration, 3) if duration >= 0 else None

    @property
    def may_hold_message(self) -> bool:
        """A voice message may belong to this call: one named (IVR_MESSAGE), or the caller
        hung up while the call flow ran (no IVR_REASON yet) — perhaps while recording it."""
        if self.message is not None:
            return True
        return self.reason is None and not self.emergency and self.agent is None


def parse_facts(text: str) -> CallFacts:
    """The facts of one ``.call`` line; tolerant: never raises, names what it could not read."""
    problems: list[str] = []
    line = text.strip()
    if "\n" in line:
        problems.append("more than one line: the first is used")
        line = line.splitlines()[0]
    fields: dict[str, str] = {}
    for key, value in parse_qsl(line, keep_blank_values=True, errors="replace"):
        if key in fields:
            problems.append(f"{key}: given twice, the first is used")
            continue
        fields[key] = value
    version = fields.get("v")
    if version is None:
        problems.append("no version (v=1)")
    elif version != FACTS_VERSION:
        problems.append(f"version {_shown(version)}: read as version {FACTS_VERSION}")

    def text_field(key: str) -> str | None:
        raw = fields.get(key, "")
        value = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C").strip()
        if not value:
            return None
        limit = LIMITS[key]
        if len(value) > limit:
            if key in _WHOLE_OR_NOTHING:
                problems.append(f"{key}: longer than {limit} characters, dropped")
                return None
            problems.append(f"{key}: longer than {limit} characters, cut")
            value = value[:limit]
        return value

    def time_field(key: str) -> float | None:
        raw = fields.get(key, "")
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and _EPOCH_MIN <= value <= _EPOCH_MAX):
            problems.append(f"{key}: not a time: {_shown(raw)}")
            return None
        return value

    def seconds_field(key: str) -> float | None:
        raw = fields.get(key, "")
        if not raw:
            return None
        if raw.isascii() and raw.isdigit() and int(raw) < 10**7:
            return float(raw)
        problems.append(f"{key}: not a number of seconds: {_shown(raw)}")
        return None

    message = text_field("message")
    if message is not None and not _FILE_STEM.fullmatch(message):
        problems.append(f"message: not a file name: {_shown(message)}")
        message = None
    started = time_field("started")
    answered = time_field("answered")
    queued = time_field("queued")
    connected = time_field("connected")
    ended = time_field("ended")
    if answered is not None and ended is not None and ended < answered:
        problems.append("ended before it was answered: no duration")
    if queued is not None and connected is not None and connected < queued:
        problems.append("connected before it was queued: no wait")
    direction = fields.get("direction") or "inbound"
    if direction not in DIRECTIONS:
        problems.append(f"direction: not inbound or outbound: {_shown(direction)}")
        direction = "inbound"
    complete = fields.get("end") == "1"
    if not complete:
        problems.append("no end=1: the line was cut short")
    return CallFacts(
        linkedid=text_field("linkedid"),
        uniqueid=text_field("uniqueid"),
        did=text_field("did"),
        caller=text_field("caller"),
        account=text_field("account"),
        category=text_field("category"),
        queue=text_field("queue") or text_field("ivr_queue"),
        agent=text_field("agent") or text_field("agent_interface"),
        started_at=started if started is not None else answered,
        answered_at=answered,
        queued_at=queued,
        connected_at=connected,
        hold_s=seconds_field("holdtime"),
        ended_at=ended,
        emergency=fields.get("emergency") == "1",
        fallback=fields.get("fallback") == "1",
        reason=text_field("reason"),
        language=text_field("language"),
        message=message,
        message_s=seconds_field("message_s"),
        hangup_cause=text_field("hangupcause"),
        survey=text_field("survey"),
        survey_key=text_field("survey_key"),
        complete=complete,
        problems=tuple(problems),
        direction=direction,
    )


def _shown(raw: str) -> str:
    """A bad value as it may appear in a message: printable and short."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in raw)
    return clean if len(clean) <= 24 else clean[:21] + "..."


class Readiness(StrEnum):
    """What to do now with one call's files in the monitor directory."""

    WAIT = "wait"  # still recording, or its facts/voice message not there yet
    READY = "ready"  # ended: catalogue it
    INCOMPLETE = "incomplete"  # no end-of-call marker for too long: catalogue as incomplete


def readiness(
    *,
    done_age_s: float | None,
    newest_age_s: float,
    facts: CallFacts | None,
    message_row: bool,
    grace_s: float,
    incomplete_after_s: float,
) -> Readiness:
    """When a call's files can be catalogued.

    ``done_age_s``: how long ago the end-of-call marker appeared (None: no marker);
    ``newest_age_s``: how long ago any of its files last changed; ``message_row``: the
    call's voice message is in SQL (the call flow's server saves it as the call ends).
    A marked call waits at most ``grace_s`` for facts that are missing or cut short, or for
    the row of a message the facts name; a call that ended inside the call flow waits
    :data:`SETTLE_S` for a message that may have been left (the caller hung up while
    recording it), so that the catalog row is linked to it.

    >>> readiness(done_age_s=0.1, newest_age_s=0.1, facts=CallFacts(complete=True, reason="menu"),
    ...           message_row=False, grace_s=30, incomplete_after_s=3600)
    <Readiness.READY: 'ready'>
    """
    if done_age_s is None:
        return Readiness.INCOMPLETE if newest_age_s >= incomplete_after_s else Readiness.WAIT
    if done_age_s >= grace_s:
        return Readiness.READY
    if facts is None or not facts.complete:
        return Readiness.WAIT
    if not message_row:
        if facts.message is not None:
            return Readiness.WAIT
        if facts.may_hold_message and done_age_s < SETTLE_S:
            return Readiness.WAIT
    return Readiness.READY


def reversed_digits(number: str) -> str:
    """The number's ASCII digits, last first (``Recording.caller_reversed``)."""
    return "".join(ch for ch in number if ch.isascii() and ch.isdigit())[::-1]


def recording_stem(linkedid: str, started_at: datetime) -> str:
    """``YYYY/MM/DD/YYYYMMDDTHHMMSSZ-<hash>``: where a call's files go, relative to the
    recordings directory. From the call id's digest and the start (UTC) only: never from
    anything the caller sent, and the same every time for the same call."""
    moment = started_at.astimezone(UTC)
    digest = hashlib.sha256(linkedid.encode("utf-8", "replace")).hexdigest()[:16]
    return f"{moment:%Y/%m/%d}/{moment:%Y%m%dT%H%M%SZ}-{digest}"


def desk_for(
    category: str | None,
    queue: str | None,
    desk_by_category: dict[str, str],
    desk_by_queue: dict[str, str],
) -> str | None:
    """The desk a call was for: by its category (IVR_CATEGORY), else by its queue.

    >>> desk_for("complaints", "emergency", {"complaints": "complaints"}, {"emergency": "em"})
    'complaints'
    >>> desk_for(None, "consultation", {}, {"consultation": "consultation"})
    'consultation'
    """
    for key, index in ((category, desk_by_category), (queue, desk_by_queue)):
        if key is not None and key in index:
            return index[key]
    return None
