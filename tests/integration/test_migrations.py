"""Schema migrations as real processes, on SQLite and on the private PostgreSQL server:
``ivr db upgrade`` SIGKILLed at several moments on a database of the previous release full of
rows, a revision that rewrites every row killed half-way, and every role that opens the
SQL store refusing to start on a database that is not at head.

The rest (states, adoption, drift, a failing revision, concurrent upgraders, the CLI) is in
tests/unit/test_schema.py.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema
from ivr.adapters.sql.schema import SchemaState
from ivr.devstack.ports import free_port
from tests.migration_support import (
    add_bulk_rows,
    create_frozen_schema,
    dump_rows,
    insert_frozen_rows,
    migrations_with,
    revision_source,
    without_new_empty_tables,
)
from tests.pg_support import PostgresServer, on_sql_backends

pytestmark = pytest.mark.integration

#: What `ivr db upgrade` runs, in a child process, with a migrations folder of the test's.
UPGRADE_CHILD = (
    "import sys; from pathlib import Path; from ivr.adapters.sql import db, schema; "
    "schema.upgrade(db.create_db_engine(sys.argv[1]), Path(sys.argv[2]))"
)
#: A revision that rewrites every recording (SQLite: the whole table rebuilt) and every audit
#: row, after touching the file HOTLINE_TEST_MIGRATING names, so the test knows it began.
HEAD = schema.head()
NEXT = f"{int(HEAD) + 1:04d}"  # the test's revision comes after the package's head
REWRITE = revision_source(
    NEXT,
    HEAD,
    "    Path(os.environ['HOTLINE_TEST_MIGRATING']).touch()\n"
    "    sqlite = op.get_bind().dialect.name == 'sqlite'\n"
    "    with op.batch_alter_table('recordings', recreate='always' if sqlite else 'auto') as b:\n"
    "        b.add_column(sa.Column('checked', sa.Boolean(), nullable=False,\n"
    "                               server_default=sa.false()))\n"
    "    op.execute('UPDATE recordings SET checked = (id % 2 = 0)')\n"
    "    op.execute(\"UPDATE audit_log SET target = target || '#checked'\")",
    imports="import os\nfrom pathlib import Path\n",
)


class Copies:
    """Copies of one prepared database, one per attempt, on either backend."""

    def __init__(self, backend: str, tmp_path: Path, postgres: PostgresServer | None) -> None:
        self.backend, self.tmp_path, self.postgres = backend, tmp_path, postgres
        self.made: list[str] = []
        if postgres is None:
            self.template = f"sqlite:///{tmp_path / 'template.db'}"
        else:
            self._template_name = postgres.create_database()
            self.made.append(self._template_name)
            self.template = postgres.url(self._template_name)

    def copy(self) -> str:
        if self.postgres is None:
            target = self.tmp_path / f"copy{len(self.made)}.db"
            shutil.copy(self.tmp_path / "template.db", target)
            self.made.append(str(target))
            return f"sqlite:///{target}"
        name = self.postgres.copy_database(self._template_name)
        self.made.append(name)
        return self.postgres.url(name)

    def drop(self) -> None:
        if self.postgres is not None:
            for name in self.made:
                self.postgres.drop_database(name)


@pytest.fixture
def copies(sql_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Copies]:
    postgres = request.getfixturevalue("postgres") if sql_backend == "postgresql" else None
    made = Copies(sql_backend, tmp_path, postgres)
    try:
        yield made
    finally:
        made.drop()


def prepared(url: str, prepare: Callable[[Engine], None]) -> None:
    engine = sql.create_db_engine(url)
    try:
        prepare(engine)
    finally:
        engine.dispose()  # a PostgreSQL template must have no connection left


def inspect_db(url: str, location: Path = schema.MIGRATIONS) -> tuple[SchemaState, dict]:
    engine = sql.create_db_engine(url)
    try:
        return schema.current(engine, location).state, dump_rows(engine)
    finally:
        engine.dispose()


def cli_env(url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return keep | {
        "IVR_DATABASE__URL": url,
        "IVR_RUN_DIR": str(tmp_path / "run"),
        "IVR_ENV_FILE": str(tmp_path / "no.env"),
        "IVR_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",  # nobody there
    }


# --- SIGKILL ---------------------------------------------------------------------------------
@on_sql_backends
def test_given_43d98e3_rows_when_ivr_db_upgrade_is_sigkilled_then_run_again_it_completes(
    copies, tmp_path
):
    """`ivr db upgrade` killed from its start to the end of its work (at fractions of what a
    whole run takes on this machine, measured on another copy): each time the database is
    still the previous release's, or already at head, never in between; every row stays;
    run again, it completes."""

    def previous_release_with_rows(engine: Engine) -> None:
        create_frozen_schema(engine)
        insert_frozen_rows(engine)
        add_bulk_rows(engine, 5000)

    prepared(copies.template, previous_release_with_rows)
    command = [sys.executable, "-m", "ivr", "db", "upgrade"]
    began = time.monotonic()
    subprocess.run(command, env=cli_env(copies.copy(), tmp_path), check=True, capture_output=True)
    whole_run_s = time.monotonic() - began
    url = copies.copy()
    state, before = inspect_db(url)
    assert state is SchemaState.unversioned and len(before["recordings"]) == 5002
    env = cli_env(url, tmp_path)
    killed_running = 0
    for fraction in (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9):
        delay = whole_run_s * fraction
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        state, rows = inspect_db(url)
        assert state in (SchemaState.unversioned, SchemaState.current), (delay, state)
        assert without_new_empty_tables(rows, before) == before, delay
        if not running:
            assert state is SchemaState.current  # it had finished: nothing left to kill
            break
        killed_running += 1
    assert killed_running >= 3, whole_run_s  # runs vary: the later kills may come too late

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    assert f"is at revision {HEAD} (head)" in finished.stdout
    state, rows = inspect_db(url)
    assert state is SchemaState.current
    assert without_new_empty_tables(rows, before) == before


@on_sql_backends
def test_given_a_revision_rewriting_every_row_when_sigkilled_then_rolled_back_and_rerun_completes(
    copies, tmp_path
):
    def at_head_with_rows(engine: Engine) -> None:
        create_frozen_schema(engine)
        insert_frozen_rows(engine)
        add_bulk_rows(engine, 20000)
        schema.upgrade(engine)

    location = migrations_with(tmp_path, {f"{NEXT}_rewrite.py": REWRITE})
    prepared(copies.template, at_head_with_rows)
    state, before = inspect_db(copies.template, location)
    assert state is SchemaState.behind
    rewritten = copy.deepcopy(before)  # what the revision makes of the rows, nothing else
    for row in rewritten["recordings"]:
        row["checked"] = row["id"] % 2 == 0
    for row in rewritten["audit_log"]:
        row["target"] += "#checked"
    killed_half_way = 0
    for delay in (0.0, 0.03, 0.1):
        url = copies.copy()
        marker = tmp_path / f"migrating-{delay}"
        env = os.environ | {"HOTLINE_TEST_MIGRATING": str(marker)}
        child = subprocess.Popen(
            [sys.executable, "-c", UPGRADE_CHILD, url, str(location)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert marker.exists(), child.communicate()[1]
        time.sleep(delay)
        running = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)

        state, rows = inspect_db(url, location)
        if running:
            killed_half_way += 1
            assert state is SchemaState.behind, delay  # still at HEAD: rolled back
            assert rows == before, delay  # no column, no rewritten value, no row lost
        finished = subprocess.run(
            [sys.executable, "-c", UPGRADE_CHILD, url, str(location)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr

        assert inspect_db(url, location) == (SchemaState.current, rewritten)
    assert killed_half_way >= 2


# --- the roles -------------------------------------------------------------------------------
ROLES_WITH_SQL = ("agi", "recorder", "stt-worker", "web")  # ami keeps to AMI and Redis


def _empty(engine: Engine) -> None:
    pass


def _from_before_migrations(engine: Engine) -> None:
    create_frozen_schema(engine)
    insert_frozen_rows(engine)


def _newer(engine: Engine) -> None:
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))


@pytest.mark.parametrize(
    ("prepare", "said"),
    [
        (_empty, "has no tables yet: run `ivr db upgrade`"),
        (_from_before_migrations, "made before schema migrations existed"),
        (_newer, "a newer version of hotline upgraded it"),
    ],
    ids=["empty", "from-before-migrations", "newer"],
)
def test_given_database_not_at_head_then_every_role_using_sql_refuses_to_start_saying_why(
    prepare, said, tmp_path
):
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    prepared(url, prepare)
    state, before = inspect_db(url)
    env = cli_env(url, tmp_path)
    roles = {
        role: subprocess.Popen(
            [sys.executable, "-m", "ivr", role],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for role in ROLES_WITH_SQL
    }
    try:
        outcome = {role: (child.wait(60), child.communicate()[1]) for role, child in roles.items()}
    finally:
        for child in roles.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    for role, (code, err) in outcome.items():
        assert code == 1, (role, err)
        assert f"ivr {role}: database {url}" in err, (role, err)
        assert said in err, (role, err)
    assert inspect_db(url) == (state, before)  # and nothing was changed
