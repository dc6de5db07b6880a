"""What happened to one call, from its AMI events (grouped by Linkedid). Pure.

Used by ``ivr call`` and the tests: the AGI routes reached, the AGI commands run, the queue
joined, the channel variables the call flow and dialplan set, and the hang-up cause.

>>> evs = [
...   {"Event": "Newchannel", "Channel": "Local/95158@from-pstn-0001;2", "Linkedid": "L"},
...   {"Event": "Newexten", "Channel": "Local/95158@from-pstn-0001;2", "Context": "from-pstn",
...    "Application": "AGI", "AppData": "agi://127.0.0.1:4573/inbound,/srv/p", "Linkedid": "L"},
...   {"Event": "VarSet", "Variable": "IVR_QUEUE", "Value": "repair", "Linkedid": "L",
...    "Channel": "Local/95158@from-pstn-0001;2"},
...   {"Event": "QueueCallerJoin", "Queue": "repair", "Linkedid": "L"},
...   {"Event": "Hangup", "Channel": "Local/95158@from-pstn-0001;2", "Cause": "16",
...    "Cause-txt": "Normal Clearing", "Linkedid": "L"},
... ]
>>> r = summarize("L", evs)
>>> r.agi_routes, r.queue, r.variables, r.hangup_cause
(['inbound'], 'repair', {'IVR_QUEUE': 'repair'}, 'Normal Clearing (16)')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

REPORTED_DIALPLAN_VARIABLES = frozenset({"AGISTATUS", "QUEUESTATUS"})


@dataclass(slots=True)
class CallReport:
    linkedid: str
    agi_routes: list[str] = field(default_factory=list)
    agi_commands: list[str] = field(default_factory=list)
    queue: str | None = None  # the first queue joined
    queue_position: int | None = None  # the caller's position when it joined that queue
    queues: list[str] = field(default_factory=list)  # every queue joined (overflow included)
    variables: dict[str, str] = field(default_factory=dict)
    hangup_cause: str | None = None
    channels: list[str] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def agi_route(app_data: str) -> str:
    """``agi://host:port/inbound?x,arg`` -> ``inbound``.

    >>> agi_route("agi://127.0.0.1:4573/inbound,/srv/hotline/prompts")
    'inbound'
    """
    url = app_data.split(",", 1)[0]
    return urlsplit(url).path.strip("/") if "://" in url else url


def summarize(linkedid: str, events: Iterable[Mapping[str, str]]) -> CallReport:
    report = CallReport(linkedid=linkedid)
    hotline_channel: str | None = None
    for ev in events:
        if ev.get("Linkedid") != linkedid:
            continue
        name = ev.get("Event", "")
        report.event_counts[name] = report.event_counts.get(name, 0) + 1
        channel = ev.get("Channel", "")
        if name == "Newchannel" and channel not in report.channels:
            report.channels.append(channel)
        elif name == "Newexten":
            if hotline_channel is None and ev.get("Context") == "from-pstn":
                hotline_channel = channel
            if ev.get("Application") == "AGI":
                report.agi_routes.append(agi_route(ev.get("AppData", "")))
        elif name == "AGIExecStart":
            report.agi_commands.append(ev.get("Command", ""))
        elif name == "VarSet":
            var = ev.get("Variable", "").lstrip("_")
            if var.startswith("IVR_") or var in REPORTED_DIALPLAN_VARIABLES:
                report.variables[var] = ev.get("Value", "")
        elif name == "QueueCallerJoin":
            report.queues.append(ev.get("Queue", ""))
            if report.queue is None:
                report.queue = ev.get("Queue")
                position = ev.get("Position", "")
                report.queue_position = int(position) if position.isdigit() else None
        elif name == "Hangup" and (channel == hotline_channel or hotline_channel is None):
            report.hangup_cause = f"{ev.get('Cause-txt', '')} ({ev.get('Cause', '?')})"
    return report
