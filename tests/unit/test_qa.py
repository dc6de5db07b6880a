"""The QA spot-check items and review validation (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.core import qa
from ivr.core.qa import ITEMS, InvalidReview, validate_review


def full_marks(**changes: dict[str, Any]) -> dict[str, Any]:
    items: dict[str, Any] = {item.key: {"score": item.max_score, "comment": ""} for item in ITEMS}
    items.update(changes)
    return {"items": items}


def problems(raw: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidReview) as caught:
        validate_review(raw)
    assert caught.value.status == 422
    assert caught.value.slug == "invalid-review"
    return caught.value.details["problems"]


def test_the_five_items_of_the_utility_in_order_with_labels_and_ranges():
    assert [item.key for item in ITEMS] == [
        "answered_first_attempt",
        "greeting_closing",
        "attitude",
        "first_contact_ownership",
        "professional_answer",
    ]
    assert [item.zh for item in ITEMS] == [
        "一次接通",
        "规范问候语和结束语",
        "服务态度",
        "首问负责",
        "业务解答专业",
    ]
    assert all(item.en and item.hint_zh and item.hint_en for item in ITEMS)
    assert all(item.min_score == 0 and item.max_score == 20 for item in ITEMS)
    assert qa.max_total() == 100
    assert ITEMS[0].to_json()["max_score"] == 20


def test_given_full_marks_then_total_100_and_comments_trimmed():
    raw = full_marks(attitude={"score": 20, "comment": "  warm  "})
    raw["comment"] = " ok "

    draft = validate_review(raw)

    assert draft.total == 100
    assert draft.max_total == 100
    assert draft.comment == "ok"
    assert draft.items["attitude"].comment == "warm"
    assert draft.items_json()["attitude"] == {"score": 20, "comment": "warm"}
    assert draft.corrects_id is None


def test_given_deductions_with_reasons_then_total_is_the_sum():
    raw = full_marks(
        attitude={"score": 12, "comment": "interrupted the caller"},
        greeting_closing={"score": 0, "comment": "no greeting"},
    )
    raw["corrects_id"] = 7

    draft = validate_review(raw)

    assert draft.total == 100 - 8 - 20
    assert draft.corrects_id == 7


def test_given_a_deduction_without_a_comment_then_refused():
    found = problems(full_marks(attitude={"score": 19, "comment": "   "}))
    assert found == [
        {
            "field": "items.attitude.comment",
            "message": "a deduction needs a comment (扣分须说明原因)",
        }
    ]


@pytest.mark.parametrize(
    ("score", "message"),
    [
        (21, "must be 0..20"),
        (-1, "must be 0..20"),
        (10.5, "must be a whole number"),
        ("20", "must be a whole number"),
        (True, "must be a whole number"),
        (None, "must be a whole number"),
    ],
)
def test_given_a_score_out_of_range_or_not_whole_then_refused(score, message):
    found = problems(full_marks(attitude={"score": score, "comment": "x"}))
    assert found == [{"field": "items.attitude.score", "message": message}]


def test_given_missing_and_unknown_items_then_every_problem_listed_at_once():
    raw = full_marks()
    del raw["items"]["attitude"]
    raw["items"]["speed"] = {"score": 1, "comment": ""}
    raw["items"]["professional_answer"] = 20
    raw["extra"] = 1

    found = problems(raw)

    assert {p["field"] for p in found} == {
        "",
        "items.attitude",
        "items.speed",
        "items.professional_answer",
    }


@pytest.mark.parametrize(
    "raw",
    [None, [], "review", {"items": []}, {"items": None}, {}],
)
def test_given_not_a_review_object_then_refused(raw):
    assert problems(raw)


def test_given_too_long_or_control_character_comments_then_refused():
    raw = full_marks(attitude={"score": 20, "comment": "x" * (qa.ITEM_COMMENT_MAX + 1)})
    raw["comment"] = "bell\x07"
    fields = [p["field"] for p in problems(raw)]
    assert fields == ["items.attitude.comment", "comment"]
    raw = full_marks(attitude={"score": 20, "comment": 5, "extra": 1})
    assert [p["message"] for p in problems(raw)] == ["must be text", "unknown field(s): extra"]


@pytest.mark.parametrize("corrects_id", [0, -3, "5", 2.0, True])
def test_given_a_bad_corrects_id_then_refused(corrects_id):
    raw = full_marks()
    raw["corrects_id"] = corrects_id
    assert problems(raw) == [{"field": "corrects_id", "message": "must be a review id"}]


def test_newlines_and_tabs_in_comments_are_kept():
    raw = full_marks()
    raw["comment"] = "line one\n\tline two"
    assert validate_review(raw).comment == "line one\n\tline two"


def test_the_review_json_schema_accepts_what_validation_accepts_and_not_the_rest():
    from jsonschema import Draft202012Validator

    schema = Draft202012Validator(qa.review_json_schema())
    good = full_marks() | {"comment": "ok", "corrects_id": 3}
    validate_review(good)
    assert list(schema.iter_errors(good)) == []
    missing_item = {"items": {k: v for k, v in full_marks()["items"].items() if k != ITEMS[0].key}}
    too_high = full_marks(**{ITEMS[0].key: {"score": ITEMS[0].max_score + 1}})
    for bad in (missing_item, too_high, full_marks() | {"extra": 1}):
        assert list(schema.iter_errors(bad)), bad
        with pytest.raises(InvalidReview):
            validate_review(bad)
