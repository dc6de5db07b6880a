"""What a QA search asks for, normalised: time bounds in UTC, the caller's last digits as an
index range on the reversed number, pages. Pure (time zone names are inputs, no clock).

The caller filter takes a whole number or its last digits (at least 3): spaces, dashes,
brackets and a leading ``+`` are dropped. ``Recording.caller_reversed`` holds the number
reversed, so "ends with 8000" is "reversed starts with 0008": a range on an ordinary index,
``"0008" <= caller_reversed < "0009"``, which works on SQLite and PostgreSQL alike (a LIKE
prefix is not used by SQLite's index under its default case-insensitive LIKE).

>>> caller_digits("+86 138-0013-8000")
'8613800138000'
>>> reversed_prefix_range("8000"), reversed_prefix_range("1999"), reversed_prefix_range("999")
(('0008', '0009'), ('9991', '9992'), ('999', None))
>>> time_bounds("2026-05-01", "2026-05-01", "Asia/Shanghai")[1].isoformat()
'2026-05-01T16:00:00+00:00'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from ivr.errors import HotlineError

MIN_CALLER_DIGITS: Final = 3
MAX_CALLER_DIGITS: Final = 32
#: The shortest whole number (a local number without its area code): what a role that sees
#: masked numbers must give, since a search by last digits would unmask a number step by step.
MIN_WHOLE_NUMBER_DIGITS: Final = 7
MAX_PAGE_SIZE: Final = 200
DEFAULT_PAGE_SIZE: Final = 25
_NUMBER_NOISE = re.compile(r"[\s\-().]")


class InvalidSearch(HotlineError):
    """A catalogue search with a filter that cannot be used; ``details["field"]`` names it."""

    slug = "invalid-search"
    status = 422


class PartialNumberSearch(HotlineError):
    """A search by a number's last digits from a role that sees numbers masked: refused, as
    step-by-step searches would unmask the number."""

    slug = "partial-number-search"
    status = 403


def caller_digits(value: str) -> str:
    """A caller filter as plain digits; raises :class:`InvalidSearch` for anything else."""
    digits = _NUMBER_NOISE.sub("", value.strip()).removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidSearch("caller: digits only (a number or its last digits)", field="caller")
    if not MIN_CALLER_DIGITS <= len(digits) <= MAX_CALLER_DIGITS:
        raise InvalidSearch(
            f"caller: {MIN_CALLER_DIGITS} to {MAX_CALLER_DIGITS} digits", field="caller"
        )
    return digits


def _next_digits(digits: str) -> str | None:
    """The smallest digit string greater than every string starting with ``digits``."""
    stripped = digits.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + str(int(stripped[-1]) + 1)


def reversed_prefix_range(digits: str) -> tuple[str, str | None]:
    """``low <= caller_reversed < high`` (no upper bound when ``high`` is None) selects the
    numbers ending with ``digits``."""
    low = digits[::-1]
    return low, _next_digits(low)


def _moment(value: str, zone: ZoneInfo, *, end: bool, name: str) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            local = datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
        else:
            moment = datetime.fromisoformat(text)
            local = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    except ValueError:
        raise InvalidSearch(
            f"{name}: a date (2026-05-01) or a date and time (2026-05-01T08:30)", field=name
        ) from None
    return local.astimezone(UTC)


def time_bounds(
    start: str | None, end: str | None, timezone: str
) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` as UTC bounds, ``from`` inclusive and ``to`` exclusive.

    A bare date means that whole local day: ``to=2026-05-01`` ends at the next local midnight.
    A time without an offset is local to ``timezone``.
    """
    zone = ZoneInfo(timezone)
    low = _moment(start, zone, end=False, name="from") if start else None
    high = _moment(end, zone, end=True, name="to") if end else None
    if low is not None and high is not None and high <= low:
        raise InvalidSearch("to: must be after from", field="to")
    return low, high


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """A QA search, validated. Unset fields do not filter."""

    started_from: datetime | None = None  # UTC, inclusive
    started_to: datetime | None = None  # UTC, exclusive
    caller: str | None = None  # digits the number ends with (a whole number ends with itself)
    caller_exact: bool = False  # the number is exactly ``caller`` (not just ending with it)
    desk: str | None = None
    queue: str | None = None
    agent: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    has_transcript: bool | None = None
    emergency: bool | None = None
    status: str | None = None
    direction: str | None = None  # inbound (a call to the hotline) or outbound (an agent's)

    @property
    def caller_partial(self) -> bool:
        """A search by a number's last digits (fewer than a whole number has)."""
        return self.caller is not None and len(self.caller) < MIN_WHOLE_NUMBER_DIGITS


def _name(value: str | None) -> str | None:
    text = value.strip() if value is not None else ""
    return text or None


def build_filter(
    *,
    timezone: str,
    start: str | None = None,
    end: str | None = None,
    caller: str | None = None,
    desk: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    has_transcript: bool | None = None,
    emergency: bool | None = None,
    status: str | None = None,
    direction: str | None = None,
    whole_number_only: bool = False,
) -> SearchFilter:
    """The filter from the request's values (empty strings count as not given).

    ``whole_number_only`` (a role that sees numbers masked): the caller filter matches a
    whole number exactly, and fewer than :data:`MIN_WHOLE_NUMBER_DIGITS` digits are refused
    with :class:`PartialNumberSearch`.
    """
    low, high = time_bounds(_name(start), _name(end), timezone)
    for name, seconds in (("min_duration", min_duration_s), ("max_duration", max_duration_s)):
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            raise InvalidSearch(f"{name}: seconds, 0 or more", field=name)
    if (
        min_duration_s is not None
        and max_duration_s is not None
        and max_duration_s < min_duration_s
    ):
        raise InvalidSearch("max_duration: must not be below min_duration", field="max_duration")
    number = _name(caller)
    digits = caller_digits(number) if number else None
    if digits is not None and whole_number_only and len(digits) < MIN_WHOLE_NUMBER_DIGITS:
        raise PartialNumberSearch(
            f"caller: your role sees numbers masked, so search by a whole number "
            f"({MIN_WHOLE_NUMBER_DIGITS} digits or more); a search by last digits needs a "
            "role that may see numbers",
            field="caller",
        )
    return SearchFilter(
        started_from=low,
        started_to=high,
        caller=digits,
        caller_exact=whole_number_only and digits is not None,
        desk=_name(desk),
        queue=_name(queue),
        agent=_name(agent),
        min_duration_s=min_duration_s,
        max_duration_s=max_duration_s,
        has_transcript=has_transcript,
        emergency=emergency,
        status=_name(status),
        direction=_name(direction),
    )


def page_count(total: int, size: int) -> int:
    """How many pages of ``size`` rows ``total`` rows fill.

    >>> page_count(0, 25), page_count(25, 25), page_count(26, 25)
    (0, 1, 2)
    """
    return -(-total // size)
