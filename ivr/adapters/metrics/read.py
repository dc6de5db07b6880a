"""The metrics as the web reads them: the summary document with the store's health, today's
hourly series, and the change feed behind the SSE stream. Read only.

Over :class:`ivr.adapters.metrics.store.MetricsStore`: :meth:`MetricsReader.document` is
``MetricsStore.summary`` (the summary document of docs/answer-rate.md, one consistent Lua
snapshot) plus a few keys the supervisor page needs::

    period, bucket, timezone   what was read ("today", "2025-11-23", "Asia/Shanghai")
    at                          when (app clock, s since the epoch)
    answer_rate_target          0.9: the service standard (docs/service-standards.md)
    health                      MetricsStore.health: anomalies (all time, today), dropped, resync

Caller numbers come out as the store holds them, unmasked: the web masks them.

:meth:`MetricsReader.hourly` reads the hour buckets of one local day (``ivr:metrics:hour:*``,
the total of each), 24 of them (23 or 25 on a daylight-saving change day).

:meth:`MetricsReader.changes` subscribes to ``ivr:metrics:changed`` (the store publishes one
message per applied batch that changed something) and yields a :class:`ChangeFeed`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr import redis_keys
from ivr.adapters.metrics.store import PERIODS, MetricsStore, MetricsUnavailable, bucket_names
from ivr.core.metrics import Counters
from ivr.settings import Settings

logger = logging.getLogger(__name__)

#: Answer rate the hotline must reach (docs/service-standards.md: at least 90 %).
ANSWER_RATE_TARGET: Final = 0.9
HOUR_S: Final = 3600
_CLOSE_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class HourBucket:
    name: str  # the Redis bucket: 2025-11-23T10+0800
    start: float  # its first instant, s since the epoch
    label: str  # local clock time it starts at: 10:00


def day_hours(day: date, tz: ZoneInfo) -> list[HourBucket]:
    """The hour buckets of the local ``day`` in ``tz``, in order.

    >>> hours = day_hours(date(2025, 11, 23), ZoneInfo("Asia/Shanghai"))
    >>> len(hours), hours[0].name, hours[10].label, hours[-1].name
    (24, '2025-11-23T00+0800', '10:00', '2025-11-23T23+0800')
    >>> len(day_hours(date(2025, 3, 30), ZoneInfo("Europe/Berlin")))  # clocks go forward
    23
    >>> [h.name for h in day_hours(date(2025, 10, 26), ZoneInfo("Europe/Berlin"))][2:4]
    ['2025-10-26T02+0200', '2025-10-26T02+0100']
    """
    following = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    end = datetime(following.year, following.month, following.day, tzinfo=tz).timestamp()
    hours: list[HourBucket] = []
    at = start
    while at < end:
        name = bucket_names(at, tz)["hour"]
        if not hours or hours[-1].name != name:
            hours.append(HourBucket(name, at, datetime.fromtimestamp(at, tz).strftime("%H:%M")))
        at += HOUR_S
    return hours


class ChangeFeed(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` s for a change; True when one came."""
        ...


class RedisChangeFeed:
    """``ivr:metrics:changed`` messages on one pub/sub connection."""

    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self._pubsub = pubsub

    async def wait(self, timeout: float) -> bool:
        try:
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=max(0.0, timeout)
            )
        except (RedisError, OSError) as exc:
            raise MetricsUnavailable(f"metrics change feed lost: {exc}") from exc
        return message is not None


class MetricsReader:
    def __init__(self, store: MetricsStore, *, target: float = ANSWER_RATE_TARGET) -> None:
        self.store = store
        self.target = target

    @classmethod
    def from_settings(cls, client: aioredis.Redis, settings: Settings) -> MetricsReader:
        return cls(
            MetricsStore.from_settings(
                client,
                settings.metrics,
                settings.redis.events_maxlen,
                settings.redis.events_max_age_s,
            )  # fmt: skip
        )

    @property
    def tz(self) -> ZoneInfo:
        return self.store.tz

    @property
    def timezone(self) -> str:
        return self.store.tz.key

    def local_day(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.tz).date()

    async def document(self, period: str, now: float) -> dict[str, Any]:
        """The summary of ``period`` (hour, today, month) at ``now``, with the health counters.

        Raises ValueError for another period and MetricsUnavailable when Redis cannot be read.
        """
        summary = await self.store.summary(period, now)
        health = await self.store.health(now)
        return summary | {
            "period": period,
            "bucket": self.store.buckets(now)[PERIODS[period]],
            "timezone": self.timezone,
            "at": round(now, 3),
            "answer_rate_target": self.target,
            "health": health,
        }

    async def hourly(self, day: date) -> dict[str, Any]:
        """Every hour of the local ``day``: the five classes, offered and the answer rate."""
        hours = day_hours(day, self.tz)
        try:
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for hour in hours:
                    pipe.hgetall(redis_keys.metrics_counts("hour", hour.name))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise MetricsUnavailable(f"metrics not readable from Redis: {exc}") from exc
        series = [
            {"hour": hour.name, "start": hour.start, "label": hour.label}
            | Counters.from_mapping(dict(reply or {})).to_json()
            for hour, reply in zip(hours, replies, strict=True)
        ]
        return {
            "day": day.isoformat(),
            "timezone": self.timezone,
            "answer_rate_target": self.target,
            "hours": series,
        }

    @asynccontextmanager
    async def changes(self) -> AsyncIterator[ChangeFeed]:
        """Subscribed to ``ivr:metrics:changed`` for the life of the block.

        Subscribe before reading the first document, so no change falls in between. The
        connection is given back even when the block is cancelled (a client went away).
        """
        pubsub = self.store.redis.pubsub()
        try:
            try:
                await pubsub.subscribe(redis_keys.METRICS_CHANGED)
            except (RedisError, OSError) as exc:
                raise MetricsUnavailable(f"metrics change feed unavailable: {exc}") from exc
            yield RedisChangeFeed(pubsub)
        finally:
            with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                try:
                    await pubsub.aclose()
                except (RedisError, OSError) as exc:
                    logger.debug("closing the metrics pub/sub: %s", exc)
