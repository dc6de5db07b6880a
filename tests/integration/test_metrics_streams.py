"""Live streams against the web role under uvicorn (the session stack's redis-server): a
stream ends when its session ends, and a user may hold only so many at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ivr.devstack.ports import free_port
from ivr.devstack.stack import Stack
from ivr.settings import Settings, WebSettings
from tests.web_support import PASSWORD, web_role

pytestmark = pytest.mark.integration


def _settings(stack: Stack, run_dir: Path) -> Settings:
    web = WebSettings(port=free_port(), max_streams_per_user=2, stream_session_check_s=0.5)
    return stack.settings.model_copy(update={"run_dir": run_dir, "web": web})


@contextmanager
def _signed_in(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=10) as client:
        answer = client.post("/api/auth/login", json={"username": "sup", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        yield client


def test_given_a_sign_out_then_the_open_stream_ends_with_signed_out_and_the_cap_holds(
    stack: Stack, tmp_path: Path
) -> None:
    settings = _settings(stack, tmp_path / "run")
    with web_role(settings, [("sup", "supervisor")]) as (base, _), _signed_in(base) as client:
        with (
            client.stream("GET", "/api/metrics/stream") as first,
            client.stream("GET", "/api/metrics/stream") as second,
        ):
            assert first.status_code == second.status_code == 200
            third = client.get("/api/metrics/stream")
            assert third.status_code == 429
            assert third.json()["error"] == "too-many-streams" and third.headers["Retry-After"]
            lines = first.iter_lines()
            assert next(lines) == "retry: 2000"
            signed_out_at = time.monotonic()
            assert client.post("/api/auth/logout").status_code == 204
            events = [line for line in lines if line.startswith("event:")]
            ended_after = time.monotonic() - signed_out_at
        assert events == ["event: signed-out"]  # then the server closed the stream
        assert ended_after < 5
        # both streams closed: the count is given back (a new session may open two again)
        with _signed_in(base) as again:
            with again.stream("GET", "/api/metrics/stream") as fresh:
                assert fresh.status_code == 200
