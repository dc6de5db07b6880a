"""The screen pop: what an agent sees of a queue call before answering it. Pure.

Three parts, each a function of plain data:

- :func:`call_facts`: from one AMI event as Asterisk sent it (unredacted), the facts it tells
  about its call, keyed on the call's **Linkedid**: the call flow's ``IVR_*`` variables
  (``VarSet``, set on the caller's channel by :mod:`ivr.core.callflow`) and the caller's
  number (``Newchannel``/``NewCallerid`` of the call's first channel, whose Uniqueid is the
  Linkedid). The ami role keeps them in one Redis hash per call
  (:func:`ivr.redis_keys.live_call_facts`).
  When that channel hangs up (:func:`call_over`) the call is over and its hash goes: Redis
  keeps a caller's number and account in clear only while their call lasts.
- :func:`follow`: one agent's calls, folded from the kept AMI events: ``AgentCalled`` naming
  the agent's interface (``PJSIP/<工号>``, ``PJSIP/<工号>-webrtc``) pops the call's Linkedid
  (never the agent channel's Uniqueid: a transferred call keeps its Linkedid and pops the
  same facts for the next agent), ``AgentConnect`` connects it, ``AgentComplete``,
  ``AgentRingNoAnswer``, ``AgentDump``, the caller leaving the queue unanswered
  (``QueueCallerAbandon``) or the call's first channel hanging up end it. A transfer
  straight to the agent's 工号 passes no queue: a ``BlindTransfer`` to the agent's 工号 pops
  the transferee's (the caller's) Linkedid, and the agent's ``DialEnd`` answered in that call
  connects it; a successful ``AttendedTransfer`` whose target is one of the agent's channels
  pops the transferee's Linkedid connected (the target's own channel carries the
  consultation call's Linkedid, which pops nothing: a call between agents passes no queue).
- :func:`compose`: the pop document from the facts, the caller's and the account's history
  (:class:`History`) and the routing (areas, outages, priority callers).
- :func:`possible_repeat`: before the agent answers, whether this call may be a repeat
  complaint (重复投诉): the caller's number or account has a complaint accepted within the
  repeat window (the rule of :mod:`ivr.core.repeats`, the new call's matter not known yet).
  The agent's confirm or unlink stays on the ticket once the record is saved.

The caller's number is unmasked in the pop: agents call back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

from ivr.core import callflow, repeats
from ivr.core import routing as rules
from ivr.core.routing_models import Routing

#: The call flow's variables the pop reads (a leading ``_``/``__`` inheritance mark ignored).
POP_VARIABLES: Final = frozenset(
    {
        callflow.IVR_LANGUAGE, callflow.IVR_QUEUE, callflow.IVR_PRIORITY, callflow.IVR_CATEGORY,
        callflow.IVR_ACCOUNT, callflow.IVR_ACCOUNT_KEYED, callflow.IVR_AREA, callflow.IVR_REASON,
        callflow.IVR_DESK, callflow.IVR_KEYS, callflow.IVR_HEARD,
        "IVR_EMERGENCY",  # set by the dialplan's emergency path
        "IVR_FALLBACK",  # set by the dialplan's fallback (the call flow was down)
    }
)  # fmt: skip
CALLER: Final = "caller"  # the facts' field holding the caller's number
REPEAT_DAYS: Final = 7  # a repeat caller: two or more calls within this many days
REPEAT_CALLS: Final = 2
EMERGENCY_REASONS: Final = frozenset(
    {callflow.Reason.EMERGENCY_KEY.value, callflow.Reason.EMERGENCY_DID.value}
)
_NO_NUMBER: Final = frozenset({"", "<unknown>", "unknown", "anonymous"})


def call_facts(fields: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
    """``(Linkedid, {field: value})`` that one AMI event tells about its call, or None.

    >>> call_facts({"Event": "VarSet", "Linkedid": "17.1", "Variable": "IVR_KEYS", "Value": "2"})
    ('17.1', {'IVR_KEYS': '2'})
    >>> call_facts({"Event": "Newchannel", "Linkedid": "17.1", "Uniqueid": "17.1",
    ...             "CallerIDNum": "13800138000"})
    ('17.1', {'caller': '13800138000'})
    >>> call_facts({"Event": "Newchannel", "Linkedid": "17.1", "Uniqueid": "17.2",
    ...             "CallerIDNum": "1002"}) is None  # not the call's first channel
    True
    """
    linkedid = fields.get("Linkedid") or ""
    if not linkedid:
        return None
    event = fields.get("Event")
    if event == "VarSet":
        variable = (fields.get("Variable") or "").lstrip("_")
        if variable in POP_VARIABLES:
            return linkedid, {variable: fields.get("Value") or ""}
    elif event in ("Newchannel", "NewCallerid") and fields.get("Uniqueid") == linkedid:
        number = (fields.get("CallerIDNum") or "").strip()
        if number.lower() not in _NO_NUMBER:
            return linkedid, {CALLER: number}
    return None


def call_over(fields: Mapping[str, str]) -> str | None:
    """The Linkedid of a call whose first channel (the caller's) hung up: the call is over.

    >>> call_over({"Event": "Hangup", "Linkedid": "17.1", "Uniqueid": "17.1"})
    '17.1'
    >>> call_over({"Event": "Hangup", "Linkedid": "17.1", "Uniqueid": "17.2"}) is None
    True
    """
    linkedid = fields.get("Linkedid") or ""
    if fields.get("Event") == "Hangup" and linkedid and fields.get("Uniqueid") == linkedid:
        return linkedid
    return None


# --- one agent's calls ----------------------------------------------------------------------
def interfaces_of(work_number: str) -> frozenset[str]:
    """The queue-member interfaces of an agent: its desk phone and its browser.

    >>> sorted(interfaces_of("1001"))
    ['PJSIP/1001', 'PJSIP/1001-webrtc']
    """
    return frozenset({f"PJSIP/{work_number}", f"PJSIP/{work_number}-webrtc"})


@dataclass(frozen=True, slots=True)
class AgentCall:
    linkedid: str
    queue: str
    connected: bool = False


@dataclass(frozen=True, slots=True)
class Signal:
    """What the agent's page is told: ``pop``, ``connected`` or ``ended`` for a Linkedid."""

    kind: str
    call: AgentCall


_ENDS: Final = frozenset({"AgentComplete", "AgentRingNoAnswer", "AgentDump"})
_TRANSFERS: Final = frozenset({"BlindTransfer", "AttendedTransfer"})
#: The only events :func:`follow` can turn on (a reader may skip every other one).
FOLLOWED: Final = frozenset(
    {"AgentCalled", "AgentConnect", *_ENDS, "QueueCallerAbandon", "Hangup", "DialEnd", *_TRANSFERS}
)


def _names_agent(fields: Mapping[str, str], interfaces: frozenset[str]) -> bool:
    """The member interface, or the channel app_queue dialled (``PJSIP/1001-0000002a``)."""
    if fields.get("Interface") in interfaces:
        return True
    return (fields.get("DestChannel") or "").rpartition("-")[0] in interfaces


def transferred_to(fields: Mapping[str, str], interfaces: frozenset[str]) -> str | None:
    """The caller's Linkedid when a successful transfer event hands the call straight to the
    agent of ``interfaces`` (blind: to its 工号; attended: its channel is the target).

    >>> me = interfaces_of("1002")
    >>> blind = {"Event": "BlindTransfer", "Result": "Success", "Extension": "1002",
    ...          "TransfereeLinkedid": "17.1", "TransfererLinkedid": "17.1"}
    >>> transferred_to(blind, me), transferred_to({**blind, "Extension": "desk-billing"}, me)
    ('17.1', None)
    >>> transferred_to({"Event": "AttendedTransfer", "Result": "Success",
    ...                 "TransferTargetChannel": "PJSIP/1002-webrtc-00000007",
    ...                 "TransferTargetLinkedid": "17.5", "TransfereeLinkedid": "17.1"}, me)
    '17.1'
    """
    event = fields.get("Event")
    if event not in _TRANSFERS or fields.get("Result") != "Success":
        return None
    if event == "BlindTransfer":
        to_agent = f"PJSIP/{fields.get('Extension') or ''}" in interfaces
    else:
        to_agent = (fields.get("TransferTargetChannel") or "").rpartition("-")[0] in interfaces
    return (fields.get("TransfereeLinkedid") or None) if to_agent else None


def follow(
    calls: Mapping[str, AgentCall], fields: Mapping[str, str], interfaces: frozenset[str]
) -> tuple[dict[str, AgentCall], list[Signal]]:
    """One kept AMI event folded into one agent's calls (Linkedid -> call): the calls after
    it and what to tell the page."""
    event = fields.get("Event")
    transferred = transferred_to(fields, interfaces)
    if transferred is not None:
        if transferred in calls:
            return dict(calls), []
        call = AgentCall(transferred, "", connected=event == "AttendedTransfer")
        signals = [Signal("pop", call)] + ([Signal("connected", call)] if call.connected else [])
        return {**calls, transferred: call}, signals
    linkedid = fields.get("Linkedid") or ""
    if not linkedid:
        return dict(calls), []
    known = calls.get(linkedid)
    after = dict(calls)
    if event == "AgentCalled" and _names_agent(fields, interfaces):
        if known is not None:
            return after, []  # rung again while ringing (another of its interfaces)
        call = AgentCall(linkedid, fields.get("Queue") or "")
        after[linkedid] = call
        return after, [Signal("pop", call)]
    if known is None:
        return after, []
    answered = event == "AgentConnect" or (
        event == "DialEnd" and fields.get("DialStatus") == "ANSWER"
    )  # DialEnd: a call transferred straight to the agent, which no queue connects
    if answered and _names_agent(fields, interfaces) and not known.connected:
        call = AgentCall(linkedid, known.queue, connected=True)
        after[linkedid] = call
        return after, [Signal("connected", call)]
    ends = (
        (event in _ENDS and _names_agent(fields, interfaces))
        or (event == "QueueCallerAbandon")
        or call_over(fields) == linkedid
    )
    if ends:
        del after[linkedid]
        return after, [Signal("ended", known)]
    return after, []


# --- the pop document -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PastTicket:
    id: int
    linkedid: str
    created_at: float  # epoch seconds
    state: str
    desk: str | None
    category: str | None
    level: str | None
    emergency: bool
    danger: bool
    by_account: bool  # found by the account number (not the caller's number)
    closed: bool  # 已完成

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "state": self.state,
            "desk": self.desk,
            "category": self.category,
            "level": self.level,
            "emergency": self.emergency,
            "danger": self.danger,
            "by_account": self.by_account,
            "open": not self.closed,
        }


@dataclass(frozen=True, slots=True)
class CallTicket:
    """The 工单 of the popped call itself, once opened (at the first agent's connect): a
    transferred call shows the next agent the one ticket and its owner (首问负责制)."""

    id: int
    agent: str | None  # the owner's 工号
    state: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "state": self.state}


@dataclass(frozen=True, slots=True)
class PossibleRepeat:
    """The earlier complaint this call may repeat: ``ticket_id`` matched by ``matched_on``
    (``number`` or ``account``); ``first``: the first complaint of its matter."""

    ticket_id: int
    first: int
    created_at: float  # epoch seconds: when the earlier complaint was accepted
    state: str
    matched_on: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "first": self.first,
            "created_at": self.created_at,
            "state": self.state,
            "matched_on": self.matched_on,
        }


def possible_repeat(
    caller: str,
    account: str,
    now: datetime,
    earlier: Sequence[tuple[repeats.Complaint, str]],
    zone: tzinfo,
    window_days: int,
) -> PossibleRepeat | None:
    """Whether a call from ``caller`` / ``account`` at ``now`` may repeat one of ``earlier``
    (complaints with their state), by :func:`ivr.core.repeats.find_repeat`: same number or
    account, accepted within ``window_days`` local days; the call's matter is not known
    before the record, so any category matches.

    >>> from datetime import UTC, timedelta
    >>> at = datetime(2026, 12, 6, 9, tzinfo=UTC)
    >>> old = repeats.Complaint(7, at - timedelta(days=3), number="13800138000")
    >>> possible_repeat("13800138000", "", at, [(old, "处理中")], UTC, 30).ticket_id
    7
    >>> possible_repeat("13800138000", "", at, [(old, "处理中")], UTC, 2) is None
    True
    """
    new = repeats.Complaint(ticket_id=0, opened_at=now, number=caller, account=account)
    link = repeats.find_repeat(new, [c for c, _ in earlier], zone, window_days)
    if link is None:
        return None
    via, state = next((c, s) for c, s in earlier if c.ticket_id == link.via)
    return PossibleRepeat(link.via, link.first, via.opened_at.timestamp(), state, link.matched_on)


@dataclass(frozen=True, slots=True)
class History:
    """What SQL knows of the caller's number and the account: the recent tickets (newest
    first), the open ones, the earlier calls within :data:`REPEAT_DAYS` days, the complaint
    this call may repeat, and the call's own ticket."""

    recent: Sequence[PastTicket] = ()
    open: Sequence[PastTicket] = ()
    earlier_calls: int = 0  # calls before this one, within REPEAT_DAYS days
    this_call: CallTicket | None = None
    possible_repeat: PossibleRepeat | None = None


def history_document(history: History) -> dict[str, Any]:
    """The pop's ``history``: a repeat caller has made :data:`REPEAT_CALLS` calls or more
    within :data:`REPEAT_DAYS` days, counting this one.

    >>> history_document(History(earlier_calls=1))["repeat"]
    True
    """
    calls = history.earlier_calls + 1
    return {
        "recent": [t.to_json() for t in history.recent],
        "open": [t.to_json() for t in history.open],
        "calls_in_days": calls,
        "days": REPEAT_DAYS,
        "repeat": calls >= REPEAT_CALLS,
        "possible_repeat": (
            history.possible_repeat.to_json() if history.possible_repeat is not None else None
        ),
    }


def compose(
    call: AgentCall,
    facts: Mapping[str, str],
    history: History,
    routing: Routing,
    prompt_texts: Mapping[str, str],
    now: float,
) -> dict[str, Any]:
    """The screen pop of ``call`` (a JSON document; every value is data, never markup).

    ``facts``: the call's hash (:func:`call_facts`); ``prompt_texts``: prompt key -> its text
    in the hotline's default language (for the outage notices).
    """
    caller = facts.get(CALLER, "")
    account = facts.get(callflow.IVR_ACCOUNT, "")
    keyed = facts.get(callflow.IVR_ACCOUNT_KEYED, "")
    area = facts.get(callflow.IVR_AREA) or rules.area_for(routing, caller, account) or ""
    desk_id = facts.get(callflow.IVR_DESK, "")
    desk = next((d for d in routing.desks if d.id == desk_id), None)
    reason = facts.get(callflow.IVR_REASON, "")
    priority_caller = routing.priority_caller(rules.normalize_number(caller)) if caller else None
    heard = facts.get(callflow.IVR_HEARD, "").split()
    flags = []
    if reason in EMERGENCY_REASONS or facts.get("IVR_EMERGENCY") or desk_id == "emergency":
        flags.append("emergency")
    if reason == callflow.Reason.SILENCE.value:
        flags.append("silent")  # no key at all: a leak may be behind it
    if facts.get("IVR_FALLBACK"):
        flags.append("no_menu")  # the call flow was down: the caller told the menu nothing
    language = facts.get(callflow.IVR_LANGUAGE, "")
    return {
        "linkedid": call.linkedid,
        "queue": call.queue,
        "caller": caller,
        "ivr": {
            "desk": desk_id,
            "desk_label": desk.label.zh if desk else "",
            "category": facts.get(callflow.IVR_CATEGORY, ""),
            "language": language,
            "keys": facts.get(callflow.IVR_KEYS, "").split(),
            "account": account or keyed,
            "account_confirmed": bool(account),
            "area": area,
            "area_name": _area_name(routing, area),
            "notices_heard": [{"prompt": p, "text": prompt_texts.get(p, "")} for p in heard],
            "priority": int(facts.get(callflow.IVR_PRIORITY, "0") or 0),
            "priority_tag": priority_caller.reason.value if priority_caller else None,
            "reason": reason,
            "flags": flags,
        },
        "history": history_document(history),
        "ticket": history.this_call.to_json() if history.this_call else None,
        "outages": [
            {
                "area": o.area,
                "area_name": _area_name(routing, o.area),
                "starts": o.starts.isoformat(sep=" "),
                "ends": o.ends.isoformat(sep=" "),
                "prompt": o.prompt,
                "text": prompt_texts.get(o.prompt, ""),
            }
            for o in rules.outages_for(routing, area or None, now)
        ],
        "at": now,
    }


def _area_name(routing: Routing, area: str) -> str:
    return next((a.name for a in routing.areas if a.id == area), "")
