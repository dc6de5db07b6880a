"""What the AMI listener keeps of the AMI events, and its heartbeat hash.

Only the events the service reasons about are kept (``KEPT_EVENTS``, plus ``VarSet`` of the
call-flow's ``IVR_*`` variables and of app_queue's ``QUEUESTATUS``); the others are counted
and skipped. The kept events go, with their effects on the metrics, into the capped stream
``ivr:ami:events`` (:class:`ivr.adapters.metrics_store.MetricsStore` writes both in one
atomic step). ``write_heartbeat`` publishes the listener's state in ``ivr:ami:status``, a
hash that expires when the listener stops refreshing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr import redis_keys
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
#: VarSet variables kept besides ``IVR_*`` (a leading ``_``/``__`` inheritance mark ignored).
KEPT_VARIABLES = frozenset({"QUEUESTATUS"})


def is_kept(message: AmiMessage) -> bool:
    name = message.event
    if name == "VarSet":
        variable = (message.get("Variable") or "").lstrip("_")
        return variable.startswith("IVR_") or variable in KEPT_VARIABLES
    return name in KEPT_EVENTS


async def write_heartbeat(client: aioredis.Redis, status: Mapping[str, object]) -> bool:
    """Store ``status`` (plus ``updated_at``) in the heartbeat hash; False if Redis failed."""
    fields = {k: str(v) for k, v in status.items()} | {"updated_at": f"{time.time():.3f}"}
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(redis_keys.AMI_STATUS, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(redis_keys.AMI_STATUS, redis_keys.AMI_HEARTBEAT_TTL_S)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        logger.debug("heartbeat not stored: Redis error: %s", exc)
        return False
    return True
