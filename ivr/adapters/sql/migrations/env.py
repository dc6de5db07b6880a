"""Alembic's env.py: run the migrations on the connection :mod:`ivr.adapters.sql.schema` gives.

This folder is Alembic's environment for the SQL store, shipped with the package as data
(package-data, no ``__init__.py``: nothing imports it, Alembic runs it): this file, run for
every command; ``script.py.mako``, the template of a new revision; ``versions/NNNN_<slug>.py``,
one file per schema change, in order. There is no ``alembic.ini``: ivr.adapters.sql.schema
configures Alembic in code (``ivr db upgrade``, ``ivr db revision``).

That connection is already inside the one transaction of the whole upgrade (and on
PostgreSQL holds the schema lock), so nothing here begins or commits anything: a revision
that fails, or a process killed half-way, leaves the database as it was. Offline (``--sql``)
mode is not supported.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from ivr.adapters.sql.db import Base, UtcDateTime


def _render_item(kind: str, obj: Any, _autogen: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the models' UTC datetime as the plain type it is in the DDL, so a
    revision never imports the models (it must keep meaning what it meant when written)."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported: use `ivr db upgrade`")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "migrations run through `ivr db upgrade` (ivr.adapters.sql.schema), not `alembic`"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        transactional_ddl=True,  # SQLite too: the caller's transaction covers every statement
        render_as_batch=True,  # ALTERs that SQLite lacks become batch (copy-and-move) ops
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():  # the caller's transaction: Alembic opens none of its own
        context.run_migrations()


run()
