"""Speech-to-text jobs over HTTP: the queue's state and its dead letters.

Routes::

    GET  /api/stt/jobs?status=dead&limit=100   jobs, most recently changed first, with counts
                                               per status; status=dead is the dead-letter
                                               list, each with its reason (``last_error``)
    GET  /api/stt/jobs/{id}                    one job
    POST /api/stt/jobs/{id}/retry              a dead job back in the queue (admin) -> 202

Roles: ``supervisor`` reads (``admin`` holds every role); only ``admin`` requeues. 401 without
a session, 403 for another role, 404 for an unknown job, 409 when the job is not dead, 422
for an unknown status or a bad limit; errors are ``{"error", "message", "details"}``. A
requeue is written to the audit log (``stt.retry``) and sent to the stream at once; if Redis
is away the row waits unsent and the workers' sweep sends it (``"sent": false``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import SttJob, User, audit
from ivr.adapters.stt import job_queue as stt_queue
from ivr.web.auth import AdminUser, DbDep, SupervisorUser, client_ip, get_engine
from ivr.web.deps import RedisDep, SettingsDep
from ivr.web.static_pages import NO_STORE

logger = logging.getLogger(__name__)

router = APIRouter(tags=["stt"])
MAX_LIMIT: Final = 500


def _job_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise stt_queue.SttJobNotFound(f"no speech-to-text job {raw!r}") from None


def _limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise stt_queue.InvalidJobQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return value


@router.get("/api/stt/jobs")
def list_jobs(
    _user: SupervisorUser, db: DbDep, status: str | None = None, limit: str = "100"
) -> JSONResponse:
    wanted = stt_queue.parse_status(status) if status else None
    rows = stt_queue.list_jobs(db, status=wanted, limit=_limit(limit))
    document = {
        "jobs": [stt_queue.job_json(job) for job in rows],
        "counts": stt_queue.status_counts(db),
    }
    return JSONResponse(document, headers=NO_STORE)


@router.get("/api/stt/jobs/{job_id}")
def get_job(_user: SupervisorUser, db: DbDep, job_id: str) -> JSONResponse:
    job = db.get(SttJob, _job_id(job_id))
    if job is None:
        raise stt_queue.SttJobNotFound(f"no speech-to-text job {job_id}")
    return JSONResponse(stt_queue.job_json(job), headers=NO_STORE)


def _requeue(engine: Engine, job_id: int, user: User, ip: str) -> None:
    with Session(engine) as session:
        stt_queue.retry_dead(session, job_id)
        audit(session, user, "stt.retry", target=f"stt_job:{job_id}", ip=ip)
        session.commit()
    logger.info("stt job requeued by hand", extra={"job": job_id, "username": user.username})


def _read(engine: Engine, job_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        job = session.get(SttJob, job_id)
        assert job is not None  # jobs are never deleted
        return stt_queue.job_json(job)


@router.post("/api/stt/jobs/{job_id}/retry")
async def retry_job(
    user: AdminUser, request: Request, settings: SettingsDep, client: RedisDep, job_id: str
) -> JSONResponse:
    engine = get_engine(request)
    number = _job_id(job_id)
    await asyncio.to_thread(_requeue, engine, number, user, client_ip(request))
    try:
        await stt_queue.send_pending(client, engine, settings.stt)
    except (RedisError, OSError) as exc:
        logger.warning("stt job not sent: Redis away", extra={"job": number, "error": str(exc)})
    job = await asyncio.to_thread(_read, engine, number)
    return JSONResponse(
        {"job": job, "sent": job["stream_id"] is not None}, status_code=202, headers=NO_STORE
    )
