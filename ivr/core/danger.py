"""Danger words in a transcript (pure): 燃气泄漏, 漏气, 着火, gas leak, 가스, ...

The words come from the setting ``stt.danger_words``, one list per language. How a word is
matched depends on how the language writes words, and on how vosk prints them:

- **Chinese, Japanese, Thai, Lao, Khmer, Burmese** are written without spaces, and vosk prints
  its words with spaces between them ("燃 气 泄 漏", "燃气 泄漏"). Spaces are removed from the
  transcript and the danger word, then the word is looked for as a plain substring.
- **Korean** attaches particles to the end of a word (가스가, 가스를), and vosk sometimes
  prints them apart (가스 가). A danger word matches where a word starts, whatever follows,
  and spaces inside it may or may not be in the transcript (불이 = 불 이).
- **Other languages** (English, ...) match whole words, case-insensitively: "fire" matches
  "Fire!" but not "firewood"; "gas leak" matches "gas  leak".

Text is NFKC-normalised first (full-width letters and digits become ordinary ones).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my"})
PARTICLE_LANGUAGES = frozenset({"ko"})

_SPACES = re.compile(r"\s+")


def find_danger_words(text: str, words: Mapping[str, Sequence[str]], language: str) -> list[str]:
    """The danger words of ``language`` heard in ``text``, as configured, in list order."""
    candidates = words.get(language, ())
    normalised = _normalise(text)
    found: list[str] = []
    for word in candidates:
        if word in found or not word.strip():
            continue
        if _matches(normalised, _normalise(word), language):
            found.append(word)
    return found


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _matches(text: str, word: str, language: str) -> bool:
    if language in NO_SPACE_LANGUAGES:
        return word.replace(" ", "") in text.replace(" ", "")
    if language in PARTICLE_LANGUAGES:
        body = r"\s*".join(re.escape(ch) for ch in word.replace(" ", ""))
        return re.search(rf"(?<!\w){body}", text) is not None
    body = r"\s+".join(re.escape(part) for part in word.split(" "))
    return re.search(rf"(?<!\w){body}(?!\w)", text) is not None
