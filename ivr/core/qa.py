"""QA spot-check reviews: the utility's items, their score ranges, validation and the total. Pure.

A review scores every item of :data:`ITEMS` with an integer in ``min_score..max_score`` and a
comment; a deduction (a score below the item's maximum) must say why. The total is the sum of
the item scores (0..100). A review is immutable once stored; a correction is a new review
naming the one it corrects (``corrects_id``).

>>> draft = validate_review({
...     "items": {item.key: {"score": item.max_score, "comment": ""} for item in ITEMS},
...     "comment": "good call",
... })
>>> draft.total, draft.max_total, draft.corrects_id
(100, 100, None)
>>> validate_review({"items": {}}).total
Traceback (most recent call last):
...
ivr.core.qa.InvalidReview: the review is incomplete or invalid
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ivr.errors import HotlineError

ITEM_COMMENT_MAX: Final = 500
REVIEW_COMMENT_MAX: Final = 2000


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One spot-check item: a stable key (stored in ``Review.items``), labels, score range."""

    key: str
    zh: str
    en: str
    hint_zh: str
    hint_en: str
    max_score: int
    min_score: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "zh": self.zh,
            "en": self.en,
            "hint_zh": self.hint_zh,
            "hint_en": self.hint_en,
            "min_score": self.min_score,
            "max_score": self.max_score,
        }


ITEMS: Final[tuple[ReviewItem, ...]] = (
    ReviewItem(
        "answered_first_attempt",
        "一次接通",
        "Answered at the first attempt",
        "来电首次呼入即由坐席接起，无需重拨或转接多次",
        "the caller reached an agent on the first call, without calling back or being bounced",
        20,
    ),
    ReviewItem(
        "greeting_closing",
        "规范问候语和结束语",
        "Standard greeting and closing",
        "使用标准开场白和结束语",
        "the standard greeting at the start and the standard closing at the end",
        20,
    ),
    ReviewItem(
        "attitude",
        "服务态度",
        "Attitude",
        "语气热情、耐心，不推诿、不顶撞",
        "friendly and patient; no brushing off, no arguing",
        20,
    ),
    ReviewItem(
        "first_contact_ownership",
        "首问负责",
        "First-contact ownership",
        "首位接听人负责到底：登记、转办并告知后续",
        "the first agent owns the request: records it, hands it on, tells the caller what next",
        20,
    ),
    ReviewItem(
        "professional_answer",
        "业务解答专业",
        "Professional answer",
        "解答准确、完整，符合业务规范和安全要求",
        "the answer is correct, complete and follows the service and safety rules",
        20,
    ),
)
ITEM_KEYS: Final = tuple(item.key for item in ITEMS)


class InvalidReview(HotlineError):
    """A review that does not score every item correctly; ``details["problems"]`` says where."""

    slug = "invalid-review"
    status = 422


@dataclass(frozen=True, slots=True)
class ItemScore:
    score: int
    comment: str

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "comment": self.comment}


@dataclass(frozen=True, slots=True)
class ReviewDraft:
    """A validated review, ready to store."""

    items: dict[str, ItemScore]
    comment: str
    total: int
    max_total: int
    corrects_id: int | None

    def items_json(self) -> dict[str, dict[str, Any]]:
        return {key: score.to_json() for key, score in self.items.items()}


def max_total(items: Sequence[ReviewItem] = ITEMS) -> int:
    return sum(item.max_score for item in items)


def _text(value: Any, limit: int, where: str, problems: list[dict[str, str]]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append({"field": where, "message": "must be text"})
        return ""
    text = value.strip()
    if len(text) > limit:
        problems.append({"field": where, "message": f"at most {limit} characters"})
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        problems.append({"field": where, "message": "control characters are not allowed"})
    return text


def _score(item: ReviewItem, raw: Any, problems: list[dict[str, str]]) -> ItemScore | None:
    where = f"items.{item.key}"
    if not isinstance(raw, Mapping):
        problems.append({"field": where, "message": "needs a score and a comment"})
        return None
    score = raw.get("score")
    if isinstance(score, bool) or not isinstance(score, int):
        problems.append({"field": f"{where}.score", "message": "must be a whole number"})
        return None
    if not item.min_score <= score <= item.max_score:
        problems.append(
            {
                "field": f"{where}.score",
                "message": f"must be {item.min_score}..{item.max_score}",
            }
        )
        return None
    comment = _text(raw.get("comment"), ITEM_COMMENT_MAX, f"{where}.comment", problems)
    if score < item.max_score and not comment:
        problems.append(
            {"field": f"{where}.comment", "message": "a deduction needs a comment (扣分须说明原因)"}
        )
    unknown = sorted(set(raw) - {"score", "comment"})
    if unknown:
        problems.append({"field": where, "message": f"unknown field(s): {', '.join(unknown)}"})
    return ItemScore(score, comment)


def review_json_schema(items: Sequence[ReviewItem] = ITEMS) -> dict[str, Any]:
    """The JSON Schema of the body :func:`validate_review` accepts (for the API description;
    the deduction-needs-a-comment rule is said in words, JSON Schema cannot say it)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items"],
        "properties": {
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [item.key for item in items],
                "properties": {
                    item.key: {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["score"],
                        "properties": {
                            "score": {
                                "type": "integer",
                                "minimum": item.min_score,
                                "maximum": item.max_score,
                            },
                            "comment": {"type": "string", "maxLength": ITEM_COMMENT_MAX},
                        },
                        "description": f"{item.zh} {item.en}: a score below {item.max_score} needs "
                        "a comment",
                    }
                    for item in items
                },
            },
            "comment": {"type": "string", "maxLength": REVIEW_COMMENT_MAX},
            "corrects_id": {"type": ["integer", "null"], "minimum": 1},
        },
    }


def validate_review(raw: Any, items: Sequence[ReviewItem] = ITEMS) -> ReviewDraft:
    """``{"items": {key: {"score", "comment"}}, "comment"?, "corrects_id"?}`` -> a draft.

    Every item must be scored, no unknown keys; raises :class:`InvalidReview` listing every
    problem at once.
    """
    problems: list[dict[str, str]] = []
    if not isinstance(raw, Mapping):
        raise InvalidReview(
            "send a JSON object", problems=[{"field": "", "message": "not an object"}]
        )
    unknown_fields = sorted(set(raw) - {"items", "comment", "corrects_id"})
    if unknown_fields:
        problems.append({"field": "", "message": f"unknown field(s): {', '.join(unknown_fields)}"})
    given = raw.get("items")
    if not isinstance(given, Mapping):
        problems.append({"field": "items", "message": "an object of item scores is required"})
        given = {}
    scores: dict[str, ItemScore] = {}
    for item in items:
        if item.key not in given:
            problems.append({"field": f"items.{item.key}", "message": "not scored"})
            continue
        scored = _score(item, given[item.key], problems)
        if scored is not None:
            scores[item.key] = scored
    known = {item.key for item in items}
    for key in sorted(str(k) for k in given if k not in known):
        problems.append({"field": f"items.{key[:40]}", "message": "no such item"})
    comment = _text(raw.get("comment"), REVIEW_COMMENT_MAX, "comment", problems)
    corrects_id = raw.get("corrects_id")
    if corrects_id is not None and (
        isinstance(corrects_id, bool) or not isinstance(corrects_id, int) or corrects_id < 1
    ):
        problems.append({"field": "corrects_id", "message": "must be a review id"})
        corrects_id = None
    if problems:
        raise InvalidReview("the review is incomplete or invalid", problems=problems)
    return ReviewDraft(
        items=scores,
        comment=comment,
        total=sum(score.score for score in scores.values()),
        max_total=max_total(items),
        corrects_id=corrects_id,
    )
