"""Danger words in transcripts: Chinese as vosk prints it, English, Korean."""

from __future__ import annotations

import pytest

from ivr.core.danger import find_danger_words
from ivr.settings import Settings

WORDS = {
    "zh": ["燃气泄漏", "漏气", "煤气味", "着火"],
    "en": ["gas leak", "fire", "smell of gas"],
    "ko": ["가스", "불이", "화재"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("燃 气 泄 漏", ["燃气泄漏"]),  # one character per word
        ("我 家 燃气 泄漏 了 快 来", ["燃气泄漏"]),  # words of two characters
        ("厨房 有 煤气味 好像 漏 气 了", ["漏气", "煤气味"]),  # config order, not text order
        ("着 火 了 着火 了", ["着火"]),  # once, however often it is heard
        ("燃气 费 怎么 交", []),
        ("", []),
    ],
)
def test_given_spaced_chinese_vosk_output_when_matching_then_spaces_are_ignored(text, expected):
    assert find_danger_words(text, WORDS, "zh") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There is a GAS LEAK in the kitchen", ["gas leak"]),
        ("gas   leak", ["gas leak"]),  # several spaces between the words
        ("Fire! fire!", ["fire"]),
        ("the firewood is wet and the campfire is out", []),  # no match inside a word
        ("a strong smell of gas", ["smell of gas"]),
        ("gasleak", []),
        ("ＦＩＲＥ", ["fire"]),  # full-width letters are NFKC-normalised
    ],
)
def test_given_english_when_matching_then_whole_words_case_insensitive(text, expected):
    assert find_danger_words(text, WORDS, "en") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("가스 냄새 가 나요", ["가스"]),
        ("가스가 새요", ["가스"]),  # particle attached to the word
        ("집에 불 이 났어요", ["불이"]),  # vosk printed the particle apart
        ("화재 신고 합니다", ["화재"]),
        ("휘발유가스 는 아니에요", []),  # 가스 inside a longer word, not at its start
        ("전기 요금 문의", []),
    ],
)
def test_given_korean_when_matching_then_word_start_with_particles(text, expected):
    assert find_danger_words(text, WORDS, "ko") == expected


def test_given_language_without_list_when_matching_then_nothing():
    assert find_danger_words("燃气泄漏 fire 가스", WORDS, "fr") == []


def test_given_blank_configured_word_when_matching_then_it_never_matches():
    assert find_danger_words("anything at all", {"en": ["", "  "]}, "en") == []


def test_given_default_settings_when_matching_then_the_chinese_list_is_used():
    danger = Settings().stt.danger_words
    assert find_danger_words("喂 我 闻到 燃 气 味 了 好像 燃气 泄漏", danger, "zh") == [
        "燃气泄漏",
        "燃气味",
    ]
