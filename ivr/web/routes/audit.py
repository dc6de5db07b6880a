"""The audit log for admins: who did what to which target, when and from where.

    GET /api/audit?action=&user=&target=&from=&to=&page=&size=

``admin`` only (401 without a session, 403 for other roles). Newest first, paged, with the
total. ``action`` and ``target`` match exactly (case-sensitive), or as a prefix when they
end in ``.`` or ``:`` (``action=recording.`` lists every replay, download and review;
``target=recording:12`` one call). ``user`` is the acting username (or ``cli:<login>``).
``from``/``to`` as in the recordings search (a local date, or a date and time).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ivr.adapters.recordings import query as catalog
from ivr.core.recording_search import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_count, time_bounds
from ivr.web.auth import AdminUser, DbDep
from ivr.web.deps import SettingsDep

router = APIRouter(tags=["audit"])


@router.get("/api/audit")
def audit_log(
    _: AdminUser,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
    action: Annotated[str | None, Query(max_length=64)] = None,
    user: Annotated[str | None, Query(max_length=128)] = None,
    target: Annotated[str | None, Query(max_length=255)] = None,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    since, until = time_bounds(start or None, end or None, settings.metrics.timezone)
    wanted = catalog.AuditFilter(
        action=action or None, actor=user or None, target=target or None, since=since, until=until
    )
    rows, total = catalog.list_audit(db, wanted, offset=(page - 1) * size, limit=size)
    response.headers.update({"Cache-Control": "no-store"})
    return {
        "page": page,
        "size": size,
        "total": total,
        "pages": page_count(total, size),
        "items": [
            {
                "id": row.id,
                "at": row.at.isoformat(),
                "user": row.actor,
                "user_id": row.user_id,
                "action": row.action,
                "target": row.target,
                "ip": row.ip,
            }
            for row in rows
        ],
    }
