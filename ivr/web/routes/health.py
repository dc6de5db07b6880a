"""Liveness and readiness of the web role, and of what it depends on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from ivr import redis_keys
from ivr.adapters.disk import DiskWatch
from ivr.web.deps import RedisDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(redis: RedisDep, request: Request, response: Response) -> dict[str, Any]:
    """200 when the web role can reach Redis; 503 otherwise. Public: no customer data, so
    the folders low on disk space are named without figures (those are in the logs)."""
    disk: DiskWatch = request.app.state.disk_watch
    disk_low = [space.label for space in await run_in_threadpool(disk.check)]
    try:
        await redis.ping()
        listener = await redis.hgetall(redis_keys.AMI_STATUS)
    except (RedisError, OSError) as exc:
        response.status_code = 503
        return {"status": "degraded", "redis": False, "error": type(exc).__name__,
                "disk_low": disk_low}  # fmt: skip
    return {
        "status": "low-disk-space" if disk_low else "ok",
        "disk_low": disk_low,
        "redis": True,
        "ami_listener": {
            "connected": listener.get("connected") == "1",
            "events": int(listener.get("events", 0)),
            "reconnects": int(listener.get("reconnects", 0)),
        }
        if listener
        else None,
    }
