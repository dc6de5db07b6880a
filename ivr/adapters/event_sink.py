"""The AMI listener's output: AMI events into a capped Redis stream, and a heartbeat hash.

Only the events the service reasons about are kept (``KEPT_EVENTS``, plus ``VarSet`` of
``IVR_*`` variables); the others are counted. Redis being down never stops the listener:
the failure is logged and counted (live counters with buffering come with the metrics work).
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr import redis_keys
from ivr.adapters.ami_client import AmiClient
from ivr.protocols.ami import AmiMessage

logger = logging.getLogger(__name__)

KEPT_EVENTS = frozenset(
    {
        # channels and the dialplan
        *("Newchannel", "Hangup", "Newstate", "NewCallerid", "NewConnectedLine"),
        *("AGIExecStart", "AGIExecEnd", "DTMFEnd"),
        *("DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave"),
        # queues and agents
        *("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"),
        *("AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"),
        *("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberStatus", "QueueMemberPause"),
        # Asterisk itself
        *("FullyBooted", "Reload", "Shutdown"),
    }
)


def is_kept(message: AmiMessage) -> bool:
    name = message.event
    if name == "VarSet":
        return (message.get("Variable") or "").startswith("IVR_")
    return name in KEPT_EVENTS


class RedisEventSink:
    def __init__(self, client: aioredis.Redis, maxlen: int) -> None:
        self.redis = client
        self.maxlen = maxlen
        self.counters = {"stored": 0, "skipped": 0, "redis_errors": 0}

    async def on_event(self, message: AmiMessage) -> None:
        if not is_kept(message):
            self.counters["skipped"] += 1
            return
        fields = message.to_dict()
        fields["_received_at"] = f"{time.time():.6f}"
        try:
            await self.redis.xadd(
                redis_keys.AMI_EVENTS, fields,  # type: ignore[arg-type]
                maxlen=self.maxlen, approximate=True,
            )  # fmt: skip
        except RedisError as exc:
            self.counters["redis_errors"] += 1
            logger.warning("event not stored: Redis error: %s", exc)
            return
        self.counters["stored"] += 1

    async def heartbeat(self, ami: AmiClient) -> None:
        """Publish the listener's state; the hash expires if the listener dies."""
        status = {"connected": "1" if ami.connected else "0", "updated_at": f"{time.time():.3f}"}
        status |= {k: str(v) for k, v in ami.counters.items()}
        status |= {k: str(v) for k, v in self.counters.items()}
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(redis_keys.AMI_STATUS, mapping=status)  # type: ignore[arg-type]
                pipe.expire(redis_keys.AMI_STATUS, redis_keys.AMI_HEARTBEAT_TTL_S)
                await pipe.execute()
        except RedisError as exc:
            self.counters["redis_errors"] += 1
            logger.warning("heartbeat not stored: Redis error: %s", exc)
