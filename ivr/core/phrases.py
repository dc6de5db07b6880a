"""The agents' standard phrases (标准话术) rendered for one moment of one call. Pure.

The phrases are data (``routing/phrases.yaml``, section ``phrases``:
:class:`ivr.core.routing_models.PhrasesIn`). What is filled in:

- ``{work_number}``: the agent's 工号;
- ``{hotline_name}``: ``hotline.name`` (``phrases.hotline_name_en`` in English);
- ``{customer}``: the customer's surname and 先生/女士 (``王先生``; ``Mr 王`` in English), or
  ``先生/女士`` (``Sir or Madam``) while no surname is known;
- ``{day_part}``: the greeting of the part of the day the hotline's local time falls in (the
  part whose ``starts`` is the latest not after it; before the first part, the last one);
- ``{reply_within}``: the reply time of the complaint's level (L1 2小时, L2 48小时, L3 4个工作日,
  L4 7个工作日: :mod:`ivr.core.tickets`).

Which text: on a working day ``text``; on a Saturday or Sunday off the ``weekend`` variant, on a
holiday (``tickets.holidays``) the ``holiday`` one, each falling back to ``text``; a make-up
working day (``tickets.workdays``) is a working day. The day is the hotline's local day
(:class:`ivr.core.tickets.Calendar`, the same rules as the tickets' deadlines).

The clock and the customer are inputs; the language is the call's (``zh``, or ``en`` once the
caller pressed the English key). An English call's phrases carry the Chinese text beside them
(``gloss``) for the agent.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from ivr.core.routing_models import LANGUAGES, DayPartIn, PhrasesIn, PhraseTextIn, parse_clock
from ivr.core.tickets import LEVEL_HOURS, LEVEL_WORKING_DAYS, Calendar, Level
from ivr.errors import HotlineError

TITLES: Final = {"先生": "Mr", "女士": "Ms"}
UNKNOWN_CUSTOMER: Final = {"zh": "先生/女士", "en": "Sir or Madam"}
MAX_SURNAME: Final = 20


class InvalidPhraseRequest(HotlineError):
    """A request for the phrases with a bad surname, title, level or language (HTTP 422)."""

    slug = "invalid-phrase-request"
    status = 422


class DayKind(enum.StrEnum):
    workday = "workday"  # Monday to Friday, and make-up working days (调休)
    weekend = "weekend"  # a Saturday or Sunday off
    holiday = "holiday"  # a day of tickets.holidays


@dataclass(frozen=True, slots=True)
class Customer:
    """The form of address typed into the 工单: a surname and 先生 or 女士."""

    surname: str
    title: str

    @classmethod
    def of(cls, surname: str | None, title: str | None) -> Customer | None:
        """The customer from a request's fields; None when neither is given.

        >>> Customer.of(" 王 ", "先生")
        Customer(surname='王', title='先生')
        >>> Customer.of(None, None) is None
        True
        >>> Customer.of("王", "小姐")
        Traceback (most recent call last):
        ...
        ivr.core.phrases.InvalidPhraseRequest: title must be 先生 or 女士, not '小姐'
        """
        surname = (surname or "").strip()
        if not surname and not title:
            return None
        if not surname:
            raise InvalidPhraseRequest("a title needs a surname", field="surname")
        if len(surname) > MAX_SURNAME or not all(_printable(c) for c in surname):
            raise InvalidPhraseRequest(
                f"surname: at most {MAX_SURNAME} printable characters", field="surname"
            )
        if title not in TITLES:
            raise InvalidPhraseRequest(f"title must be 先生 or 女士, not {title!r}", field="title")
        return cls(surname, title)

    def address(self, language: str) -> str:
        """``王先生`` in Chinese, ``Mr 王`` in English."""
        if language == "en":
            return f"{TITLES[self.title]} {self.surname}"
        return f"{self.surname}{self.title}"


def _printable(char: str) -> bool:
    return unicodedata.category(char)[0] not in "CZ" or char == " "


@dataclass(frozen=True, slots=True)
class Phrase:
    id: str
    label_zh: str
    label_en: str
    text: str  # in the call's language, filled in
    variant: str  # which text was taken: "text", "weekend" or "holiday"
    gloss: str | None  # an English call's phrase in Chinese, for the agent (None: a zh call)


@dataclass(frozen=True, slots=True)
class Rendered:
    language: str
    day: date  # the hotline's local day
    day_kind: DayKind
    day_part: str  # the id of the part of the day
    level: Level  # whose reply time {reply_within} is
    customer_known: bool  # False: {customer} is 先生/女士 until a surname is typed
    phrases: tuple[Phrase, ...]


def day_kind(day: date, calendar: Calendar) -> DayKind:
    """A local day's kind.

    >>> from datetime import UTC
    >>> cal = Calendar.of(UTC, holidays=[date(2027, 10, 1)], workdays=[date(2027, 9, 26)])
    >>> [day_kind(date(2027, 9, d), cal).value for d in (24, 25, 26)]  # Fri, Sat, Sun worked
    ['workday', 'weekend', 'workday']
    >>> day_kind(date(2027, 10, 1), cal).value
    'holiday'
    """
    if calendar.is_working_day(day):
        return DayKind.workday
    return DayKind.holiday if day in calendar.holidays else DayKind.weekend


def day_part(parts: list[DayPartIn], minutes: int) -> DayPartIn:
    """The part of the day ``minutes`` after local midnight falls in (``parts`` by start)."""
    started = [p for p in parts if parse_clock(p.starts) <= minutes]
    return started[-1] if started else parts[-1]


def reply_within(level: Level, language: str) -> str:
    """How soon a complaint of ``level`` is answered, as said in ``language``.

    >>> reply_within(Level.L1, "zh"), reply_within(Level.L3, "zh"), reply_within(Level.L4, "en")
    ('2小时', '4个工作日', '7 working days')
    """
    if level in LEVEL_HOURS:
        hours = LEVEL_HOURS[level]
        return f"{hours}小时" if language == "zh" else f"{hours} hours"
    days = LEVEL_WORKING_DAYS[level]
    return f"{days}个工作日" if language == "zh" else f"{days} working days"


def parse_level(value: str) -> Level:
    try:
        return Level(value.upper())
    except ValueError:
        raise InvalidPhraseRequest(
            f"level must be one of {', '.join(lv.value for lv in Level)}, not {value!r}",
            field="level",
        ) from None


def check_language(value: str) -> str:
    if value not in LANGUAGES:
        raise InvalidPhraseRequest(
            f"lang must be one of {', '.join(LANGUAGES)}, not {value!r}", field="lang"
        )
    return value


def _text(texts: PhraseTextIn, language: str) -> str:
    return texts.en if language == "en" else texts.zh


def render(
    phrases: PhrasesIn,
    *,
    hotline_name: str,
    work_number: str,
    customer: Customer | None,
    language: str,
    now: datetime,
    calendar: Calendar,
    level: Level,
) -> Rendered:
    """Every phrase filled in for the moment ``now`` (aware) in the hotline's time zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    check_language(language)
    local = now.astimezone(calendar.zone)
    kind = day_kind(local.date(), calendar)
    part = day_part(phrases.day_parts, local.hour * 60 + local.minute)
    fields = {
        lang: {
            "work_number": work_number,
            "hotline_name": phrases.hotline_name_en if lang == "en" else hotline_name,
            "customer": customer.address(lang) if customer else UNKNOWN_CUSTOMER[lang],
            "day_part": part.en if lang == "en" else part.zh,
            "reply_within": reply_within(level, lang),
        }
        for lang in LANGUAGES
    }
    rendered = []
    for item in phrases.items:
        variant = kind.value if kind is not DayKind.workday else "text"
        texts = getattr(item, variant) if variant != "text" else None
        if texts is None:
            variant, texts = "text", item.text
        text = _text(texts, language).format(**fields[language])
        gloss = texts.zh.format(**fields["zh"]) if language == "en" else None
        rendered.append(Phrase(item.id, item.label.zh, item.label.en, text, variant, gloss))
    return Rendered(
        language, local.date(), kind, part.id, level, customer is not None, tuple(rendered)
    )
