"""The ami role's metrics wiring: AMI events -> the pure reducer -> the Redis store.

``on_event`` (the AmiClient's single consumer, in arrival order) keeps the events the service
reasons about (:func:`ivr.adapters.metrics.event_sink.is_kept`), folds each into the reducer with
``now`` = the time it was received, and hands the event and its effects to the store as one
batch (the event lands in ``ivr:ami:events`` with ``_received_at``).

Resync, on every AMI (re)login (``on_login``):

1. note the time and ask ``CoreShowChannels``;
2. ``close_missing`` with the Linkedids Asterisk still has, ``now`` = the time the channel
   list was asked for: calls that ended while the link was down are closed. One already
   answered keeps its class; the others come out as ``CallUnknown``;
3. each ``CallUnknown`` is looked up in Asterisk's queue_log (when ``queue_log_path`` is
   readable), by the Uniqueids the reducer saw for its Linkedid (queue_log's callid is the
   caller channel's Uniqueid): a call queue_log saw to its end is classified from it instead
   (whole seconds there; see :mod:`ivr.adapters.metrics.queue_log`); the rest stay ``unknown`` and
   count in the ``unknown_outcome`` anomaly;
4. one batch carries the outcomes, an ``IvrResync`` entry for the stream naming the calls
   closed (so that a replay closes exactly those at the same point), the resync counters,
   and the reducer's whole live state, which replaces what Redis holds;
5. ``QueueStatus``: its members replace the reducer's (members not listed are removed), the
   agent states are reconciled with them (:func:`ivr.core.agent_states.reconcile`: what
   QueueStatus says wins) and the live state is replaced again. Right after Asterisk
   starts, app_queue may not be loaded yet: QueueStatus is retried for ``members_wait_s``,
   then left to the next login (the link is not recycled for it).

The same queue_log lookup applies to a ``CallUnknown`` closed by a ``Hangup`` (a call whose
start the listener did not see). Nothing is dropped silently: each call ends counted once,
in a class or as ``unknown``.

Agent states (:mod:`ivr.core.agent_states`, one per 工号) are fed the same kept events, and
also each ``DeviceStateChange`` and ``ContactStatus`` (a phone's state: not kept in the
stream); the views that changed ride in the event's batch into ``ivr:live:agent_states``.

Restart: ``replay`` rebuilds the reducer's state and the agent states from the stream's last
``window_s`` seconds before the AMI link starts (the effects of stored events are already in
Redis: they are discarded), so calls in progress across a restart of the ami role keep their
history, and agents their calls of the day within that window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from redis.exceptions import RedisError

from ivr import redis_keys
from ivr.adapters.metrics.call_facts import CallFactsWriter
from ivr.adapters.metrics.event_sink import is_kept, write_heartbeat
from ivr.adapters.metrics.queue_log import (
    QueueLog,
    classify,
    classify_calls,
    read_since,
    records_of,
)
from ivr.adapters.metrics.store import LiveReset, MetricsStore
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.core import agent_states, screen_pop
from ivr.core.agent_states import AgentsConfig, AgentStates
from ivr.core.metrics import (
    AgentStateChanged,
    AnomalyKind,
    AnomalySeen,
    CallClassified,
    CallUnknown,
    Effect,
    MetricsConfig,
    MetricsState,
    WaitingStarted,
    apply,
    close_missing,
    snapshot,
)
from ivr.errors import AmiError
from ivr.logging_setup import mask_number
from ivr.protocols.ami import AmiMessage

logger = logging.getLogger(__name__)

RESYNC_EVENT: Final = "IvrResync"  # stream entry: Closed = the Linkedids a resync closed
REPLAY_PAGE: Final = 5_000
_US: Final = 1_000_000


class MetricsListener:
    def __init__(
        self,
        store: MetricsStore,
        config: MetricsConfig,
        queue_log_path: Path | None = None,
        *,
        queue_log_lookback_s: float = 6 * 3600.0,
        list_timeout_s: float = 10.0,
        members_wait_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        facts: CallFactsWriter | None = None,
    ) -> None:
        self.store = store
        self.facts = facts  # each call's outcome into SQL as well (the call facts)
        self.config = config
        self.state = MetricsState(config)
        self.agents = AgentStates(AgentsConfig(store.tz))  # one state per 工号
        self.queue_log_path = queue_log_path
        self._lookback_s = queue_log_lookback_s
        self._list_timeout_s = list_timeout_s
        self._members_wait_s = members_wait_s
        self._clock = clock
        self._lock = asyncio.Lock()  # one writer of the reducer state at a time
        self._last_event_at: float | None = None  # app clock, the latest event received
        self._outage_began: float | None = None  # the latest event before this AMI session
        store.on_recovered = self.replace_live
        self.counters: dict[str, int] = {
            "kept": 0,  # AMI events folded into the reducer
            "skipped": 0,  # AMI events the service does not keep
            "replayed": 0,  # stored events replayed at start
            "resyncs": 0,  # resyncs after a login
            "closed_at_resync": 0,  # calls a resync closed
            "closed_from_queue_log": 0,  # CallUnknown classified from queue_log instead
            "queue_log_errors": 0,  # queue_log reads that failed
        }

    # --- events ------------------------------------------------------------------------
    async def on_event(self, message: AmiMessage) -> None:
        """One AMI event, in arrival order (the AmiClient's single consumer)."""
        received_at = self._clock()
        if message.event == "FullyBooted":  # the first event of every AMI session
            self._outage_began = self._last_event_at
        if not is_kept(message):
            self.counters["skipped"] += 1
            if message.event in agent_states.EVENTS:  # a phone's state: agents only, not kept
                async with self._lock:
                    _, views = agent_states.apply(self.agents, message.to_dict(), received_at)
                    if views:
                        self.store.submit([], agent_states=views, at=received_at)
            return
        fields = message.to_dict()
        fields["_received_at"] = f"{received_at:.6f}"
        self._last_event_at = received_at
        async with self._lock:
            channels = self._channels_before(fields)
            _, effects = apply(self.state, fields, received_at)
            _, views = agent_states.apply(self.agents, fields, received_at)
            if any(isinstance(effect, CallUnknown) for effect in effects):
                effects, _ = await self._resolve_unknowns(effects, channels)
            self.store.submit(
                effects, event=fields, at=received_at, agent_states=views,
                call_facts=screen_pop.call_facts(fields), call_over=screen_pop.call_over(fields),
            )  # fmt: skip
            if self.facts is not None:
                self.facts.submit(effects)
        self.counters["kept"] += 1
        _log_outcomes(effects)

    def _channels_before(self, fields: Mapping[str, str]) -> dict[str, set[str]]:
        """For a Hangup, the Uniqueids seen for its call (its queue_log callids)."""
        linkedid = fields.get("Linkedid")
        if fields.get("Event") != "Hangup" or not linkedid:
            return {}
        call = self.state.calls.get(linkedid)
        seen = set(call.channels) if call is not None else set()
        return {linkedid: seen | {linkedid, fields.get("Uniqueid") or linkedid}}

    # --- resync ------------------------------------------------------------------------
    async def on_login(self, ami: AmiClient) -> None:
        """After every login: reconcile calls, then agents, with what Asterisk has now."""
        requested_at = self._clock()
        channels = await ami.send_list_action("CoreShowChannels", timeout=self._list_timeout_s)
        await self._resync_calls(
            [m for m in channels if m.event == "CoreShowChannel"], requested_at
        )
        members = await self._queue_status(ami)
        if members is None:
            return
        async with self._lock:
            now = self._clock()
            effects = self._reconcile_members(members, now)
            listed = [m.to_dict() for m in members if m.event == "QueueMember"]
            agent_states.reconcile(self.agents, listed, now)
            anomalies = [e for e in effects if isinstance(e, AnomalySeen)]
            self.store.submit(anomalies, live=self.live_reset())
        logger.info(
            "AMI resync: %d queue members, %d agents",
            len(self.state.members),
            len(self.agents.agents),
        )

    async def _resync_calls(self, listed: Sequence[AmiMessage], requested_at: float) -> None:
        linkedids = {m.get("Linkedid") or "" for m in listed}
        if "" in linkedids:
            logger.warning("CoreShowChannels without Linkedid: calls not reconciled")
            return
        async with self._lock:
            gone = {
                lid: set(call.channels) | {lid}
                for lid, call in self.state.calls.items()
                if lid not in linkedids
            }
            known = {uid for call in self.state.calls.values() for uid in call.channels}
            known |= {uid for uids in gone.values() for uid in uids}
            _, effects = close_missing(self.state, linkedids, requested_at)
            effects, resolved = await self._resolve_unknowns(effects, gone)
            live = {m.get("Uniqueid") or "" for m in listed} | known
            unseen = await self._unseen_calls(live)
            effects += unseen
            resolved += len(unseen)
            closed = [e.linkedid for e in effects if isinstance(e, CallClassified | CallUnknown)]
            marker = None
            if closed:
                marker = {
                    "Event": RESYNC_EVENT,
                    "Closed": " ".join(closed),
                    "_received_at": f"{requested_at:.6f}",
                }
            durable = [
                e for e in effects if isinstance(e, CallClassified | CallUnknown | AnomalySeen)
            ]
            counts = {
                "resyncs": 1,
                "closed": len(closed),
                "closed_unknown": sum(isinstance(e, CallUnknown) for e in effects),
                "closed_from_queue_log": resolved,
            }
            self.store.submit(
                durable, event=marker, live=self.live_reset(), resync=counts, at=requested_at
            )
            if self.facts is not None:
                self.facts.submit(durable)
        self.counters["resyncs"] += 1
        self.counters["closed_at_resync"] += len(closed)
        logger.info(
            "AMI resync: %d channels live, %d calls closed (%d from queue_log)",
            len(listed),
            len(closed),
            resolved,
        )
        _log_outcomes(durable)

    async def _queue_status(self, ami: AmiClient) -> list[AmiMessage] | None:
        """QueueStatus's list; None when Asterisk keeps refusing it (app_queue not loaded
        yet, right after a restart, or not at all): agents wait for the next login."""
        deadline = time.monotonic() + self._members_wait_s
        while True:
            try:
                return await ami.send_list_action("QueueStatus", timeout=self._list_timeout_s)
            except AmiError as exc:
                if "response" not in exc.details:
                    raise  # the link failed: the client rebuilds it and logs in again
                if time.monotonic() >= deadline:
                    logger.warning("agents not reconciled: %s", exc.message)
                    return None
            await asyncio.sleep(0.5)

    def _reconcile_members(self, messages: Iterable[AmiMessage], now: float) -> list[Effect]:
        """QueueStatus's members become the reducer's; members not listed are removed."""
        effects: list[Effect] = []
        listed: set[tuple[str, str]] = set()
        for message in messages:
            if message.event != "QueueMember":
                continue
            queue = message.get("Queue")
            interface = message.get("Location") or message.get("Interface")
            if not queue or not interface:
                continue
            listed.add((queue, interface))
            fields = {
                "Event": "QueueMemberStatus",
                "Queue": queue,
                "Interface": interface,
                "MemberName": message.get("Name") or message.get("MemberName") or interface,
            }
            for key in ("Status", "Paused", "InCall"):
                value = message.get(key)
                if value is not None:
                    fields[key] = value
            effects += apply(self.state, fields, now)[1]
        for queue, interface in list(self.state.members):
            if (queue, interface) not in listed:
                removed = {"Event": "QueueMemberRemoved", "Queue": queue, "Interface": interface}
                effects += apply(self.state, removed, now)[1]
        return effects

    async def _resolve_unknowns(
        self, effects: Sequence[Effect], channels: Mapping[str, set[str]]
    ) -> tuple[list[Effect], int]:
        """Replace each CallUnknown that queue_log saw to its end by its CallClassified."""
        unknown = [e for e in effects if isinstance(e, CallUnknown)]
        if not unknown or self.queue_log_path is None:
            return list(effects), 0
        since = min(e.closed_at for e in unknown) - self._lookback_s
        log = await self._read_queue_log(self.queue_log_path, since)
        if log is None:
            return list(effects), 0
        offset = (self.state.offset_us or 0) / _US  # queue_log has Asterisk's clock
        replaced: dict[str, CallClassified] = {}
        for gone in unknown:
            callids = channels.get(gone.linkedid, {gone.linkedid})
            call = classify(records_of(log.records, callids), self.config)
            if call is None or call.klass is None:
                continue
            replaced[gone.linkedid] = CallClassified(
                gone.linkedid,
                call.queue,
                call.klass,
                call.wait_s,
                call.threshold_s,
                call.entered_at + offset,
                gone.closed_at,
                call.caller,
                call.agent,
                call.talk_s,
                call.callid,
            )
        prefixes = tuple(f"{linkedid}: " for linkedid in replaced)
        out: list[Effect] = []
        for effect in effects:
            if isinstance(effect, CallUnknown) and effect.linkedid in replaced:
                out.append(replaced[effect.linkedid])
            elif not (
                prefixes
                and isinstance(effect, AnomalySeen)
                and effect.kind is AnomalyKind.UNKNOWN_OUTCOME
                and effect.detail.startswith(prefixes)
            ):
                out.append(effect)
        self.counters["closed_from_queue_log"] += len(replaced)
        return out, len(replaced)

    async def _unseen_calls(self, known: set[str]) -> list[Effect]:
        """The calls that queued and ended while the link was down, from queue_log alone.

        Their Linkedid is unknown: each is counted by its caller channel's Uniqueid (the
        queue_log callid; the Linkedid itself for a SIP caller)."""
        since = self._outage_began
        if self.queue_log_path is None or since is None:
            return []
        offset = (self.state.offset_us or 0) / _US
        began = int(since - offset)  # Asterisk's clock, whole seconds
        log = await self._read_queue_log(self.queue_log_path, began)
        if log is None:
            return []
        effects: list[Effect] = []
        for callid, call in classify_calls(log.records, self.config).items():
            if (
                call.klass is None
                or call.entered_at < began
                or callid in known
                or callid in self.state.closed
            ):
                continue
            effects.append(
                CallClassified(
                    callid,
                    call.queue,
                    call.klass,
                    call.wait_s,
                    call.threshold_s,
                    call.entered_at + offset,
                    (call.ended_at or call.entered_at) + offset,
                    call.caller,
                    call.agent,
                    call.talk_s,
                    callid,
                )
            )
        self.counters["closed_from_queue_log"] += len(effects)
        return effects

    async def _read_queue_log(self, path: Path, since: float) -> QueueLog | None:
        try:
            return await asyncio.to_thread(read_since, path, since)
        except OSError as exc:
            self.counters["queue_log_errors"] += 1
            logger.warning("queue_log %s not readable: %s", path, exc)
            return None

    # --- live state --------------------------------------------------------------------
    def live_reset(self) -> LiveReset:
        """The reducer's whole live state, to replace what Redis holds."""
        view = snapshot(self.state, self._clock())
        waiting = tuple(
            WaitingStarted(w.linkedid, w.queue, w.since, w.caller, w.threshold_s)
            for w in view.total.waiting
        )
        agents = tuple(
            AgentStateChanged(queue, interface, member.state(), member.name)
            for (queue, interface), member in self.state.members.items()
        )
        return LiveReset(waiting, agents, tuple(self.agents.views()))

    def replace_live(self) -> None:
        """Queue a live reset (the store calls this once Redis is back after an outage)."""
        self.store.submit([], live=self.live_reset())

    # --- restart -----------------------------------------------------------------------
    async def replay(self, window_s: float) -> int:
        """Rebuild the reducer's state from the stream's last ``window_s`` seconds.

        Their effects are already in Redis (each event was stored with them): discarded.
        Returns the number of entries replayed; Redis unreachable stops it with a warning.
        """
        if window_s <= 0:
            return 0
        start = f"{max(0, int((self._clock() - window_s) * 1000))}-0"
        count = 0
        try:
            while True:
                page = (
                    await self.store.redis.xrange(
                        redis_keys.AMI_EVENTS, min=start, max="+", count=REPLAY_PAGE
                    )
                    or []
                )
                for entry_id, raw in page:
                    self._replay_one(_entry_time(entry_id), _decode(raw or {}))
                    count += 1
                if len(page) < REPLAY_PAGE:
                    break
                start = "(" + _text(page[-1][0])
        except (RedisError, OSError) as exc:
            logger.warning(
                "replay of %s stopped after %d entries: %s", redis_keys.AMI_EVENTS, count, exc
            )
        self.counters["replayed"] += count
        logger.info(
            "metrics state rebuilt from %d stored events: %d calls open",
            count,
            len(self.state.calls),
        )
        return count

    def _replay_one(self, stored_at: float, fields: dict[str, str]) -> None:
        received = fields.get("_received_at", "")
        try:
            at = float(received)
        except ValueError:
            at = stored_at
        self._last_event_at = at
        if fields.get("Event") == RESYNC_EVENT:
            closed = set(fields.get("Closed", "").split())
            close_missing(self.state, self.state.open_linkedids() - closed, at)
        else:
            apply(self.state, fields, at)
            agent_states.apply(self.agents, fields, at)

    # --- heartbeat ---------------------------------------------------------------------
    def status(self, ami: AmiClient) -> dict[str, Any]:
        return {
            "connected": "1" if ami.connected else "0",
            **ami.counters,
            **self.counters,
            **self.store.stats(),
            **(self.facts.stats() if self.facts is not None else {}),
            "open_calls": len(self.state.calls),
            "agents": len(self.agents.agents),  # agents (工号) seen since the role started
            "agent_events_ignored": self.agents.ignored,  # without Queue or Interface
        }

    async def heartbeat(self, ami: AmiClient, interval_s: float = 1.0) -> None:
        """Publish ``ivr:ami:status`` every ``interval_s`` (it expires if we stop)."""
        while True:
            await write_heartbeat(self.store.redis, self.status(ami))
            await asyncio.sleep(interval_s)


def _log_outcomes(effects: Iterable[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, CallClassified):
            logger.info(
                "call %s %s (queue %s, waited %.1f s of %.0f s)",
                effect.linkedid,
                effect.klass.value,
                effect.queue or "-",
                effect.wait_s,
                effect.threshold_s,
                extra={
                    "call_id": effect.linkedid,
                    "state": effect.klass.value,
                    "queue": effect.queue,
                    "caller": mask_number(effect.caller),
                },
            )
        elif isinstance(effect, CallUnknown):
            logger.info(
                "call %s unknown: %s",
                effect.linkedid,
                effect.reason,
                extra={"call_id": effect.linkedid, "state": "unknown", "queue": effect.queue},
            )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(key): _text(value) for key, value in raw.items()}


def _entry_time(entry_id: Any) -> float:
    """A stream entry's own time (its ID's milliseconds), in seconds."""
    millis, _, _ = _text(entry_id).partition("-")
    return int(millis) / 1000 if millis.isdigit() else 0.0
