"""The ami role's 后处理 (wrap-up) pauses: paused at ``AgentComplete``, resumed when the time
runs out (the rules: :mod:`ivr.core.wrapup`; SQL: :mod:`ivr.adapters.sql.wrapup_pauses`).

:meth:`WrapupPauses.on_event` only queues the ``AgentComplete`` (the AMI listener never waits
for SQL); :meth:`WrapupPauses.run`, one of the ami role's loops, writes the pause and has the
membership keeper reconcile at once, so the member's next queue call does not ring meanwhile.
Every ``interval_s`` it also reads the agents paused 后处理 from SQL and resumes those whose
automatic wrap-up has run out: the deadline lives in SQL, so after a restart of the role the
overdue pauses end at its first round and the others on time. A database or AMI error is
logged and the round tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr.adapters.sql import wrapup_pauses
from ivr.adapters.sql.db import utcnow
from ivr.adapters.telephony.membership import MembershipKeeper
from ivr.core.routing_models import Routing
from ivr.core.wrapup import due
from ivr.errors import HotlineError
from ivr.protocols.ami import AmiMessage

logger = logging.getLogger(__name__)


class WrapupPauses:
    def __init__(
        self, engine: Engine, routing: Routing, keeper: MembershipKeeper, interval_s: float = 0.5
    ) -> None:
        self.engine = engine
        self.keeper = keeper
        self.interval_s = interval_s
        self.wrapup_s = {queue: routing.ringing_of(queue).wrapup_s for queue in routing.queues}
        self.completed: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_event(self, message: AmiMessage) -> None:
        """Queue an ``AgentComplete`` (member name, queue) in a queue with a wrap-up; anything
        else: nothing (no SQL work for the queues without one)."""
        queue = message.get("Queue") or ""
        if message.event == "AgentComplete" and self.wrapup_s.get(queue, 0) > 0:
            self.completed.put_nowait((message.get("MemberName") or "", queue))

    async def run(self) -> None:
        """Pause at each queued completion; resume the run-out wrap-ups; for ever."""
        while True:
            try:
                member, queue = await asyncio.wait_for(self.completed.get(), self.interval_s)
            except TimeoutError:
                pass
            else:
                await self._guarded(self._start(member, queue))
            await self._guarded(self._end_due())

    async def _guarded(self, step: Coroutine[Any, Any, None]) -> None:
        try:
            await step
        except (HotlineError, SQLAlchemyError) as exc:
            logger.warning("后处理 wrap-up pause not changed, trying again: %s", exc)

    async def _start(self, member: str, queue: str) -> None:
        started = await asyncio.to_thread(self._start_in_sql, member, queue)
        if started:
            await self._push()

    def _start_in_sql(self, member: str, queue: str) -> bool:
        with Session(self.engine) as session:
            wrapup = wrapup_pauses.start(session, member, queue, self.wrapup_s)
            session.commit()
        if wrapup is None:
            return False
        logger.info(
            "后处理 wrap-up pause", extra={"agent": wrapup.work_number, "seconds": wrapup.seconds}
        )
        return True

    async def _end_due(self) -> None:
        ended = await asyncio.to_thread(self._end_in_sql)
        if ended:
            await self._push()

    def _end_in_sql(self) -> list[str]:
        ended: list[str] = []
        with Session(self.engine) as session:
            now = utcnow()
            candidates = [c.work_number for c in wrapup_pauses.pending(session) if due(c, now)]
            session.rollback()
            for work_number in candidates:
                if wrapup_pauses.end_if_due(session, work_number, now):
                    ended.append(work_number)
                session.commit()
        if ended:
            logger.info("后处理 wrap-up ran out: resumed", extra={"agents": ended})
        return ended

    async def _push(self) -> None:
        """The queues follow SQL now, not at the keeper's next look."""
        if self.keeper.ami.connected:
            await self.keeper.reconcile()
