"""Call facts in SQL: each call's outcome stored when it ends, and rebuilt from queue_log.

The ami role hands every call outcome of the reducer (``CallClassified``, ``CallUnknown``:
the same effects the Redis store counts) to :class:`CallFactsWriter`, which writes them to
the ``call_facts`` table in the background, in batches, one row per Linkedid: a second
outcome for a Linkedid already stored is ignored (``INSERT ... ON CONFLICT DO NOTHING``), as
the live counters ignore it, so the two agree. SQL unreachable: the outcomes wait in memory
(up to ``buffer_max``, then the newest are dropped and counted) and are written once it is
back. The month's figures then come from SQL (:mod:`ivr.adapters.sql.call_figures`), not
from Redis, and survive the loss of Redis.

:func:`recompute` rebuilds a window's call facts from Asterisk's queue_log: a queued call
queue_log saw to its end that has no fact (its outcome was lost between the reducer and SQL,
or the ami role was down) is added (``source = queue_log``; whole seconds, see
:mod:`ivr.adapters.metrics.queue_log`); a fact stored as ``unknown`` (the listener missed
part of the call) takes queue_log's class; a stored class queue_log contradicts is reported,
not overwritten (the reducer's timestamps are exact to the microsecond, queue_log's to the
second: a wait within a second of the threshold may fall on either side there). Calls that
never queued are not in queue_log: only their stored facts count them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ivr.adapters.metrics.queue_log import QueueLogCall, classify_calls, read_since
from ivr.adapters.sql.db import CallFactRow, utcnow
from ivr.core.figures import EMERGENCY_QUEUES, Window, agent_work_number
from ivr.core.metrics import CallClassified, CallUnknown, Effect, MetricsConfig

logger = logging.getLogger(__name__)

UNKNOWN: Final = "unknown"  # klass of a CallUnknown
SOURCE_AMI: Final = "ami"
SOURCE_QUEUE_LOG: Final = "queue_log"
CHUNK: Final = 500


def outcome_row(
    outcome: CallClassified | CallUnknown,
    source: str = SOURCE_AMI,
    emergency_queues: frozenset[str] = EMERGENCY_QUEUES,
) -> dict[str, Any]:
    """The ``call_facts`` row of one reducer outcome."""
    if isinstance(outcome, CallUnknown):
        closed = _utc(outcome.closed_at)
        return {
            "linkedid": outcome.linkedid[:150], "callid": "", "klass": UNKNOWN,
            "queue": outcome.queue[:40], "emergency": outcome.queue in emergency_queues,
            "threshold_s": 0.0, "wait_s": 0.0, "counted_at": closed, "entered_at": None,
            "closed_at": closed, "agent": "", "work_number": "", "talk_s": None,
            "source": source, "caller": "",
        }  # fmt: skip
    entered = None if outcome.entered_at is None else _utc(outcome.entered_at)
    closed = _utc(outcome.closed_at)
    return {
        "linkedid": outcome.linkedid[:150],  # the column widths: no row is ever refused
        "callid": outcome.callid[:150],
        "klass": outcome.klass.value,
        "queue": outcome.queue[:40],
        "emergency": outcome.queue in emergency_queues,
        "threshold_s": outcome.threshold_s,
        "wait_s": outcome.wait_s,
        "counted_at": entered or closed,
        "entered_at": entered,
        "closed_at": closed,
        "agent": outcome.agent[:80],
        "work_number": agent_work_number(outcome.agent),
        "talk_s": outcome.talk_s,
        "source": source,
        "caller": outcome.caller[:32],  # the call-backs' number (ivr.core.callbacks)
    }


def store_rows(engine: Engine, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose Linkedid is not stored yet; returns how many were new."""
    if not rows:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stored = 0
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            chunk = [{**row, "stored_at": utcnow()} for row in rows[start : start + CHUNK]]
            statement = dialect.insert(CallFactRow).on_conflict_do_nothing(
                index_elements=["linkedid"]
            )
            result = conn.execute(statement.returning(CallFactRow.id), chunk)
            stored += len(result.all())
    return stored


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class CallFactsWriter:
    """The ami role's writer: outcomes in (``submit``, never blocks), SQL rows out (``run``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        buffer_max: int = 100_000,
        retry_interval_s: float = 2.0,
        emergency_queues: frozenset[str] = EMERGENCY_QUEUES,
    ) -> None:
        self.engine = engine
        self._buffer_max = buffer_max
        self._retry_interval_s = retry_interval_s
        self._emergency = emergency_queues
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self.counters: dict[str, int] = {
            "facts_stored": 0,  # call facts written to SQL
            "facts_repeated": 0,  # outcomes for a Linkedid already stored: ignored
            "facts_dropped": 0,  # outcomes dropped: the buffer was full while SQL was away
            "facts_errors": 0,  # failed writes (retried)
        }

    @property
    def pending(self) -> int:
        return len(self._pending)

    def stats(self) -> dict[str, int]:
        return self.counters | {"facts_pending": self.pending}

    def submit(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, CallClassified | CallUnknown):
                if len(self._pending) >= self._buffer_max:
                    self.counters["facts_dropped"] += 1
                    logger.warning(
                        "call fact of %s dropped: %d waiting for SQL already",
                        effect.linkedid,
                        len(self._pending),
                    )
                    continue
                self._pending.append(outcome_row(effect, SOURCE_AMI, self._emergency))
                self._wake.set()

    async def flush(self) -> bool:
        """Write everything pending; False when SQL failed (the rows stay pending)."""
        while self._pending:
            rows = list(itertools.islice(self._pending, CHUNK))
            try:
                stored = await asyncio.to_thread(store_rows, self.engine, rows)
            except SQLAlchemyError as exc:
                self.counters["facts_errors"] += 1
                logger.warning("call facts not written (%d waiting): %s", len(self._pending), exc)
                return False
            for _ in rows:
                self._pending.popleft()
            self.counters["facts_stored"] += stored
            self.counters["facts_repeated"] += len(rows) - stored
        return True

    async def run(self) -> None:
        """Flush after each submit, and every ``retry_interval_s`` while SQL fails."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(self._retry_interval_s)
                self._wake.set()


# --- recompute from queue_log -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Disagreement:
    linkedid: str
    stored: str  # the stored class
    queue_log: str  # queue_log's class


@dataclass(frozen=True, slots=True)
class Recomputed:
    window: Window
    queue_log_calls: int  # calls queue_log saw to their end in the window
    stored_before: int  # facts in the window before
    added: tuple[str, ...] = ()  # Linkedids (callids) added from queue_log
    disagree: tuple[Disagreement, ...] = field(default_factory=tuple)
    resolved: tuple[str, ...] = ()  # facts stored as unknown that queue_log classified

    @property
    def changed(self) -> bool:
        return bool(self.added or self.resolved)


def queue_log_row(
    callid: str, call: QueueLogCall, emergency_queues: frozenset[str] = EMERGENCY_QUEUES
) -> dict[str, Any]:
    """A ``call_facts`` row from queue_log alone (its callid stands for the Linkedid)."""
    assert call.klass is not None
    entered = _utc(call.entered_at)
    return {
        "linkedid": callid, "callid": callid, "klass": call.klass.value, "queue": call.queue,
        "emergency": call.queue in emergency_queues, "threshold_s": call.threshold_s,
        "wait_s": call.wait_s, "counted_at": entered, "entered_at": entered,
        "closed_at": _utc(call.ended_at or call.entered_at), "agent": call.agent[:80],
        "work_number": agent_work_number(call.agent),
        "talk_s": call.talk_s, "source": SOURCE_QUEUE_LOG, "caller": "",
    }  # fmt: skip


def recompute(
    engine: Engine,
    queue_log_path: Path,
    window: Window,
    config: MetricsConfig,
    *,
    dry_run: bool = False,
    emergency_queues: frozenset[str] = EMERGENCY_QUEUES,
) -> Recomputed:
    """Add the window's calls queue_log has and SQL lacks; report the classes that differ.

    A queue_log call matches a stored fact by its callid (the caller channel's Uniqueid,
    stored with each fact) or by Linkedid. Raises OSError when queue_log is unreadable.
    """
    log = read_since(queue_log_path, window.start.timestamp() - 3600, max_bytes=1 << 40)
    calls = {
        callid: call
        for callid, call in classify_calls(log.records, config).items()
        if call.klass is not None and _utc(call.entered_at) in window
    }
    with engine.connect() as conn:
        rows = conn.execute(
            select(CallFactRow.linkedid, CallFactRow.callid, CallFactRow.klass).where(
                CallFactRow.counted_at >= window.start, CallFactRow.counted_at < window.end
            )
        ).all()
        wanted = list(calls)
        known: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start : start + CHUNK]
            found = conn.execute(
                select(CallFactRow.linkedid, CallFactRow.callid, CallFactRow.klass).where(
                    CallFactRow.callid.in_(part) | CallFactRow.linkedid.in_(part)
                )
            ).all()
            for linkedid, callid, klass in found:
                known[callid or linkedid] = klass
                known.setdefault(linkedid, klass)
    added: list[str] = []
    disagree: list[Disagreement] = []
    resolved: dict[str, dict[str, Any]] = {}
    new_rows = []
    for callid, call in calls.items():
        assert call.klass is not None
        stored = known.get(callid)
        if stored is None:
            added.append(callid)
            new_rows.append(queue_log_row(callid, call, emergency_queues))
        elif stored == UNKNOWN:
            resolved[callid] = queue_log_row(callid, call, emergency_queues)
        elif stored != call.klass.value:
            disagree.append(Disagreement(callid, stored, call.klass.value))
    if not dry_run:
        store_rows(engine, new_rows)
        _resolve(engine, resolved)
    return Recomputed(window, len(calls), len(rows), tuple(added), tuple(disagree), tuple(resolved))


def _resolve(engine: Engine, resolved: dict[str, dict[str, Any]]) -> None:
    """Facts stored as unknown take queue_log's class (their Linkedid is kept)."""
    keep = ("linkedid", "counted_at", "closed_at")
    with engine.begin() as conn:
        for key, row in resolved.items():
            values = {k: v for k, v in row.items() if k not in keep}
            conn.execute(
                update(CallFactRow)
                .where(CallFactRow.klass == UNKNOWN)
                .where((CallFactRow.linkedid == key) | (CallFactRow.callid == key))
                .values(**values, counted_at=row["entered_at"], stored_at=utcnow())
            )
