"""The agents' rules (ivr.core.agents): 工号, names, desks and penalties, the active flag,
what changed, and the document the CLI and the API show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.core import agents as rules
from ivr.core.agents import (
    AgentInfo,
    AgentStateUnchanged,
    AgentWithoutDesk,
    DeskAssignment,
    InvalidAgentInput,
    UnknownDesk,
)
from ivr.core.sip_accounts import Registration, SipAccount

KNOWN = frozenset({"repair", "billing", "complaints", "consultation", "emergency"})


@pytest.mark.parametrize("given", ["1001", "0012", "1", "123456789012", " 1001 "])
def test_given_digits_then_a_work_number_and_a_valid_sip_username(given):
    number = rules.work_number(given)
    assert number == given.strip()
    SipAccount(username=number, ha1="0" * 32, display_name="x", enabled=True)  # accepted


@pytest.mark.parametrize("given", ["", "10a1", "1234567890123", "-1", "1 001", "١٠٠١", "１００１"])
def test_given_anything_but_1_to_12_ascii_digits_then_refused_naming_the_field(given):
    with pytest.raises(InvalidAgentInput) as refused:
        rules.work_number(given)
    assert refused.value.details["field"] == "work_number"
    assert "1 to 12 digits" in refused.value.message


def test_leading_zeros_are_kept_0012_is_not_12():
    assert rules.work_number("0012") != rules.work_number("12")


@pytest.mark.parametrize(
    ("given", "said"),
    [("", "empty"), ("   ", "empty"), ("x" * 65, "at most 64"), ("张\x00三", "control"),
     ("张\u200e三", "control")],
)  # fmt: skip
def test_given_a_bad_name_then_refused_saying_why(given, said):
    with pytest.raises(InvalidAgentInput, match=said):
        rules.agent_name(given)


def test_a_name_keeps_its_characters_without_the_spaces_around():
    assert rules.agent_name("  欧阳 娜娜 ") == "欧阳 娜娜"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("repair", DeskAssignment("repair", 0)), ("repair:0", DeskAssignment("repair", 0)),
     ("billing:10", DeskAssignment("billing", 10)), (" repair:3 ", DeskAssignment("repair", 3))],
)  # fmt: skip
def test_desk_specs_with_and_without_a_penalty(spec, expected):
    assert rules.parse_desk(spec) == expected


BAD_SPECS = [":1", "repair:", "repair:-1", "repair:11", "repair:x", "repair:1.5", "repair:１"]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_given_a_bad_desk_spec_or_penalty_then_refused(spec):
    with pytest.raises(InvalidAgentInput) as refused:
        rules.parse_desk(spec)
    assert refused.value.details["field"] in ("desks", "penalty")


def test_desks_are_checked_against_the_routing_and_sorted():
    got = rules.check_desks([DeskAssignment("repair", 1), DeskAssignment("billing", 2)], KNOWN)
    assert got == (DeskAssignment("billing", 2), DeskAssignment("repair", 1))


def test_an_unknown_desk_is_refused_listing_the_desks():
    with pytest.raises(UnknownDesk) as refused:
        rules.check_desks([DeskAssignment("repair", 0), DeskAssignment("meter", 0)], KNOWN)
    assert refused.value.status == 422
    assert "billing, complaints, consultation, emergency, repair" in refused.value.message


def test_an_agent_with_no_desk_is_refused():
    with pytest.raises(AgentWithoutDesk, match="at least one desk"):
        rules.check_desks([], KNOWN)


def test_a_desk_given_twice_is_refused_even_with_another_penalty():
    with pytest.raises(InvalidAgentInput, match="'repair' given twice"):
        rules.check_desks([DeskAssignment("repair", 0), DeskAssignment("repair", 1)], KNOWN)


@pytest.mark.parametrize("level", [-1, 11, True])
def test_a_penalty_out_of_range_in_an_assignment_is_refused(level):
    with pytest.raises(InvalidAgentInput, match="penalty"):
        rules.check_desks([DeskAssignment("repair", level)], KNOWN)


def test_too_many_desks_are_refused():
    many = [DeskAssignment(f"d{i}", 0) for i in range(rules.MAX_DESKS + 1)]
    with pytest.raises(InvalidAgentInput, match="at most"):
        rules.check_desks(many, {d.desk for d in many})


@pytest.mark.parametrize(("active", "wanted"), [(True, False), (False, True)])
def test_the_active_flag_moves_between_its_two_states(active, wanted):
    rules.check_active_change("1001", active, wanted)


@pytest.mark.parametrize(
    ("active", "said"), [(True, "active already"), (False, "disabled already")]
)
def test_a_change_of_the_active_flag_that_changes_nothing_is_refused(active, said):
    with pytest.raises(AgentStateUnchanged, match=said) as refused:
        rules.check_active_change("1001", active, active)
    assert refused.value.status == 409


AGENT = AgentInfo("1001", "张三", (DeskAssignment("repair", 1),), True, "alice")


def test_changes_name_each_field_old_and_new_and_nothing_else():
    after = AGENT.replace(desks=(DeskAssignment("billing", 0), DeskAssignment("repair", 1)),
                          user=None)  # fmt: skip
    assert rules.changes(AGENT, after) == {
        "desks": {
            "old": [{"desk": "repair", "penalty": 1}],
            "new": [{"desk": "billing", "penalty": 0}, {"desk": "repair", "penalty": 1}],
        },
        "user": {"old": "alice", "new": None},
    }
    assert rules.changes(AGENT, AGENT) == {}


def test_a_new_agent_changes_every_audited_field_from_nothing():
    found = rules.changes(None, AGENT)
    assert set(found) == set(rules.AUDITED)
    assert all(change["old"] is None for change in found.values())
    assert found["desks"]["new"] == [{"desk": "repair", "penalty": 1}]


def test_the_document_shows_registrations_only_when_asked_and_a_realm_change():
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    agent = AGENT.replace(password_realm="hotline", password_set_at=at)
    contact = Registration("1001", "sip:1001@10.0.0.5:5060", "Yealink T46U", at, None)

    unasked = rules.document(agent, "hotline", None)
    assert unasked["registered"] is None and unasked["password_reset_needed"] is False
    assert unasked["desks"] == [{"desk": "repair", "penalty": 1}]
    assert unasked["sip_username"] == "1001" and unasked["password_set_at"] == at.isoformat()
    assert rules.document(agent, "hotline", {})["registered"] == []
    assert rules.document(agent, "hotline", {"1001": [contact]})["registered"] == [
        {"contact": "sip:1001@10.0.0.5:5060", "user_agent": "Yealink T46U",
         "since": at.isoformat(), "expires": None}
    ]  # fmt: skip
    assert rules.document(agent, "pbx.example", None)["password_reset_needed"] is True
