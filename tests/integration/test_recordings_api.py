"""The recordings API against the real app: a SQLite file, real wav files (sox, espeak-ng),
real ffmpeg for mp3, and a real full disk (a 64 KiB tmpfs as the conversion folder). The
searches, reviews and the audit list run on a real PostgreSQL server too (``on_sql_backends``).

FastAPI's TestClient on ``create_app(settings)``; Redis is unreachable on purpose (no route
here uses it). Roles: qa1/qa2 (qa), sup1 (supervisor), admin1 (admin).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.db import AuditEntry, RecordingStatus, Review
from ivr.core.qa import ITEMS
from ivr.settings import Settings
from ivr.web.app import create_app
from tests.pg_support import on_sql_backends
from tests.qa_support import QA_STAFF, add_transcript, call_wav, catalogue, sha256
from tests.web_support import ORIGIN, add_staff, loopback_settings, sign_in

SECONDS = 6.0
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return call_wav(tmp_path_factory.mktemp("audio") / "call.wav", SECONDS, "hello, the gas smells")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return loopback_settings(
        tmp_path / "run",
        database={"url": database_url},
        recordings={"dir": tmp_path / "recordings", "conversion_dir": tmp_path / "cache"},
    )


@pytest.fixture
def ids(settings: Settings, password_hash: str, speech_wav: Path) -> dict[str, int]:
    """The catalog: one good call with a transcript, and one of each kind of trouble."""
    rec_dir = settings.recordings_dir
    (rec_dir / "2026/05/01").mkdir(parents=True)
    good = rec_dir / "2026/05/01/call-good.wav"
    good.write_bytes(speech_wav.read_bytes())
    (rec_dir / "empty.wav").write_bytes(b"")
    (rec_dir / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage, not a wave file" * 10)
    (rec_dir / "zero-but-ok.wav").write_bytes(b"")
    (rec_dir / "not-audio.wav").write_bytes(b"this is text, catalogued as ok by mistake\n" * 50)
    secret = settings.run_dir / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("root:x:0:0 do not serve me\n")
    (rec_dir / "link-out.wav").symlink_to(secret)
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    add_staff(engine, password_hash, QA_STAFF)
    found: dict[str, int] = {}
    with Session(engine) as db:
        rows: dict[str, dict[str, Any]] = {
            "good": {
                "file_name": "2026/05/01/call-good.wav",
                "desk": "repair",
                "queue": "repair",
                "agent": "agent-7",
                "duration_s": SECONDS,
                "audio_s": SECONDS,
                "account": "1234567890",
            },
            "empty": {
                "file_name": "empty.wav",
                "status": RecordingStatus.empty,
                "status_detail": "both legs are zero-length",
                "caller": "13900139001",
                "agent": "1001 张三",
            },
            "corrupt": {
                "file_name": "corrupt.wav",
                "status": RecordingStatus.corrupt,
                "status_detail": "left leg: not a wav",
                "caller": "13900139002",
            },
            "deleted": {
                "file_name": None,
                "status": RecordingStatus.deleted,
                "caller": "13900139003",
            },
            "zero_ok": {"file_name": "zero-but-ok.wav", "caller": "13900139004"},
            "missing": {"file_name": "gone.wav", "caller": "13900139005"},
            "outside": {"file_name": "../secret.txt", "caller": "13900139006"},
            "absolute": {"file_name": str(secret), "caller": "13900139007"},
            "symlink": {"file_name": "link-out.wav", "caller": "13900139008"},
            "not_audio": {"file_name": "not-audio.wav", "caller": "13900139009"},
        }
        for offset, (name, fields) in enumerate(rows.items()):
            started = T0 + timedelta(minutes=offset)
            row = catalogue(
                db, linkedid=f"L-{name}", started_at=started, recordings_dir=rec_dir, **fields
            )
            found[name] = row.id
        add_transcript(
            db,
            db.get(sql.Recording, found["good"]),
            [("hello", 0.2, 0.6), ("the", 0.9, 1.0), ("gas", 1.1, 1.4), ("smells", 1.5, 2.0)],
        )
        db.commit()
    engine.dispose()
    return found


@pytest.fixture
def app_client(settings: Settings, ids: dict[str, int]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def as_user(client: TestClient, username: str | None) -> TestClient:
    client.cookies.clear()
    if username is not None:
        sign_in(client, username)
    return client


@pytest.fixture
def qa(app_client: TestClient) -> TestClient:
    return as_user(app_client, "qa1")


def audit_rows(settings: Settings, action_prefix: str = "recording.") -> list[tuple[str, ...]]:
    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            rows = db.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.startswith(action_prefix))
                .order_by(AuditEntry.id)
            ).all()
            return [(r.actor, r.action, r.target or "", r.ip or "") for r in rows]
    finally:
        engine.dispose()


def full_review(**changes: Any) -> dict[str, Any]:
    items = {item.key: {"score": item.max_score, "comment": ""} for item in ITEMS}
    return {"items": items | changes, "comment": "fine call"}


# --- who may ------------------------------------------------------------------------------------
def routes(ids: dict[str, int]) -> list[str]:
    good = ids["good"]
    return [
        "/api/recordings",
        f"/api/recordings/{good}",
        f"/api/recordings/{good}/audio",
        f"/api/recordings/{good}/download?format=wav",
        f"/api/recordings/{good}/download?format=mp3",
        f"/api/recordings/{good}/reviews",
        "/api/qa/items",
        "/api/audit",
    ]


def test_given_no_session_then_401_json_everywhere_and_the_page_redirects(app_client, ids):
    client = as_user(app_client, None)
    for url in routes(ids):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "not-authenticated"
    page = client.get("/qa", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/qa"
    posted = client.post(
        f"/api/recordings/{ids['good']}/reviews", json=full_review(), headers=ORIGIN
    )
    assert posted.status_code == 401
    assert audit_rows(client.app.state.settings) == []


def test_given_a_supervisor_then_403_for_list_detail_download_reviews_page_and_audit(
    app_client, ids
):
    client = as_user(app_client, "sup1")
    audio = f"/api/recordings/{ids['good']}/audio"
    for url in [*(r for r in routes(ids) if r != audio), "/qa"]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"] == "forbidden"
    posted = client.post(
        f"/api/recordings/{ids['good']}/reviews", json=full_review(), headers=ORIGIN
    )
    assert posted.status_code == 403
    assert audit_rows(client.app.state.settings) == []


def test_given_a_supervisor_then_the_audio_plays_and_is_audited(app_client, ids):
    """The report page's lists play the recordings to supervisors (/reports)."""
    client = as_user(app_client, "sup1")
    url = f"/api/recordings/{ids['good']}/audio"
    assert client.head(url).status_code == 200
    response = client.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206 and len(response.content) == 100
    rows = audit_rows(client.app.state.settings)
    assert [(row[0], row[1]) for row in rows] == [("sup1", "recording.replay")]


def test_given_qa_then_audit_is_403_but_admin_may_do_everything(app_client, ids):
    client = as_user(app_client, "qa1")
    assert client.get("/api/audit").status_code == 403
    client = as_user(app_client, "admin1")
    for url in routes(ids):
        assert client.get(url).status_code == 200, url
    assert client.get("/qa").status_code == 200


@on_sql_backends
def test_given_an_unknown_id_then_404(qa, ids):
    for url in [
        "/api/recordings/999999",
        "/api/recordings/999999/audio",
        "/api/recordings/999999/download?format=mp3",
        "/api/recordings/999999/reviews",
        f"/api/recordings/{ids['good']}/reviews/999999",
    ]:
        response = qa.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] in {"recording-not-found", "review-not-found"}
    posted = qa.post("/api/recordings/999999/reviews", json=full_review(), headers=ORIGIN)
    assert posted.status_code == 404


# --- search -------------------------------------------------------------------------------------
@on_sql_backends
def test_search_lists_every_call_with_its_status_masked_for_qa(qa, ids):
    response = qa.get("/api/recordings", params={"size": 50})

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["total"] == len(ids) and doc["pages"] == 1 and doc["numbers_masked"] is True
    by_id = {row["id"]: row for row in doc["items"]}
    assert [row["id"] for row in doc["items"]] == sorted(ids.values(), reverse=True)
    good = by_id[ids["good"]]
    assert good["caller"] == "138******00"
    assert good["account"] == "123*****90"
    assert good["status"] == "ok" and good["playable"] is True and good["has_transcript"] is True
    assert "file_name" not in good and "13800138000" not in response.text
    assert by_id[ids["empty"]]["status"] == "empty"
    assert by_id[ids["empty"]]["playable"] is False
    assert by_id[ids["corrupt"]]["status"] == "corrupt"
    assert by_id[ids["corrupt"]]["status_detail"] == "left leg: not a wav"
    assert by_id[ids["deleted"]]["status"] == "deleted"
    assert by_id[ids["deleted"]]["playable"] is False


@on_sql_backends
def test_search_for_admin_shows_numbers_and_filters_apply(app_client, ids):
    client = as_user(app_client, "admin1")

    def names(**params: Any) -> list[int]:
        doc = client.get("/api/recordings", params=params).json()
        assert doc["numbers_masked"] is False
        return [row["id"] for row in doc["items"]]

    assert client.get("/api/recordings").json()["items"][-1]["caller"] == "13800138000"
    assert names(caller="13800138000") == [ids["good"]]
    assert names(caller="139005") == [ids["missing"]]
    assert names(caller="+86 139-0013-9002") == []  # that number was never called with +86
    assert names(desk="repair", queue="repair", agent="agent-7") == [ids["good"]]
    # an agent is recorded as the queue member's name: the 工号 alone finds it, a prefix not
    assert names(agent="1001") == names(agent="1001 张三") == [ids["empty"]]
    assert names(agent="100") == names(agent="张三") == []
    assert names(has_transcript="true") == [ids["good"]]
    assert names(min_duration=SECONDS, max_duration=SECONDS) == [ids["good"]]
    assert names(status="corrupt") == [ids["corrupt"]]
    assert names(emergency="true") == []
    assert names(direction="outbound") == [] and len(names(direction="inbound")) == len(ids)
    assert len(names(**{"from": "2026-05-01", "to": "2026-05-01"})) == len(ids)
    assert names(**{"from": "2026-05-02"}) == []
    page = client.get("/api/recordings", params={"size": 3, "page": 2}).json()
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (len(ids), 4, 2, 3)
    # each look-up by number left a trace of what was searched (admins only read the log)
    searches = audit_rows(client.app.state.settings, "recording.search")
    assert [(actor, action, target) for actor, action, target, _ in searches] == [
        ("admin1", "recording.search.caller", "caller:…13800138000"),
        ("admin1", "recording.search.caller", "caller:…139005"),
        ("admin1", "recording.search.caller", "caller:…8613900139002"),
    ]


@on_sql_backends
def test_given_masked_numbers_then_qa_searches_whole_numbers_only_and_every_try_is_audited(
    app_client, ids
):
    qa = as_user(app_client, "qa1")
    refused = qa.get("/api/recordings", params={"caller": "000"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "partial-number-search"
    whole = qa.get("/api/recordings", params={"caller": "138 0013 8000"}).json()
    assert [row["id"] for row in whole["items"]] == [ids["good"]]
    assert whole["items"][0]["caller"] == "138******00"
    # seven or more digits are taken as a whole number: the number's tail finds nothing
    assert qa.get("/api/recordings", params={"caller": "0013800"}).json()["items"] == []
    admin = as_user(app_client, "admin1")
    tail = admin.get("/api/recordings", params={"caller": "000"})
    assert tail.status_code == 200 and ids["good"] in [row["id"] for row in tail.json()["items"]]
    searches = audit_rows(app_client.app.state.settings, "recording.search")
    assert [(actor, action, target) for actor, action, target, _ in searches] == [
        ("qa1", "recording.search.caller.refused", "caller:…000"),
        ("qa1", "recording.search.caller", "caller:=13800138000"),
        ("qa1", "recording.search.caller", "caller:=0013800"),
        ("admin1", "recording.search.caller", "caller:…000"),
    ]


def test_given_too_many_searches_by_last_digits_then_429_with_retry_after(
    settings, ids, password_hash
):
    limited = settings.model_copy(
        update={"recordings": settings.recordings.model_copy(update={"partial_search_per_hour": 2})}
    )
    with TestClient(create_app(limited)) as client:
        admin = as_user(client, "admin1")
        for _ in range(2):
            assert admin.get("/api/recordings", params={"caller": "8000"}).status_code == 200
        third = admin.get("/api/recordings", params={"caller": "8000"})
        assert third.status_code == 429
        assert third.json()["error"] == "partial-search-limit"
        assert 3500 <= int(third.headers["Retry-After"]) <= 3600
        # a whole number is no partial search: still answered
        assert admin.get("/api/recordings", params={"caller": "13800138000"}).status_code == 200


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"caller": "12"}, "invalid-search"),
        ({"caller": "../../etc/passwd"}, "invalid-search"),
        ({"from": "../../etc/passwd"}, "invalid-search"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "invalid-search"),
        ({"status": "/etc/passwd"}, None),
        ({"direction": "sideways"}, None),
        ({"size": 201}, None),
        ({"page": 0}, None),
        ({"min_duration": -1}, None),
    ],
)
def test_given_invalid_search_values_then_422(qa, ids, params, error):
    response = qa.get("/api/recordings", params=params)
    assert response.status_code == 422
    if error is not None:
        assert response.json()["error"] == error


# --- one call -----------------------------------------------------------------------------------
@on_sql_backends
def test_detail_has_the_row_the_transcript_words_and_the_reviews(qa, ids):
    doc = qa.get(f"/api/recordings/{ids['good']}").json()
    assert doc["recording"]["id"] == ids["good"]
    assert doc["transcript"]["text"] == "hello the gas smells"
    assert doc["transcript"]["words"][2] == {"word": "gas", "start": 1.1, "end": 1.4, "conf": 0.9}
    assert doc["reviews"] == []
    assert qa.get(f"/api/recordings/{ids['empty']}").json()["transcript"] is None


# --- audio, Range and the audit -----------------------------------------------------------------
def test_given_no_range_then_the_whole_wav_seekable_and_one_replay_audited(qa, ids, settings):
    original = settings.recordings_dir / "2026/05/01/call-good.wav"

    response = qa.get(f"/api/recordings/{ids['good']}/audio")

    assert response.status_code == 200
    assert response.content == original.read_bytes()
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-length"] == str(original.stat().st_size)
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["etag"].startswith('"')
    assert audit_rows(settings) == [
        ("qa1", "recording.replay", f"recording:{ids['good']}", "testclient")
    ]


def test_given_head_then_the_headers_of_a_replay_no_body_and_no_audit(
    app_client, qa, ids, settings
):
    url = f"/api/recordings/{ids['good']}/audio"
    size = (settings.recordings_dir / "2026/05/01/call-good.wav").stat().st_size

    response = qa.head(url)

    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str(size)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["etag"] == qa.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]
    assert [row[1] for row in audit_rows(settings)] == ["recording.replay"]  # the GET only
    assert qa.head("/api/recordings/999999/audio").status_code == 404
    assert as_user(app_client, None).head(url).status_code == 401


def test_given_ranges_then_206_with_exactly_those_bytes(qa, ids, settings):
    data = (settings.recordings_dir / "2026/05/01/call-good.wav").read_bytes()
    size = len(data)
    url = f"/api/recordings/{ids['good']}/audio"
    for header, start, end in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-512", size - 512, size - 1),
        ("bytes=44-10000000", 44, size - 1),
    ]:
        response = qa.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == data[start : end + 1]
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert response.headers["content-length"] == str(end - start + 1)
        assert response.headers["accept-ranges"] == "bytes"
    # the seeks belong to the replay that started at byte 0: one row
    assert len(audit_rows(settings)) == 1


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=-0", "bytes=0-1,5-9"])
def test_given_a_range_out_of_bounds_or_several_then_416_with_the_size(qa, ids, settings, header):
    size = (settings.recordings_dir / "2026/05/01/call-good.wav").stat().st_size

    response = qa.get(f"/api/recordings/{ids['good']}/audio", headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.json()["error"] in {"range-not-satisfiable", "multiple-ranges-unsupported"}
    assert audit_rows(settings) == []  # nothing was served


def test_given_a_stale_if_range_or_a_malformed_range_then_the_whole_file(qa, ids, settings):
    size = (settings.recordings_dir / "2026/05/01/call-good.wav").stat().st_size
    url = f"/api/recordings/{ids['good']}/audio"
    etag = qa.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]

    fresh = qa.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    stale = qa.get(url, headers={"Range": "bytes=10-19", "If-Range": '"old"'})
    malformed = qa.get(url, headers={"Range": "bytes=../../etc/passwd"})

    assert fresh.status_code == 206 and len(fresh.content) == 10
    assert stale.status_code == 200 and len(stale.content) == size
    assert malformed.status_code == 200 and len(malformed.content) == size


def test_given_a_seek_without_a_replay_then_it_is_audited_too(app_client, ids, settings):
    client = as_user(app_client, "qa2")
    response = client.get(f"/api/recordings/{ids['good']}/audio", headers={"Range": "bytes=1-"})
    assert response.status_code == 206
    assert audit_rows(settings) == [
        ("qa2", "recording.replay", f"recording:{ids['good']}", "testclient")
    ]


@pytest.mark.parametrize(
    ("name", "status", "error"),
    [
        ("empty", 409, "recording-empty"),
        ("corrupt", 409, "recording-corrupt"),
        ("deleted", 410, "recording-deleted"),
        ("zero_ok", 409, "recording-empty"),
        ("missing", 410, "recording-file-missing"),
        ("outside", 410, "recording-file-missing"),
        ("absolute", 410, "recording-file-missing"),
        ("symlink", 410, "recording-file-missing"),
    ],
)
def test_given_nothing_to_play_then_clear_json_never_500(qa, ids, settings, name, status, error):
    for url in (
        f"/api/recordings/{ids[name]}/audio",
        f"/api/recordings/{ids[name]}/download?format=wav",
        f"/api/recordings/{ids[name]}/download?format=mp3",
    ):
        response = qa.get(url, headers={"Range": "bytes=0-"})
        assert response.status_code == status, url
        assert response.json()["error"] == error
        assert "do not serve me" not in response.text
    assert audit_rows(settings) == []
    assert not settings.conversion_dir.exists() or not any(settings.conversion_dir.iterdir())


# --- no request value is a path -----------------------------------------------------------------
TRAVERSALS = [
    "../secret.txt",
    "..%2Fsecret.txt",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..\\..\\secret.txt",
    "....//....//etc/passwd",
]


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_given_traversal_in_every_parameter_and_path_segment_then_nothing_is_served(qa, ids, evil):
    good = ids["good"]
    attempts = [
        f"/api/recordings/{evil}",
        f"/api/recordings/{evil}/audio",
        f"/api/recordings/{evil}/download?format=wav",
        f"/api/recordings/{good}/audio/{evil}",
        f"/api/recordings/{good}/download/{evil}",
        f"/api/recordings/{good}/download?format={evil}",
        f"/api/recordings/{good}/reviews/{evil}",
        f"/api/recordings?caller={evil}",
        f"/api/recordings?from={evil}",
        f"/api/recordings?status={evil}",
    ]
    for url in attempts:
        response = qa.get(url)
        assert response.status_code in {404, 405, 422}, url
        assert "root:" not in response.text and "do not serve me" not in response.text
    # extra parameters are ignored: still the catalogued file, nothing else
    response = qa.get(
        f"/api/recordings/{good}/audio", params={"file": evil, "path": evil, "file_name": evil}
    )
    assert response.status_code == 200
    assert response.content[:4] == b"RIFF"
    # and values that are plain strings in SQL only
    listed = qa.get("/api/recordings", params={"desk": evil, "agent": evil, "queue": evil})
    assert listed.status_code == 200 and listed.json()["total"] == 0


# --- downloads ----------------------------------------------------------------------------------
def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def test_given_wav_download_then_an_attachment_of_the_original_and_audited(qa, ids, settings):
    original = settings.recordings_dir / "2026/05/01/call-good.wav"
    response = qa.get(f"/api/recordings/{ids['good']}/download", params={"format": "wav"})
    assert response.status_code == 200
    assert response.content == original.read_bytes()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="call-{ids["good"]}-20260501-020000.wav"'
    )
    assert audit_rows(settings) == [
        ("qa1", "recording.download.wav", f"recording:{ids['good']}", "testclient")
    ]


def test_given_mp3_download_then_ffmpeg_decodes_it_stereo_and_as_long_and_it_is_cached(
    qa, ids, settings, tmp_path
):
    original = settings.recordings_dir / "2026/05/01/call-good.wav"
    before = sha256(original)

    first = qa.get(f"/api/recordings/{ids['good']}/download", params={"format": "mp3"})
    second = qa.get(f"/api/recordings/{ids['good']}/download", params={"format": "mp3"})

    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "audio/mpeg"
    assert first.headers["content-disposition"].startswith("attachment; ")
    assert first.headers["content-disposition"].endswith('.mp3"')
    mp3 = tmp_path / "got.mp3"
    mp3.write_bytes(first.content)
    info = ffprobe(mp3)
    (stream,) = info["streams"]
    assert stream["codec_name"] == "mp3" and stream["channels"] == 2
    assert abs(float(info["format"]["duration"]) - SECONDS) < 0.2
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(mp3), "-f", "null", "-"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert decoded.returncode == 0 and decoded.stderr == b""
    assert second.content == first.content
    assert [p.name for p in settings.conversion_dir.iterdir()] == [f"{before}-32k.mp3"]
    assert sha256(original) == before
    assert [a for _, a, _, _ in audit_rows(settings)] == ["recording.download.mp3"] * 2


def test_given_a_file_ffmpeg_cannot_decode_then_422_and_nothing_left(qa, ids, settings):
    response = qa.get(f"/api/recordings/{ids['not_audio']}/download", params={"format": "mp3"})
    assert response.status_code == 422
    assert response.json()["error"] == "recording-not-convertible"
    # ffmpeg's own words and the file's place stay in the log, out of the answer
    assert response.json()["details"] == {}
    assert "ffmpeg" not in response.text.lower() and "/" not in response.json()["message"]
    assert str(settings.recordings_dir) not in response.text
    assert list(settings.conversion_dir.iterdir()) == []
    assert audit_rows(settings) == []


def test_given_a_full_disk_during_conversion_then_507_and_the_original_kept(
    settings, ids, tiny_disk
):
    settings.recordings.conversion_dir = tiny_disk
    original = settings.recordings_dir / "2026/05/01/call-good.wav"
    before = sha256(original)
    with TestClient(create_app(settings)) as client:
        as_user(client, "qa1")
        response = client.get(f"/api/recordings/{ids['good']}/download", params={"format": "mp3"})
        assert response.status_code == 507
        assert response.json()["error"] == "insufficient-storage"
        assert "no space left" in response.json()["message"]
        assert list(tiny_disk.iterdir()) == []  # the partial output is gone
        assert os.statvfs(tiny_disk).f_bfree == os.statvfs(tiny_disk).f_blocks
        assert sha256(original) == before
        replay = client.get(f"/api/recordings/{ids['good']}/audio")
        assert replay.status_code == 200 and replay.content == original.read_bytes()
    assert [a for _, a, _, _ in audit_rows(settings)] == ["recording.replay"]


# --- reviews ------------------------------------------------------------------------------------
@on_sql_backends
def test_given_a_review_then_201_listed_with_reviewer_and_time_and_audited(qa, ids, settings):
    url = f"/api/recordings/{ids['good']}/reviews"
    body = full_review(attitude={"score": 15, "comment": "impatient"})

    response = qa.post(url, json=body, headers=ORIGIN)

    assert response.status_code == 201, response.text
    review = response.json()
    assert review["total"] == 95 and review["max_total"] == 100
    assert review["reviewer"] == "qa1"
    assert response.headers["location"] == f"{url}/{review['id']}"
    listed = qa.get(url).json()["reviews"]
    assert [(r["id"], r["reviewer"], r["total"]) for r in listed] == [(review["id"], "qa1", 95)]
    assert datetime.fromisoformat(listed[0]["created_at"]).tzinfo is not None
    assert listed[0]["items"]["attitude"] == {"score": 15, "comment": "impatient"}
    assert qa.get(f"{url}/{review['id']}").json()["total"] == 95
    assert audit_rows(settings) == [
        ("qa1", "recording.review", f"recording:{ids['good']}", "testclient")
    ]


@on_sql_backends
def test_reviews_are_immutable_and_a_correction_is_a_new_review(app_client, ids, settings):
    client = as_user(app_client, "qa1")
    url = f"/api/recordings/{ids['good']}/reviews"
    first = client.post(url, json=full_review(), headers=ORIGIN).json()
    for method in ("PUT", "PATCH", "DELETE"):
        for target, allow in ((url, "GET, POST"), (f"{url}/{first['id']}", "GET")):
            response = client.request(method, target, json=full_review(), headers=ORIGIN)
            assert response.status_code == 405, (method, target)
            assert response.json()["error"] == "review-immutable"
            assert response.headers["allow"] == allow

    client = as_user(app_client, "qa2")
    correction = client.post(
        url,
        json=full_review(greeting_closing={"score": 10, "comment": "no closing"})
        | {"corrects_id": first["id"]},
        headers=ORIGIN,
    )
    assert correction.status_code == 201
    listed = client.get(url).json()["reviews"]
    assert [
        (r["id"], r["reviewer"], r["total"], r["corrects_id"], r["corrected_by"]) for r in listed
    ] == [
        (first["id"], "qa1", 100, None, [correction.json()["id"]]),
        (correction.json()["id"], "qa2", 90, first["id"], []),
    ]
    engine = sql.settings_engine(settings)
    with Session(engine) as db:
        stored = db.get(Review, first["id"])
        assert stored is not None and stored.total == 100 and stored.comment == "fine call"
        assert db.scalar(select(func.count()).select_from(Review)) == 2
    engine.dispose()


@on_sql_backends
def test_given_a_correction_of_another_calls_review_then_422(qa, ids):
    other = qa.post(
        f"/api/recordings/{ids['empty']}/reviews", json=full_review(), headers=ORIGIN
    ).json()
    response = qa.post(
        f"/api/recordings/{ids['good']}/reviews",
        json=full_review() | {"corrects_id": other["id"]},
        headers=ORIGIN,
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid-correction"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (full_review(attitude={"score": 10, "comment": ""}), "items.attitude.comment"),
        (full_review(attitude={"score": 99, "comment": "x"}), "items.attitude.score"),
        ({"items": {}}, "items.answered_first_attempt"),
    ],
)
def test_given_an_invalid_review_then_422_with_every_problem(qa, ids, body, field):
    response = qa.post(f"/api/recordings/{ids['good']}/reviews", json=body, headers=ORIGIN)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid-review"
    assert field in [p["field"] for p in response.json()["details"]["problems"]]


def test_given_no_origin_or_another_site_or_not_json_then_the_review_is_refused(qa, ids):
    url = f"/api/recordings/{ids['good']}/reviews"
    assert qa.post(url, json=full_review()).status_code == 403
    evil = qa.post(url, json=full_review(), headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"] == "cross-origin-request"
    garbage = qa.post(
        url, content=b"{not json", headers=ORIGIN | {"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422 and garbage.json()["error"] == "invalid-review-request"
    big = qa.post(url, content=b" " * 70_000, headers=ORIGIN)
    assert big.status_code == 422
    assert qa.get(url).json()["reviews"] == []


def test_the_items_route_describes_the_form(qa):
    doc = qa.get("/api/qa/items").json()
    assert doc["max_total"] == 100
    assert [item["key"] for item in doc["items"]] == [item.key for item in ITEMS]
    assert doc["items"][0]["zh"] == "一次接通"


# --- the admins' audit list ---------------------------------------------------------------------
@on_sql_backends
def test_admin_lists_replays_and_downloads_with_filters_and_pages(app_client, ids):
    good = ids["good"]
    client = as_user(app_client, "qa1")
    client.get(f"/api/recordings/{good}/audio")
    client.get(f"/api/recordings/{good}/download", params={"format": "wav"})
    client = as_user(app_client, "qa2")
    client.get(f"/api/recordings/{good}/audio", headers={"Range": "bytes=0-"})
    client = as_user(app_client, "admin1")

    doc = client.get("/api/audit", params={"action": "recording."}).json()

    assert doc["total"] == 3
    assert [(r["user"], r["action"], r["target"], r["ip"]) for r in doc["items"]] == [
        ("qa2", "recording.replay", f"recording:{good}", "testclient"),
        ("qa1", "recording.download.wav", f"recording:{good}", "testclient"),
        ("qa1", "recording.replay", f"recording:{good}", "testclient"),
    ]
    assert all(datetime.fromisoformat(r["at"]).tzinfo is not None for r in doc["items"])
    assert client.get("/api/audit", params={"user": "qa2"}).json()["total"] == 2  # + sign-in
    replays = client.get(
        "/api/audit", params={"action": "recording.replay", "target": f"recording:{good}"}
    ).json()
    assert replays["total"] == 2
    logins = client.get("/api/audit", params={"action": "auth.login", "size": 2}).json()
    assert (logins["total"], logins["pages"], len(logins["items"])) == (3, 2, 2)  # qa1 qa2 admin1
    assert client.get("/api/audit", params={"size": 500}).status_code == 422
    # Case matters on SQLite as on PostgreSQL; % and _ are plain characters.
    for action in ("RECORDING.", "Recording.", "recording%.", "recording_replay."):
        assert client.get("/api/audit", params={"action": action}).json()["total"] == 0, action
    assert client.get("/api/audit", params={"target": "RECORDING:"}).json()["total"] == 0
    assert client.get("/api/audit", params={"target": "recording:"}).json()["total"] == 3


def test_given_the_sqlite_file_locked_by_another_writer_then_503_with_retry_after_no_500(
    settings, ids
):
    import sqlite3

    patient = settings.model_copy(
        update={"database": settings.database.model_copy(update={"busy_timeout_s": 0.2})}
    )
    path = sql.database_url(patient).removeprefix("sqlite:///")
    with TestClient(create_app(patient)) as client:
        qa = as_user(client, "qa1")
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            assert holder.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            holder.execute("BEGIN EXCLUSIVE")  # another process writing, and writing on
            listed = qa.get("/api/recordings")  # a reader does not wait for a writer (WAL)
            assert listed.status_code == 200
            replay = qa.get(f"/api/recordings/{ids['good']}/audio")  # its audit row must wait
            assert replay.status_code == 503
            assert replay.json()["error"] == "database-busy"
            assert replay.headers["Retry-After"] == "2"
            assert path not in replay.text and "sqlite" not in replay.text.lower()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert qa.get(f"/api/recordings/{ids['good']}/audio").status_code == 200
    assert [a for _, a, _, _ in audit_rows(settings)] == ["recording.replay"]  # one, served
