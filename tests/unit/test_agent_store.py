"""ivr.adapters.sql.agents against a real SQLite file and a real PostgreSQL server: adding,
changing, disabling agents, their SIP passwords (kept as HA1 only), every change recorded,
and the bad input of issue #13 (a duplicate 工号, an unknown desk, no desk) refused with
nothing lost, also when two processes add the same 工号 at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, func, select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Agent, AgentChange, AgentDesk, AuditEntry, Role
from ivr.adapters.sql.users import create_user
from ivr.core.agents import (
    AgentExists,
    AgentStateUnchanged,
    AgentWithoutDesk,
    DeskAssignment,
    InvalidAgentInput,
    UnknownDesk,
)
from ivr.core.sip_accounts import SipAccount, digest_ha1
from ivr.settings import Settings
from tests.pg_support import SQL_BACKENDS
from tests.web_support import PASSWORD

KNOWN = frozenset({"repair", "billing", "complaints", "consultation", "emergency"})
REALM = "hotline"
ADMIN = store.Actor("cli:ops")
REPAIR_1 = DeskAssignment("repair", 1)
BILLING_2 = DeskAssignment("billing", 2)


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(run_dir=tmp_path, database={"url": database_url})


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def add(db: Session, number: str = "1001", **kw: Any) -> tuple[Any, str]:
    found = store.add(
        db, number, kw.pop("name", "张三"), kw.pop("desks", [REPAIR_1, BILLING_2]), KNOWN,
        kw.pop("realm", REALM), kw.pop("actor", ADMIN), **kw,
    )  # fmt: skip
    db.commit()
    return found


def web_user(db: Session, name: str, role: Role = Role.agent) -> None:
    create_user(db, name, PASSWORD, role)
    db.commit()


def counts(db: Session) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.scalar(select(func.count()).select_from(t)) or 0
        for t in (Agent, AgentDesk, AgentChange, AuditEntry)
    )


def every_value(engine: Engine) -> str:
    """Every value of every row of every table, as one string."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return repr([list(conn.execute(select(t))) for t in metadata.tables.values()])


def test_given_an_agent_added_then_listed_with_its_desks_and_only_the_ha1_is_stored(db, engine):
    web_user(db, "alice")

    agent, password = add(db, user="alice")

    assert (agent.work_number, agent.name, agent.active, agent.user) == ("1001", "张三", True,
                                                                         "alice")  # fmt: skip
    assert agent.desks == (BILLING_2, REPAIR_1)
    assert store.list_agents(db) == [agent]
    row = db.scalars(select(Agent)).one()
    assert (row.sip_ha1, row.sip_realm) == (digest_ha1("1001", REALM, password), REALM)
    assert len(password) == 20 and password not in every_value(engine)
    assert store.sip_accounts(engine) == [
        SipAccount(username="1001", ha1=row.sip_ha1, display_name="张三", enabled=True)
    ]


def test_given_an_agent_added_then_the_change_and_the_audit_row_say_who_and_what(db):
    add(db, actor=store.Actor("cli:ops", ip="10.0.0.9"))

    (change,) = store.history(db, "1001")
    assert (change.actor, change.action, change.ip) == ("cli:ops", "add", "10.0.0.9")
    assert change.changes["desks"] == {
        "old": None,
        "new": [{"desk": "billing", "penalty": 2}, {"desk": "repair", "penalty": 1}],
    }
    assert change.changes["password"] == "set"
    (entry,) = db.scalars(select(AuditEntry)).all()
    assert (entry.actor, entry.action, entry.target, entry.ip) == (
        "cli:ops", "agent.add", "agent:1001", "10.0.0.9"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("number", "desks", "error"),
    [("1001", [REPAIR_1], AgentExists), ("1002", [DeskAssignment("meter", 0)], UnknownDesk),
     ("1002", [], AgentWithoutDesk), ("10a2", [REPAIR_1], InvalidAgentInput)],
    ids=["duplicate-work-number", "unknown-desk", "no-desk", "bad-work-number"],
)  # fmt: skip
def test_given_bad_input_then_a_clear_error_and_nothing_lost(db, engine, number, desks, error):
    first, _ = add(db)
    before, stored = counts(db), every_value(engine)

    with pytest.raises(error) as refused:
        add(db, number, name="李四", desks=desks)
    db.rollback()

    assert refused.value.status in (409, 422)
    assert counts(db) == before and every_value(engine) == stored
    assert store.list_agents(db) == [first]


@pytest.mark.parametrize(
    ("role", "error", "said"),
    [(None, InvalidAgentInput, "no web account 'bob'"),
     (Role.qa, InvalidAgentInput, "has the role qa"),
     (Role.agent, store.UserTaken, "web account of agent 1001 already")],
)  # fmt: skip
def test_a_web_account_links_only_when_it_exists_has_the_role_agent_and_is_free(
    db, role, error, said
):
    web_user(db, "alice")
    add(db, user="alice")
    add(db, "1003", name="王五")
    if role is not None:
        web_user(db, "bob", role)
    taken = "alice" if error is store.UserTaken else "bob"

    with pytest.raises(error, match=said):
        add(db, "1002", user=taken)
    db.rollback()
    with pytest.raises(error, match=said):
        store.update(db, "1003", KNOWN, ADMIN, user=taken)
    db.rollback()


def test_given_changes_then_desks_replaced_user_unlinked_and_each_field_old_to_new(db):
    web_user(db, "alice")
    add(db, user="alice")

    changed = store.update(
        db, "1001", KNOWN, store.Actor("cli:ops"), name="张三丰",
        desks=[DeskAssignment("emergency", 0)], user=None,
    )  # fmt: skip
    db.commit()

    assert (changed.name, changed.desks, changed.user) == (
        "张三丰", (DeskAssignment("emergency", 0),), None
    )  # fmt: skip
    assert db.scalar(select(func.count()).select_from(AgentDesk)) == 1
    last = store.history(db, "1001")[-1]
    assert (last.action, last.changes) == ("set", {
        "name": {"old": "张三", "new": "张三丰"},
        "desks": {"old": [{"desk": "billing", "penalty": 2}, {"desk": "repair", "penalty": 1}],
                  "new": [{"desk": "emergency", "penalty": 0}]},
        "user": {"old": "alice", "new": None},
    })  # fmt: skip
    assert db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all() == [
        "agent.add", "agent.set"
    ]  # fmt: skip


def test_a_change_that_changes_nothing_writes_nothing(db):
    agent, _ = add(db)
    before = counts(db)

    same = store.update(db, "1001", KNOWN, ADMIN, name=" 张三 ", desks=[BILLING_2, REPAIR_1])
    db.commit()

    assert same == agent and counts(db) == before


def test_taking_every_desk_away_or_an_unknown_one_is_refused_and_the_desks_stay(db):
    agent, _ = add(db)
    for desks, error in (([], AgentWithoutDesk), ([DeskAssignment("meter", 0)], UnknownDesk)):
        with pytest.raises(error):
            store.update(db, "1001", KNOWN, ADMIN, desks=desks)
        db.rollback()
    assert store.get(db, "1001").desks == agent.desks


def test_disable_and_enable_are_recorded_and_reach_the_sip_accounts(db, engine):
    add(db)
    add(db, "1002", name="李四", desks=[REPAIR_1])

    disabled = store.set_active(db, "1001", False, ADMIN)
    db.commit()
    with pytest.raises(AgentStateUnchanged, match="disabled already"):
        store.set_active(db, "1001", False, ADMIN)
    db.rollback()

    assert disabled.active is False
    assert [(a.username, a.enabled) for a in store.sip_accounts(engine)] == [
        ("1001", False), ("1002", True)
    ]  # fmt: skip
    store.set_active(db, "1001", True, ADMIN)
    db.commit()
    assert [c.action for c in store.history(db, "1001")] == ["add", "disable", "enable"]
    assert store.history(db, "1001")[1].changes == {"active": {"old": True, "new": False}}


def test_a_password_reset_gives_a_new_password_once_and_records_no_password(db, engine):
    _, first = add(db)

    agent, second = store.reset_password(db, "1001", REALM, ADMIN)
    db.commit()

    row = db.scalars(select(Agent)).one()
    assert second != first and row.sip_ha1 == digest_ha1("1001", REALM, second)
    assert first not in every_value(engine) and second not in every_value(engine)
    assert store.history(db, "1001")[-1].changes == {"password": "set"}
    assert agent.password_set_at is not None and agent.password_set_at >= agent.created_at


def test_after_a_realm_change_the_reset_records_it_and_the_new_realm_is_used(db):
    agent, _ = add(db)
    assert agent.password_realm == REALM

    after, password = store.reset_password(db, "1001", "pbx.example", ADMIN)
    db.commit()

    assert after.password_realm == "pbx.example"
    assert db.scalars(select(Agent.sip_ha1)).one() == digest_ha1("1001", "pbx.example", password)
    assert store.history(db, "1001")[-1].changes == {
        "password": "set", "realm": {"old": REALM, "new": "pbx.example"}
    }  # fmt: skip


@pytest.mark.parametrize("number", ["1009", "10a1", "", "1" * 40])
def test_an_unknown_work_number_is_not_found(db, number):
    add(db)
    for call in (
        lambda: store.get(db, number),
        lambda: store.history(db, number),
        lambda: store.update(db, number, KNOWN, ADMIN, name="x"),
        lambda: store.set_active(db, number, False, ADMIN),
        lambda: store.reset_password(db, number, REALM, ADMIN),
    ):
        with pytest.raises(store.AgentNotFound) as missing:
            call()
        assert missing.value.status == 404


def test_given_two_adding_the_same_work_number_at_once_then_one_agent_and_one_clear_refusal(
    engine,
):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add_one(name: str) -> None:
        with Session(engine) as session:
            barrier.wait()
            try:
                store.add(session, "1001", name, [REPAIR_1], KNOWN, REALM, ADMIN)
                session.commit()
                outcomes.append("added")
            except AgentExists:
                outcomes.append("exists")

    threads = [threading.Thread(target=add_one, args=(n,)) for n in ("张三", "李四")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["added", "exists"]
    with Session(engine) as session:
        assert counts(session)[:3] == (1, 1, 1)
        (agent,) = store.list_agents(session)
        assert [c.actor for c in store.history(session, "1001")] == ["cli:ops"]
        assert agent.desks == (REPAIR_1,)


def test_known_desks_are_the_routing_desks(settings):
    assert store.known_desks(settings) == KNOWN


def _at_once(*calls: Any) -> list[str]:
    """Run each call in its own thread, starting together; what each ended with."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = []

    def run(call: Any) -> None:
        barrier.wait()
        try:
            call()
            outcomes.append("ok")
        except Exception as exc:  # collected: the assertions name them
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(outcomes)


def test_given_two_changing_one_agents_desks_at_once_then_they_take_turns_and_chain(engine):
    with Session(engine) as session:
        add(session)

    def change(desk: str) -> Any:
        def call() -> None:
            with Session(engine) as session:
                store.update(session, "1001", KNOWN, ADMIN, desks=[DeskAssignment(desk, 0)])
                session.commit()

        return call

    assert _at_once(change("emergency"), change("consultation")) == ["ok", "ok"]

    with Session(engine) as session:
        first, second = [c.changes["desks"] for c in store.history(session, "1001")[1:]]
        assert second["old"] == first["new"]  # the second saw what the first left
        assert [d.desk for d in store.get(session, "1001").desks] == [second["new"][0]["desk"]]
        assert session.scalar(select(func.count()).select_from(AgentDesk)) == 1


def test_given_two_agents_taking_one_web_account_at_once_then_one_gets_it(engine):
    with Session(engine) as session:
        web_user(session, "alice")
        add(session)
        add(session, "1002", name="李四")

    def link(number: str) -> Any:
        def call() -> None:
            with Session(engine) as session:
                store.update(session, number, KNOWN, ADMIN, user="alice")
                session.commit()

        return call

    assert _at_once(link("1001"), link("1002")) == ["UserTaken", "ok"]
    with Session(engine) as session:
        assert sorted(a.user or "-" for a in store.list_agents(session)) == ["-", "alice"]
