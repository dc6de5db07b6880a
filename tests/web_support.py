"""Settings, users, sign-in and a headless Chromium for the web tests (TestClient and pages).

Users share one password (PASSWORD); a TestClient signs in with its own origin (ORIGIN), as the
CSRF check wants. The pages run in Debian's ``chromium`` (apt) driven by the ``playwright``
wheel (its driver only: never ``playwright install``), with CHROMIUM_FLAGS.

    loopback_settings(run_dir, **fields) -> Settings
                                         Redis at a free loopback port: unreachable unless
                                         the test starts redis-server there
    upgraded(settings) -> Settings       the same, its database brought to head first (as
                                         ``ivr db upgrade``: the web role refuses any other)
    add_staff(engine, password_hash, people=STAFF)
                                         user rows sharing one hash (argon2 is slow on purpose)
    staff_engine(settings, password_hash, people=STAFF)
                                         a context: an engine on a database at head, STAFF
                                         in it
    add_user(engine, username, password, role)
                                         one account made as ``ivr users add`` makes it
    login(client, username, password=PASSWORD, origin=TESTSERVER)
                                         POST /api/auth/login; the response (a coroutine with
                                         an async client)
    sign_in(client, username)            login, which must answer 200
    chromium(tmp_path, viewport=(w, h), timezone_id=..., args=())
                                         a context: a persistent Chromium context, zh-CN
                                         (``args``: more flags, e.g. FAKE_MEDIA_FLAGS)
    sign_in_on_page(page, base_url, path, username, password=PASSWORD)
                                         open ``path`` signed out, sign in through the form
    web_role(settings, people=())        a context: ``ivr web`` as its own process (uvicorn)
                                         on ``settings`` (its tables made first, and an
                                         account per (name, role) in ``people``); yields
                                         (base URL, the process); its log is
                                         ``run_dir/web.log``
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, async_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.db import Role, User
from ivr.adapters.sql.users import create_user
from ivr.devstack.ports import free_port
from ivr.devstack.stack import settings_env
from ivr.settings import Settings
from tests.stack_support import wait_for

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery"
TESTSERVER = "http://testserver"  # TestClient's own origin, which the CSRF check accepts
ORIGIN = {"Origin": TESTSERVER}
STAFF = (("qa1", Role.qa), ("sup1", Role.supervisor), ("admin1", Role.admin))
# what every metrics document (and each queue in it) carries: docs/answer-rate.md
SUMMARY_FIELDS = {
    "offered", "answered", "answered_late", "abandoned", "timed_out", "ivr_only",
    "answer_rate", "threshold_s", "waiting_now", "longest_wait_s", "over_threshold_now",
}  # fmt: skip
CHROMIUM = "/usr/bin/chromium"
# A microphone that plays a beep and no permission prompt (the agent desk's softphone), and
# WebRTC over loopback (Chromium leaves 127.0.0.1 out of its ICE candidates otherwise).
FAKE_MEDIA_FLAGS = (
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def loopback_settings(run_dir: Path, **fields: Any) -> Settings:
    return Settings(run_dir=run_dir, redis={"url": f"redis://127.0.0.1:{free_port()}/0"}, **fields)


def upgraded(settings: Settings) -> Settings:
    engine = sql.settings_engine(settings)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return settings


def add_staff(
    engine: Engine, password_hash: str, people: Iterable[tuple[str, Role]] = STAFF
) -> None:
    with Session(engine) as db:
        for name, role in people:
            db.add(User(username=name, password_hash=password_hash, role=role))
        db.commit()


@contextmanager
def staff_engine(
    settings: Settings, password_hash: str, people: Iterable[tuple[str, Role]] = STAFF
) -> Iterator[Engine]:
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    add_staff(engine, password_hash, people)
    try:
        yield engine
    finally:
        engine.dispose()


def add_user(engine: Engine, username: str, password: str, role: Role | str) -> None:
    with Session(engine) as db:
        create_user(db, username, password, role)
        db.commit()


def login(client: Any, username: str, password: str = PASSWORD, origin: str = TESTSERVER) -> Any:
    return client.post(
        "/api/auth/login",
        json={"username": username, "password": password},
        headers={"Origin": origin},
    )


def sign_in(client: Any, username: str) -> None:
    response = login(client, username)
    assert response.status_code == 200, response.text


@asynccontextmanager
async def chromium(
    tmp_path: Path, *, viewport: tuple[int, int], timezone_id: str, args: Iterable[str] = ()
) -> AsyncIterator[BrowserContext]:
    """A persistent context (its profile in tmp_path), Chinese locale, the given time zone,
    ``args`` after CHROMIUM_FLAGS."""
    width, height = viewport
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, *args],
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id=timezone_id,
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in_on_page(
    page: Page, base_url: str, path: str, username: str, password: str = PASSWORD
) -> None:
    """Signed out, ``path`` shows the sign-in form, which brings the user back to ``path``."""
    await page.goto(f"{base_url}{path}")
    assert page.url == f"{base_url}/login?next={path}"
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}{path}")


@contextmanager
def web_role(
    settings: Settings, people: Iterable[tuple[str, str]] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ivr web`` in a process of its own on ``settings`` (the database brought to head
    first: the role refuses any other; and an account with PASSWORD for each (name, role)
    of ``people``)."""
    import httpx

    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    for name, role in people:
        add_user(engine, name, PASSWORD, role)
    engine.dispose()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{settings.web.port}"

    def healthy() -> bool:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200

    with (settings.run_dir / "web.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ivr", "web"],
            env=os.environ | settings_env(settings, "web"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(healthy, timeout=30, what="the web role", ignore=(httpx.HTTPError,))
            yield base, process
        finally:
            process.terminate()
            process.wait(timeout=15)
