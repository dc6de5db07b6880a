"""Recordings for QA: search, replay, download, transcript, immutable reviews, and the QA page.

Routes (every one needs the ``qa`` role, but the audio, which ``supervisor`` may play too,
from the report page; ``admin`` holds both; the page and its two assets aside, all under
``/api/``: 401 JSON without a session, 403 JSON without the role)::

    GET  /api/recordings                      search, newest first, paged, with the total
    GET  /api/recordings/{id}                 one call: its row, transcript (words with
                                              timings) and reviews
    GET  /api/recordings/{id}/audio           the stereo wav, seekable (Range, 206/416);
                                              audited as a replay (HEAD: headers only,
                                              not audited); qa or supervisor
    GET  /api/recordings/{id}/download?format=wav|mp3
                                              an attachment; audited as a download
    GET  /api/recordings/{id}/reviews         the reviews, oldest first, who and when
    POST /api/recordings/{id}/reviews         a new review (201); same-origin check
    GET  /api/recordings/{id}/reviews/{rid}   one review
    PUT/PATCH/DELETE on the reviews           405 ``review-immutable``: a correction is a
                                              new review with ``corrects_id``
    GET  /api/qa/items                        the spot-check items (keys, zh/en labels, range)
    GET  /qa                                  the QA page (signed out: 303 to /login?next=/qa)
    GET  /static/qa.js, /static/qa.css        its script and style (no data: public)

Search parameters (all optional): ``from``/``to`` (a local date — ``to`` then includes that
whole day — or a date and time; local to ``metrics.timezone`` unless an offset is given),
``caller`` (the whole number or its last digits, 3 or more), ``desk``, ``queue``, ``agent``,
``min_duration``/``max_duration`` (seconds), ``has_transcript``, ``emergency``, ``status``,
``direction`` (``inbound``, or ``outbound``: an agent's recorded click-to-call), ``page``
(from 1) and ``size`` (at most 200). Numbers (caller, account) are masked (``138******00``)
unless the user's role is in ``recordings.unmasked_roles``.

Each row carries ``status`` (ok, empty, corrupt, incomplete, deleted), ``status_detail`` and
``playable``; the audio and download of a row with nothing to play answer 409/410 JSON (see
:mod:`ivr.adapters.recordings.files`). The file is found only through the row's file name;
no request value is ever used as a path.

Replay auditing (:mod:`ivr.adapters.recordings.query`): a request without ``Range`` or from
byte 0 is a replay and writes one ``recording.replay`` row (a repeat within 5 s is the
browser's second request for the same start); seeks within an hour of the user's last
replay of that call write nothing more, seeks without one are audited as a replay. A range
that is not satisfiable, and several ranges in one request, get 416 with
``Content-Range: bytes */<size>``; a Range header that cannot be parsed is ignored (200).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ivr.adapters.recordings import query as catalog
from ivr.adapters.recordings.audio_convert import file_sha256, to_mp3
from ivr.adapters.recordings.files import FileInfo, locate, stat_file
from ivr.adapters.sql.db import Recording, RecordingStatus, Review, Role, Transcript, User
from ivr.core import qa
from ivr.core.http_range import (
    RangeNotSatisfiable,
    if_range_allows,
    parse_range,
    starts_a_replay,
)
from ivr.core.recording_search import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PartialNumberSearch,
    build_filter,
    caller_digits,
    page_count,
)
from ivr.errors import HotlineError
from ivr.logging_setup import mask_number
from ivr.web import api_docs, static_pages
from ivr.web.auth import DbDep, QaUser, client_ip, require_roles
from ivr.web.deps import RowId, SettingsDep, parse_json, read_body
from ivr.web.errors import error_response
from ivr.web.static_pages import NO_STORE

logger = logging.getLogger(__name__)

router = APIRouter(tags=["recordings"])
MEDIA_TYPES: Final = {"wav": "audio/wav", "mp3": "audio/mpeg"}
MAX_REVIEW_BODY: Final = 64 * 1024
IMMUTABLE_METHODS: Final = ["PUT", "PATCH", "DELETE"]
StatusName = Literal["ok", "empty", "corrupt", "incomplete", "deleted"]
PLAYABLE: Final = frozenset({RecordingStatus.ok, RecordingStatus.incomplete})


class ReviewImmutable(HotlineError):
    """A stored review is never changed or deleted (HTTP 405): post a correction instead."""

    slug = "review-immutable"
    status = 405


class PartialSearchLimit(HotlineError):
    """Too many searches by last digits within the hour for this user."""

    slug = "partial-search-limit"
    status = 429

    def __init__(self, wait_s: int, **details: Any) -> None:
        super().__init__(
            f"too many searches by a number's last digits this hour; try again in {wait_s} s",
            **details,
        )


class InvalidReviewRequest(HotlineError):
    """A posted review that is not JSON, or too large, before its items are checked."""

    slug = "invalid-review-request"
    status = 422


# --- documents --------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def shows_numbers(user: User, unmasked_roles: list[str]) -> bool:
    return user.role.value in unmasked_roles


def recording_json(rec: Recording, *, unmasked: bool, reviews: int) -> dict[str, Any]:
    def number(value: str | None) -> str | None:
        return value if value is None or unmasked else mask_number(value)

    return {
        "id": rec.id,
        "linkedid": rec.linkedid,
        "started_at": _iso(rec.started_at),
        "answered_at": _iso(rec.answered_at),
        "ended_at": _iso(rec.ended_at),
        "did": rec.did,
        "caller": number(rec.caller),
        "account": number(rec.account),
        "numbers_masked": not unmasked,
        "category": rec.category,
        "desk": rec.desk,
        "queue": rec.queue,
        "agent": rec.agent,
        "emergency": rec.emergency,
        "direction": rec.direction,
        "wait_s": rec.wait_s,
        "duration_s": rec.duration_s,
        "audio_s": rec.audio_s,
        "format": rec.format,
        "size_bytes": rec.size_bytes,
        "status": rec.status.value,
        "status_detail": rec.status_detail,
        "playable": rec.status in PLAYABLE and bool(rec.file_name),
        "has_transcript": rec.transcript_id is not None,
        "transcript_id": rec.transcript_id,
        "voice_message_id": rec.voice_message_id,
        "reviews": reviews,
    }


def review_json(review: Review, corrected_by: list[int]) -> dict[str, Any]:
    return {
        "id": review.id,
        "recording_id": review.recording_id,
        "reviewer": review.reviewer,
        "created_at": _iso(review.created_at),
        "corrects_id": review.corrects_id,
        "corrected_by": corrected_by,
        "items": review.items,
        "total": review.total,
        "max_total": qa.max_total(),
        "comment": review.comment,
    }


def reviews_json(reviews: list[Review]) -> list[dict[str, Any]]:
    corrections: dict[int, list[int]] = {}
    for review in reviews:
        if review.corrects_id is not None:
            corrections.setdefault(review.corrects_id, []).append(review.id)
    return [review_json(review, corrections.get(review.id, [])) for review in reviews]


def transcript_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "id": transcript.id,
        "language": transcript.language,
        "model": transcript.model,
        "text": transcript.text,
        "words": transcript.words,
        "confidence": transcript.confidence,
        "audio_s": transcript.audio_s,
        "danger_words": transcript.danger_words,
        "created_at": _iso(transcript.created_at),
    }


# --- search and one call ----------------------------------------------------------------------
@router.get("/api/recordings")
def search_recordings(
    user: QaUser,
    db: DbDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    caller: Annotated[str | None, Query(max_length=48)] = None,
    desk: Annotated[str | None, Query(max_length=40)] = None,
    queue: Annotated[str | None, Query(max_length=40)] = None,
    agent: Annotated[str | None, Query(max_length=80)] = None,
    min_duration: Annotated[float | None, Query(ge=0)] = None,
    max_duration: Annotated[float | None, Query(ge=0)] = None,
    has_transcript: bool | None = None,
    emergency: bool | None = None,
    status: StatusName | None = None,
    direction: Literal["inbound", "outbound"] | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """One page of the calls matching every given filter, newest first, and their total.

    A role that sees numbers masked searches by a whole number only (exact match); a search
    by last digits is for the roles that see numbers, at most
    ``recordings.partial_search_per_hour`` an hour. Every search by a number is audited with
    what was searched, a refused one too."""
    unmasked = shows_numbers(user, settings.recordings.unmasked_roles)
    try:
        wanted = build_filter(
            timezone=settings.metrics.timezone,
            start=start,
            end=end,
            caller=caller,
            desk=desk,
            queue=queue,
            agent=agent,
            min_duration_s=min_duration,
            max_duration_s=max_duration,
            has_transcript=has_transcript,
            emergency=emergency,
            status=status,
            direction=direction,
            whole_number_only=not unmasked,
        )
    except PartialNumberSearch:
        digits = caller_digits(caller or "")
        catalog.audit_number_search(
            db, user, digits, exact=False, refused=True, ip=client_ip(request)
        )
        db.commit()
        raise
    if wanted.caller_partial:
        wait = request.app.state.partial_searches.take(user.username)
        if wait is not None:
            raise PartialSearchLimit(round(wait), retry_after_s=round(wait))
    found = catalog.search(db, wanted, offset=(page - 1) * size, limit=size)
    if wanted.caller:  # looking a person up by number leaves a trace, like a replay
        catalog.audit_number_search(
            db, user, wanted.caller, exact=wanted.caller_exact, ip=client_ip(request)
        )
        db.commit()
    response.headers.update(NO_STORE)
    return {
        "page": page,
        "size": size,
        "total": found.total,
        "pages": page_count(found.total, size),
        "numbers_masked": not unmasked,
        "timezone": settings.metrics.timezone,
        "items": [
            recording_json(row, unmasked=unmasked, reviews=found.review_counts.get(row.id, 0))
            for row in found.rows
        ],
    }


@router.get("/api/recordings/{recording_id}")
def recording_detail(
    recording_id: RowId, user: QaUser, db: DbDep, settings: SettingsDep, response: Response
) -> dict[str, Any]:
    """The call's row, its transcript (or null) and its reviews."""
    rec = catalog.get_recording(db, recording_id)
    reviews = catalog.reviews_of(db, rec.id)
    transcript = catalog.transcript_of(db, rec)
    unmasked = shows_numbers(user, settings.recordings.unmasked_roles)
    response.headers.update(NO_STORE)
    return {
        "recording": recording_json(rec, unmasked=unmasked, reviews=len(reviews)),
        "transcript": transcript_json(transcript) if transcript is not None else None,
        "reviews": reviews_json(reviews),
    }


# --- audio --------------------------------------------------------------------------------------
def _file_headers(opened: FileInfo, media_type: str, disposition: str) -> dict[str, str]:
    return {
        "Content-Type": media_type,
        "Content-Disposition": disposition,
        "ETag": opened.etag,
        "Last-Modified": opened.last_modified,
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }


def _whole(opened: FileInfo, headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        opened.chunks(0, opened.size),
        status_code=200,
        headers=headers | {"Content-Length": str(opened.size)},
    )


#: Who may play a recording: QA, and supervisors from the report page's lists (/reports), who
#: neither search, download nor score.
ListenerUser = Annotated[User, require_roles(Role.qa, Role.supervisor)]


# One route per method, so that each has its own OpenAPI operation id.
@router.head("/api/recordings/{recording_id}/audio")
@router.get("/api/recordings/{recording_id}/audio")
def recording_audio(
    recording_id: RowId, user: ListenerUser, db: DbDep, settings: SettingsDep, request: Request
) -> Response:
    """The stereo wav (caller left, agent right); ``Range: bytes=a-b`` gives 206. HEAD: the
    whole file's headers, no body and no audit row (nothing is heard)."""
    rec = catalog.get_recording(db, recording_id)
    opened = stat_file(locate(settings.recordings_dir, rec), rec.id)
    headers = _file_headers(opened, MEDIA_TYPES["wav"], f'inline; filename="call-{rec.id}.wav"')
    if request.method == "HEAD":
        length = {"Content-Length": str(opened.size), "Accept-Ranges": "bytes"}
        return Response(status_code=200, headers=headers | length)
    try:
        wanted = parse_range(request.headers.get("range"), opened.size)
    except RangeNotSatisfiable as exc:
        return error_response(
            exc, headers={"Content-Range": exc.content_range, "Accept-Ranges": "bytes", **NO_STORE}
        )
    if wanted is not None and not if_range_allows(
        request.headers.get("if-range"), opened.etag, opened.last_modified
    ):
        wanted = None
    catalog.audit_replay(
        db, user, rec.id, starts_replay=starts_a_replay(wanted), ip=client_ip(request)
    )
    db.commit()
    headers["Accept-Ranges"] = "bytes"
    if wanted is None:
        return _whole(opened, headers)
    return StreamingResponse(
        opened.chunks(wanted.start, wanted.length),
        status_code=206,
        headers=headers
        | {
            "Content-Length": str(wanted.length),
            "Content-Range": wanted.content_range(opened.size),
        },
    )


@router.get("/api/recordings/{recording_id}/download")
def recording_download(
    recording_id: RowId,
    user: QaUser,
    db: DbDep,
    settings: SettingsDep,
    request: Request,
    fmt: Annotated[Literal["wav", "mp3"], Query(alias="format")] = "wav",
) -> Response:
    """The recording as an attachment: the wav itself, or an mp3 made (and cached) now."""
    rec = catalog.get_recording(db, recording_id)
    source = locate(settings.recordings_dir, rec)
    opened = stat_file(source, rec.id)  # refuses a missing or empty file first
    if fmt == "mp3":
        mp3 = to_mp3(source, settings.conversion_dir, digest=file_sha256(source))
        opened = stat_file(mp3, rec.id)
    catalog.audit_download(db, user, rec.id, fmt, ip=client_ip(request))
    db.commit()
    name = f"call-{rec.id}-{rec.started_at:%Y%m%d-%H%M%S}.{fmt}"
    disposition = f'attachment; filename="{name}"'
    return _whole(opened, _file_headers(opened, MEDIA_TYPES[fmt], disposition))


# --- reviews ------------------------------------------------------------------------------------
async def review_body(request: Request) -> Any:
    """The posted JSON (at most 64 KiB)."""
    body = await read_body(request, MAX_REVIEW_BODY, InvalidReviewRequest)
    return parse_json(body, lambda _: InvalidReviewRequest("send the review as JSON"))


@router.get("/api/qa/items")
def review_items(_: QaUser, response: Response) -> dict[str, Any]:
    """The spot-check items a review scores, in order."""
    response.headers.update(NO_STORE)
    return {"items": [item.to_json() for item in qa.ITEMS], "max_total": qa.max_total()}


@router.get("/api/recordings/{recording_id}/reviews")
def list_reviews(recording_id: RowId, _: QaUser, db: DbDep, response: Response) -> dict[str, Any]:
    rec = catalog.get_recording(db, recording_id)
    response.headers.update(NO_STORE)
    return {"reviews": reviews_json(catalog.reviews_of(db, rec.id))}


@router.post(
    "/api/recordings/{recording_id}/reviews",
    status_code=201,
    openapi_extra=api_docs.json_body(qa.review_json_schema()),
)
def add_review(
    recording_id: RowId,
    user: QaUser,
    db: DbDep,
    request: Request,
    payload: Annotated[Any, Depends(review_body)],
) -> JSONResponse:
    """Score the call on every spot-check item; ``corrects_id`` names a review it corrects."""
    rec = catalog.get_recording(db, recording_id)
    draft = qa.validate_review(payload)
    review = catalog.add_review(db, rec, draft, user, ip=client_ip(request))
    db.commit()
    logger.info(
        "review added",
        extra={"recording_id": rec.id, "review_id": review.id, "reviewer": user.username},
    )
    return JSONResponse(
        review_json(review, []),
        status_code=201,
        headers={"Location": f"/api/recordings/{rec.id}/reviews/{review.id}", **NO_STORE},
    )


@router.get("/api/recordings/{recording_id}/reviews/{review_id}")
def get_review(
    recording_id: RowId, review_id: RowId, _: QaUser, db: DbDep, response: Response
) -> dict[str, Any]:
    review = catalog.get_review(db, recording_id, review_id)
    later = [r.id for r in catalog.reviews_of(db, recording_id) if r.corrects_id == review.id]
    response.headers.update(NO_STORE)
    return review_json(review, later)


def _immutable(allow: str) -> JSONResponse:
    error = ReviewImmutable("a review cannot be changed or deleted; post a correction instead")
    return error_response(error, headers={"Allow": allow})


@router.api_route(
    "/api/recordings/{recording_id}/reviews", methods=IMMUTABLE_METHODS, include_in_schema=False
)
def reviews_immutable(recording_id: RowId, _: QaUser) -> JSONResponse:
    return _immutable("GET, POST")


@router.api_route(
    "/api/recordings/{recording_id}/reviews/{review_id}",
    methods=IMMUTABLE_METHODS,
    include_in_schema=False,
)
def review_immutable(recording_id: RowId, review_id: RowId, _: QaUser) -> JSONResponse:
    return _immutable("GET")


# --- the page -----------------------------------------------------------------------------------
static_pages.add_page(
    router,
    "qa",
    QaUser,
    description="The QA page (signed out: 303 to /login?next=/qa).",
    media=True,
)
