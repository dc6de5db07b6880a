"""Liveness and readiness of the web role, and of what it depends on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from ivr import redis_keys
from ivr.web.deps import RedisDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(redis: RedisDep, response: Response) -> dict[str, Any]:
    """200 when the web role can reach Redis; 503 otherwise. Public: no customer data."""
    try:
        await redis.ping()
        listener = await redis.hgetall(redis_keys.AMI_STATUS)
    except (RedisError, OSError) as exc:
        response.status_code = 503
        return {"status": "degraded", "redis": False, "error": type(exc).__name__}
    return {
        "status": "ok",
        "redis": True,
        "ami_listener": {
            "connected": listener.get("connected") == "1",
            "events": int(listener.get("events", 0)),
            "reconnects": int(listener.get("reconnects", 0)),
        }
        if listener
        else None,
    }
