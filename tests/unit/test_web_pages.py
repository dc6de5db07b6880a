"""The signed-in pages (supervisor, QA, tickets): each with its script, its style and the
shared base style, and nothing else under /static/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from ivr.adapters.sql import users
from ivr.adapters.sql.db import User
from ivr.web.app import create_app
from ivr.web.static_pages import add_page
from tests.web_support import PASSWORD, loopback_settings, sign_in, staff_engine

PAGES = ["supervisor", "qa", "tickets"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = loopback_settings(tmp_path)
    with (
        staff_engine(settings, users.hash_password(PASSWORD)),
        TestClient(create_app(settings)) as client,
    ):
        yield client


@pytest.mark.parametrize("name", PAGES)
def test_every_page_links_the_base_style_then_its_own_then_its_script(client, name):
    sign_in(client, "admin1")

    page = client.get(f"/{name}")
    links = re.findall(r'<(?:link rel="stylesheet" href|script src)="([^"]+)"', page.text)

    assert page.status_code == 200
    assert links == ["/static/base.css", f"/static/{name}.css", f"/static/{name}.js"]
    assert "style-src 'self'" in page.headers["content-security-policy"]
    for url in links:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "no-cache"


def test_the_base_style_is_public_css_and_holds_what_the_pages_share(client):
    style = client.get("/static/base.css")

    assert style.status_code == 200
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert "--bad:" in style.text and "header h1" in style.text
    for name in PAGES:
        assert "header h1" not in client.get(f"/static/{name}.css").text, name


@pytest.mark.parametrize(
    "path", ["/static/index.html", "/static/login.html", "/static/other.css", "/static/qa.html"]
)
def test_only_the_pages_assets_are_served_from_static(client, path):
    assert client.get(path).status_code == 404


def test_a_page_without_a_role_guard_is_refused_when_registered():
    with pytest.raises(TypeError, match="no dependency to guard the page"):
        add_page(APIRouter(), "open", User, description="no guard")
