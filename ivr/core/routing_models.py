"""Routing data as validated models (input side). Pure: parsing files is the loader's job.

Sections (each may sit in any routing/*.yaml file, but only in one):

- ``hotline``: name, DIDs, emergency DIDs, menu keys, limits, time zone, prompt keys;
- ``queues``: the queue names dialplan/queues.conf defines;
- ``ringing``: per queue, how its members are rung: strategy, ring time, wrap-up (后处理) time;
- ``desks``: one per service (key, queue, category, label, hours, holidays);
- ``areas``: caller-number prefixes and account-number prefixes per area;
- ``priority_callers``: numbers that get a higher queue priority, with the reason;
- ``outages``: planned-outage notices per area (played before the menu);
- ``phrases``: the agents' standard phrases (标准话术), rendered by :mod:`ivr.core.phrases`.

Each file is validated alone (:class:`RoutingFileIn`), so a field error names its file and
line. The merged sections are then checked against each other by :func:`cross_check`, which
returns problems with a location (``("desks", 2, "queue")``) the loader maps to file:line.
:class:`Routing` is the merged, cross-checked whole the call flow is configured from; it
refuses to exist when :func:`cross_check` finds anything.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"
IDENTIFIER = r"^[a-z][a-z0-9_-]{0,39}$"
PROMPT_KEY = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # also a file name: build/prompts/<lang>/<key>.wav
LANGUAGES = ("zh", "en")
DEFAULT_TIMEZONE = "Asia/Shanghai"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MENU_KEYS = "0123456789*"  # '#' ends GET DATA, so it can never be a menu key
_TIME_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):([0-5]\d)|24:00)$")

Location = tuple[int | str, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- field types (per item, so an error's location names the bad entry) --------------------
def _did(did: str) -> str:
    if not (did.isascii() and did.isdigit()) or not 3 <= len(did) <= 20:
        raise ValueError(f"DID {did!r} must be 3 to 20 digits")
    return did


def _number(number: str) -> str:
    if not (number.isascii() and number.isdigit()) or not 3 <= len(number) <= 20:
        raise ValueError(f"{number!r} must be 3 to 20 digits (no spaces, no +)")
    return number


def _prefix(prefix: str) -> str:
    if not (prefix.isascii() and prefix.isdigit()) or not 1 <= len(prefix) <= 20:
        raise ValueError(f"prefix {prefix!r} must be 1 to 20 digits")
    return prefix


def _key(key: str) -> str:
    if len(key) != 1 or key not in MENU_KEYS:
        raise ValueError(f"key {key!r} must be one of 0-9 or * (quote it in YAML)")
    return key


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None
    return name


def _time_range(text: str) -> str:
    match = _TIME_RANGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} must be HH:MM-HH:MM (24 h clock, end up to 24:00)")
    start, end = parse_time_range(text)
    if start >= end:
        raise ValueError(f"{text!r} ends before it starts (split a range over midnight in two)")
    return text


def _days(spec: str) -> str:
    days_of(spec)  # raises ValueError on a bad spec
    return spec


Did = Annotated[str, AfterValidator(_did)]
Number = Annotated[str, AfterValidator(_number)]
Prefix = Annotated[str, AfterValidator(_prefix)]
Key = Annotated[str, AfterValidator(_key)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
TimeRange = Annotated[str, AfterValidator(_time_range)]
DaySpec = Annotated[str, AfterValidator(_days)]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
PromptKey = Annotated[str, Field(pattern=PROMPT_KEY)]


def parse_time_range(text: str) -> tuple[int, int]:
    """``"08:30-17:30"`` -> (510, 1050): minutes after local midnight, end exclusive."""
    start, end = text.split("-")
    return _minutes(start), _minutes(end)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def days_of(spec: str) -> tuple[str, ...]:
    """``"mon-fri"`` -> ("mon", ..., "fri"); ``"sat"`` -> ("sat",); ``"daily"`` -> all seven."""
    if spec == "daily":
        return WEEKDAYS
    first, dash, last = spec.partition("-")
    last = last if dash else first
    if first not in WEEKDAYS or last not in WEEKDAYS:
        raise ValueError(f"{spec!r} must be a weekday (mon..sun), a range (mon-fri) or daily")
    lo, hi = WEEKDAYS.index(first), WEEKDAYS.index(last)
    if lo > hi:
        raise ValueError(f"{spec!r}: a range runs from mon towards sun")
    return WEEKDAYS[lo : hi + 1]


# --- hotline ----------------------------------------------------------------------------------
class AccountRulesIn(_Strict):
    """How an account number (户号) is keyed in: digits then #, read back for confirmation."""

    min_digits: int = Field(default=8, ge=4, le=20)
    max_digits: int = Field(default=12, ge=4, le=20)
    timeout_s: int = Field(default=10, ge=3, le=30)  # wait after the prompt and between keys
    confirm_key: Key = "1"
    reenter_key: Key = "2"

    @model_validator(mode="after")
    def _ordered(self) -> AccountRulesIn:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is above max_digits")
        if self.confirm_key == self.reenter_key:
            raise ValueError("confirm_key and reenter_key are the same key")
        return self


class VoiceMessageIn(_Strict):
    """After hours: the caller may leave a message (recorded after a beep)."""

    offer_key: Key = "1"  # "to leave a message press 1"
    decline_key: Key = "2"  # "... or press 2 to end the call"
    max_s: int = Field(default=120, ge=10, le=600)  # longest message
    silence_s: int = Field(default=5, ge=2, le=30)  # this much silence ends the message
    min_s: float = Field(default=1.0, ge=0, le=10)  # shorter counts as a silent caller

    @model_validator(mode="after")
    def _distinct(self) -> VoiceMessageIn:
        if self.offer_key == self.decline_key:
            raise ValueError("offer_key and decline_key are the same key")
        return self


class HotlinePromptsIn(_Strict):
    """Prompt keys (prompts/catalog.yaml) the call flow plays; each must exist in zh and en."""

    greeting: PromptKey = "greeting"  # 您好，{hotline_name}，请问有什么可以帮您
    emergency: PromptKey = "emergency-notice"  # 如遇燃气泄漏等紧急情况请按9 (first, always)
    menu: PromptKey = "menu"  # one key per desk, 0 for a person, * to repeat, 8 English
    invalid: PromptKey = "invalid-input"  # 输入有误
    silence: PromptKey = "silence"  # 您好！您的电话已接通，请讲话
    account_entry: PromptKey = "account-entry"
    account_invalid: PromptKey = "account-invalid"
    account_readback: PromptKey = "account-readback"  # then the digits, one prompt each
    account_confirm: PromptKey = "account-confirm"
    message_offer: PromptKey = "message-offer"
    message_thanks: PromptKey = "message-thanks"
    goodbye: PromptKey = "goodbye"
    digit_prefix: PromptKey = "digit-"  # read-back digits: digit-0 ... digit-9


class SurveyIn(_Strict):
    """The post-call survey (ivr.core.survey): asked when the agent hangs up first, on the
    desks with ``survey`` on (desks.yaml; default: every desk but the emergency one)."""

    timeout_s: int = Field(default=5, ge=2, le=30)  # no key this long: `no answer`
    retries: int = Field(default=1, ge=0, le=3)  # wrong keys answered with the question again
    question: PromptKey = "survey-question"  # 满意请按1，基本满意请按2，不满意请按3
    invalid: PromptKey = "survey-invalid"  # 输入有误 (then the question again)
    thanks: PromptKey = "survey-thanks"  # after an answer


class OutboundTrunkIn(_Strict):
    """The one trunk outbound calls leave by (the 回访 and agents' call-backs): a pjsip
    endpoint ``outbound`` rendered into the generated config, to ``host:port``."""

    host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.-]{1,100}$")
    port: int = Field(default=5090, ge=1, le=65535)
    caller_id: Number  # the hotline's number, shown to the callee
    ring_s: int = Field(default=30, ge=5, le=120)  # then the attempt is `no answer`


class FollowupIn(_Strict):
    """回访: automated follow-up calls after a ticket reaches 已完成 (ivr.core.followup)."""

    enabled: bool = True  # false: the ami role places no 回访 calls (they wait in SQL)
    calling_hours: TimeRange = "08:00-20:00"  # local (hotline.timezone), end exclusive
    max_attempts: int = Field(default=3, ge=1, le=10)  # N: then the agents' worklist
    spacing_min: int = Field(default=30, ge=0, le=1440)  # M: between two attempts
    max_concurrent: int = Field(default=3, ge=0, le=100)  # outbound calls at once
    due_within_h: int = Field(default=24, ge=1, le=720)  # per desk: desks.yaml followup_within_h
    intro: PromptKey = "followup-intro"  # who is calling and why
    question: PromptKey = "followup-resolved"  # resolved? 1 yes, 2 no
    trunk: OutboundTrunkIn


class HotlineIn(_Strict):
    name: str = Field(min_length=1, max_length=40)  # spoken in the greeting
    dids: list[Did] = Field(min_length=1)  # hotline numbers
    emergency_dids: list[Did] = Field(default_factory=list)  # leak lines: dialplan only
    default_language: str = Field(default="zh", pattern=r"^(zh|en)$")
    default_queue: QueueName  # the person key's desk (by its queue): 0, silence, wrong keys
    after_hours_queue: QueueName = "emergency"  # a silent caller when that desk is closed
    timezone: TimeZone = DEFAULT_TIMEZONE  # hours, holidays and naive outage times
    emergency_key: Key = "9"  # announced first; ends the flow at the emergency path
    english_key: Key = "8"  # switches zh <-> en
    person_key: Key = "0"
    repeat_key: Key = "*"
    max_invalid: int = Field(default=3, ge=1, le=9)  # wrong keys, then a person
    silence_timeout_s: int = Field(default=3, ge=1, le=30)  # wait for a key after a prompt
    silence_repeats: int = Field(default=2, ge=1, le=5)  # silence prompts, then a person
    max_menu_plays: int = Field(default=5, ge=1, le=20)  # repeats/switches, then a person
    account: AccountRulesIn = Field(default_factory=AccountRulesIn)
    voice_message: VoiceMessageIn = Field(default_factory=VoiceMessageIn)
    prompts: HotlinePromptsIn = Field(default_factory=HotlinePromptsIn)
    survey: SurveyIn = Field(default_factory=SurveyIn)
    followup: FollowupIn | None = None  # none: no 回访 calls are placed

    @field_validator("dids")
    @classmethod
    def _no_duplicates(cls, dids: list[str]) -> list[str]:
        if len(set(dids)) != len(dids):
            raise ValueError("a DID is listed twice")
        return dids


# --- desks --------------------------------------------------------------------------------------
class LabelIn(_Strict):
    zh: str = Field(min_length=1, max_length=40)
    en: str = Field(min_length=1, max_length=60)


class DeskIn(_Strict):
    """One service desk: its menu key, its queue, and when people answer it."""

    id: Identifier
    key: Key | None = None  # menu key; none for the emergency desk (hotline.emergency_key)
    queue: QueueName
    category: Identifier  # IVR_CATEGORY: the ticket category
    label: LabelIn
    emergency: bool = False  # the emergency desk (exactly one, 24 h)
    always_open: bool = False  # 24 h: no hours, no holidays
    hours: dict[DaySpec, list[TimeRange]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)  # closed all day
    timezone: TimeZone | None = None  # default: hotline.timezone
    account_entry: bool = False  # ask for the account number before queueing
    closed_prompt: PromptKey | None = None  # after hours: the hours and the emergency number
    survey: bool | None = None  # the post-call survey; default: on, off for the emergency desk
    followup_within_h: int | None = Field(default=None, ge=1, le=720)  # 回访 due; default 24

    @property
    def survey_on(self) -> bool:
        """Whether callers of this desk are asked the post-call survey."""
        return self.survey if self.survey is not None else not self.emergency

    @field_validator("hours")
    @classmethod
    def _one_entry_per_day(cls, hours: dict[str, list[str]]) -> dict[str, list[str]]:
        """Normalised to one entry per weekday, ranges sorted; overlaps are errors."""
        week: dict[str, list[str]] = {}
        for spec, ranges in hours.items():
            for day in days_of(spec):
                if day in week:
                    raise ValueError(f"{day} is given twice (in {spec!r} and another entry)")
                week[day] = sorted(ranges, key=parse_time_range)
        for day, ranges in week.items():
            spans = [parse_time_range(r) for r in ranges]
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                if start < end:
                    raise ValueError(f"{day}: time ranges overlap")
        return {day: week[day] for day in WEEKDAYS if day in week}

    @model_validator(mode="after")
    def _consistent(self) -> DeskIn:
        if self.emergency:
            if not self.always_open:
                raise ValueError("the emergency desk must be always_open (24 h)")
            if self.key is not None:
                raise ValueError("the emergency desk has no key: hotline.emergency_key leads to it")
            if self.account_entry:
                raise ValueError("the emergency desk does not ask for an account number")
        elif self.key is None:
            raise ValueError("a desk needs a menu key")
        if self.always_open:
            if self.hours or self.holidays:
                raise ValueError("an always_open desk has no hours or holidays")
        else:
            if not any(self.hours.values()):
                raise ValueError("a desk needs hours, or always_open: true")
            if self.closed_prompt is None:
                raise ValueError("a desk with hours needs a closed_prompt (said after hours)")
        return self


# --- areas, priority callers, outages -----------------------------------------------------
class AreaIn(_Strict):
    """Where a caller is: by the start of their number or of their account number."""

    id: Identifier
    name: str = Field(min_length=1, max_length=40)
    caller_prefixes: list[Prefix] = Field(default_factory=list)
    account_prefixes: list[Prefix] = Field(default_factory=list)


class PriorityReason(StrEnum):
    ELDERLY_ALONE = "elderly_alone"  # an elderly person living alone
    KEY_ACCOUNT = "key_account"  # a key account (hospital, school, large customer)


class PriorityCallerIn(_Strict):
    number: Number  # as the caller ID arrives, normalised (see routing.normalize_number)
    priority: int = Field(ge=1, le=9)  # IVR_PRIORITY; 0 is everybody else
    reason: PriorityReason


class OutageIn(_Strict):
    """A planned outage: callers from the area hear ``prompt`` before the menu."""

    area: Identifier
    starts: datetime  # naive times are in hotline.timezone
    ends: datetime
    announce_from: datetime | None = None  # default: from the start
    prompt: PromptKey

    @model_validator(mode="after")
    def _ordered(self) -> OutageIn:
        starts, ends = _comparable(self.starts, self.ends)
        if ends <= starts:
            raise ValueError("ends is not after starts")
        if self.announce_from is not None:
            announce, starts = _comparable(self.announce_from, self.starts)
            if announce > starts:
                raise ValueError("announce_from is after starts")
        return self


def _comparable(a: datetime, b: datetime) -> tuple[datetime, datetime]:
    """Naive and aware datetimes side by side: compare as wall-clock times."""
    if (a.tzinfo is None) != (b.tzinfo is None):
        return a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a, b


# --- phrases (标准话术) -------------------------------------------------------------------------
#: What a phrase's text may fill in (``{work_number}``): the agent's 工号, the hotline's name,
#: the customer's form of address, the time-of-day greeting, and the complaint reply time.
PHRASE_FIELDS = ("work_number", "hotline_name", "customer", "day_part", "reply_within")
#: The phrases every hotline has (ivr.core.phrases); more may follow them.
REQUIRED_PHRASES = ("greeting", "readback", "wait", "complaint", "closing")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _phrase_text(text: str) -> str:
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PHRASE_FIELDS or spec or conversion:
            raise ValueError(
                f"{{{field}}} is not a field phrases fill in; they are: "
                + ", ".join(f"{{{f}}}" for f in PHRASE_FIELDS)
            )
    return text


def _hhmm(text: str) -> str:
    if _HHMM.match(text) is None:
        raise ValueError(f"{text!r} must be HH:MM (24 h clock)")
    return text


PhraseText = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_phrase_text)]
ClockTime = Annotated[str, AfterValidator(_hhmm)]


class PhraseTextIn(_Strict):
    """A phrase as said in each language of the call."""

    zh: PhraseText
    en: PhraseText


class PhraseIn(_Strict):
    """One standard phrase: what the agent says every day, and on days off if it differs."""

    id: Identifier
    label: LabelIn  # what the agent sees above it
    text: PhraseTextIn  # working days, and any day without a variant below
    weekend: PhraseTextIn | None = None  # Saturdays and Sundays off (not make-up workdays)
    holiday: PhraseTextIn | None = None  # the days of tickets.holidays


class DayPartIn(_Strict):
    """A part of the day, from ``starts`` (local time) until the next part starts."""

    id: Identifier
    starts: ClockTime
    zh: str = Field(min_length=1, max_length=20)  # {day_part} in Chinese: 上午好
    en: str = Field(min_length=1, max_length=40)  # and in English: Good morning


class PhrasesIn(_Strict):
    """The agents' standard phrases (标准话术) and what they fill in."""

    hotline_name_en: str = Field(min_length=1, max_length=80)  # hotline.name, said in English
    complaint_desk: Identifier  # the desk whose ticket level sets {reply_within} by default
    day_parts: list[DayPartIn] = Field(min_length=1)  # by start; before the first: the last
    items: list[PhraseIn] = Field(min_length=1)

    @field_validator("day_parts")
    @classmethod
    def _in_order(cls, parts: list[DayPartIn]) -> list[DayPartIn]:
        starts = [parse_clock(p.starts) for p in parts]
        if any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError("day parts must be listed by their start, each later than the last")
        if len({p.id for p in parts}) != len(parts):
            raise ValueError("a day part id is listed twice")
        return parts

    @field_validator("items")
    @classmethod
    def _complete(cls, items: list[PhraseIn]) -> list[PhraseIn]:
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("a phrase id is listed twice")
        missing = [required for required in REQUIRED_PHRASES if required not in ids]
        if missing:
            raise ValueError(f"missing phrases: {', '.join(missing)}")
        return items


def parse_clock(hhmm: str) -> int:
    """``"12:00"`` -> 720: minutes after local midnight."""
    return _minutes(hhmm)


class RingStrategy(StrEnum):
    """How a queue rings its logged-in members (Asterisk's queue strategies).

    With penalties (an agent's level per desk), every strategy first tries the members with
    the lowest penalty: that is ringing "by skill"."""

    RINGALL = "ringall"  # everyone at once: the emergency crews
    LEASTRECENT = "leastrecent"  # the member whose last call ended longest ago
    FEWESTCALLS = "fewestcalls"
    RRMEMORY = "rrmemory"  # round robin, remembering where it stopped
    LINEAR = "linear"  # in the order members logged in
    RANDOM = "random"
    WRANDOM = "wrandom"  # random, weighted by penalty


class RingingIn(_Strict):
    """How one queue rings its members. Unlisted queues ring all, 15 s, no wrap-up."""

    strategy: RingStrategy = RingStrategy.RINGALL
    ring_s: int = Field(default=15, ge=5, le=120)  # one member rings this long, then the next
    wrapup_s: int = Field(default=0, ge=0, le=900)  # 后处理: quiet time after each call


# --- 工单: departments and problem types ------------------------------------------------------
class DepartmentIn(_Strict):
    """A department tickets are dispatched to (维修, 收费, 供热运行 ...)."""

    id: Identifier
    label: LabelIn


class ProblemSubtypeIn(_Strict):
    id: Identifier
    label: LabelIn


class ProblemTypeIn(_Strict):
    """A category of the 工单's problem type, with its subcategories, and the department its
    tickets usually go to (the form proposes it; the agent may choose another)."""

    id: Identifier
    label: LabelIn
    department: Identifier | None = None
    subtypes: list[ProblemSubtypeIn] = Field(min_length=1)


# --- files and the merged whole ---------------------------------------------------------------
class RoutingFileIn(_Strict):
    """One routing file: any of the sections, each at most once across all files."""

    hotline: HotlineIn | None = None
    queues: list[QueueName] | None = None
    ringing: dict[QueueName, RingingIn] | None = None
    desks: list[DeskIn] | None = None
    areas: list[AreaIn] | None = None
    priority_callers: list[PriorityCallerIn] | None = None
    outages: list[OutageIn] | None = None
    phrases: PhrasesIn | None = None
    departments: list[DepartmentIn] | None = None
    problem_types: list[ProblemTypeIn] | None = None


class RoutingSections(_Strict):
    """All sections merged, each valid on its own; not yet checked against each other."""

    hotline: HotlineIn
    queues: list[QueueName] = Field(min_length=1)
    ringing: dict[QueueName, RingingIn] = Field(default_factory=dict)
    desks: list[DeskIn] = Field(min_length=1)
    areas: list[AreaIn] = Field(default_factory=list)
    priority_callers: list[PriorityCallerIn] = Field(default_factory=list)
    outages: list[OutageIn] = Field(default_factory=list)
    phrases: PhrasesIn | None = None  # the agent desk's standard phrases (none: not offered)
    departments: list[DepartmentIn] = Field(default_factory=list)
    problem_types: list[ProblemTypeIn] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoutingProblem:
    loc: Location  # where in the merged sections, e.g. ("desks", 2, "queue")
    message: str

    @property
    def where(self) -> str:
        return ".".join(str(p) for p in self.loc)


class Routing(RoutingSections):
    """All routing files merged and cross-checked: what the call flow is configured from."""

    _desk_by_key: dict[str, DeskIn] = PrivateAttr(default_factory=dict)
    _desk_by_id: dict[str, DeskIn] = PrivateAttr(default_factory=dict)
    _priority: dict[str, PriorityCallerIn] = PrivateAttr(default_factory=dict)
    _caller_prefix: dict[str, str] = PrivateAttr(default_factory=dict)
    _account_prefix: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checked(self) -> Routing:
        problems = cross_check(self)
        if problems:
            raise ValueError("; ".join(f"{p.where}: {p.message}" for p in problems))
        self._desk_by_key = {d.key: d for d in self.desks if d.key is not None}
        self._desk_by_id = {d.id: d for d in self.desks}
        self._priority = {p.number: p for p in self.priority_callers}
        self._caller_prefix = {p: a.id for a in self.areas for p in a.caller_prefixes}
        self._account_prefix = {p: a.id for a in self.areas for p in a.account_prefixes}
        return self

    # Lookups (evaluation rules live in ivr.core.routing).
    def ringing_of(self, queue: str) -> RingingIn:
        return self.ringing.get(queue, RingingIn())

    def desk_for_key(self, key: str) -> DeskIn | None:
        return self._desk_by_key.get(key)

    def desk(self, desk_id: str) -> DeskIn:
        return self._desk_by_id[desk_id]

    def person_desk(self) -> DeskIn:
        return next(
            d for d in self.desks if not d.emergency and d.queue == self.hotline.default_queue
        )

    def emergency_desk(self) -> DeskIn:
        return next(d for d in self.desks if d.emergency)

    def after_hours_desk(self) -> DeskIn:
        return next(
            d for d in self.desks if d.always_open and d.queue == self.hotline.after_hours_queue
        )

    def priority_caller(self, number: str) -> PriorityCallerIn | None:
        return self._priority.get(number)

    def caller_prefixes(self) -> dict[str, str]:
        return self._caller_prefix

    def account_prefixes(self) -> dict[str, str]:
        return self._account_prefix

    def department(self, department_id: str) -> DepartmentIn | None:
        return next((d for d in self.departments if d.id == department_id), None)

    def problem_type(self, type_id: str) -> ProblemTypeIn | None:
        return next((t for t in self.problem_types if t.id == type_id), None)


# --- cross-references -------------------------------------------------------------------------
def cross_check(routing: RoutingSections) -> list[RoutingProblem]:
    """Every problem between sections, each with the location of the entry at fault."""
    return [
        *_duplicates([(("queues", i), q) for i, q in enumerate(routing.queues)]),
        *_queue_problems(routing),
        *_key_problems(routing),
        *_desk_problems(routing),
        *_did_problems(routing),
        *_area_problems(routing),
        *_phrase_problems(routing),
        *_ticket_problems(routing),
        *_duplicates(
            [
                (("priority_callers", i, "number"), p.number)
                for i, p in enumerate(routing.priority_callers)
            ]
        ),
    ]


def _duplicates(entries: Sequence[tuple[Location, str]]) -> Iterator[RoutingProblem]:
    """A problem at each entry whose value an earlier entry already has."""
    seen: set[str] = set()
    for loc, value in entries:
        if value in seen:
            yield RoutingProblem(loc, f"{value!r} is listed twice")
        seen.add(value)


def _queue_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    known = set(routing.queues)
    for queue in routing.ringing:
        if queue not in known:
            yield RoutingProblem(("ringing", queue), f"{queue!r} is not in queues")
    for i, desk in enumerate(routing.desks):
        if desk.queue not in known:
            yield RoutingProblem(("desks", i, "queue"), f"{desk.queue!r} is not in queues")
    hotline = routing.hotline
    person = [d for d in routing.desks if not d.emergency and d.queue == hotline.default_queue]
    if not person:
        yield RoutingProblem(
            ("hotline", "default_queue"),
            f"no desk (other than emergency) has queue {hotline.default_queue!r}",
        )
    night = [d for d in routing.desks if d.always_open and d.queue == hotline.after_hours_queue]
    if not night:
        yield RoutingProblem(
            ("hotline", "after_hours_queue"),
            f"no always_open desk has queue {hotline.after_hours_queue!r}",
        )


def _key_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    hotline = routing.hotline
    menu_keys = {
        "emergency_key": hotline.emergency_key,
        "person_key": hotline.person_key,
        "repeat_key": hotline.repeat_key,
        "english_key": hotline.english_key,
    }
    taken: dict[str, str] = {}
    for field, key in menu_keys.items():
        if key in taken:
            yield RoutingProblem(("hotline", field), f"key {key!r} is also {taken[key]}")
        taken.setdefault(key, f"hotline.{field}")
    for i, desk in enumerate(routing.desks):
        if desk.key is None:
            continue
        if desk.key in taken:
            yield RoutingProblem(("desks", i, "key"), f"key {desk.key!r} is also {taken[desk.key]}")
        taken.setdefault(desk.key, f"the key of desk {desk.id!r}")
    # The emergency key also works where the caller confirms an account or answers the
    # message offer: those keys must differ from it.
    for section, field, key in (
        ("account", "confirm_key", hotline.account.confirm_key),
        ("account", "reenter_key", hotline.account.reenter_key),
        ("voice_message", "offer_key", hotline.voice_message.offer_key),
        ("voice_message", "decline_key", hotline.voice_message.decline_key),
    ):
        if key == hotline.emergency_key:
            yield RoutingProblem(("hotline", section, field), f"key {key!r} is the emergency key")


def _desk_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    yield from _duplicates([(("desks", i, "id"), d.id) for i, d in enumerate(routing.desks)])
    emergency = [i for i, d in enumerate(routing.desks) if d.emergency]
    if not emergency:
        yield RoutingProblem(("desks",), "no desk has emergency: true")
    for i in emergency[1:]:
        yield RoutingProblem(("desks", i, "emergency"), "a second emergency desk")


def _did_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    hotline = routing.hotline
    seen: set[str] = set()
    for i, did in enumerate(hotline.emergency_dids):
        if did in hotline.dids:
            yield RoutingProblem(
                ("hotline", "emergency_dids", i), f"{did!r} is also a hotline DID (dids)"
            )
        elif did in seen:
            yield RoutingProblem(("hotline", "emergency_dids", i), f"{did!r} is listed twice")
        seen.add(did)


def _area_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    yield from _duplicates([(("areas", i, "id"), a.id) for i, a in enumerate(routing.areas)])
    for field in ("caller_prefixes", "account_prefixes"):
        owner: dict[str, str] = {}
        for i, area in enumerate(routing.areas):
            prefixes: list[str] = getattr(area, field)
            for j, prefix in enumerate(prefixes):
                if prefix in owner:
                    yield RoutingProblem(
                        ("areas", i, field, j), f"prefix {prefix!r} is also in {owner[prefix]!r}"
                    )
                owner.setdefault(prefix, area.id)
    areas = {a.id for a in routing.areas}
    for i, outage in enumerate(routing.outages):
        if outage.area not in areas:
            yield RoutingProblem(("outages", i, "area"), f"no area {outage.area!r} in areas")


def _phrase_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    phrases = routing.phrases
    if phrases is not None and phrases.complaint_desk not in {d.id for d in routing.desks}:
        yield RoutingProblem(
            ("phrases", "complaint_desk"), f"no desk {phrases.complaint_desk!r} in desks"
        )


def _ticket_problems(routing: RoutingSections) -> Iterator[RoutingProblem]:
    departments = routing.departments
    yield from _duplicates([(("departments", i, "id"), d.id) for i, d in enumerate(departments)])
    known = {d.id for d in departments}
    types = routing.problem_types
    yield from _duplicates([(("problem_types", i, "id"), t.id) for i, t in enumerate(types)])
    for i, kind in enumerate(types):
        yield from _duplicates(
            [(("problem_types", i, "subtypes", j, "id"), s.id) for j, s in enumerate(kind.subtypes)]
        )
        if kind.department is not None and kind.department not in known:
            yield RoutingProblem(
                ("problem_types", i, "department"),
                f"no department {kind.department!r} in departments",
            )


# --- prompts --------------------------------------------------------------------------------
def prompt_references(routing: RoutingSections) -> list[tuple[Location, str]]:
    """Every prompt key the routing makes the call flow play, with where it is named."""
    prompts = routing.hotline.prompts
    refs: list[tuple[Location, str]] = [
        (("hotline", "prompts", field), getattr(prompts, field))
        for field in HotlinePromptsIn.model_fields
        if field != "digit_prefix"
    ]
    refs += [
        (("hotline", "prompts", "digit_prefix"), f"{prompts.digit_prefix}{d}") for d in "0123456789"
    ]
    survey = routing.hotline.survey
    refs += [
        (("hotline", "survey", name), getattr(survey, name))
        for name in ("question", "invalid", "thanks")
    ]
    if routing.hotline.followup is not None:
        refs += [
            (("hotline", "followup", name), getattr(routing.hotline.followup, name))
            for name in ("intro", "question")
        ]
    refs += [
        (("desks", i, "closed_prompt"), desk.closed_prompt)
        for i, desk in enumerate(routing.desks)
        if desk.closed_prompt is not None
    ]
    refs += [(("outages", i, "prompt"), o.prompt) for i, o in enumerate(routing.outages)]
    return refs


def missing_prompts(
    routing: RoutingSections,
    available: Collection[tuple[str, str]],
    languages: Sequence[str] = LANGUAGES,
) -> list[RoutingProblem]:
    """Prompts the routing names that the catalog lacks in some language.

    ``available`` holds ``(key, language)`` pairs, e.g. from the prompt catalog.
    """
    have = set(available)
    problems = []
    for loc, key in prompt_references(routing):
        missing = [lang for lang in languages if (key, lang) not in have]
        if missing:
            problems.append(
                RoutingProblem(loc, f"prompt {key!r} is not in the catalog in {'/'.join(missing)}")
            )
    return problems


def defined_queue_problems(
    routing: RoutingSections, defined: Collection[str]
) -> list[RoutingProblem]:
    """Queues the routing names that the dialplan (queues.conf) does not define."""
    return [
        RoutingProblem(("queues", i), f"queue {queue!r} is not defined in queues.conf")
        for i, queue in enumerate(routing.queues)
        if queue not in defined
    ]
