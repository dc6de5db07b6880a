"""Sign-in over HTTP: cookie, roles per route, sessions ended server-side, throttle, CSRF.

FastAPI's TestClient on ``create_app(settings)`` with a SQLite file in tmp_path; Redis is
unreachable on purpose (only /health cares).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import users
from ivr.adapters.sql.db import AuditEntry, Role, UserSession
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.auth import CurrentUser, LoginThrottle, SupervisorUser, require_roles
from tests.web_support import ORIGIN, PASSWORD, login, loopback_settings, staff_engine

COOKIE = "hotline_session"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        yield engine


def build_app(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.get("/api/test/supervisor")
    def supervisor_only(user: SupervisorUser) -> dict[str, str]:
        return {"username": user.username}

    @app.get("/api/test/qa-or-supervisor", dependencies=[require_roles("qa", "supervisor")])
    def qa_or_supervisor() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/test/change")
    def change(user: CurrentUser) -> dict[str, str]:
        return {"changed_by": user.username}

    @app.get("/test/page", response_class=HTMLResponse)
    def page(user: CurrentUser) -> HTMLResponse:
        return HTMLResponse(f"hello {user.username}")

    return app


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(build_app(settings)) as client:
        yield client


def audit_actions(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as db:
        return [(a.actor, a.action) for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# --- sign-in ----------------------------------------------------------------------------------
def test_given_right_password_when_signing_in_then_session_cookie_set_and_audited(client, engine):
    response = login(client, "QA1")

    assert response.status_code == 200
    assert response.json()["user"] == {"username": "qa1", "role": "qa"}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/api/auth/me").json() == {"username": "qa1", "role": "qa"}
    assert audit_actions(engine) == [("qa1", "auth.login")]


def test_given_wrong_password_or_unknown_user_when_signing_in_then_same_401(client, engine, caplog):
    caplog.set_level(logging.INFO, logger="ivr")

    wrong = login(client, "qa1", "not the password")
    unknown = login(client, "nobody", "not the password")

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid-credentials"
    assert "set-cookie" not in wrong.headers
    failures = [r for r in caplog.records if r.getMessage() == "sign-in failed"]
    assert [(r.username, r.reason) for r in failures] == [  # type: ignore[attr-defined]
        ("qa1", "bad-password"),
        ("nobody", "unknown-user"),
    ]
    assert "not the password" not in caplog.text
    assert audit_actions(engine) == [("qa1", "auth.login_failed"), ("nobody", "auth.login_failed")]


def test_given_disabled_user_when_signing_in_then_same_401(client, engine):
    with Session(engine) as db:
        users.set_disabled(db, "sup1", True)
        db.commit()

    response = login(client, "sup1")

    assert response.status_code == 401
    assert response.json()["message"] == "invalid username or password"


def test_given_too_many_failures_when_signing_in_then_429_even_with_right_password(client):
    for _ in range(5):
        assert login(client, "qa1", "guess guess guess").status_code == 401

    throttled = login(client, "qa1")

    assert throttled.status_code == 429
    assert throttled.json()["error"] == "too-many-attempts"
    assert 1 <= int(throttled.headers["retry-after"]) <= 900
    assert login(client, "sup1").status_code == 200  # other users are not locked out


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"username": "qa1"}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
        (b'{"username": "qa1", "password": "correct horse battery"}', "text/plain"),
        (b"username=qa1", "application/x-www-form-urlencoded"),
    ],
)
def test_given_malformed_login_request_when_posted_then_422(client, content, content_type):
    response = client.post(
        "/api/auth/login",
        content=content,
        headers=ORIGIN | {"Content-Type": content_type},
    )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid-request"


# --- the form ---------------------------------------------------------------------------------
def test_given_login_page_then_plain_form_without_external_assets(client):
    page = client.get("/login?next=/calls%3Fday%3D1")

    assert page.status_code == 200
    assert '<form method="post" action="/api/auth/login">' in page.text
    assert 'name="next" value="/calls?day=1"' in page.text
    assert "http" not in page.text.replace('lang="zh"', "")
    assert "<script" not in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_given_markup_in_next_when_login_page_shown_then_escaped(client):
    page = client.get('/login?next=/"><script>alert(1)</script>')

    assert "<script>" not in page.text
    assert "&quot;&gt;&lt;script&gt;" in page.text


def test_given_form_post_when_signed_in_then_redirect_to_next_with_cookie(client):
    response = client.post(
        "/api/auth/login",
        data={"username": "sup1", "password": PASSWORD, "next": "/test/page"},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/test/page"
    assert client.get("/test/page").text == "hello sup1"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_given_foreign_next_when_form_signed_in_then_redirect_home(client, target):
    response = client.post(
        "/api/auth/login",
        data={"username": "sup1", "password": PASSWORD, "next": target},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.headers["location"] == "/"


def test_given_form_post_with_wrong_password_then_back_to_form_with_notice(client):
    response = client.post(
        "/api/auth/login",
        data={"username": "sup1", "password": "wrong wrong wrong", "next": "/test/page"},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=invalid&next=%2Ftest%2Fpage"
    assert "Wrong username or password." in client.get(response.headers["location"]).text


# --- who may do what --------------------------------------------------------------------------
def test_given_no_cookie_when_api_called_then_401_json(client):
    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert response.json()["error"] == "not-authenticated"


def test_given_no_cookie_when_page_opened_then_redirected_to_login(client):
    response = client.get("/test/page?x=1", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/test/page%3Fx%3D1"


@pytest.mark.parametrize(
    ("username", "supervisor_route", "qa_or_supervisor_route"),
    [("qa1", 403, 200), ("sup1", 200, 200), ("admin1", 200, 200)],
)
def test_given_role_when_protected_routes_called_then_admin_passes_everywhere(
    client, username, supervisor_route, qa_or_supervisor_route
):
    login(client, username)

    denied_or_ok = client.get("/api/test/supervisor")
    assert denied_or_ok.status_code == supervisor_route
    assert client.get("/api/test/qa-or-supervisor").status_code == qa_or_supervisor_route
    if supervisor_route == 403:
        assert denied_or_ok.json()["error"] == "forbidden"
        assert denied_or_ok.json()["details"] == {"required": ["supervisor"]}


def test_given_role_changed_when_next_request_then_new_role_applies(client, engine):
    login(client, "qa1")
    assert client.get("/api/test/supervisor").status_code == 403

    with Session(engine) as db:
        users.set_role(db, "qa1", Role.supervisor)
        db.commit()

    assert client.get("/api/test/supervisor").status_code == 200


# --- sessions end server-side -----------------------------------------------------------------
def test_given_signed_in_when_logged_out_then_old_cookie_no_longer_works(client, engine):
    login(client, "sup1")
    token = client.cookies[COOKIE]

    response = client.post("/api/auth/logout", headers=ORIGIN)

    assert response.status_code == 204
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
    client.cookies.set(COOKIE, token)
    assert client.get("/api/auth/me").status_code == 401
    with Session(engine) as db:
        assert db.scalar(select(UserSession)) is None
    assert audit_actions(engine)[-1] == ("sup1", "auth.logout")


def test_given_no_session_when_logged_out_then_204(client):
    assert client.post("/api/auth/logout", headers=ORIGIN).status_code == 204


def test_given_expired_session_when_used_then_401(client, engine):
    login(client, "sup1")
    with Session(engine) as db:
        db.execute(update(UserSession).values(expires_at=sql.utcnow() - timedelta(seconds=1)))
        db.commit()

    assert client.get("/api/auth/me").status_code == 401


def test_given_user_disabled_while_signed_in_when_next_request_then_401(client, engine):
    login(client, "admin1")
    assert client.get("/api/auth/me").status_code == 200

    with Session(engine) as db:
        users.set_disabled(db, "admin1", True)
        db.commit()

    assert client.get("/api/auth/me").status_code == 401


# --- CSRF: same-origin check ------------------------------------------------------------------
def test_given_cross_origin_sign_in_when_posted_then_403(client):
    response = client.post(
        "/api/auth/login",
        json={"username": "sup1", "password": PASSWORD},
        headers={"Origin": "http://evil.example"},
    )

    assert response.status_code == 403
    assert response.json()["error"] == "cross-origin-request"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "http://testserver.evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Referer": "http://evil.example/page"}, 403),
        ({}, 403),
        ({"Origin": "http://testserver"}, 200),
        ({"Referer": "http://testserver/some/page"}, 200),
    ],
)
def test_given_cookie_when_state_changing_request_then_origin_must_be_this_site(
    client, headers, status
):
    login(client, "sup1")

    response = client.post("/api/test/change", headers=headers)

    assert response.status_code == status
    if status == 200:
        assert response.json() == {"changed_by": "sup1"}


def test_given_cross_origin_logout_when_posted_then_session_survives(client):
    login(client, "sup1")

    response = client.post("/api/auth/logout", headers={"Origin": "http://evil.example"})

    assert response.status_code == 403
    assert client.get("/api/auth/me").status_code == 200


# --- cookie flags -----------------------------------------------------------------------------
def test_given_cookie_secure_setting_when_signed_in_then_secure_flag(tmp_path, engine):
    settings = loopback_settings(tmp_path, auth={"cookie_secure": True})
    with TestClient(build_app(settings)) as client:
        response = login(client, "sup1")

    assert "Secure" in response.headers["set-cookie"]


def test_given_https_request_when_signed_in_then_secure_flag_by_default(settings, engine):
    with TestClient(build_app(settings), base_url="https://testserver") as client:
        response = client.post(
            "/api/auth/login",
            json={"username": "sup1", "password": PASSWORD},
            headers={"Origin": "https://testserver"},
        )

    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


# --- the throttle alone -----------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_failures_past_the_allowance_then_each_doubles_the_wait_up_to_the_cap():
    clock = Clock()
    throttle = LoginThrottle(
        max_per_user=2, max_per_ip=100, window_s=900, max_delay_s=10, clock=clock
    )
    throttle.failed("alice", "10.0.0.1")
    assert throttle.retry_after("alice", "10.0.0.1") is None  # within the free allowance
    waits = []
    for _ in range(6):
        throttle.failed("alice", "10.0.0.1")
        waits.append(throttle.retry_after("alice", "10.0.0.2"))  # the name, from anywhere
        clock.now += waits[-1]
        assert throttle.retry_after("alice", "10.0.0.1") is None  # never locked for good
    assert waits == [1, 2, 4, 8, 10, 10]


def test_given_failures_when_the_window_moves_on_then_free_again():
    clock = Clock()
    throttle = LoginThrottle(max_per_user=2, max_per_ip=100, window_s=60, clock=clock)
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1")
    clock.now += 61
    throttle.failed("alice", "10.0.0.1")
    assert throttle.retry_after("alice", "10.0.0.1") is None


def test_given_failures_from_one_address_when_many_names_then_that_address_slowed_only():
    throttle = LoginThrottle(max_per_user=5, max_per_ip=3, window_s=60, clock=Clock())

    for name in ("a1", "a2", "a3"):
        throttle.failed(name, "10.0.0.9")

    assert throttle.retry_after("a4", "10.0.0.9") == pytest.approx(1)
    assert throttle.retry_after("a4", "10.0.0.8") is None


def test_given_success_when_user_signs_in_then_user_count_cleared():
    throttle = LoginThrottle(max_per_user=1, max_per_ip=100, window_s=60, clock=Clock())
    throttle.failed("alice", "10.0.0.1")

    throttle.succeeded("alice")

    assert throttle.retry_after("alice", "10.0.0.1") is None


def test_given_many_names_when_failing_then_memory_bounded():
    throttle = LoginThrottle(max_per_user=5, max_per_ip=10_000, window_s=60, max_keys=100)

    for n in range(1000):
        throttle.failed(f"user{n}", "10.0.0.1")

    assert len(throttle) == 100
    assert throttle.retry_after("user999", "10.0.0.1") is None
