"""The agent's 工单 record (pure, ivr.core.ticket_form): a save names every field it misses,
drafts keep only the form's fields; and its choices from routing/ (departments.yaml,
problem_types.yaml), validated like the other routing files (errors name file:line)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.ticket_form import (
    BOOL_FIELDS,
    FIELDS,
    TEXT_FIELDS,
    FormChoices,
    InvalidDraft,
    Outcome,
    Place,
    TicketFormRefused,
    Urgency,
    check_record,
    clean_draft,
)
from ivr.core.tickets import Level
from ivr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
CHOICES = FormChoices(
    problem_types={"gas": frozenset({"smell", "no-supply"}), "billing": frozenset({"amount"})},
    departments=frozenset({"repair", "billing"}),
)
DISPATCHED: dict[str, Any] = {
    "surname": "王",
    "title": "女士",
    "contact_number": "13800138000",
    "contact_confirmed": True,
    "estate": "幸福小区",
    "building": "3",
    "unit": "2",
    "room": "501",
    "account": "11012345",
    "category": "gas",
    "subcategory": "smell",
    "happened_at": "2026-12-06T09:30",
    "place": "indoors",
    "description": "厨房有燃气味",
    "urgency": "urgent",
    "outcome": "dispatched",
    "department": "repair",
}
RESOLVED: dict[str, Any] = {
    "surname": "李",
    "title": "先生",
    "contact_number": "0311-86001234",
    "contact_confirmed": True,
    "category": "billing",
    "subcategory": "amount",
    "description": "问本月燃气费为何偏高",
    "urgency": "normal",
    "outcome": "resolved",
    "reply": "按阶梯气价计费，已解释",
}


def refused(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(TicketFormRefused) as caught:
        check_record(raw, CHOICES, ZONE)
    assert caught.value.status == 422
    fields: list[str] = caught.value.details["fields"]
    for field in fields:
        assert field in caught.value.message  # the message names each field
    return fields


def test_a_dispatched_record_with_every_field_is_kept_as_typed():
    rec = check_record(DISPATCHED, CHOICES, ZONE)
    assert (rec.surname, rec.title, rec.contact_number, rec.contact_confirmed) == (
        "王", "女士", "13800138000", True,
    )  # fmt: skip
    assert (rec.estate, rec.building, rec.unit, rec.room, rec.account) == (
        "幸福小区", "3", "2", "501", "11012345",
    )  # fmt: skip
    assert (rec.category, rec.subcategory, rec.place, rec.urgency) == (
        "gas", "smell", Place.indoors, Urgency.urgent,
    )  # fmt: skip
    assert rec.happened_at == datetime(2026, 12, 6, 9, 30, tzinfo=ZONE)
    assert (rec.outcome, rec.department, rec.reply, rec.level) == (
        Outcome.dispatched, "repair", None, None,
    )  # fmt: skip


def test_a_consultation_resolved_on_the_call_needs_the_reply_but_no_address():
    rec = check_record(RESOLVED, CHOICES, ZONE)
    assert (rec.outcome, rec.reply, rec.department, rec.estate) == (
        Outcome.resolved, "按阶梯气价计费，已解释", None, None,
    )  # fmt: skip
    assert refused({**RESOLVED, "reply": "  "}) == ["reply"]


def test_an_empty_save_names_every_required_field_in_the_forms_order():
    assert refused({}) == [
        "surname", "title", "contact_number", "category", "subcategory", "description",
        "urgency", "outcome",
    ]  # fmt: skip


@pytest.mark.parametrize("field", ["surname", "title", "contact_number", "description"])
def test_one_missing_field_is_refused_naming_it(field):
    assert refused({**DISPATCHED, field: ""}) == [field]


def test_the_contact_number_must_be_read_back():
    assert refused({**DISPATCHED, "contact_confirmed": False}) == ["contact_confirmed"]
    assert refused({**DISPATCHED, "contact_number": "call me"}) == ["contact_number"]


def test_dispatching_needs_the_department_the_estate_when_and_where():
    missing = {**DISPATCHED, "department": "", "estate": "", "happened_at": "", "place": ""}
    assert refused(missing) == ["estate", "happened_at", "place", "department"]
    assert refused({**DISPATCHED, "department": "bakery"}) == ["department"]
    assert refused({**DISPATCHED, "happened_at": "yesterday"}) == ["happened_at"]
    assert refused({**DISPATCHED, "happened_at": "0001-01-01T07:59"}) == ["happened_at"]


def test_the_problem_type_comes_from_the_routing_and_the_subcategory_from_its_category():
    assert refused({**DISPATCHED, "category": "weather"}) == ["category"]
    assert refused({**DISPATCHED, "subcategory": "amount"}) == ["subcategory"]


def test_a_complaint_needs_its_level_which_is_ignored_otherwise():
    assert refused({**DISPATCHED, "complaint": True}) == ["level"]
    assert refused({**DISPATCHED, "complaint": True, "level": "L9"}) == ["level"]
    assert check_record({**DISPATCHED, "complaint": True, "level": "L2"}, CHOICES, ZONE).level is (
        Level.L2
    )
    assert check_record({**DISPATCHED, "level": "L1"}, CHOICES, ZONE).level is None


def test_choices_outside_their_lists_are_refused():
    assert refused({**DISPATCHED, "title": "同志"}) == ["title"]
    assert refused({**DISPATCHED, "urgency": "soon"}) == ["urgency"]
    assert refused({**DISPATCHED, "place": "garden"}) == ["place"]
    assert refused({**DISPATCHED, "outcome": "ignored"}) == ["outcome"]
    assert refused({**DISPATCHED, "surname": "王" * 17}) == ["surname"]


def test_html_is_kept_as_text():
    rec = check_record({**DISPATCHED, "description": "<script>alert(1)</script>"}, CHOICES, ZONE)
    assert rec.description == "<script>alert(1)</script>"


def test_a_draft_keeps_only_the_forms_fields_cut_to_their_length():
    draft = clean_draft({"surname": "王", "description": "x" * 3000, "complaint": True,
                         "role": "admin", "level": None})  # fmt: skip
    assert draft == {"surname": "王", "description": "x" * 2000, "complaint": True}
    for bad in ([], "text", {"surname": 3}, {"complaint": "yes"}):
        with pytest.raises(InvalidDraft):
            clean_draft(bad)


# --- the choices in routing/ ------------------------------------------------------------------
def test_the_shipped_routing_has_departments_and_problem_types():
    routing = load_routing(REPO / "routing")
    departments = {d.id: d.label.zh for d in routing.departments}
    assert departments["repair"] == "维修"
    assert departments["billing"] == "收费"
    assert departments["heating"] == "供热运行"
    for kind in routing.problem_types:
        assert kind.subtypes
        assert kind.department is None or kind.department in departments


def routing_copy(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "routing"
    shutil.copytree(REPO / "routing", folder)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def test_a_problem_type_sending_to_an_unknown_department_is_refused_naming_file_and_line(
    tmp_path,
):
    folder = routing_copy(
        tmp_path,
        problem_types=(
            "problem_types:\n"
            "  - id: gas\n"
            "    label: {zh: 燃气, en: Gas}\n"
            "    department: bakery\n"
            "    subtypes:\n"
            "      - {id: smell, label: {zh: 异味, en: Smell}}\n"
        ),
    )
    with pytest.raises(ConfigError) as caught:
        load_routing(folder)
    assert f"{folder / 'problem_types.yaml'}:4: problem_types.0.department" in caught.value.message
    assert "no department 'bakery'" in caught.value.message


def test_duplicate_departments_and_a_category_without_subtypes_are_refused(tmp_path):
    twice = "departments:\n  - {id: repair, label: {zh: 维修, en: R}}\n" \
            "  - {id: repair, label: {zh: 维修, en: R}}\n"  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"departments.yaml:3: departments.1.id: 'repair' is listed twice"
    ):
        load_routing(routing_copy(tmp_path, departments=twice))
    empty = "problem_types:\n  - id: gas\n    label: {zh: 燃气, en: Gas}\n    subtypes: []\n"
    with pytest.raises(ConfigError, match=r"problem_types.yaml:4: problem_types.0.subtypes"):
        load_routing(routing_copy(tmp_path / "b", problem_types=empty))


def test_the_forms_order_lists_every_field_once():
    assert sorted(FIELDS) == sorted([*TEXT_FIELDS, *BOOL_FIELDS])
    assert len(set(FIELDS)) == len(FIELDS)
