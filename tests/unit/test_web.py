"""The web app's health route without a reachable Redis (TestClient, no server)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ivr.web.app import create_app
from tests.web_support import loopback_settings, upgraded


def test_given_redis_unreachable_when_health_then_503_degraded(tmp_path):
    settings = upgraded(loopback_settings(tmp_path))
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["redis"] is False


def test_signed_out_the_front_page_is_the_sign_in_form_without_the_status(tmp_path):
    settings = upgraded(loopback_settings(tmp_path))
    with TestClient(create_app(settings)) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert 'action="/api/auth/login"' in page.text
    assert 'id="status"' not in page.text  # admins only (tests/unit/test_web_front.py)
