"""后处理 (wrap-up) as a pause: the pure rules (ivr.core.wrapup), their SQL part
(ivr.adapters.sql.wrapup_pauses) on a real SQLite file, and the ami role's loop
(ivr.adapters.telephony.wrapup_pauses) without an AMI link."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import wrapup_pauses
from ivr.adapters.telephony.ami_client import AmiClient
from ivr.adapters.telephony.membership import MembershipKeeper
from ivr.adapters.telephony.routing_files import load_routing
from ivr.adapters.telephony.wrapup_pauses import WrapupPauses
from ivr.core.agent_presence import Presence
from ivr.core.wrapup import LastChange, Wrapup, actor_of, deadline, due, start_of
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings
from tests.agent_support import engine_with_agent_1001
from tests.conftest import routing_for_tests

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
IN = Presence(logged_in=True)
WRAPPING = Presence(True, True, "后处理")
WRAPUP_S = {"repair": 20, "billing": 0}


def change(presence: Presence, actor: str = "ami:后处理 20s", action: str = "pause") -> LastChange:
    return LastChange("1001", presence, action, actor, T0)


def test_a_completed_queue_call_of_a_logged_in_agent_starts_its_desks_wrapup():
    assert start_of("1001 张三", "repair", IN, WRAPUP_S) == Wrapup("1001", 20)
    assert start_of("1001 张三", "repair", Presence(True, device="browser"), WRAPUP_S) is not None


@pytest.mark.parametrize(
    ("member", "queue", "presence"),
    [
        ("agent", "repair", IN),  # the dev stack's simulated agent: no 工号
        ("1001 张三", "billing", IN),  # wrap-up 0
        ("1001 张三", "nosuch", IN),  # a queue the routing does not list
        ("1001 张三", "repair", Presence()),  # logged out meanwhile
        ("1001 张三", "repair", Presence(True, True, "小休")),  # paused already
        ("1001 张三", "repair", WRAPPING),  # 后处理 by hand already
    ],
)
def test_no_wrapup_without_a_work_number_a_wrapup_time_or_a_free_agent(member, queue, presence):
    assert start_of(member, queue, presence, WRAPUP_S) is None


def test_the_automatic_pause_ends_after_its_seconds():
    c = change(WRAPPING)
    assert deadline(c) == T0 + timedelta(seconds=20)
    assert not due(c, T0 + timedelta(seconds=19.9))
    assert due(c, T0 + timedelta(seconds=20)) and due(c, T0 + timedelta(hours=3))  # restarted


@pytest.mark.parametrize(
    "c",
    [
        change(WRAPPING, actor="zhangsan"),  # 后处理 by hand: the agent ends it
        change(WRAPPING, actor="cli:root"),
        change(Presence(True, True, "小休"), actor="zhangsan"),  # paused for a break meanwhile
        change(Presence(True, True, "小休")),  # the row says 后处理 no longer
        change(IN, action="resume", actor="zhangsan"),  # saved: resumed already
        change(Presence(), action="logout", actor="zhangsan"),
    ],
)
def test_any_other_presence_is_never_ended_by_the_clock(c):
    assert deadline(c) is None and not due(c, T0 + timedelta(days=1))


# --- SQL ----------------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with engine_with_agent_1001(tmp_path, logged_in=True) as engine:
        yield engine


def presence(engine: Engine) -> Presence:
    with Session(engine) as db:
        return agent_store.get_presence(db, "1001")


def start(engine: Engine, member: str = "1001 张三") -> Wrapup | None:
    with Session(engine) as db:
        found = wrapup_pauses.start(db, member, "repair", WRAPUP_S)
        db.commit()
        return found


def end(engine: Engine, after_s: float) -> bool:
    with Session(engine) as db:
        ended = wrapup_pauses.end_if_due(db, "1001", sql.utcnow() + timedelta(seconds=after_s))
        db.commit()
        return ended


def test_sql_pauses_at_completion_and_resumes_when_the_time_runs_out(engine):
    assert start(engine) == Wrapup("1001", 20)
    assert presence(engine) == WRAPPING
    with Session(engine) as db:
        [pending] = wrapup_pauses.pending(db)
        history = agent_store.history(db, "1001")
    assert (pending.work_number, pending.actor) == ("1001", actor_of(20))
    assert history[-1].actor == "ami:后处理 20s" and history[-1].action == "pause"
    assert start(engine) is None  # a second completion while wrapping up: nothing more
    assert not end(engine, 10) and presence(engine) == WRAPPING
    assert end(engine, 21) and presence(engine) == IN


def test_sql_leaves_a_pause_for_another_reason_alone(engine):
    start(engine)
    with Session(engine) as db:
        agent_store.change_presence(db, "1001", "pause", "小休", agent_store.Actor("zhangsan"))
        db.commit()
    assert not end(engine, 3600) and presence(engine) == Presence(True, True, "小休")


def test_sql_leaves_a_wrapup_taken_by_hand_after_a_save_alone(engine):
    start(engine)
    with Session(engine) as db:  # saved (the pause ends), then 后处理 again by hand
        agent_store.change_presence(db, "1001", "resume", "", agent_store.Actor("zhangsan"))
        agent_store.change_presence(db, "1001", "pause", "后处理", agent_store.Actor("zhangsan"))
        db.commit()
    assert not end(engine, 3600) and presence(engine) == WRAPPING


def test_sql_ignores_members_that_are_not_agents(engine):
    assert start(engine, "agent") is None and start(engine, "1002 李四") is None
    assert presence(engine) == IN


# --- the ami role's loop (no AMI link: the queues follow at the keeper's next login) ---------
def test_the_loop_pauses_at_a_completion_in_a_queue_with_a_wrapup_and_ignores_the_others(
    engine, tmp_path
):
    routing_dir = routing_for_tests(tmp_path / "routing")
    desks = yaml.safe_load((routing_dir / "desks.yaml").read_text(encoding="utf-8"))
    desks["ringing"]["repair"]["wrapup_s"] = 1
    (routing_dir / "desks.yaml").write_text(yaml.safe_dump(desks, allow_unicode=True))
    routing = load_routing(routing_dir)
    settings = Settings(run_dir=tmp_path)
    keeper = MembershipKeeper(engine, routing, AmiClient(settings.ami, "unused"))
    part = WrapupPauses(engine, routing, keeper, interval_s=0.05)

    def complete(queue: str) -> AmiMessage:
        return AmiMessage((("Event", "AgentComplete"), ("Queue", queue),
                           ("MemberName", "1001 张三"), ("Reason", "caller")))  # fmt: skip

    async def scenario() -> list[Presence]:
        seen = []
        worker = asyncio.create_task(part.run())
        await part.on_event(complete("billing"))  # no wrap-up there
        await part.on_event(AmiMessage((("Event", "AgentConnect"), ("Queue", "repair"))))
        assert part.completed.empty()
        await part.on_event(complete("repair"))
        await asyncio.sleep(0.3)
        seen.append(presence(engine))
        await asyncio.sleep(1.2)  # the second ran out
        seen.append(presence(engine))
        worker.cancel()
        return seen

    assert asyncio.run(scenario()) == [WRAPPING, IN]
