"""Schema migrations (``ivr.adapters.sql.schema``, ``ivr db``) on SQLite and on the private
PostgreSQL server: an empty database, one from the previous release (the frozen 43d98e3 DDL
and rows), one at an older revision, one newer than the code, a revision that fails half-way,
upgraders starting together, and the check that the models and the migrations agree.

Killing ``ivr db upgrade`` with SIGKILL, and the roles refusing to start, run as real
processes in tests/integration/test_migrations.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, DateTime, Engine, Index, MetaData, inspect, text
from sqlalchemy.orm import Session

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.schema import SchemaState
from ivr.cli import main
from ivr.web.app import create_app
from tests.migration_support import (
    create_frozen_schema,
    dump_rows,
    expected_rows,
    insert_frozen_rows,
    migrations_until,
    migrations_with,
    revision_source,
    structure,
    without_new_empty_tables,
)
from tests.pg_support import PostgresServer, on_sql_backends
from tests.web_support import loopback_settings

# The package's revisions; the test-only ones below come after its head.
REVISIONS = tuple(r.revision for r in schema.history())
HEAD = schema.head()
NEXT = f"{int(HEAD) + 1:04d}"

ADD_CALLBACK = revision_source(
    NEXT,
    HEAD,
    "    with op.batch_alter_table('tickets') as batch:\n"
    "        batch.add_column(sa.Column('callback_at', sa.DateTime(timezone=True)))",
)


@pytest.fixture
def blank_url(sql_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all, on ``sql_backend``."""
    if sql_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def blank(blank_url: str) -> Iterator[Engine]:
    engine = sql.create_db_engine(blank_url)
    yield engine
    engine.dispose()


@pytest.fixture
def reference(database_url: str) -> Iterator[Engine]:
    """Another database, brought to head by the migrations: what the others must equal."""
    engine = sql.create_db_engine(database_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def frozen(blank: Engine) -> Engine:
    """A database exactly as release 43d98e3 left it: its tables and rows in every one."""
    create_frozen_schema(blank)
    insert_frozen_rows(blank)
    return blank


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def version(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT version_num FROM alembic_version")))


# --- an empty database ---------------------------------------------------------------------------
@on_sql_backends
def test_given_empty_database_when_upgraded_then_every_table_at_head_and_again_nothing(blank):
    assert schema.current(blank).state is SchemaState.empty
    with pytest.raises(schema.SchemaOutdated, match="no tables yet: run `ivr db upgrade`"):
        schema.require_head(blank)

    done = schema.upgrade(blank)

    assert (done.before.state, done.applied, done.adopted) == (SchemaState.empty, REVISIONS, False)
    assert tables(blank) == set(sql.Base.metadata.tables) | {"alembic_version"}
    assert version(blank) == [schema.head()]
    assert schema.require_head(blank).state is SchemaState.current
    again = schema.upgrade(blank)
    assert (again.before.state, again.applied) == (SchemaState.current, ())


# --- the models and the migrations cannot drift --------------------------------------------------
@on_sql_backends
def test_given_migrations_at_head_then_the_schema_is_exactly_the_models(reference, blank):
    """Every table, column, type, key, constraint and index, with their names, as the models'
    create_all makes them (on SQLite even the CREATE statements); and Alembic's comparison
    finds nothing. This is the drift check: a model changed without a revision fails it."""
    sql.Base.metadata.create_all(blank)

    assert structure(reference) == structure(blank)
    with reference.connect() as conn:
        assert schema.drift(conn) == []


@on_sql_backends
def test_given_a_model_changed_without_a_revision_then_the_drift_check_names_it(reference):
    changed = MetaData()
    for table in sql.Base.metadata.sorted_tables:
        table.to_metadata(changed)
    tickets = changed.tables["tickets"]
    tickets.append_column(Column("callback_at", DateTime(timezone=True)))
    Index("ix_tickets_callback_at", tickets.c.callback_at)
    changed.remove(changed.tables["ticket_notes"])

    with reference.connect() as conn:
        found = schema.drift(conn, changed)

    kinds = sorted((diff[0], diff[-1].name) for diff in found if isinstance(diff, tuple))
    assert kinds == [
        ("add_column", "callback_at"),
        ("add_index", "ix_tickets_callback_at"),
        ("remove_index", "ix_ticket_notes_ticket_id"),
        ("remove_table", "ticket_notes"),
    ], found


def test_given_the_package_then_ivr_db_check_agrees_and_a_revision_the_models_lack_fails_it(
    tmp_path, capsys
):
    assert schema.check() == []
    assert main(["db", "check"]) == 0
    assert "agree" in capsys.readouterr().out

    location = migrations_with(tmp_path, {f"{NEXT}_callback.py": ADD_CALLBACK})
    found = schema.check(location)
    assert [(diff[0], diff[3].name) for diff in found] == [("remove_column", "callback_at")]


# --- a database from the previous release --------------------------------------------------------
@on_sql_backends
def test_given_database_of_43d98e3_when_upgraded_then_adopted_and_no_row_or_value_lost(
    frozen, reference
):
    before = dump_rows(frozen)
    assert {name for name, rows in before.items() if not rows} == set()  # rows in every table
    assert schema.current(frozen).state is SchemaState.unversioned
    with pytest.raises(schema.SchemaOutdated) as refused:
        schema.require_head(frozen)
    assert "before schema migrations" in refused.value.message
    assert "run `ivr db upgrade`" in refused.value.message

    done = schema.upgrade(frozen)

    assert (done.before.state, done.adopted, done.indexes_created) == (
        SchemaState.unversioned, True, ()
    )  # fmt: skip
    assert version(frozen) == [schema.head()]
    after = dump_rows(frozen)
    assert without_new_empty_tables(after, before) == before
    assert structure(frozen) == structure(reference)
    with frozen.connect() as conn:
        assert schema.drift(conn) == []
    # and the current models read every value back as it was written
    models = {m.local_table.name: m.class_ for m in sql.Base.registry.mappers}
    with Session(frozen) as db:
        for name, rows in expected_rows().items():
            for row in rows:
                stored = db.get(models[name], row["id"])
                assert stored is not None, (name, row["id"])
                assert {k: getattr(stored, k) for k in row} == row, name


@on_sql_backends
def test_given_database_made_before_the_qa_indexes_when_upgraded_then_they_are_created(
    frozen, reference
):
    """create_all never added an index to an existing table (14c25c5 added these)."""
    old = ["ix_recordings_agent_started", "ix_recordings_desk_started", "ix_recordings_status"]
    with frozen.begin() as conn:
        for name in old:
            conn.execute(text(f"DROP INDEX {name}"))

    done = schema.upgrade(frozen)

    assert sorted(done.indexes_created) == old
    assert structure(frozen) == structure(reference)


@on_sql_backends
def test_given_tables_from_before_migrations_not_of_0001_then_upgrade_refuses_naming_them(frozen):
    with frozen.begin() as conn:  # as a version older than 43d98e3 may have left them
        conn.execute(text("DROP TABLE ticket_notes"))
        conn.execute(text("DROP INDEX ix_recordings_caller_reversed"))
        conn.execute(text("ALTER TABLE tickets DROP COLUMN closed_at"))
        conn.execute(text("ALTER TABLE recordings DROP COLUMN caller_reversed"))
    before, names = dump_rows(frozen), tables(frozen)

    with pytest.raises(schema.SchemaUnrecognised) as refused:
        schema.upgrade(frozen)

    message = refused.value.message
    assert "lacks the tables ticket_notes" in message
    assert "recordings.caller_reversed VARCHAR(32)" in message and "tickets.closed_at" in message
    assert "Nothing was changed" in message and "ivr db upgrade" in message
    assert refused.value.details["missing_columns"] == {
        "recordings": {"caller_reversed": "VARCHAR(32)"},
        "tickets": {"closed_at": "DATETIME"},
    }
    assert tables(frozen) == names  # no alembic_version, no table made
    assert dump_rows(frozen) == before  # and its rows are all there


# --- newer and older revisions -------------------------------------------------------------------
@on_sql_backends
def test_given_database_newer_than_the_code_then_refused_by_roles_and_upgrade_and_kept(
    frozen, tmp_path
):
    schema.upgrade(frozen)
    with frozen.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    before = dump_rows(frozen)

    with pytest.raises(schema.SchemaNewer) as by_role:
        schema.require_head(frozen)
    with pytest.raises(schema.SchemaNewer) as by_upgrade:
        schema.upgrade(frozen)

    for refused in (by_role.value, by_upgrade.value):
        assert "at revision 0999, which this hotline does not know" in refused.message
        assert "a newer version of hotline upgraded it" in refused.message
        assert refused.status == 503 and refused.slug == "database-schema-newer"
    assert version(frozen) == ["0999"]
    assert dump_rows(frozen) == before
    url = frozen.url.render_as_string(hide_password=False)
    settings = loopback_settings(tmp_path / "run", database={"url": url})
    with pytest.raises(schema.SchemaNewer), TestClient(create_app(settings)):
        pass  # the web role does not start


@on_sql_backends
def test_given_database_at_an_older_revision_then_refused_until_upgraded_and_rows_kept(
    frozen, tmp_path
):
    schema.upgrade(frozen)  # at the package's head; this code's head (below) is NEXT
    location = migrations_with(tmp_path, {f"{NEXT}_callback.py": ADD_CALLBACK})
    before = dump_rows(frozen)

    with pytest.raises(schema.SchemaOutdated) as refused:
        schema.require_head(frozen, location)
    assert f"is at revision {HEAD}, this hotline needs {NEXT}: run `ivr db upgrade`" in (
        refused.value.message
    )

    done = schema.upgrade(frozen, location)

    assert (done.before.revisions, done.applied) == ((HEAD,), (NEXT,))
    assert schema.require_head(frozen, location).state is SchemaState.current
    after = dump_rows(frozen)
    assert [row.pop("callback_at") for row in after["tickets"]] == [None]
    assert after == before
    with pytest.raises(schema.SchemaNewer):  # and to the package's code, it is newer
        schema.require_head(frozen)


# --- one transaction -----------------------------------------------------------------------------
FAILING = revision_source(
    NEXT,
    HEAD,
    "    op.create_table('callbacks', sa.Column('id', sa.Integer, primary_key=True))\n"
    '    op.execute("INSERT INTO callbacks (id) VALUES (1)")\n'
    "    with op.batch_alter_table('tickets') as batch:\n"
    "        batch.add_column(sa.Column('callback_at', sa.DateTime(timezone=True)))\n"
    '    op.execute("UPDATE tickets SET priority = priority + 1")\n'
    '    op.execute("DELETE FROM audit_log")\n'
    '    op.execute("SELECT no_such_column FROM tickets")  # fails here, half-way',
)


@on_sql_backends
def test_given_a_revision_that_fails_half_way_then_nothing_of_the_upgrade_stays(frozen, tmp_path):
    """DDL and data of the failed run roll back on both backends (SQLite included: the
    upgrade emits BEGIN itself), even the adoption's stamp; fixed, it completes."""
    location = migrations_with(tmp_path, {f"{NEXT}_callbacks.py": FAILING})
    before, names = dump_rows(frozen), tables(frozen)

    with pytest.raises(schema.MigrationFailed) as failed:
        schema.upgrade(frozen, location)

    assert "nothing was changed: fix the cause and run `ivr db upgrade` again" in (
        failed.value.message
    )
    assert "no_such_column" in failed.value.message
    assert tables(frozen) == names  # no callbacks table, no alembic_version
    assert dump_rows(frozen) == before  # no new column, priorities and audit rows as they were
    assert schema.current(frozen, location).state is SchemaState.unversioned

    (location / "versions" / f"{NEXT}_callbacks.py").write_text(
        FAILING.replace('    op.execute("SELECT no_such_column FROM tickets")', "    pass")
    )
    done = schema.upgrade(frozen, location)
    assert (done.adopted, done.applied) == (True, (*REVISIONS[1:], NEXT))
    assert dump_rows(frozen)["audit_log"] == []


REBUILD = revision_source(
    NEXT,
    HEAD,
    "    recreate = 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'\n"
    "    with op.batch_alter_table('recordings', recreate=recreate) as batch:\n"
    "        batch.add_column(sa.Column('checked', sa.Boolean(), nullable=False,\n"
    "                                   server_default=sa.false()))",
)


@on_sql_backends
def test_given_a_revision_that_rebuilds_a_parent_table_then_its_children_keep_their_rows(
    frozen, reference, tmp_path
):
    """SQLite rebuilds the table (copy, DROP, rename): with foreign keys on, the DROP would
    delete the reviews (ON DELETE CASCADE) and unlink tickets and transcripts (SET NULL)."""
    location = migrations_with(tmp_path, {f"{NEXT}_rebuild.py": REBUILD})
    before = dump_rows(frozen)

    schema.upgrade(frozen, location)
    schema.upgrade(reference, location)

    after = dump_rows(frozen)
    assert [row.pop("checked") for row in after["recordings"]] == [False, False]
    assert without_new_empty_tables(after, before) == before
    rebuilt, fresh = structure(frozen), structure(reference)  # keys, indexes: all still there
    rebuilt.pop("_sqlite_master", None), fresh.pop("_sqlite_master", None)
    assert rebuilt == fresh


@on_sql_backends
def test_given_upgraders_starting_together_on_an_empty_database_then_they_take_turns(
    blank_url,
):
    """Roles and compose's one-shot upgrading at once: one creates the tables, the others
    wait for it (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE) and find nothing to do."""
    engines = [sql.create_db_engine(blank_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    done: list[schema.Upgrade] = []
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            done.append(schema.upgrade(engine))
        except BaseException as exc:  # collected: the assertion names them
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(d.applied for d in done) == [(), (), (), REVISIONS]
        assert tables(engines[0]) == set(sql.Base.metadata.tables) | {"alembic_version"}
    finally:
        for engine in engines:
            engine.dispose()


# --- ivr db --------------------------------------------------------------------------------------
@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IVR_DATABASE__URL", url)
    monkeypatch.setenv("IVR_ENV_FILE", str(tmp_path / "no.env"))
    return url


def test_given_empty_database_when_ivr_db_commands_then_upgrade_creates_and_current_says_head(
    cli_database, capsys
):
    assert main(["db", "current"]) == 1
    assert "no tables yet: run `ivr db upgrade`" in capsys.readouterr().out

    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert "was empty: tables created" in out and f"at revision {HEAD} (head)" in out

    assert main(["db", "current", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "database": cli_database, "state": "current", "revision": HEAD, "head": HEAD
    }  # fmt: skip
    assert main(["db", "upgrade"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["db", "history"]) == 0
    assert capsys.readouterr().out.startswith("0001          The schema of the last release")
    assert main(["db", "history", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0] | {"message": ""} == {
        "revision": "0001", "down_revision": None, "message": "", "head": False
    }  # fmt: skip
    assert [(r["revision"], r["head"]) for r in listed][-1] == (HEAD, True)


def test_given_database_of_43d98e3_when_ivr_db_upgrade_then_adopted_and_commands_work_again(
    cli_database, capsys
):
    engine = sql.create_db_engine(cli_database)
    try:
        create_frozen_schema(engine)
        insert_frozen_rows(engine)
    finally:
        engine.dispose()
    assert main(["users", "list", "--json"]) == 1
    assert "before schema migrations" in capsys.readouterr().err

    assert main(["db", "upgrade"]) == 0
    assert "its tables from before migrations are those of revision 0001" in (
        capsys.readouterr().out
    )
    assert main(["users", "list", "--json"]) == 0
    assert [u["username"] for u in json.loads(capsys.readouterr().out)] == ["admin1", "qa.li"]


def test_given_database_newer_than_the_code_when_ivr_db_then_exit_1_saying_so(cli_database, capsys):
    assert main(["db", "upgrade"]) == 0
    engine = sql.create_db_engine(cli_database)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'abc123'"))
    finally:
        engine.dispose()
    capsys.readouterr()

    assert main(["db", "upgrade"]) == 1
    assert "revision abc123, which this hotline does not know" in capsys.readouterr().err
    assert main(["db", "current", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["state"] == "newer"
    assert main(["tickets", "list"]) == 1
    assert "newer version of hotline" in capsys.readouterr().err


def test_given_a_database_that_cannot_be_opened_when_ivr_db_then_database_unavailable(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("IVR_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("IVR_DATABASE__URL", f"sqlite:///{tmp_path}")  # a folder, no file
    for command in ("upgrade", "current"):
        assert main(["db", command]) == 1
        assert "OperationalError" in capsys.readouterr().err


def test_given_the_installed_package_then_the_alembic_environment_ships_with_it():
    """setuptools' package-data names every file of the migrations folder, a data folder
    (pyproject.toml; a wheel built from it was checked to hold them)."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ivr"]
    package = schema.MIGRATIONS.parents[2]  # ivr/
    needed = [
        path.relative_to(package)
        for path in schema.MIGRATIONS.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert {p.name for p in needed} >= {"env.py", "script.py.mako", "0001_schema_of_43d98e3.py"}
    assert [str(p) for p in needed if not any(p.match(glob) for glob in patterns)] == []
    # a data folder: no package, so nothing imports env.py (which runs Alembic) by walking ivr
    assert not list(schema.MIGRATIONS.rglob("__init__.py"))


def test_given_history_then_revisions_are_numbered_in_order_from_0001():
    revisions = schema.history()
    assert [r.revision for r in revisions] == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    assert [r.down_revision for r in revisions] == [None, *(r.revision for r in revisions[:-1])]
    assert revisions[-1].is_head and revisions[-1].revision == schema.head()


@on_sql_backends
def test_given_agents_at_0003_when_upgraded_then_they_keep_their_rows_and_ring_on_the_desk_phone(
    blank, tmp_path
):
    at_0003 = migrations_until(tmp_path, "0003")
    schema.upgrade(blank, at_0003)
    with blank.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agents (id, work_number, name, active, sip_ha1, sip_realm, "
                "password_set_at, created_at, updated_at, logged_in, paused, pause_reason) "
                "VALUES (1, '1001', '张三', :yes, :ha1, 'hotline', :at, :at, :at, :yes, :yes, "
                "'小休')"
            ),
            {"yes": True, "ha1": "0" * 32, "at": "2026-12-01 08:00:00"},
        )
    before = dump_rows(blank)

    schema.upgrade(blank)

    after = dump_rows(blank)
    assert [row.pop("device") for row in after["agents"]] == ["desk"]
    assert {name: after[name] for name in before} == before  # later revisions add tables


@on_sql_backends
def test_given_recordings_and_outbound_calls_at_0010_when_upgraded_then_inbound_and_unrecorded(
    blank, tmp_path
):
    schema.upgrade(blank, migrations_until(tmp_path, "0010"))
    at = "2026-12-01 08:00:00"
    with blank.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO recordings (id, linkedid, uniqueid, started_at, did, caller, "
                "caller_reversed, emergency, format, status, catalogued_at) VALUES (1, 'L1', "
                "'L1', :at, '95158', '13800138000', '00083100831', :no, 'wav', 'ok', :at)"
            ),
            {"at": at, "no": False},
        )
        conn.execute(
            text(
                "INSERT INTO outbound_calls (id, channel_id, purpose, number, started_by, "
                "started_at, device) VALUES (1, 'agentcall-1', 'callback', '13800138000', "
                "'agent1001', :at, 'PJSIP/1001')"
            ),
            {"at": at},
        )
    before = dump_rows(blank)

    schema.upgrade(blank)

    after = dump_rows(blank)
    assert [row.pop("direction") for row in after["recordings"]] == ["inbound"]
    assert [row.pop("recording_id") for row in after["outbound_calls"]] == [None]
    assert {name: after[name] for name in before} == before
