"""Dependency aliases for the routes (settings, Redis, the metrics reader)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Final

import redis.asyncio as aioredis
from fastapi import Depends, Path, Request

from ivr.adapters.metrics.read import MetricsReader
from ivr.errors import HotlineError
from ivr.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


SettingsDep = Annotated[Settings, Depends(get_settings)]

#: A row id in a path: a positive integer that fits SQL's BIGINT (SQLite refuses larger
#: Python ints with an OverflowError), else 422 before any query.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]


def get_metrics_reader(request: Request) -> MetricsReader:
    reader: MetricsReader = request.app.state.metrics_reader
    return reader


MetricsReaderDep = Annotated[MetricsReader, Depends(get_metrics_reader)]


#: How deep a JSON body may nest: the hotline's bodies go three levels deep; thousands of
#: nested arrays in a few KiB would otherwise exhaust the parser's recursion (a 500).
MAX_JSON_DEPTH: Final = 32


async def read_body(
    request: Request, max_bytes: int, invalid: Callable[[str], HotlineError]
) -> bytes:
    """The request body, refused (``invalid``, a 422 error) past ``max_bytes``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise invalid("request body too large")
    return bytes(body)


def parse_json(body: bytes, invalid: Callable[[str], HotlineError]) -> Any:
    """``body`` as JSON; anything else, or JSON nested deeper than :data:`MAX_JSON_DEPTH`,
    is refused with ``invalid`` (a 422 error), never a 500."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise invalid("the body is not valid JSON") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest
