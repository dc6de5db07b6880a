"""The screen pop (ivr.core.screen_pop): the facts an AMI event tells about its call, one
agent's calls folded from the kept events (keyed on the Linkedid, through a transfer), the
pop document; and the caller's history from SQL (ivr.adapters.sql.caller_history)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from ivr.adapters.sql.caller_history import caller_history
from ivr.adapters.sql.db import Recording, Ticket, TicketState
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.repeats import Complaint
from ivr.core.screen_pop import (
    AgentCall,
    CallTicket,
    History,
    PastTicket,
    call_facts,
    compose,
    follow,
    history_document,
    interfaces_of,
    possible_repeat,
)
from ivr.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ROUTING = load_routing(REPO / "routing")
ELDERLY = "031186000001"  # routing/priority_callers.yaml: elderly_alone, area qiaoxi
# routing/outages.yaml: the qiaoxi outage is announced from 2026-11-24, until 2026-11-26 18:00
DURING_NOTICE = datetime(2026, 11, 25, 2, 0, tzinfo=UTC).timestamp()
AFTER_OUTAGE = datetime(2026, 12, 6, 2, 0, tzinfo=UTC).timestamp()
LINKEDID = "1764900000.11"


def queue_event(
    event: str, interface: str, linkedid: str = LINKEDID, **more: str
) -> dict[str, str]:
    """An app_queue event as Asterisk sends it: the caller's channel, then the member's."""
    return {
        "Event": event, "Queue": "billing", "Channel": "PJSIP/pstn-00000001",
        "Uniqueid": linkedid, "Linkedid": linkedid, "CallerIDNum": ELDERLY,
        "DestChannel": f"{interface}-0000000a", "DestUniqueid": "1764900042.20",
        "DestLinkedid": linkedid, "Interface": interface, "MemberName": "1002 李四", **more,
    }  # fmt: skip


def fold(
    events: list[dict[str, str]], work_number: str
) -> tuple[dict[str, AgentCall], list[tuple[str, str]]]:
    calls: dict[str, AgentCall] = {}
    told: list[tuple[str, str]] = []
    for fields in events:
        calls, signals = follow(calls, fields, interfaces_of(work_number))
        told += [(s.kind, s.call.linkedid) for s in signals]
    return calls, told


# --- facts -----------------------------------------------------------------------------------
def test_given_the_flow_variables_and_the_first_channel_then_facts_keyed_on_the_linkedid():
    facts = [
        call_facts({"Event": "VarSet", "Linkedid": LINKEDID, "Variable": v, "Value": x})
        for v, x in [("IVR_KEYS", "2 11000001 1"), ("__IVR_ACCOUNT", "11000001")]
    ]
    first = {"Event": "Newchannel", "Linkedid": LINKEDID, "Uniqueid": LINKEDID}

    assert facts == [
        (LINKEDID, {"IVR_KEYS": "2 11000001 1"}),
        (LINKEDID, {"IVR_ACCOUNT": "11000001"}),
    ]
    assert call_facts({**first, "CallerIDNum": ELDERLY}) == (LINKEDID, {"caller": ELDERLY})
    assert call_facts({**first, "CallerIDNum": "<unknown>"}) is None
    assert call_facts({**first, "Uniqueid": "1764900042.20", "CallerIDNum": "1002"}) is None
    assert call_facts({"Event": "VarSet", "Linkedid": LINKEDID, "Variable": "QUEUESTATUS",
                       "Value": "TIMEOUT"}) is None  # fmt: skip
    assert call_facts({"Event": "VarSet", "Variable": "IVR_KEYS", "Value": "1"}) is None


# --- one agent's calls ------------------------------------------------------------------------
@pytest.mark.parametrize("interface", ["PJSIP/1002", "PJSIP/1002-webrtc"])
def test_given_agent_called_on_either_interface_then_pop_connected_ended_on_the_linkedid(
    interface,
):
    calls, told = fold(
        [
            queue_event("AgentCalled", interface),
            queue_event("AgentConnect", interface),
            queue_event("AgentComplete", interface),
        ],
        "1002",
    )

    assert told == [("pop", LINKEDID), ("connected", LINKEDID), ("ended", LINKEDID)]
    assert calls == {}


def test_given_another_agent_or_a_prefix_of_the_work_number_then_nothing():
    _, told = fold(
        [queue_event("AgentCalled", "PJSIP/1002"), queue_event("AgentCalled", "PJSIP/10021")], "100"
    )

    assert told == []


@pytest.mark.parametrize(
    "end",
    [
        queue_event("AgentRingNoAnswer", "PJSIP/1002"),
        {"Event": "QueueCallerAbandon", "Linkedid": LINKEDID, "Uniqueid": LINKEDID},
        {"Event": "Hangup", "Linkedid": LINKEDID, "Uniqueid": LINKEDID},
    ],
)
def test_given_a_ringing_call_when_not_answered_or_the_caller_hangs_up_then_ended(end):
    calls, told = fold([queue_event("AgentCalled", "PJSIP/1002"), end], "1002")

    assert told == [("pop", LINKEDID), ("ended", LINKEDID)] and calls == {}


def test_given_a_channel_of_the_call_other_than_the_first_hangs_up_then_the_call_goes_on():
    hangup = {"Event": "Hangup", "Linkedid": LINKEDID, "Uniqueid": "1764900042.20"}
    calls, told = fold([queue_event("AgentCalled", "PJSIP/1002"), hangup], "1002")

    assert told == [("pop", LINKEDID)] and list(calls) == [LINKEDID]


def test_given_a_transfer_to_another_agent_then_the_next_agent_pops_the_same_linkedid():
    # 1002 answers, then sends the call to the repair queue, where 1001 is rung: the
    # caller's channel keeps the call's Linkedid, the members' channels are new.
    events = [
        queue_event("AgentCalled", "PJSIP/1002"),
        queue_event("AgentConnect", "PJSIP/1002"),
        queue_event("AgentComplete", "PJSIP/1002", Reason="transfer"),
        queue_event("AgentCalled", "PJSIP/1001", Queue="repair", DestUniqueid="1764900099.31"),
    ]

    first, told_first = fold(events, "1002")
    second, told_second = fold(events, "1001")

    assert told_first == [("pop", LINKEDID), ("connected", LINKEDID), ("ended", LINKEDID)]
    assert told_second == [("pop", LINKEDID)]  # never the member channel's Uniqueid
    assert first == {} and second == {LINKEDID: AgentCall(LINKEDID, "repair")}


CONSULTATION = "1764900050.40"  # 1001's call to 1002 before an attended transfer


def blind(extension: str, result: str = "Success") -> dict[str, str]:
    """A BlindTransfer as Asterisk 22 sends it: the transferer (1001's channel) and the
    transferee (the caller's channel, which keeps the call's Linkedid), prefixed."""
    return {
        "Event": "BlindTransfer", "Result": result, "IsExternal": "Yes",
        "TransfererChannel": "PJSIP/1001-webrtc-00000003", "TransfererLinkedid": LINKEDID,
        "TransfereeChannel": "PJSIP/pstn-00000001", "TransfereeUniqueid": LINKEDID,
        "TransfereeLinkedid": LINKEDID, "Context": "from-agents", "Extension": extension,
    }  # fmt: skip


def dial_end(dest: str, status: str, linkedid: str = LINKEDID) -> dict[str, str]:
    return {
        "Event": "DialEnd", "Channel": "PJSIP/pstn-00000001", "Uniqueid": linkedid,
        "Linkedid": linkedid, "DestChannel": f"{dest}-0000000c", "DestLinkedid": linkedid,
        "DialStatus": status,
    }  # fmt: skip


def attended(target: str, result: str = "Success") -> dict[str, str]:
    """An AttendedTransfer: 1001's two channels, the caller (transferee, the call's
    Linkedid) and the target (1002's channel of the consultation call, its own Linkedid)."""
    return {
        "Event": "AttendedTransfer", "Result": result, "DestType": "Bridge",
        "OrigTransfererChannel": "PJSIP/1001-webrtc-00000003", "OrigTransfererLinkedid": LINKEDID,
        "SecondTransfererChannel": "PJSIP/1001-webrtc-00000005",
        "SecondTransfererLinkedid": CONSULTATION,
        "TransfereeChannel": "PJSIP/pstn-00000001", "TransfereeLinkedid": LINKEDID,
        "TransferTargetChannel": f"{target}-00000006", "TransferTargetLinkedid": CONSULTATION,
    }  # fmt: skip


@pytest.mark.parametrize("device", ["PJSIP/1002", "PJSIP/1002-webrtc"])
def test_given_a_blind_transfer_to_an_agents_work_number_then_it_pops_the_callers_linkedid(
    device,
):
    events = [
        blind("1002"),
        dial_end("PJSIP/1002", "CANCEL" if device.endswith("webrtc") else "ANSWER"),
        dial_end(device, "ANSWER"),
        {"Event": "Hangup", "Linkedid": LINKEDID, "Uniqueid": LINKEDID},  # the caller
    ]

    _, told = fold(events, "1002")
    _, told_transferer = fold(events, "1001")

    assert told == [("pop", LINKEDID), ("connected", LINKEDID), ("ended", LINKEDID)]
    assert told_transferer == []


@pytest.mark.parametrize(
    "event",
    [
        blind("desk-billing"),  # to a desk: the queue's AgentCalled pops it
        blind("10021"),  # another agent
        blind("1002", result="Fail"),
        attended("PJSIP/1002-webrtc", result="Fail"),
        attended("PJSIP/10021-webrtc"),
    ],
)
def test_given_a_transfer_elsewhere_or_failed_then_nothing_pops(event):
    assert fold([event], "1002") == ({}, [])


def test_given_an_attended_transfer_then_the_target_pops_the_callers_linkedid_connected():
    consultation = [  # 1001 calls 1002 by 工号: no queue, no pop
        {"Event": "DialEnd", "Channel": "PJSIP/1001-webrtc-00000005", "Uniqueid": CONSULTATION,
         "Linkedid": CONSULTATION, "DestChannel": "PJSIP/1002-webrtc-00000006",
         "DialStatus": "ANSWER"},
    ]  # fmt: skip
    events = [
        *consultation,
        attended("PJSIP/1002-webrtc"),
        {"Event": "Hangup", "Linkedid": CONSULTATION, "Uniqueid": CONSULTATION},
        {"Event": "Hangup", "Linkedid": LINKEDID, "Uniqueid": LINKEDID},
    ]

    calls, told = fold(events[:2], "1002")
    _, told_all = fold(events, "1002")

    assert calls == {LINKEDID: AgentCall(LINKEDID, "", connected=True)}
    assert told_all == [("pop", LINKEDID), ("connected", LINKEDID), ("ended", LINKEDID)]
    assert fold(events, "1001")[1] == []


# --- the document ------------------------------------------------------------------------------
FACTS: Mapping[str, str] = {
    "caller": ELDERLY, "IVR_LANGUAGE": "zh", "IVR_DESK": "billing", "IVR_CATEGORY": "billing",
    "IVR_KEYS": "2 11000001 1", "IVR_ACCOUNT": "11000001", "IVR_AREA": "qiaoxi",
    "IVR_HEARD": "outage-qiaoxi-20261126", "IVR_PRIORITY": "5", "IVR_REASON": "menu",
}  # fmt: skip
TEXTS = {"outage-qiaoxi-20261126": "温馨提示：桥西区暂停供热"}


def past(ticket_id: int, state: str = "待派单", **more: object) -> PastTicket:
    fields: dict[str, object] = {
        "id": ticket_id, "linkedid": f"1764000000.{ticket_id}", "created_at": DURING_NOTICE - 86400,
        "state": state, "desk": "repair", "category": "repair", "level": "L2",
        "emergency": False, "danger": False, "by_account": False, "closed": state == "已完成",
    } | more  # fmt: skip
    return PastTicket(**fields)  # type: ignore[arg-type]


def test_given_a_priority_caller_with_an_account_then_the_pop_says_what_the_menu_heard():
    call = AgentCall(LINKEDID, "billing")
    history = History(recent=[past(7), past(5, "已完成")], open=[past(7)], earlier_calls=1)

    doc = compose(call, FACTS, history, ROUTING, TEXTS, DURING_NOTICE)

    assert (doc["linkedid"], doc["queue"], doc["caller"]) == (LINKEDID, "billing", ELDERLY)
    ivr = doc["ivr"]
    assert (ivr["desk"], ivr["desk_label"], ivr["language"]) == ("billing", "缴费与费用", "zh")
    assert ivr["keys"] == ["2", "11000001", "1"]
    assert (ivr["account"], ivr["account_confirmed"]) == ("11000001", True)
    assert (ivr["area"], ivr["area_name"], ivr["priority"]) == ("qiaoxi", "桥西区", 5)
    assert ivr["priority_tag"] == "elderly_alone"
    assert ivr["notices_heard"] == [
        {"prompt": "outage-qiaoxi-20261126", "text": TEXTS["outage-qiaoxi-20261126"]}
    ]
    assert ivr["flags"] == []
    assert [t["id"] for t in doc["history"]["recent"]] == [7, 5]
    assert [t["open"] for t in doc["history"]["recent"]] == [True, False]
    assert (doc["history"]["calls_in_days"], doc["history"]["repeat"]) == (2, True)
    (outage,) = doc["outages"]
    assert (outage["area"], outage["text"]) == ("qiaoxi", TEXTS["outage-qiaoxi-20261126"])
    assert doc["ticket"] is None  # rung from the queue: not answered yet, no ticket


def test_given_a_transferred_call_then_the_pop_names_its_one_ticket_and_its_owner():
    history = History(this_call=CallTicket(12, "1001", "待派单"))

    doc = compose(AgentCall(LINKEDID, ""), FACTS, history, ROUTING, TEXTS, AFTER_OUTAGE)

    assert doc["ticket"] == {"id": 12, "agent": "1001", "state": "待派单"}
    assert doc["caller"] == ELDERLY and doc["ivr"]["keys"] == ["2", "11000001", "1"]


def test_given_an_unknown_mobile_caller_who_pressed_nothing_then_flags_and_no_history():
    facts = {"caller": "13800138000", "IVR_REASON": "silence", "IVR_DESK": "consultation"}

    doc = compose(
        AgentCall(LINKEDID, "consultation"), facts, History(), ROUTING, TEXTS, AFTER_OUTAGE
    )

    ivr = doc["ivr"]
    assert ivr["flags"] == ["silent"] and ivr["priority_tag"] is None
    assert (ivr["keys"], ivr["account"], ivr["account_confirmed"]) == ([], "", False)
    assert doc["history"]["repeat"] is False and doc["outages"] == []


def test_given_the_emergency_key_or_an_unconfirmed_account_then_said_so():
    facts = {**FACTS, "IVR_REASON": "emergency_key", "IVR_DESK": "emergency"}
    del facts["IVR_ACCOUNT"]
    facts["IVR_ACCOUNT_KEYED"] = "11000002"

    doc = compose(AgentCall(LINKEDID, "emergency"), facts, History(), ROUTING, TEXTS, AFTER_OUTAGE)

    assert doc["ivr"]["flags"] == ["emergency"]
    assert (doc["ivr"]["account"], doc["ivr"]["account_confirmed"]) == ("11000002", False)


def test_given_an_outage_over_then_not_listed_but_the_notice_heard_still_is():
    doc = compose(AgentCall(LINKEDID, "billing"), FACTS, History(), ROUTING, TEXTS, AFTER_OUTAGE)

    assert doc["outages"] == [] and len(doc["ivr"]["notices_heard"]) == 1


# --- history from SQL ---------------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def add_call(db: Session, n: int, caller: str, at: datetime, account: str | None = None,
             state: TicketState | None = TicketState.awaiting_dispatch,
             complaint: bool = False) -> None:  # fmt: skip
    linkedid = f"1764000000.{n}"
    db.add(Recording(linkedid=linkedid, uniqueid=linkedid, started_at=at, did="95158",
                     caller=caller, caller_reversed=caller[::-1], account=account,
                     file_name=f"call-{n}.wav"))  # fmt: skip
    if state is not None:
        db.add(Ticket(linkedid=linkedid, caller=caller, account=account, state=state,
                      desk="repair", category="repair", created_at=at,
                      complaint=complaint))  # fmt: skip
    db.commit()


def test_given_earlier_calls_then_tickets_by_number_or_account_and_calls_within_7_days(db):
    add_call(db, 1, ELDERLY, NOW - timedelta(days=20), state=TicketState.done)
    add_call(db, 2, ELDERLY, NOW - timedelta(days=3))
    add_call(
        db, 3, "031186009999", NOW - timedelta(days=1), account="11000001"
    )  # a neighbour's phone
    add_call(db, 4, "13800138000", NOW - timedelta(days=1))  # someone else
    add_call(db, 5, ELDERLY, NOW, state=None)  # this call: catalogued already, left out

    history = caller_history(db, ELDERLY, "11000001", "1764000000.5", NOW.timestamp())

    assert [t.linkedid for t in history.recent] == ["1764000000.3", "1764000000.2", "1764000000.1"]
    assert [t.linkedid for t in history.open] == ["1764000000.3", "1764000000.2"]
    assert [t.by_account for t in history.recent] == [True, False, False]
    assert history.earlier_calls == 2  # days 3 and 1; day 20 is out of the window
    assert history.this_call is None  # this call has no ticket yet
    add_call(db, 6, ELDERLY, NOW)  # a transferred call: its ticket, opened at the first connect
    db.execute(update(Ticket).where(Ticket.linkedid == "1764000000.6").values(agent="1001"))
    moved = caller_history(db, ELDERLY, "", "1764000000.6", NOW.timestamp())
    assert moved.this_call is not None
    assert (moved.this_call.agent, moved.this_call.state) == ("1001", "待派单")
    assert "1764000000.6" not in [t.linkedid for t in moved.recent]


def test_given_a_complaint_in_the_repeat_window_then_the_pop_says_possible_repeat(db):
    add_call(db, 1, ELDERLY, NOW - timedelta(days=40), complaint=True)  # out of the window
    add_call(db, 2, ELDERLY, NOW - timedelta(days=2))  # not a complaint
    add_call(db, 3, "031186009999", NOW - timedelta(days=10), account="11000001",
             state=TicketState.done, complaint=True)  # fmt: skip
    zone = ZoneInfo("Asia/Shanghai")

    by_account = caller_history(db, ELDERLY, "11000001", "x", NOW.timestamp(), zone=zone,
                                window_days=30)  # fmt: skip
    by_number_only = caller_history(db, ELDERLY, "", "x", NOW.timestamp(), zone=zone,
                                    window_days=30)  # fmt: skip
    narrow = caller_history(db, ELDERLY, "11000001", "x", NOW.timestamp(), zone=zone,
                            window_days=9)  # fmt: skip

    found = by_account.possible_repeat
    assert found is not None
    assert (found.ticket_id, found.first, found.state, found.matched_on) == (
        3,
        3,
        "已完成",
        "account",
    )
    assert found.created_at == (NOW - timedelta(days=10)).timestamp()
    assert by_number_only.possible_repeat is None and narrow.possible_repeat is None
    doc = history_document(by_account)["possible_repeat"]
    assert doc == {"ticket_id": 3, "first": 3, "created_at": found.created_at,
                   "state": "已完成", "matched_on": "account"}  # fmt: skip
    assert history_document(narrow)["possible_repeat"] is None


def test_given_the_earlier_complaint_repeats_another_then_the_pop_names_its_first():
    at = NOW
    first = Complaint(4, at - timedelta(days=20), number=ELDERLY)
    again = Complaint(9, at - timedelta(days=5), number=ELDERLY, repeat_of=4)
    found = possible_repeat(ELDERLY, "", at, [(again, "处理中")], UTC, 30)
    assert found is not None and (found.ticket_id, found.first) == (9, 4)
    both = possible_repeat(ELDERLY, "", at, [(again, "处理中"), (first, "已完成")], UTC, 30)
    assert both is not None and (both.ticket_id, both.first, both.state) == (4, 4, "已完成")


def test_given_no_number_and_no_account_then_no_history(db):
    add_call(db, 1, "", NOW)

    assert caller_history(db, "", "", "x", NOW.timestamp()) == History()
