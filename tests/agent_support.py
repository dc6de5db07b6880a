"""A test database at head with one agent in it: 1001 张三 on the repair desk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.core.agents import DeskAssignment
from ivr.settings import Settings


@contextmanager
def engine_with_agent_1001(run_dir: Path, *, logged_in: bool) -> Iterator[Engine]:
    """SQLite in ``run_dir`` at head, agent 1001 张三 (repair) added, logged in or not."""
    engine = sql.settings_engine(Settings(run_dir=run_dir))
    schema.upgrade(engine)
    with Session(engine) as db:
        agent_store.add(
            db, "1001", "张三", [DeskAssignment("repair")], frozenset({"repair"}), "hotline",
            agent_store.Actor("cli:test"),
        )  # fmt: skip
        if logged_in:
            agent_store.change_presence(db, "1001", "login", "", agent_store.Actor("zhangsan"))
        db.commit()
    try:
        yield engine
    finally:
        engine.dispose()
