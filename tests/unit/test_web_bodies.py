"""Every body the web role reads itself (sign-in, ticket moves and notes, reviews) answers
deeply nested, oversized and malformed JSON with 422, signed in or not, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ivr.core.tickets import InvalidTicketInput
from ivr.settings import Settings
from ivr.web.app import create_app
from ivr.web.auth import InvalidAuthRequest
from ivr.web.deps import MAX_JSON_DEPTH
from ivr.web.routes.recordings import InvalidReviewRequest
from tests.web_support import ORIGIN, loopback_settings, sign_in, staff_engine

BODIES = {
    # 7,000 nested arrays fit in the 16 KiB sign-in limit: the parser's recursion would end
    "nested": b'{"username": ' + b"[" * 7000 + b"]" * 7000 + b', "password": "x"}',
    "just too deep": b'{"text": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
    "oversized": b'{"username": "' + b"a" * 70_000 + b'", "password": "x"}',
    "not json": b"{'username': 'a'",
    "not utf-8": b'{"username": "\xff\xfe"}',
}
ROUTES = [
    "/api/auth/login",
    "/api/tickets/1/transitions",
    "/api/tickets/1/notes",
    "/api/recordings/1/reviews",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return loopback_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings, password_hash: str) -> Iterator[Engine]:
    with staff_engine(settings, password_hash) as engine:
        yield engine


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", sorted(BODIES))
def test_given_a_bad_body_then_422_never_500(settings, engine, route, kind) -> None:
    with TestClient(create_app(settings)) as client:
        if route != "/api/auth/login":
            sign_in(client, "admin1")
        response = client.post(
            route, content=BODIES[kind], headers=ORIGIN | {"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"] in {
        InvalidAuthRequest.slug,
        InvalidTicketInput.slug,
        InvalidReviewRequest.slug,
    }


def test_json_up_to_the_depth_limit_is_read(settings, engine) -> None:
    nested = b'{"text": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    with TestClient(create_app(settings)) as client:
        sign_in(client, "admin1")
        response = client.post(
            "/api/tickets/1/notes", content=nested,
            headers=ORIGIN | {"Content-Type": "application/json"},
        )  # fmt: skip
    # read, then refused for what it says (a note is text), not for how it is nested
    assert response.status_code == 422
    assert "nests deeper" not in response.text and "text" in response.text
