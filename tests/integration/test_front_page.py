"""The front door and the standard phrases in headless Chromium, against the real web role
(``python -m ivr web``) on a SQLite file and a redis-server of its own, both on loopback.

Signed out, ``/`` is the sign-in form; the agent signs in there, lands on ``/`` with the agent
desk as its only link, opens it and finds the standard phrases with its 工号 filled in; the
customer typed into the 工单 (``hotline:customer``) and an English call (``hotline:pop``)
re-render them, and a copy button copies the phrase. The admin signs in from ``/`` and sees
every page and the service status, and every page's 首页 link leads back.
Screenshots: ``test-artifacts/front-signed-out.png``, ``front-agent.png``, ``front-admin.png``,
``agent-phrases.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql import db as sql
from ivr.core.agents import DeskAssignment
from ivr.core.front_door import PAGES, pages_for
from ivr.devstack.ports import free_port
from ivr.settings import Settings
from tests.stt_queue_support import RedisServer
from tests.web_support import ARTIFACTS, PASSWORD, chromium, web_role

pytestmark = pytest.mark.integration

BROWSER_ZONE = "America/Sao_Paulo"  # not the hotline's: the phrases follow the hotline's clock
PHRASE = "#phrases .phrase[data-phrase='{}'] .phrase-text"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    run = tmp_path_factory.mktemp("front-page")
    server = RedisServer(run / "redis").start()
    settings = Settings(run_dir=run, redis={"url": server.url}, web={"port": free_port()})
    try:
        with web_role(settings, [("agent1", "agent"), ("admin1", "admin")]) as (url, _):
            engine = sql.settings_engine(settings)
            with Session(engine) as db:
                store.add(
                    db, "1001", "张三", [DeskAssignment("repair", 0)], frozenset({"repair"}),
                    "hotline", store.Actor("test"), user="agent1",
                )  # fmt: skip
                db.commit()
            engine.dispose()
            yield url
    finally:
        server.kill()


async def sign_in_at_front(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")
    await page.wait_for_selector(".front-links")


async def front_links(page: Page) -> list[str]:
    return [str(h) for h in await page.eval_on_selector_all(
        ".front-links a", "links => links.map(a => a.getAttribute('href'))"
    )]  # fmt: skip


async def test_an_agent_signs_in_at_the_front_door_and_finds_its_phrases(
    base: str, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with chromium(tmp_path, viewport=(1280, 900), timezone_id=BROWSER_ZONE) as browser:
        await browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = await browser.new_page()
        await page.goto(f"{base}/")
        assert page.url == f"{base}/"  # no redirect: the front page is the form
        assert await page.is_visible("form[action='/api/auth/login']")
        await page.screenshot(path=str(ARTIFACTS / "front-signed-out.png"), full_page=True)

        await sign_in_at_front(page, base, "agent1")
        assert await front_links(page) == ["/agent"]
        assert not await page.query_selector("#status")
        await page.screenshot(path=str(ARTIFACTS / "front-agent.png"), full_page=True)

        await page.click(".front-links a[href='/agent']")
        await page.wait_for_url(f"{base}/agent")
        greeting = page.locator(PHRASE.format("greeting"))
        await greeting.wait_for(timeout=5000)
        assert "1001号话务员为您服务" in await greeting.inner_text()
        assert await page.locator("#phrases .phrase").count() == 5
        readback = page.locator(PHRASE.format("readback"))
        assert (await readback.inner_text()).startswith("先生/女士，")

        await page.evaluate("""() => document.dispatchEvent(new CustomEvent("hotline:customer",
            {detail: {surname: "王<b>", title: "女士"}}))""")
        await page.wait_for_function(
            "s => document.querySelector(s).textContent.startsWith('王<b>女士，')",
            arg=PHRASE.format("readback"),
        )  # shown as text, never as markup
        assert await page.locator("#phrases b").count() == 0
        await page.screenshot(path=str(ARTIFACTS / "agent-phrases.png"), full_page=True)

        copy = "#phrases .phrase[data-phrase='wait'] .copy"
        await page.click(copy)
        await page.wait_for_selector(f"{copy}:has-text('已复制')")
        assert await page.evaluate("navigator.clipboard.readText()") == "请您稍等，我帮您查询一下。"

        await page.evaluate("""() => document.dispatchEvent(new CustomEvent("hotline:pop",
            {detail: {linkedid: "1.1", ivr: {language: "en"}}}))""")
        await page.wait_for_function(
            "s => document.querySelector(s).textContent.includes('agent 1001 speaking')",
            arg=PHRASE.format("greeting"),
        )
        assert await page.locator("#phrases .phrase-gloss").count() == 5
        assert await page.input_value("#phrases-lang") == "en"

        await page.click("header a[href='/']")
        await page.wait_for_url(f"{base}/")
        assert await front_links(page) == ["/agent"]


async def test_the_admin_sees_every_page_and_the_status_and_each_page_leads_back(
    base: str, tmp_path: Path
) -> None:
    async with chromium(tmp_path, viewport=(1280, 900), timezone_id=BROWSER_ZONE) as browser:
        page = await browser.new_page()
        await sign_in_at_front(page, base, "admin1")
        assert await front_links(page) == [p.path for p in pages_for("admin")]
        await page.wait_for_selector("#redis.ok", timeout=5000)  # the real redis-server
        assert "正常" in await page.inner_text("#redis")
        await page.screenshot(path=str(ARTIFACTS / "front-admin.png"), full_page=True)

        for front in PAGES:
            await page.click(f".front-links a[href='{front.path}']")
            await page.wait_for_url(f"{base}{front.path}")
            await page.click("header a[href='/']")
            await page.wait_for_url(f"{base}/")
