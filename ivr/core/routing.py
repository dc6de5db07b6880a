"""Routing evaluation: a parsed rule set (:class:`Routing`) against call facts. Pure.

Time is an input (``now``: epoch seconds); hours, holidays and naive outage times are read in
the desk's or the hotline's time zone (Asia/Shanghai unless configured). Nothing here reads
files or clocks.

>>> from datetime import datetime
>>> from zoneinfo import ZoneInfo
>>> wednesday_ten = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
>>> local_time(wednesday_ten, "Asia/Shanghai").strftime("%a %H:%M")
'Wed 10:00'
>>> normalize_number("+86 138-0013-8000"), normalize_number("+86 311 8600 1234")
('13800138000', '031186001234')
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import lru_cache

from ivr.core.routing_models import (
    WEEKDAYS,
    DeskIn,
    OutageIn,
    Routing,
    parse_time_range,
)


@lru_cache(maxsize=16)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_time(now: float, timezone: str) -> datetime:
    """``now`` (epoch seconds) as an aware local datetime in ``timezone``."""
    return datetime.fromtimestamp(now, _zone(timezone))


def is_open(routing: Routing, desk: DeskIn, now: float) -> bool:
    """Whether people answer ``desk`` at ``now``: 24 h, or within today's hours and no holiday."""
    if desk.always_open:
        return True
    local = local_time(now, desk.timezone or routing.hotline.timezone)
    if local.date() in desk.holidays:
        return False
    minute = local.hour * 60 + local.minute
    ranges = desk.hours.get(WEEKDAYS[local.weekday()], [])
    return any(start <= minute < end for start, end in map(parse_time_range, ranges))


def normalize_number(raw: str) -> str:
    """A caller ID as the routing files list numbers: national digits only.

    Drops separators, a ``+86``/``0086`` country code (a landline then gets its trunk 0
    back), the ``86`` before a mobile number, and the ``0`` some exchanges put before an
    out-of-town mobile number (``013800138000``).
    """
    international = raw.strip().startswith("+")
    digits = "".join(c for c in raw if c.isascii() and c.isdigit())
    if international or digits.startswith("00"):
        digits = digits.removeprefix("00")
        if digits.startswith("86"):
            rest = digits[2:]
            return rest if _is_mobile(rest) else "0" + rest.removeprefix("0")
        return "00" + digits if not international else "+" + digits
    if len(digits) == 13 and digits.startswith("86") and _is_mobile(digits[2:]):
        return digits[2:]
    if len(digits) == 12 and digits.startswith("01") and _is_mobile(digits[1:]):
        return digits[1:]
    return digits


def _is_mobile(digits: str) -> bool:
    return len(digits) == 11 and digits.startswith("1")


def priority_for(routing: Routing, caller: str) -> int:
    """The caller's queue priority: from priority_callers, else 0."""
    entry = routing.priority_caller(normalize_number(caller))
    return 0 if entry is None else entry.priority


def area_for(routing: Routing, caller: str = "", account: str = "") -> str | None:
    """The caller's area: by the account number when it matches one, else by their number.

    The longest matching prefix wins.
    """
    if account:
        area = _longest_prefix(routing.account_prefixes(), account)
        if area is not None:
            return area
    if caller:
        return _longest_prefix(routing.caller_prefixes(), normalize_number(caller))
    return None


def _longest_prefix(table: dict[str, str], digits: str) -> str | None:
    for length in range(min(len(digits), 20), 0, -1):
        area = table.get(digits[:length])
        if area is not None:
            return area
    return None


def outages_for(routing: Routing, area: str | None, now: float) -> list[OutageIn]:
    """The outage notices to play to a caller from ``area`` at ``now``, earliest first."""
    if area is None:
        return []
    timezone = routing.hotline.timezone
    active = [
        o
        for o in routing.outages
        if o.area == area
        and _epoch(o.announce_from or o.starts, timezone) <= now < _epoch(o.ends, timezone)
    ]
    return sorted(active, key=lambda o: _epoch(o.starts, timezone))


def _epoch(moment: datetime, timezone: str) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(timezone))
    return moment.timestamp()
