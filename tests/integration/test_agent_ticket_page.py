"""The 工单 at the agent desk, in a department and back at the hotline, in headless Chromium
against the real web role (``python -m ivr web``) on a SQLite file.

An agent's call is connected (the ami role's part: :func:`ivr.adapters.sql.ticket_desk.
open_at_connect`); the agent opens its ticket from the desk's own list (the pop part's
``hotline:connected`` opens it the same way), finds the caller's number pre-filled, types the
form of address (the page announces ``hotline:customer``), stops half-way, reloads and finds
the draft, saves with a field missing (refused, the field named and marked), then saves the
whole record: dispatched to 维修. The ticket has every field. The next call's form opens on
``hotline:connected`` (what the pop part dispatches) with its own caller's number. The
department user sees the first (the script in the description shown as text), takes it and
reports; the supervisor records the reply to the customer on /tickets: 已完成. The next
call's ticket, dispatched and reported on, waits on its agent's desk (待回访), where the agent
records the reply.
Screenshots: ``test-artifacts/agent-ticket-form.png``, ``test-artifacts/department-page.png``,
``test-artifacts/tickets-confirm.png``, ``test-artifacts/agent-ticket-replies.png``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import ticket_desk
from ivr.adapters.sql.db import Ticket, TicketState, User
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.agents import DeskAssignment
from ivr.core.ticket_form import check_record
from ivr.devstack.ports import free_port
from ivr.settings import Settings
from ivr.web.routes.ticket_desk import choices_of
from tests.stack_support import wait_for
from tests.web_support import ARTIFACTS, chromium, loopback_settings, sign_in_on_page, web_role

pytestmark = pytest.mark.integration

CALLER = "13800138077"
SCRIPT = '<script>window.__ran = 1</script><img src=x onerror="window.__ran = 2">'
DESCRIPTION = f"厨房有燃气味 {SCRIPT}"
FOLLOWING = {
    "surname": "李", "title": "先生", "contact_confirmed": True, "estate": "和平小区",
    "category": "water", "subcategory": "burst", "happened_at": "2026-12-06T08:00",
    "place": "public", "description": "小区门口水管爆裂", "urgency": "critical",
    "outcome": "dispatched", "department": "repair",
}  # fmt: skip


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return loopback_settings(tmp_path_factory.mktemp("agent-ticket"), web={"port": free_port()})


@pytest.fixture(scope="module")
def web(settings: Settings) -> Iterator[str]:
    """A redis-server of its own (the web role's /health needs one), then the web role."""
    port = settings.redis.url.rsplit(":", 1)[1].split("/")[0]
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly",
         "no", "--dir", str(settings.run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = redis.Redis.from_url(settings.redis.url)
        wait_for(client.ping, 10, "redis-server", ignore=(OSError, redis.RedisError))
        client.close()
        people = [("agent-page", "agent"), ("dept-page", "department"), ("sup-desk", "supervisor")]
        with web_role(settings, people) as (base, _):
            yield base
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def engine(settings: Settings, web: str) -> Iterator[Engine]:
    engine = sql.settings_engine(settings)
    with Session(engine) as db:
        agent_store.add(
            db, "1001", "张三", [DeskAssignment("repair", 0)], frozenset({"repair"}), "hotline",
            agent_store.Actor("test"), user="agent-page",
        )  # fmt: skip
        user = db.scalars(select(User).where(User.username == "dept-page")).one()
        ticket_desk.set_departments(db, user, ["repair"])
        db.commit()
    yield engine
    engine.dispose()


def connected_call(
    engine: Engine, settings: Settings, linkedid: str = "1765001234.77", caller: str = CALLER
) -> int:
    with Session(engine) as db:
        ticket = ticket_desk.open_at_connect(
            db, linkedid=linkedid, work_number="1001", desk="repair", emergency=False,
            caller=caller, connected_at=datetime.now(UTC), settings=settings,
        )  # fmt: skip
        db.commit()
        return ticket.id


def stored(engine: Engine, ticket_id: int) -> Ticket:
    with Session(engine, expire_on_commit=False) as db:
        ticket = db.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


async def test_the_agent_records_the_call_the_department_reports_and_the_hotline_confirms(
    settings: Settings, web: str, engine: Engine, tmp_path: Path
) -> None:
    ticket_id = connected_call(engine, settings)
    ARTIFACTS.mkdir(exist_ok=True)
    form = "#ticket-form"
    async with chromium(tmp_path, viewport=(1400, 1300), timezone_id="Asia/Shanghai") as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in_on_page(page, web, "/agent", "agent-page")
        await page.evaluate(
            "window.__customers = []; document.addEventListener('hotline:customer',"
            " (e) => window.__customers.push(e.detail))"
        )
        await page.click(f"#ticket-list button.open-ticket[data-id='{ticket_id}']")
        await page.wait_for_selector(f"{form}:not([hidden])")
        assert await page.input_value(f"{form} [name=contact_number]") == CALLER
        await page.fill(f"{form} [name=surname]", "王")
        await page.select_option(f"{form} [name=title]", "女士")
        assert (await page.evaluate("window.__customers"))[-1] == {"surname": "王", "title": "女士"}
        await page.fill(f"{form} [name=estate]", "幸福小区")
        await page.fill(f"{form} [name=description]", DESCRIPTION)
        await page.select_option(f"{form} [name=category]", "gas")
        await page.wait_for_selector("#ticket-draft-status:has-text('草稿已保存')", timeout=5000)
        # the agent stops half-way; the page is reloaded: the draft comes back
        await page.reload()
        await page.wait_for_selector(f"{form}:not([hidden])", timeout=5000)
        assert "草稿已恢复" in (await page.text_content("#ticket-draft-status") or "")
        assert await page.input_value(f"{form} [name=surname]") == "王"
        assert await page.input_value(f"{form} [name=title]") == "女士"
        assert await page.input_value(f"{form} [name=estate]") == "幸福小区"
        assert await page.input_value(f"{form} [name=description]") == DESCRIPTION
        assert await page.input_value(f"{form} [name=category]") == "gas"
        assert await page.input_value(f"{form} [name=contact_number]") == CALLER
        # a save with fields missing is refused, the fields named and marked
        await page.click("#ticket-save")
        await page.wait_for_selector("#ticket-error:has-text('subcategory')", timeout=5000)
        assert "contact_confirmed" in (await page.text_content("#ticket-error") or "")
        assert await page.get_attribute(f"{form} [name=subcategory]", "aria-invalid") == "true"
        assert stored(engine, ticket_id).recorded_at is None
        # the rest of the record
        await page.check(f"{form} [name=contact_confirmed]")
        await page.select_option(f"{form} [name=subcategory]", "smell")
        for name, value in (
            ("building", "3"),
            ("unit", "2"),
            ("room", "501"),
            ("account", "11012345"),
            ("happened_at", "2026-12-06T09:30"),
        ):
            await page.fill(f"{form} [name={name}]", value)  # fmt: skip
        await page.select_option(f"{form} [name=place]", "indoors")
        await page.select_option(f"{form} [name=urgency]", "urgent")
        await page.check(f"{form} [name=complaint]")
        await page.select_option(f"{form} [name=level]", "L2")
        await page.check(f"{form} [name=outcome][value=dispatched]")
        assert await page.input_value(f"{form} [name=department]") == "repair"  # from gas
        await page.screenshot(path=str(ARTIFACTS / "agent-ticket-form.png"), full_page=True)
        await page.click("#ticket-save")
        await page.wait_for_selector("#ticket-saved:has-text('已保存')", timeout=5000)
        assert "处理中" in (await page.text_content("#ticket-saved") or "")
        assert await page.is_hidden(form)

        ticket = stored(engine, ticket_id)
        assert (ticket.state, ticket.agent, ticket.recorded_by) == (
            TicketState.in_progress, "1001", "agent-page",
        )  # fmt: skip
        assert (ticket.surname, ticket.title, ticket.contact_number, ticket.contact_confirmed) == (
            "王", "女士", CALLER, True,
        )  # fmt: skip
        assert (ticket.estate, ticket.building, ticket.unit, ticket.room, ticket.account) == (
            "幸福小区", "3", "2", "501", "11012345",
        )  # fmt: skip
        assert (ticket.problem_category, ticket.problem_subcategory, ticket.place) == (
            "gas", "smell", "indoors",
        )  # fmt: skip
        shanghai = ZoneInfo("Asia/Shanghai")
        assert ticket.happened_at == datetime(2026, 12, 6, 9, 30, tzinfo=shanghai)
        assert (ticket.description, ticket.urgency, ticket.complaint, ticket.level) == (
            DESCRIPTION, "urgent", True, "L2",
        )  # fmt: skip
        assert (ticket.outcome, ticket.department, ticket.draft) == ("dispatched", "repair", None)

        # the next call: the pop part's hotline:connected opens its form by the Linkedid
        following = connected_call(engine, settings, "1765001299.5", "02866001234")
        await page.evaluate(
            "document.dispatchEvent(new CustomEvent('hotline:connected',"
            " {detail: {linkedid: '1765001299.5', queue: 'repair'}}))"
        )
        await page.wait_for_selector(f"{form}:not([hidden])", timeout=5000)
        assert await page.text_content("#ticket-id") == f"工单 #{following}"
        assert await page.input_value(f"{form} [name=contact_number]") == "02866001234"
        assert await page.input_value(f"{form} [name=surname]") == ""

        # the department sees it, the script as text, takes it and reports
        await browser.clear_cookies()
        await sign_in_on_page(page, web, "/department", "dept-page")
        card = f"article.ticket[data-id='{ticket_id}']"
        await page.wait_for_selector(card, timeout=5000)
        assert await page.text_content(f"{card} .description") == DESCRIPTION
        assert await page.text_content(f"{card} .customer") == "王女士"
        assert await page.text_content(f"{card} .address") == "幸福小区 3栋 2单元 501"
        assert (
            await page.locator(f"{card} .description script, {card} .description img").count() == 0
        )
        await page.click(f"{card} button.take")
        await page.wait_for_selector(f"{card} form.report:not([hidden])", timeout=5000)
        await page.fill(f"{card} textarea[name=result]", "更换减压阀，已通气")
        await page.screenshot(path=str(ARTIFACTS / "department-page.png"), full_page=True)
        await page.click(f"{card} form.report button[type=submit]")
        await page.wait_for_selector(f"{card}[data-state='待验收']", timeout=5000)

        # the hotline confirms with the customer and records the reply
        await browser.clear_cookies()
        await sign_in_on_page(page, web, "/tickets", "sup-desk")
        row = f"article.ticket[data-id='{ticket_id}']"
        await page.wait_for_selector(f"{row} form.confirm:not([hidden])", timeout=5000)
        assert await page.text_content(f"{row} .description") == DESCRIPTION
        assert await page.locator(f"{row} button.to[data-to='已完成']").count() == 0
        await page.fill(f"{row} form.confirm [name=reply]", "客户确认已恢复供气")
        await page.screenshot(path=str(ARTIFACTS / "tickets-confirm.png"), full_page=True)
        await page.click(f"{row} form.confirm button[type=submit]")
        await page.select_option("#filters [name=state]", "已完成")
        await page.click("#filters button[type=submit]")
        await page.wait_for_selector(f"{row}[data-state='已完成']", timeout=5000)
        assert await page.evaluate("window.__ran") is None  # nothing typed ever ran
        assert errors == []

        # the owner's desk: the next call, dispatched and reported on, is to be told
        with Session(engine) as db:
            agent_user = db.scalars(select(User).where(User.username == "agent-page")).one()
            dept_user = db.scalars(select(User).where(User.username == "dept-page")).one()
            ticket_desk.record(
                db, db.get(Ticket, following), check_record(
                    {**FOLLOWING, "contact_number": "02866001234"},
                    choices_of(load_routing(settings.routing_dir)), ZoneInfo("Asia/Shanghai"),
                ), agent_user, settings, ip=None,
            )  # fmt: skip
            ticket_desk.take(db, following, dept_user, ["repair"], ip=None)
            ticket_desk.report(db, following, dept_user, ["repair"], "已疏通", ip=None)
            db.commit()
        await browser.clear_cookies()
        await sign_in_on_page(page, web, "/agent", "agent-page")
        reply_item = f"#ticket-reply-list li[data-id='{following}']"
        await page.wait_for_selector(reply_item, timeout=5000)
        assert "已疏通" in (await page.text_content(f"{reply_item} .result") or "")
        await page.fill(f"{reply_item} input[name=reply]", "已电话告知客户")
        await page.screenshot(path=str(ARTIFACTS / "agent-ticket-replies.png"), full_page=True)
        await page.click(f"{reply_item} button[type=submit]")
        await page.wait_for_selector("#ticket-replies[hidden]", state="attached", timeout=5000)
        assert errors == []

    told = stored(engine, following)
    assert (told.state, told.customer_reply, told.customer_reply_by) == (
        TicketState.done, "已电话告知客户", "agent-page",
    )  # fmt: skip
    done = stored(engine, ticket_id)
    assert (done.state, done.taken_by, done.result) == (
        TicketState.done, "dept-page", "更换减压阀，已通气",
    )  # fmt: skip
    assert (done.customer_reply, done.customer_reply_by) == ("客户确认已恢复供气", "sup-desk")
    assert done.customer_reply_at is not None


async def test_a_repeat_complaint_is_shown_at_the_save_and_the_agent_unlinks_it(
    settings: Settings, web: str, engine: Engine, tmp_path: Path
) -> None:
    caller = "13800138055"
    complaint = {**FOLLOWING, "contact_number": caller, "complaint": True, "level": "L3"}
    first = connected_call(engine, settings, linkedid="1765001234.90", caller=caller)
    second = connected_call(engine, settings, linkedid="1765001234.91", caller=caller)
    with Session(engine) as db:  # the first complaint saved; the second typed, not yet saved
        agent_user = db.scalars(select(User).where(User.username == "agent-page")).one()
        choices = choices_of(load_routing(settings.routing_dir))
        ticket_desk.record(
            db, db.get(Ticket, first), check_record(complaint, choices, ZoneInfo("Asia/Shanghai")),
            agent_user, settings, ip=None,
        )  # fmt: skip
        ticket_desk.save_draft(db, db.get(Ticket, second), complaint, agent_user, ip=None)
        db.commit()
    async with chromium(tmp_path, viewport=(1400, 1100), timezone_id="Asia/Shanghai") as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in_on_page(page, web, "/agent", "agent-page")
        await page.click(f"#ticket-list button.open-ticket[data-id='{second}']")
        await page.wait_for_selector("#ticket-form:not([hidden])")
        await page.click("#ticket-save")
        await page.wait_for_selector("#ticket-repeat:not([hidden])", timeout=5000)
        text = await page.text_content("#ticket-repeat-text") or ""
        assert f"#{first}" in text and "L2" in text and "待确认" in text, text
        await page.screenshot(path=str(ARTIFACTS / "agent-ticket-repeat.png"), full_page=True)
        await page.click("#ticket-repeat-unlink")
        await page.wait_for_selector("#ticket-repeat-text:has-text('已解除')", timeout=5000)
        assert await page.is_disabled("#ticket-repeat-unlink")
        assert errors == []
    saved = stored(engine, second)
    assert (saved.repeat_of, saved.repeat_state, saved.level) == (first, "unlinked", "L2")
