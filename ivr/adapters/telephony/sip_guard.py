"""Failed SIP authentications from Asterisk's security events, and blocks that Asterisk enforces.

Feed :meth:`SipGuard.on_event` with the AMI events of an account that reads the ``security``
class (the listener's). The rule is :mod:`ivr.core.sip_guard`: ``asterisk.sip_max_failures``
failed attempts from one address within ``asterisk.sip_failure_window_s`` block it for
``asterisk.sip_block_s``; trunk addresses are never blocked. The counts and the blocks go
into the SIP directory (:mod:`ivr.adapters.telephony.sip_directory`): a block is a
``ps_acls`` row, which res_pjsip_acl reads on every SIP request, so Asterisk answers the
blocked address 403 from its next request on, with no reload and without the service.
:meth:`SipGuard.sweep_forever` lifts the blocks whose time is up; while the service is down
a block stays (refusing a little longer, never admitting early). A restart takes the
blocks back from the directory; the failures counted towards a block start again from zero.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ivr.adapters.telephony import sip_directory
from ivr.core.sip_guard import GuardPolicy, expire, failure_address, record_failure, restored
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

logger = logging.getLogger(__name__)


def guard_policy(settings: Settings) -> GuardPolicy:
    a = settings.asterisk
    return GuardPolicy(
        max_failures=a.sip_max_failures,
        window_s=a.sip_failure_window_s,
        block_s=a.sip_block_s,
        never_block=tuple(a.trunk_addresses),
    )


class SipGuard:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.policy = guard_policy(settings)
        self._clock = clock
        self.state = restored(sip_directory.blocks(settings))

    async def on_event(self, message: AmiMessage) -> None:
        """Count a failed authentication; block its address at the limit."""
        address = failure_address(message.to_dict())
        if address is None:
            return
        now = self._clock()
        before = self.state.totals.get(address, 0)
        self.state, block = record_failure(
            self.state, self.policy, address, now, message.get("SessionID", "") or ""
        )
        if self.state.totals.get(address, 0) == before:
            return  # another event of an attempt already counted
        await asyncio.to_thread(sip_directory.record_failure, self.settings, address, now)
        if block is not None:
            await asyncio.to_thread(
                sip_directory.block, self.settings, block.address, block.until, block.failures
            )

    async def sweep(self) -> list[str]:
        """Lift the blocks whose time is up, forget failures older than the window."""
        self.state, lifted = expire(self.state, self._clock(), self.policy.window_s)
        if lifted:
            await asyncio.to_thread(sip_directory.unblock, self.settings, lifted)
        return lifted

    async def sweep_forever(self, interval_s: float = 1.0) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(interval_s)
