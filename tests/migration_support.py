"""The schema as the previous release made it, and what the migration tests compare.

    create_frozen_schema(engine)    the tables as release 43d98e3 made them on the engine's
                                    backend (tests/fixtures/sql/schema-43d98e3.<dialect>.sql)
    insert_frozen_rows(engine)      rows in every one of them (rows-43d98e3.json), written
                                    through reflected tables, as that release stored them
    expected_rows()                 those rows as the current models read them (times as
                                    aware datetimes), by table
    add_bulk_rows(engine, n)        n more recordings and audit rows, so an upgrade takes time
    dump_rows(engine)               every row of every table, ordered by id, as reflected
    without_new_empty_tables(after, before)
                                    ``after`` (a dump) without the tables later revisions
                                    added, which must still be empty
    structure(engine)               the schema as SQLAlchemy's inspector sees it: columns,
                                    keys, constraints and indexes with their names (and on
                                    SQLite the CREATE statements, whitespace folded)
    migrations_with(folder, revisions)
                                    a copy of the package's migrations plus test-only
                                    revisions ({file name: source}); pass it as ``location``

Nothing here imports the models to write the old rows: the frozen files stand for databases
in the field, and must keep meaning that when the models move on.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, insert, inspect, select, text, update

from ivr.adapters.sql import schema

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sql"
FROZEN_RELEASE = "43d98e3"
ROWS = json.loads((FIXTURES / f"rows-{FROZEN_RELEASE}.json").read_text(encoding="utf-8"))


def frozen_ddl(dialect: str) -> list[str]:
    """The statements of the frozen DDL file for ``dialect`` (sqlite or postgresql)."""
    source = (FIXTURES / f"schema-{FROZEN_RELEASE}.{dialect}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in source.splitlines() if not line.startswith("--"))
    return [statement.strip() for statement in re.split(r";\s*$", body, flags=re.M)
            if statement.strip()]  # fmt: skip


def create_frozen_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in frozen_ddl(engine.dialect.name):
            conn.exec_driver_sql(statement)


def _is_time(column: str) -> bool:
    return column == "at" or column.endswith("_at")


def _instant(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _stored(engine: Engine, column: str, value: Any) -> Any:
    """A value as 43d98e3 wrote it: times in UTC (SQLite keeps no offset)."""
    if not _is_time(column) or value is None:
        return value
    moment = _instant(value).astimezone(UTC)
    return moment.replace(tzinfo=None) if engine.dialect.name == "sqlite" else moment


def _reflected(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


def insert_frozen_rows(engine: Engine) -> None:
    tables = _reflected(engine).tables
    with engine.begin() as conn:
        for name, rows in ROWS["tables"].items():
            conn.execute(
                insert(tables[name]),
                [{k: _stored(engine, k, v) for k, v in row.items()} for row in rows],
            )
        for patch in ROWS["then"]:
            table = tables[patch["table"]]
            conn.execute(update(table).where(table.c.id == patch["id"]).values(**patch["set"]))


def expected_rows() -> dict[str, list[dict[str, Any]]]:
    """The frozen rows after the patches, times as aware datetimes."""
    rows = {name: [dict(row) for row in found] for name, found in ROWS["tables"].items()}
    for patch in ROWS["then"]:
        row = next(r for r in rows[patch["table"]] if r["id"] == patch["id"])
        row.update(patch["set"])
    return {
        name: [{k: _instant(v) if _is_time(k) else v for k, v in row.items()} for row in found]
        for name, found in rows.items()
    }


def add_bulk_rows(engine: Engine, n: int, first_id: int = 1000) -> None:
    tables = _reflected(engine).tables
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    recordings = []
    audit = []
    for i in range(first_id, first_id + n):
        at = t0 + timedelta(seconds=37 * i, microseconds=i)
        caller = f"139{i:08d}"
        recordings.append({
            "id": i, "linkedid": f"bulk.{i}", "uniqueid": f"bulk.{i}",
            "started_at": _stored(engine, "started_at", at),
            "answered_at": _stored(engine, "answered_at", at + timedelta(seconds=3)),
            "ended_at": None, "did": "95158", "caller": caller, "caller_reversed": caller[::-1],
            "account": None, "category": "repair", "desk": "repair", "queue": "repair",
            "agent": f"agent-{i % 40:02d}", "emergency": i % 7 == 0, "wait_s": i % 90 / 4,
            "duration_s": float(i % 600), "file_name": f"2026/04/01/bulk.{i}.wav",
            "format": "wav", "size_bytes": 2**31 + i, "sha256": f"{i:064x}", "audio_s": None,
            "status": "ok", "status_detail": None, "voice_message_id": None,
            "transcript_id": None, "catalogued_at": _stored(engine, "catalogued_at", at),
            "deleted_at": None,
        })  # fmt: skip
        audit.append({
            "id": i, "at": _stored(engine, "at", at), "user_id": 1, "actor": "admin1",
            "action": "recording.replay", "target": f"recording:{i}", "ip": "10.0.0.7",
        })  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(tables["recordings"]), recordings)
        conn.execute(insert(tables["audit_log"]), audit)


def dump_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but alembic_version, ordered by id, as reflected."""
    metadata = _reflected(engine)
    found: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for name, table in sorted(metadata.tables.items()):
            if name == schema.VERSION_TABLE:
                continue
            found[name] = [
                dict(row._mapping) for row in conn.execute(select(table).order_by(table.c.id))
            ]
    return found


# Columns later revisions added to the frozen release's tables whose old rows take a server
# default other than null or false: (table, column) -> that value.
ADDED_DEFAULTS: dict[tuple[str, str], Any] = {("recordings", "direction"): "inbound"}  # 0011


def without_new_empty_tables(
    after: dict[str, list[dict[str, Any]]], before: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """``after`` without the tables that later revisions added, which must be empty, and
    without the columns they added to the old tables, which must hold nothing (null, or a
    false server default) in the old rows, or the server default of :data:`ADDED_DEFAULTS`."""
    added = {name: rows for name, rows in after.items() if name not in before}
    assert all(rows == [] for rows in added.values()), added
    kept: dict[str, list[dict[str, Any]]] = {}
    for name, rows in after.items():
        if name not in before:
            continue
        old_columns = set(before[name][0]) if before[name] else set()
        trimmed = []
        for row in rows:
            new = {k: v for k, v in row.items() if k not in old_columns}
            assert all(
                v in (None, False) or ADDED_DEFAULTS.get((name, k)) == v for k, v in new.items()
            ), (name, new)
            trimmed.append({k: v for k, v in row.items() if k in old_columns})
        kept[name] = trimmed
    return kept


def sqlite_ddl(sql: str) -> tuple[str, tuple[str, ...]]:
    """A CREATE statement from sqlite_master, as what it defines: its head (the name
    unquoted) and its column and constraint clauses in any order. SQLite's ALTER TABLE ADD
    COLUMN appends a column after the constraints, and a table it renames gets its name
    quoted: the same table either way.

    >>> sqlite_ddl('CREATE TABLE "t" (a INT, PRIMARY KEY (a), b INT DEFAULT (0))')
    ('CREATE TABLE t', ('PRIMARY KEY (a)', 'a INT', 'b INT DEFAULT (0)'))
    """
    flat = " ".join(sql.split())
    head, paren, body = flat.partition("(")
    if not paren:
        return flat, ()
    body = body.rstrip()
    body = body[:-1] if body.endswith(")") else body
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            clauses.append(body[start:i].strip())
            start = i + 1
    clauses.append(body[start:].strip())
    return head.replace('"', "").strip(), tuple(sorted(clauses))


def structure(engine: Engine) -> dict[str, Any]:
    """Tables (but alembic_version), as the inspector sees them, with every name."""
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in sorted(inspector.get_table_names()):
            if table == schema.VERSION_TABLE:
                continue
            found[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": sorted(
                    [
                        (
                            f["name"],
                            tuple(f["constrained_columns"]),
                            f["referred_table"],
                            tuple(f["referred_columns"]),
                            tuple(sorted(f["options"].items())),
                        )
                        for f in inspector.get_foreign_keys(table)
                    ],
                    key=repr,  # named and unnamed keys in one table: None beside a name
                ),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table)
                ),
                "checks": sorted(
                    (c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)
                ),
            }
        if conn.dialect.name == "sqlite":
            found["_sqlite_master"] = {
                name: sqlite_ddl(sql)
                for name, sql in conn.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master"
                        " WHERE sql IS NOT NULL AND name != :version"
                    ),
                    {"version": schema.VERSION_TABLE},
                )
            }
    return found


def migrations_with(folder: Path, revisions: dict[str, str]) -> Path:
    target = folder / "migrations"
    shutil.copytree(schema.MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in revisions.items():
        (target / "versions" / name).write_text(source, encoding="utf-8")
    return target


def migrations_until(folder: Path, revision: str) -> Path:
    """A copy of the migrations that ends at ``revision`` (the later ones left out): a
    database made with it is at an earlier release's schema, to upgrade from with data in it."""
    target = migrations_with(folder, {})
    for path in (target / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"):
        if path.name[:4] > revision:
            path.unlink()
    return target


def revision_source(revision: str, down: str, body: str, imports: str = "") -> str:
    """A test-only revision file: ``body`` is the inside of ``upgrade()``, indented 4."""
    return (
        f'"""Test-only revision {revision}."""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"{imports}\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\n\n"
        "def downgrade() -> None:\n    raise NotImplementedError\n"
    )
