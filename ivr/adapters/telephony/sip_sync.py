"""The agents' SIP accounts, from SQL into the SIP directory Asterisk reads: the ami role's job.

Every ``interval_s`` the role reads every agent's account (:func:`ivr.adapters.sql.agents.
sip_accounts`) and, when anything differs from what it last wrote, makes the directory hold
exactly the enabled ones (:func:`ivr.adapters.telephony.sip_directory.sync_accounts`: one
transaction; a disabled agent's endpoint, auth, AOR and registrations go). So an agent added,
changed or disabled by the CLI or the admin API reaches Asterisk within ``interval_s`` plus a
write, whichever process made the change, and one process writes the directory. While the
ami role is down, Asterisk keeps the accounts it has; the change lands when the role is back.
A database or directory error is logged and tried again on the next round.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr.adapters.sql.agents import sip_accounts
from ivr.adapters.telephony.sip_directory import sync_accounts
from ivr.core.sip_accounts import SipAccount
from ivr.errors import HotlineError
from ivr.settings import Settings

logger = logging.getLogger(__name__)


class AccountSync:
    def __init__(self, settings: Settings, engine: Engine, interval_s: float = 1.0) -> None:
        self.settings = settings
        self.engine = engine
        self.interval_s = interval_s
        self.written: list[SipAccount] | None = None  # what the directory holds, as last written

    async def once(self) -> bool:
        """One round: True if the directory was written."""
        accounts = await asyncio.to_thread(sip_accounts, self.engine)
        if accounts == self.written:
            return False
        await asyncio.to_thread(sync_accounts, self.settings, accounts)
        self.written = accounts
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except (SQLAlchemyError, HotlineError, OSError) as exc:
                logger.warning("sip accounts not synced, trying again: %s", exc)
            await asyncio.sleep(self.interval_s)
