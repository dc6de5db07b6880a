"""``ivr call``: place a real call through Asterisk with AMI Originate, and report on it.

The call is ``Local/<did>@from-pstn``: its ``;2`` half runs the hotline dialplan like any
SIP caller, its ``;1`` half runs ``caller-sim`` (speaks, presses the digits, holds). The
Linkedid is chosen here (Originate ``ChannelId``), so every event of the call is ours.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from ivr.adapters.ami_client import AmiClient
from ivr.core.call_report import CallReport, summarize
from ivr.errors import AmiError, AmiTimeout
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

VALID_DIGITS = re.compile(r"^[0-9*#]*$")


class CallTracker:
    """Collects a call's events until its last channel hangs up."""

    def __init__(self, linkedid: str) -> None:
        self.linkedid = linkedid
        self.events: list[dict[str, str]] = []
        self.open_channels: set[str] = set()
        self.done = asyncio.Event()

    async def on_event(self, message: AmiMessage) -> None:
        if message.get("Linkedid") != self.linkedid:
            return
        self.events.append(message.to_dict())
        channel = message.get("Channel") or ""
        if message.event == "Newchannel":
            self.open_channels.add(channel)
        elif message.event == "Hangup":
            self.open_channels.discard(channel)
            if not self.open_channels:
                self.done.set()


async def place_call(
    settings: Settings,
    *,
    did: str,
    caller: str,
    digits: str = "",
    hold_s: float = 30.0,
    timeout_s: float = 120.0,
) -> CallReport:
    if not did.isdigit():
        raise ValueError(f"--did must be digits, got {did!r}")
    if not VALID_DIGITS.match(digits):
        raise ValueError(f"--digits may hold only 0-9, * and #, got {digits!r}")
    if not re.fullmatch(r"[0-9+]{0,32}", caller):
        raise ValueError(f"--from must be a phone number, got {caller!r}")
    linkedid = f"ivrcall-{uuid.uuid4().hex[:16]}"
    tracker = CallTracker(linkedid)
    client = AmiClient(settings.ami, settings.ami_secret(), on_event=tracker.on_event)
    runner = asyncio.create_task(client.run())
    try:
        await client.wait_connected(settings.ami.connect_timeout_s * 2)
        reply = await client.send_action(
            "Originate",
            {
                "Channel": f"Local/{did}@from-pstn",
                "Context": "caller-sim",
                "Exten": "s",
                "Priority": "1",
                "CallerID": f'"{caller}" <{caller}>',
                "ChannelId": linkedid,
                "OtherChannelId": f"{linkedid}-2",
                "Async": "true",
                "Timeout": "30000",
                "Variable": [f"SIM_DIGITS={digits}", f"SIM_HOLD={hold_s:g}"],
            },
            timeout=10,
        )
        if reply.response != "Success":
            raise AmiError(f"Originate refused: {reply.get('Message')}")
        try:
            await asyncio.wait_for(tracker.done.wait(), timeout_s)
        except TimeoutError:
            raise AmiTimeout(
                f"call {linkedid} still up after {timeout_s:g} s", linkedid=linkedid
            ) from None
        await asyncio.sleep(0.2)  # the last events of the hang-up (VarSet, QueueCallerLeave)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return summarize(linkedid, tracker.events)
