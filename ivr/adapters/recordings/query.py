"""The recordings catalog as QA sees it: search, one call with its transcript and reviews,
immutable reviews, the audit trail of replays and downloads, and the admins' audit list.

Searches are ordered newest first (``started_at``, then ``id``) and paged by offset, with
the total; the filter is :class:`ivr.core.recording_search.SearchFilter`. Nothing here
masks numbers: the web layer does, by role.

Audit rows (target ``recording:<id>``): ``recording.replay``, ``recording.download.wav``,
``recording.download.mp3`` and ``recording.review``; a search by a caller's number writes
``recording.search.caller`` with the number masked (target ``caller:138******00``). A replay
is a request for the whole file or from byte 0 (:func:`ivr.core.http_range.starts_a_replay`):
each writes a row, except that one within ``REPLAY_DEDUP_S`` of the same user's last replay
of the same call is the browser's second request for the same start, not a new replay. A
seek (a range from further on) writes nothing when the same user has a replay row for the
call within ``SEEK_COVERED_S``; otherwise it is audited as a replay too, so fetching a file
with ``Range: bytes=1-`` leaves a trace like any other access. Every download writes a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import AuditEntry, Recording, Review, Transcript, User, audit, utcnow
from ivr.core.qa import ReviewDraft
from ivr.core.recording_search import SearchFilter, reversed_prefix_range
from ivr.errors import HotlineError

REPLAY_ACTION: Final = "recording.replay"
DOWNLOAD_ACTION: Final = "recording.download"  # + ".wav" or ".mp3"
REVIEW_ACTION: Final = "recording.review"
SEARCH_ACTION: Final = "recording.search.caller"  # a search by (part of) a caller's number
REPLAY_DEDUP_S: Final = 5.0  # the browser's repeated first request of one replay
SEEK_COVERED_S: Final = 3600.0  # seeks this long after a replay belong to it


class RecordingNotFound(HotlineError):
    """No catalogued call has this id."""

    slug = "recording-not-found"
    status = 404


class ReviewNotFound(HotlineError):
    """The recording has no review with this id."""

    slug = "review-not-found"
    status = 404


class InvalidCorrection(HotlineError):
    """A correction naming a review that does not exist or belongs to another recording."""

    slug = "invalid-correction"
    status = 422


def target_of(recording_id: int) -> str:
    return f"recording:{recording_id}"


# --- search -----------------------------------------------------------------------------------
def leading_filter(wanted: SearchFilter) -> str | None:
    """The filter the database should walk an index for: the caller's digits (a handful of
    calls), else the time range; None lets the planner choose (desk, agent ...)."""
    if wanted.caller is not None:
        return "caller"
    if wanted.started_from is not None or wanted.started_to is not None:
        return "started_at"
    return None


def conditions(wanted: SearchFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a search (ANDed).

    SQLite keeps no statistics unless ANALYZE runs, and then prefers any equality (a desk:
    a fifth of all calls) over a range (a caller's last digits: a few calls), and any range
    that spares it a sort over a more selective one. So when a selective filter leads (see
    :func:`leading_filter`), the other columns are compared through ``coalesce(c, c)``, the
    same value, which no index serves: the database walks the leading index and checks the
    rest row by row. Without a leading filter every column stays indexable.
    """
    lead = leading_filter(wanted)

    def col(column: Any, name: str) -> Any:
        return column if lead is None or lead == name else func.coalesce(column, column)

    where: list[ColumnElement[bool]] = []
    started_at = col(Recording.started_at, "started_at")
    if wanted.started_from is not None:
        where.append(started_at >= wanted.started_from)
    if wanted.started_to is not None:
        where.append(started_at < wanted.started_to)
    if wanted.caller is not None and wanted.caller_exact:
        where.append(Recording.caller_reversed == wanted.caller[::-1])
    elif wanted.caller is not None:
        low, high = reversed_prefix_range(wanted.caller)
        where.append(Recording.caller_reversed >= low)
        if high is not None:
            where.append(Recording.caller_reversed < high)
    for column, name, value in (
        (Recording.desk, "desk", wanted.desk),
        (Recording.queue, "queue", wanted.queue),
        (Recording.status, "status", wanted.status),
        (Recording.direction, "direction", wanted.direction),
    ):
        if value is not None:
            where.append(col(column, name) == value)
    if wanted.agent is not None:
        where.append(agent_matches(col(Recording.agent, "agent"), wanted.agent))
    duration = col(Recording.duration_s, "duration")
    if wanted.min_duration_s is not None:
        where.append(duration >= wanted.min_duration_s)
    if wanted.max_duration_s is not None:
        where.append(duration <= wanted.max_duration_s)
    if wanted.has_transcript is not None:
        transcript = col(Recording.transcript_id, "transcript")
        where.append(transcript.is_not(None) if wanted.has_transcript else transcript.is_(None))
    if wanted.emergency is not None:
        where.append(col(Recording.emergency, "emergency").is_(wanted.emergency))
    return where


def agent_matches(column: Any, agent: str) -> ColumnElement[bool]:
    """The agent as recorded (``"1001 张三"``: the queue member's name) is ``agent``, or
    starts with ``agent`` and a space: so a 工号 alone finds its calls. A range, not LIKE,
    so that the agent index serves it.

    >>> from sqlalchemy import column
    >>> str(agent_matches(column("agent"), "1001"))
    'agent = :agent_1 OR agent >= :agent_2 AND agent < :agent_3'
    """
    return or_(column == agent, and_(column >= f"{agent} ", column < f"{agent}!"))


def search_statement(wanted: SearchFilter, *, offset: int, limit: int) -> Select[Recording]:
    return (
        select(Recording)
        .where(*conditions(wanted))
        .order_by(Recording.started_at.desc(), Recording.id.desc())
        .offset(offset)
        .limit(limit)
    )


def count_statement(wanted: SearchFilter) -> Select[int]:
    return select(func.count()).select_from(Recording).where(*conditions(wanted))


@dataclass(frozen=True, slots=True)
class SearchResult:
    rows: list[Recording]
    total: int
    review_counts: dict[int, int]


def review_counts(db: Session, recording_ids: Sequence[int]) -> dict[int, int]:
    if not recording_ids:
        return {}
    rows = db.execute(
        select(Review.recording_id, func.count())
        .where(Review.recording_id.in_(recording_ids))
        .group_by(Review.recording_id)
    )
    return {int(recording_id): int(count) for recording_id, count in rows.all()}


def search(db: Session, wanted: SearchFilter, *, offset: int, limit: int) -> SearchResult:
    rows = list(db.scalars(search_statement(wanted, offset=offset, limit=limit)))
    total = db.scalar(count_statement(wanted)) or 0
    return SearchResult(rows, total, review_counts(db, [row.id for row in rows]))


# --- one call ---------------------------------------------------------------------------------
def get_recording(db: Session, recording_id: int) -> Recording:
    found = db.get(Recording, recording_id)
    if found is None:
        raise RecordingNotFound(f"no recording {recording_id}", id=recording_id)
    return found


def transcript_of(db: Session, recording: Recording) -> Transcript | None:
    return db.get(Transcript, recording.transcript_id) if recording.transcript_id else None


def reviews_of(db: Session, recording_id: int) -> list[Review]:
    return list(
        db.scalars(select(Review).where(Review.recording_id == recording_id).order_by(Review.id))
    )


def get_review(db: Session, recording_id: int, review_id: int) -> Review:
    found = db.get(Review, review_id)
    if found is None or found.recording_id != recording_id:
        raise ReviewNotFound(f"no review {review_id} of recording {recording_id}", id=review_id)
    return found


def add_review(
    db: Session, recording: Recording, draft: ReviewDraft, reviewer: User, *, ip: str
) -> Review:
    """Store a new review (and its audit row) in ``db``; the caller commits."""
    if draft.corrects_id is not None:
        corrected = db.get(Review, draft.corrects_id)
        if corrected is None or corrected.recording_id != recording.id:
            raise InvalidCorrection(
                f"review {draft.corrects_id} is not a review of recording {recording.id}",
                corrects_id=draft.corrects_id,
            )
    review = Review(
        recording_id=recording.id,
        reviewer_id=reviewer.id,
        reviewer=reviewer.username,
        created_at=utcnow(),
        corrects_id=draft.corrects_id,
        items=draft.items_json(),
        total=float(draft.total),
        comment=draft.comment,
    )
    db.add(review)
    db.flush()
    audit(db, reviewer, REVIEW_ACTION, target=target_of(recording.id), ip=ip)
    return review


# --- audit of replays and downloads -----------------------------------------------------------
def _last_replay(db: Session, user: User, target: str, since: datetime) -> datetime | None:
    return db.scalar(
        select(func.max(AuditEntry.at)).where(
            AuditEntry.user_id == user.id,
            AuditEntry.at >= since,  # bounded: a long audit log is not scanned
            AuditEntry.action == REPLAY_ACTION,
            AuditEntry.target == target,
        )
    )


def audit_replay(
    db: Session,
    user: User,
    recording_id: int,
    *,
    starts_replay: bool,
    ip: str,
    now: datetime | None = None,
) -> bool:
    """Write a replay audit row unless this request belongs to one already written (see the
    module's docstring). Returns whether a row was added; the caller commits."""
    target = target_of(recording_id)
    now = now or utcnow()
    covered = timedelta(seconds=REPLAY_DEDUP_S if starts_replay else SEEK_COVERED_S)
    if _last_replay(db, user, target, now - covered) is not None:
        return False
    entry = audit(db, user, REPLAY_ACTION, target=target, ip=ip)
    entry.at = now
    return True


def audit_number_search(
    db: Session, user: User, digits: str, *, exact: bool, refused: bool = False, ip: str
) -> None:
    """``recording.search.caller`` (``….refused`` when the role may not search so): who
    looked for which number, as searched (``=`` a whole number, ``…`` its last digits); the
    audit log is for admins only. The caller commits."""
    action = f"{SEARCH_ACTION}.refused" if refused else SEARCH_ACTION
    audit(db, user, action, target=f"caller:{'=' if exact else '…'}{digits}", ip=ip)


def audit_download(db: Session, user: User, recording_id: int, fmt: str, *, ip: str) -> None:
    """``recording.download.wav`` / ``recording.download.mp3``; the caller commits."""
    audit(db, user, f"{DOWNLOAD_ACTION}.{fmt}", target=target_of(recording_id), ip=ip)


# --- the admins' audit list -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None  # exact, or a prefix ending in "." ("recording.")
    actor: str | None = None  # username (or "cli:<login>")
    target: str | None = None  # exact ("recording:12"), or a prefix ending in ":" ("recording:")
    since: datetime | None = None
    until: datetime | None = None


def _exact_or_prefix(column: Any, value: str, separator: str) -> ColumnElement[bool]:
    """Case-sensitive on every backend (LIKE is not on SQLite): the prefix compared whole."""
    if value.endswith(separator):
        return func.substr(column, 1, len(value)) == value
    return column == value  # type: ignore[no-any-return]


def audit_conditions(wanted: AuditFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if wanted.action:
        where.append(_exact_or_prefix(AuditEntry.action, wanted.action, "."))
    if wanted.actor:
        where.append(AuditEntry.actor == wanted.actor)
    if wanted.target:
        where.append(_exact_or_prefix(AuditEntry.target, wanted.target, ":"))
    if wanted.since is not None:
        where.append(AuditEntry.at >= wanted.since)
    if wanted.until is not None:
        where.append(AuditEntry.at < wanted.until)
    return where


def list_audit(
    db: Session, wanted: AuditFilter, *, offset: int, limit: int
) -> tuple[list[AuditEntry], int]:
    where = audit_conditions(wanted)
    rows = list(
        db.scalars(
            select(AuditEntry)
            .where(*where)
            .order_by(AuditEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    total = db.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    return rows, total
