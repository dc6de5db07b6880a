"""The tickets page and the supervisors' danger panel in headless Chromium, against the real
web role (``python -m ivr web``) on a SQLite file and a real redis-server, both on loopback.

A supervisor signs in, sees an overdue ticket with its transcript note and overdue marker,
moves it on from the page (sending it back without a reason is refused), then opens the live
page: the open ticket with a danger word is listed there, masked, and a danger word heard while
the page is open shows up within the panel's refresh.
Screenshots: ``test-artifacts/tickets.png``, ``test-artifacts/supervisor-danger.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import followups, tickets
from ivr.adapters.sql.db import (
    OutboundCall,
    Recording,
    Ticket,
    TicketState,
    TicketTransition,
    Transcript,
)
from ivr.core.followup import Result
from ivr.core.followup_call import CallResult
from ivr.devstack.ports import free_port
from ivr.devstack.stack import settings_env
from ivr.settings import Settings
from tests.stack_support import wait_for
from tests.web_support import (
    ARTIFACTS,
    PASSWORD,
    add_user,
    chromium,
    loopback_settings,
    sign_in_on_page,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
BROWSER_ZONE = "America/Sao_Paulo"  # not the hotline's: times must not follow the browser


STARTING = (OSError, httpx.HTTPError, redis.RedisError)  # not listening yet


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    run = tmp_path_factory.mktemp("tickets-page")
    return loopback_settings(
        run,
        web={"port": free_port()},
        ami={"secret": "tickets-page-test"},
    )


@pytest.fixture(scope="module")
def web(settings: Settings) -> Iterator[str]:
    """redis-server, `ivr db upgrade`, then the web role, as `ivr up` would start them (logs
    in run_dir)."""
    port = settings.redis.url.rsplit(":", 1)[1].split("/")[0]
    logs = settings.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    with (logs / "redis.log").open("wb") as redis_log, (logs / "web.log").open("wb") as web_log:
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(settings.run_dir),
                ],
                stdout=redis_log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        client = redis.Redis.from_url(settings.redis.url)
        wait_for(client.ping, 10, "redis-server", ignore=STARTING)
        client.close()
        subprocess.run(
            [sys.executable, "-m", "ivr", "db", "upgrade"],
            env=os.environ | settings_env(settings),
            stdout=web_log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
        )  # the web role refuses a database not at head
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ivr", "web"],
                env=os.environ | settings_env(settings, "web"),
                stdout=web_log,
                stderr=subprocess.STDOUT,
            )
        )
    base = f"http://{settings.web.host}:{settings.web.port}"
    try:
        wait_for(
            lambda: httpx.get(f"{base}/health").status_code == 200,
            20,
            "the web role",
            ignore=STARTING,
        )
        yield base
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def engine(settings: Settings, web: str) -> Iterator[Engine]:
    engine = sql.settings_engine(settings)  # brought to head by `ivr db upgrade` above
    add_user(engine, "sup-page", PASSWORD, "supervisor")
    yield engine
    engine.dispose()


_serial = iter(range(1, 1_000_000))


def ticket_with_note(
    engine: Engine,
    settings: Settings,
    *,
    started: datetime,
    caller: str,
    text: str | None,
    danger: list[str] | None = None,
    desk: str = "repair",
) -> int:
    """A call answered by an agent, its ticket, and (``text``) its transcript note."""
    n = next(_serial)
    with Session(engine, expire_on_commit=False) as db:
        rec = Recording(
            linkedid=f"page.{n}", uniqueid=f"page.{n}", started_at=started, did="95158",
            caller=caller, caller_reversed=caller[::-1], desk=desk, category=desk,
            agent="Local/agent@sim-agents", account="88001234",
        )  # fmt: skip
        db.add(rec)
        db.flush()
        ticket = tickets.open_for_call(db, recording=rec, voice_message=None, settings=settings)
        assert ticket is not None
        if text is not None:
            transcribed(db, settings, rec.id, text, danger or [])
        db.commit()
        return ticket.id


def transcribed(
    db: Session, settings: Settings, recording_id: int, text: str, danger: list[str]
) -> None:
    """What the STT worker does with a finished job: the transcript, then the ticket note."""
    tr = Transcript(
        source_key=f"recording:{recording_id}", recording_id=recording_id, language="zh",
        model="vosk-model-small-cn-0.22", text=text, words=[], audio_s=5.0, decode_s=1.0,
        danger_words=danger,
    )  # fmt: skip
    db.add(tr)
    db.flush()
    tickets.add_transcript_note(db, tr, settings)


async def test_given_tickets_then_page_shows_notes_overdue_and_moves_and_supervisor_sees_danger(
    settings, web, engine, tmp_path
):
    overdue = ticket_with_note(
        engine, settings, started=NOW - timedelta(days=3), caller="13800138011",
        text="我 家 暖气 不 热 已经 三 天 了",
    )  # fmt: skip
    danger = ticket_with_note(
        engine, settings, started=NOW - timedelta(minutes=10), caller="13800138022",
        text="楼道 里 有 煤气味", danger=["煤气味"], desk="consultation",
    )  # fmt: skip
    untranscribed = ticket_with_note(
        engine, settings, started=NOW - timedelta(hours=3), caller="13800138033", text=None,
        desk="complaints",
    )  # fmt: skip
    hotline_zone = ZoneInfo(settings.tickets.timezone)
    with Session(engine) as db:
        quiet_due = db.get(Ticket, untranscribed).deadline_at  # type: ignore[union-attr]
    assert quiet_due is not None
    local_due = quiet_due.astimezone(hotline_zone)
    assert local_due.time() == time(0)  # a working-day deadline: local midnight
    last_day = local_due - timedelta(days=1)
    ARTIFACTS.mkdir(exist_ok=True)
    # the browser sits in another zone: the page still speaks the hotline's local time
    async with chromium(tmp_path, viewport=(1280, 900), timezone_id=BROWSER_ZONE) as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in_on_page(page, web, "/tickets", "sup-page")

        late = f"article.ticket[data-id='{overdue}']"
        await page.wait_for_selector(late, timeout=5000)
        assert await page.is_visible(f"{late} .overdue-marker")
        assert await page.text_content(f"{late} .note .text") == "我 家 暖气 不 热 已经 三 天 了"
        assert await page.text_content(f"{late} .caller") == "138******11"
        assert await page.get_attribute(f"{late} .deadline", "class") == "deadline late"
        assert not await page.is_visible(f"{late} .danger-flag")
        hot = f"article.ticket[data-id='{danger}']"
        assert await page.is_visible(f"{hot} .danger-flag")
        assert "煤气味" in (await page.text_content(f"{hot} .danger-flag") or "")
        assert not await page.is_visible(f"{hot} .overdue-marker")
        # most urgent first: the danger ticket (L1, priority 90) leads
        order = await page.eval_on_selector_all(
            "article.ticket", "els => els.map(e => e.dataset.id)"
        )
        assert order[:2] == [str(danger), str(overdue)]
        # a working-day deadline ends at 24:00 of its last day (complaints: L3)
        quiet = f"article.ticket[data-id='{untranscribed}']"
        assert await page.text_content(f"{quiet} .deadline") == (
            f"{last_day.year}/{last_day.month}/{last_day.day} 24:00"
        )
        assert await page.text_content(f"{quiet} .notes") == "暂无备注 no notes yet"
        page_text = await page.content()
        assert "13800138011" not in page_text and "13800138022" not in page_text

        # moves from the page; sending work back without a reason is refused, clearly
        await page.fill(f"{late} input[name=comment]", "派给维修一班")
        await page.click(f"{late} button.to[data-to='处理中']")
        await page.wait_for_selector(f"{late}[data-state='处理中']", timeout=5000)
        await page.click(f"{late} button.to[data-to='待验收']")
        await page.wait_for_selector(f"{late}[data-state='待验收']", timeout=5000)
        await page.click(f"{late} button.to[data-to='处理中']")
        await page.wait_for_selector("#error:not([hidden])", timeout=5000)
        assert "say why" in (await page.text_content("#error") or "")
        assert await page.get_attribute(late, "data-state") == "待验收"
        await page.click(f"{late} details.history summary")
        await page.wait_for_selector(f"{late} .transitions li:has-text('sup-page')")
        await page.screenshot(path=str(ARTIFACTS / "tickets.png"), full_page=True)

        # the live page lists the open danger ticket, masked
        await page.goto(f"{web}/supervisor")
        row = f"#danger-list tbody tr[data-ticket='{danger}']"
        await page.wait_for_selector(row, timeout=5000)
        cells = await page.eval_on_selector_all(f"{row} td", "tds => tds.map(t => t.textContent)")
        assert cells[:5] == [f"#{danger}", "138******22", "consultation", "煤气味", "待派单"]
        assert not await page.is_visible(f"#danger-list tbody tr[data-ticket='{overdue}']")
        assert not await page.is_visible("#danger-empty")

        # a call transcribed now, in which a danger word was heard, shows up by itself;
        # 3 hours after the call it is already past its new 2-hour deadline
        with Session(engine) as db:
            rec_id = db.scalars(select(Recording.id).where(Recording.caller == "13800138033")).one()
            transcribed(db, settings, rec_id, "闻到 漏气 的 味道", ["漏气"])
            db.commit()
        later = f"#danger-list tbody tr[data-ticket='{untranscribed}']"
        await page.wait_for_selector(later, timeout=15_000)
        late_cells = await page.eval_on_selector_all(
            f"{later} td", "tds => tds.map(t => t.textContent)"
        )
        assert late_cells[1:5] == ["138******33", "complaints", "漏气", "待派单"]
        assert late_cells[5].endswith("已超时 overdue")
        await page.screenshot(path=str(ARTIFACTS / "supervisor-danger.png"), full_page=True)
        assert errors == []

    with Session(engine) as db:
        moves = db.scalars(
            select(TicketTransition)
            .where(TicketTransition.ticket_id == overdue)
            .order_by(TicketTransition.id)
        ).all()
    assert [(m.actor, m.to_state.value, m.comment) for m in moves] == [
        ("sup-page", "处理中", "派给维修一班"),
        ("sup-page", "待验收", ""),
    ]


async def test_given_a_ticket_a_followup_reopened_then_the_page_flags_it_and_filters_on_it(
    settings, web, engine, tmp_path
):
    """A 回访 heard "not resolved" (the follow-up store's own path): the ticket is back in
    处理中 with its priority raised; its card says 重新处理 reopened with that priority, and
    the filter 重新处理 lists it alone."""
    again = ticket_with_note(engine, settings, started=NOW - timedelta(hours=1),
                             caller="13800138044", text="水管 又 漏 了")  # fmt: skip
    other = ticket_with_note(engine, settings, started=NOW - timedelta(hours=1),
                             caller="13800138055", text="咨询 电价")  # fmt: skip
    with Session(engine) as db:
        boss = db.scalars(select(sql.User).where(sql.User.username == "sup-page")).one()
        for to in (TicketState.in_progress, TicketState.awaiting_acceptance, TicketState.done):
            tickets.move(db, again, to, boss, "修好了")
        before = db.get(Ticket, again).priority  # type: ignore[union-attr]
        (row,) = followups.of_ticket(db, again)
        db.add(OutboundCall(channel_id="followup-page-1", purpose="followup",
                            number="13800138044", ticket_id=again, followup_id=row.id,
                            started_by="role:followups"))  # fmt: skip
        db.flush()
        followups.finish_attempt(db, "followup-page-1", CallResult(Result.ANSWERED, resolved=False),
                                 "ANSWER", now=datetime.now(UTC))  # fmt: skip
        db.commit()
        after = db.get(Ticket, again).priority  # type: ignore[union-attr]
    assert after > before
    async with chromium(tmp_path, viewport=(1280, 900), timezone_id=BROWSER_ZONE) as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in_on_page(page, web, "/tickets", "sup-page")
        card = f"article.ticket[data-id='{again}']"
        await page.wait_for_selector(card, timeout=5000)
        assert await page.is_visible(f"{card} .reopened-flag")
        assert await page.text_content(f"{card} .reopened-flag") == (
            f"重新处理 reopened · 优先级 priority {after}"
        )
        assert await page.get_attribute(card, "data-state") == "处理中"
        assert not await page.is_visible(f"article.ticket[data-id='{other}'] .reopened-flag")
        await page.check("#filters input[name=reopened]")
        await page.click("#filters button[type=submit]")
        await page.wait_for_selector(f"article.ticket[data-id='{other}']", state="detached")
        shown = await page.eval_on_selector_all(
            "article.ticket", "els => els.map(e => e.dataset.id)"
        )
        assert shown == [str(again)]
        await page.screenshot(path=str(ARTIFACTS / "tickets-reopened.png"), full_page=True)
        assert errors == []
