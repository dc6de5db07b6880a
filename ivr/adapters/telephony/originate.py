"""``ivr call``: place a real call through Asterisk with AMI Originate, and report on it.

The call is ``Local/<did>@from-pstn``: its ``;2`` half runs the hotline dialplan like any
SIP caller, its ``;1`` half runs ``caller-sim`` (talks, or stays silent, and holds). Keys
are pressed like a person presses them: each time the hotline starts listening (an AGI
``GET DATA``), the next group of ``keys`` is sent over AMI (``PlayDTMF`` on the caller's
half, so the hotline receives real DTMF through the Local channel); during a voice message
(``RECORD FILE``) the caller talks for ``speak_s`` seconds, then presses ``#``. The
Linkedid is chosen here (Originate ``ChannelId``), so every event of the call is ours.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence

from ivr.adapters.telephony.ami_client import AmiClient
from ivr.core.call_report import CallReport, summarize
from ivr.errors import AmiError, AmiTimeout, InvalidInput
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

logger = logging.getLogger(__name__)

KEY_GROUP = re.compile(r"^([0-9*#]+|_)$")  # `_`: press nothing at that prompt
SOUND_NAME = re.compile(r"[A-Za-z0-9/_.-]{1,200}")  # a Playback file name, nothing else
KEY_GAP_S = 0.25  # between two key presses of a group
FIRST_KEY_DELAY_S = 0.6  # after the hotline starts listening


def parse_keys(spec: str) -> list[str]:
    """``"2 11002233# 1"`` -> ``["2", "11002233#", "1"]``; ``_`` stays silent at a prompt.

    >>> parse_keys("_ 1")
    ['', '1']
    """
    groups = spec.split()
    for group in groups:
        if not KEY_GROUP.match(group):
            raise InvalidInput(
                f"--digits: {group!r}: each group holds only 0-9, * and # (or _ for no key)"
            )
    return ["" if g == "_" else g for g in groups]


class CallTracker:
    """Collects a call's events until its last channel hangs up, pressing keys on cue."""

    def __init__(self, linkedid: str, keys: Sequence[str], speak_s: float) -> None:
        self.linkedid = linkedid
        self.keys = list(keys)
        self.speak_s = speak_s
        self.events: list[dict[str, str]] = []
        self.open_channels: set[str] = set()
        self.caller_channel = ""
        self.done = asyncio.Event()
        self.ami: AmiClient | None = None
        self._presses: set[asyncio.Task[None]] = set()

    async def on_event(self, message: AmiMessage) -> None:
        if message.get("Linkedid") != self.linkedid:
            return
        self.events.append(message.to_dict())
        channel = message.get("Channel") or ""
        if message.event == "Newchannel":
            self.open_channels.add(channel)
            if message.get("Uniqueid") == self.linkedid:
                self.caller_channel = channel
        elif message.event == "Hangup":
            self.open_channels.discard(channel)
            if not self.open_channels:
                self.done.set()
        elif message.event == "AGIExecStart":
            command = message.get("Command") or ""
            if command.startswith("GET DATA") and self.keys:
                self._press(self.keys.pop(0), FIRST_KEY_DELAY_S)
            elif command.startswith("RECORD FILE"):
                self._press("#", self.speak_s)

    def _press(self, keys: str, delay: float) -> None:
        if keys:
            task = asyncio.create_task(self._send(keys, delay))
            self._presses.add(task)
            task.add_done_callback(self._presses.discard)

    async def _send(self, keys: str, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self.ami is not None
        for key in keys:
            if self.done.is_set():
                return
            try:
                await self.ami.send_action(
                    "PlayDTMF",
                    {"Channel": self.caller_channel, "Digit": key, "Duration": "150"},
                    timeout=5,
                )
            except AmiError as exc:  # the caller may be gone already
                logger.info("key %s not sent: %s", key, exc.message)
                return
            await asyncio.sleep(KEY_GAP_S)

    async def close(self) -> None:
        for task in list(self._presses):
            task.cancel()
        await asyncio.gather(*self._presses, return_exceptions=True)


async def place_call(
    settings: Settings,
    *,
    did: str,
    caller: str,
    keys: Sequence[str] = (),
    silent: bool = False,
    speak_s: float = 3.0,
    hold_s: float = 60.0,
    timeout_s: float = 120.0,
    agent_delay_s: float | None = None,
    audio: str | None = None,
) -> CallReport:
    """Place one call and report on it once every channel of it has hung up.

    ``hold_s``: the caller hangs up after that many seconds. ``agent_delay_s``: a simulated
    agent (``[sim-agents]``) answers this call after that many seconds instead of the
    global ``IVR_SIM_ANSWER_DELAY`` (passed as the inherited ``__SIM_ANSWER_DELAY``, so it
    reaches the agent's Local channel through the queue's dial). ``audio``: what the caller
    says, over and over — a sound file as Asterisk's Playback names it (no extension; a
    path inside Asterisk's root), instead of ``hello-world``.
    """
    if not did.isdigit():
        raise InvalidInput(f"--did must be digits, got {did!r}")
    for group in keys:
        if group and not KEY_GROUP.match(group):
            raise InvalidInput(f"--digits may hold only 0-9, * and #, got {group!r}")
    if not re.fullmatch(r"[0-9+]{0,32}", caller):
        raise InvalidInput(f"--from must be a phone number, got {caller!r}")
    if audio is not None and not SOUND_NAME.fullmatch(audio):
        raise InvalidInput(f"audio must be a sound name or path (a-z 0-9 / _ . -), got {audio!r}")
    if agent_delay_s is not None and not 0 <= agent_delay_s <= 3600:
        raise InvalidInput(f"agent_delay_s must be 0..3600 s, got {agent_delay_s!r}")
    linkedid = f"ivrcall-{uuid.uuid4().hex[:16]}"
    tracker = CallTracker(linkedid, keys, speak_s)
    client = AmiClient(  # the actions account: Originate and PlayDTMF, its call's events
        settings.ami,
        settings.ami_actions_secret(),
        on_event=tracker.on_event,
        username=settings.ami.actions_username,
    )
    tracker.ami = client
    runner = asyncio.create_task(client.run())
    try:
        await client.wait_connected(settings.ami.connect_timeout_s * 2)
        variables = [f"SIM_HOLD={hold_s:g}"] + (["SIM_AUDIO=silent"] if silent else [])
        if audio is not None and not silent:
            variables.append(f"SIM_AUDIO={audio}")
        if agent_delay_s is not None:
            variables.append(f"__SIM_ANSWER_DELAY={agent_delay_s:g}")
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
                "Variable": variables,
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
        await tracker.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return summarize(linkedid, tracker.events)
