"""The web role: FastAPI app factory. Routers per resource under ivr/web/routes/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from ivr.adapters.disk import DiskWatch
from ivr.adapters.metrics.read import MetricsReader
from ivr.adapters.sql import db, schema
from ivr.errors import HotlineError
from ivr.settings import Settings
from ivr.web.auth import AuthError, LoginThrottle, PasswordChecks, auth_error_handler
from ivr.web.errors import error_response
from ivr.web.limits import WindowLimit
from ivr.web.routes import (
    agents,
    audit,
    auth,
    desk,
    health,
    metrics,
    outbound,
    pages,
    phone,
    phrases,
    pop,
    presence,
    recordings,
    reports,
    stt,
    ticket_desk,
    tickets,
)
from ivr.web.routes.metrics import OpenStreams


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db_engine = db.settings_engine(settings)
        try:
            schema.require_head(app.state.db_engine)  # not at this code's revision: refused
        except db.DatabaseUnavailable:
            app.state.db_engine.dispose()
            raise
        app.state.login_throttle = LoginThrottle.from_settings(settings.auth)
        app.state.password_checks = PasswordChecks.from_settings(settings.auth)
        app.state.disk_watch = DiskWatch.from_settings(settings)
        app.state.open_streams = OpenStreams(settings.web.max_streams_per_user)
        app.state.partial_searches = WindowLimit(
            settings.recordings.partial_search_per_hour, 3600.0
        )
        app.state.redis = aioredis.Redis.from_url(
            settings.redis.url, **settings.redis_auth(), decode_responses=True, socket_timeout=2,
            socket_connect_timeout=2,
        )  # fmt: skip
        app.state.metrics_reader = MetricsReader.from_settings(app.state.redis, settings)
        try:
            yield
        finally:
            app.state.password_checks.close()
            await app.state.redis.aclose()
            app.state.db_engine.dispose()

    app = FastAPI(title="hotline", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(auth.router)
    app.include_router(metrics.router)
    app.include_router(recordings.router)
    app.include_router(audit.router)
    app.include_router(tickets.router)
    app.include_router(ticket_desk.router)
    app.include_router(stt.router)
    app.include_router(agents.router)
    app.include_router(presence.router)
    app.include_router(desk.router)
    app.include_router(phrases.router)
    app.include_router(reports.router)
    app.include_router(phone.router)
    app.include_router(pop.router)
    app.include_router(outbound.router)
    app.add_exception_handler(AuthError, auth_error_handler)

    @app.exception_handler(HotlineError)
    async def domain_error(_: Request, exc: HotlineError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(OperationalError)
    async def database_unusable(_: Request, exc: OperationalError) -> JSONResponse:
        """A locked SQLite file or a lost database connection: 503 with Retry-After."""
        return error_response(db.database_error(exc))

    return app
