"""The front page ``/`` (TestClient, a real SQLite file): the sign-in form when signed out, the
role's pages when signed in (ivr.core.front_door), the status table for admins only, and a
link back to ``/`` on every page the app serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from ivr.adapters.sql import users
from ivr.adapters.sql.db import Role
from ivr.core.front_door import PAGES, pages_for, role_name
from ivr.web.app import create_app
from tests.web_support import ORIGIN, PASSWORD, loopback_settings, sign_in, staff_engine

# one account per role, whatever roles there are: a new role is checked as soon as it exists
PEOPLE = tuple((f"user-{role.value}", role) for role in Role)
USER_OF = {role: name for name, role in PEOPLE}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = loopback_settings(tmp_path)
    with staff_engine(settings, users.hash_password(PASSWORD), PEOPLE):
        yield create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        client.headers.update(ORIGIN)
        yield client


def served_pages(app: FastAPI) -> list[str]:
    """The paths of every page registered with static_pages.add_page (named ``<name>_page``
    and guarded by a role), in every router the app includes."""
    routes = [
        route
        for entry in app.routes
        for route in getattr(getattr(entry, "original_router", None), "routes", [entry])
    ]
    return sorted(
        r.path
        for r in routes
        if isinstance(r, APIRoute) and r.name == f"{r.path[1:]}_page" and r.dependencies
    )


def links(page: str) -> list[str]:
    """The links of the front page's list of pages (none when it has no list)."""
    found = re.search(r'<ul class="front-links">.*?</ul>', page, re.S)
    return re.findall(r'<a href="([^"]+)">', found.group(0)) if found else []


def test_signed_out_the_front_page_is_the_sign_in_form_that_comes_back_to_it(client):
    page = client.get("/", follow_redirects=False)

    assert page.status_code == 200
    assert '<form method="post" action="/api/auth/login">' in page.text
    assert '<input type="hidden" name="next" value="/">' in page.text
    assert "front-links" not in page.text and 'id="status"' not in page.text
    assert page.headers["cache-control"] == "no-store"
    signed = client.post(
        "/api/auth/login",
        data={"username": USER_OF[Role.agent], "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
    assert links(client.get("/").text) == ["/agent"]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_sees_the_links_of_its_pages_chinese_first(client, role):
    sign_in(client, USER_OF[role])

    page = client.get("/")

    assert page.status_code == 200
    assert links(page.text) == [p.path for p in pages_for(role)]
    for front in pages_for(role):
        assert f"{front.zh} <small>{front.en}</small>" in page.text
    assert f"{USER_OF[role]} · {role_name(role)}" in page.text


@pytest.mark.parametrize("role", list(Role))
def test_only_admins_get_the_status_table(client, role):
    sign_in(client, USER_OF[role])

    page = client.get("/").text

    assert ('<section id="status"' in page) == (role is Role.admin)
    assert ('<td id="redis">' in page) == (role is Role.admin)


def test_the_front_page_keeps_its_csp_with_no_inline_script(client):
    sign_in(client, USER_OF[Role.admin])

    page = client.get("/")

    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/index.js" defer>']
    assert "style=" not in page.text and "<style" not in page.text
    for asset in ("/static/index.js", "/static/index.css"):
        assert client.get(asset).status_code == 200, asset
    assert "/health" in client.get("/static/index.js").text


@pytest.mark.parametrize("role", list(Role))
def test_the_table_lists_exactly_the_pages_the_role_opens(app, client, role):
    """Each page the app serves is in the table, for exactly the roles its guard lets in."""
    served = served_pages(app)
    assert sorted(p.path for p in PAGES) == served
    sign_in(client, USER_OF[role])
    opens = [path for path in served if client.get(path).status_code == 200]
    assert sorted(p.path for p in pages_for(role)) == opens


def test_every_page_links_back_to_the_front_page_in_its_header(app, client):
    sign_in(client, USER_OF[Role.admin])
    for path in ["/", *served_pages(app)]:
        page = client.get(path)
        assert page.status_code == 200, path
        header = re.findall(r"<header>.*?</header>", page.text, re.S)
        assert header and '<a href="/">首页 <small>Home</small></a>' in header[0], path
