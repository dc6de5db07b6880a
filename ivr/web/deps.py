"""Dependency aliases for the routes (settings, Redis, the metrics reader)."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Path, Request

from ivr.adapters.metrics_read import MetricsReader
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
