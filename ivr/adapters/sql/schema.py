"""Schema migrations of the SQL store (Alembic): the revision a database is at, bringing it to
head, and the check every role makes before it uses the store.

The Alembic environment ships inside the package (``ivr/adapters/sql/migrations/``: ``env.py``,
``script.py.mako``, ``versions/NNNN_<slug>.py``) and is configured here in code, so an
installed hotline needs no ``alembic.ini``. Revision 0001 is the schema exactly as the last
release before migrations (commit 43d98e3) made it with ``create_all``; every later schema
change is a revision of its own. ``ivr/cli_db.py`` puts this behind ``ivr db``.

States of a database (:class:`SchemaState`)::

    empty        none of hotline's tables and no alembic_version: upgrade creates everything
    unversioned  hotline's tables from before migrations existed, no alembic_version:
                 upgrade adopts them (below); roles refuse them
    behind       at an older revision: upgrade applies the newer ones; roles refuse it
    current      at head: the only state a role starts on
    newer        at a revision this code does not know (a newer hotline upgraded it):
                 refused by the roles and by upgrade alike, nothing is changed

Adopting a database from before migrations: each table revision 0001 creates must be there
with every column 0001 gives it (compared by name); otherwise the missing tables and
columns are named and nothing is changed. Indexes 0001 has and the database lacks are
created (``create_all`` never added an index to an existing table, so a database made
before 14c25c5 lacks the QA page's). It is then stamped 0001 and upgraded like any other.

One transaction per upgrade, on both backends, so a failing revision or a process killed
half-way leaves the database as it was, and ``ivr db upgrade`` run again completes:

- PostgreSQL has transactional DDL. The transaction first takes an advisory lock
  (:data:`ivr.adapters.sql.db.SCHEMA_LOCK`), so upgraders starting at once (compose, several
  machines) take turns; the later ones read the new revision and have nothing left to do.
- SQLite's Python driver commits before DDL and begins transactions only before DML. The
  upgrade therefore runs on an engine of its own where the driver's transaction handling
  is off (``isolation_level = None``) and SQLAlchemy emits ``BEGIN IMMEDIATE`` itself
  (SQLAlchemy's documented recipe for transactional DDL on pysqlite): every statement is
  in the transaction, and the write lock taken at once makes concurrent upgraders wait
  their turn (``busy_timeout``). Foreign keys are off on that engine: a batch migration
  rebuilds a table by copying it and dropping the original, and with foreign keys on,
  ``DROP TABLE`` deletes the rows first and fires ``ON DELETE CASCADE``/``SET NULL`` in the
  tables referring to it. ``PRAGMA foreign_key_check`` runs before the commit instead. A
  new file is put in WAL mode, as the roles' engines do.
"""

from __future__ import annotations

import enum
import logging
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    Index,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ivr.adapters.sql.db import SCHEMA_LOCK, Base, DatabaseUnavailable, database_error
from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

MIGRATIONS: Final = Path(__file__).with_name("migrations")
#: The first revision: the schema of the last release before migrations (43d98e3).
BASELINE: Final = "0001"
VERSION_TABLE: Final = "alembic_version"
UPGRADE_COMMAND: Final = "ivr db upgrade"
SQLITE_BUSY_TIMEOUT_MS: Final = 60_000  # an upgrader waits this long for another one


class SchemaOutdated(DatabaseUnavailable):
    """The database is not at this code's head revision (empty, from before migrations, or
    at an older revision): refused at start, naming the command that brings it to head."""

    slug = "database-schema-outdated"


class SchemaNewer(DatabaseUnavailable):
    """The database is at a revision this code does not know: a newer hotline upgraded it.
    Refused by every role and by ``ivr db upgrade``; nothing is changed."""

    slug = "database-schema-newer"


class SchemaUnrecognised(DatabaseUnavailable):
    """Tables from before migrations that are not revision 0001's (tables or columns
    missing): ``ivr db upgrade`` refuses to adopt them and changes nothing."""

    slug = "database-schema-unrecognised"


class MigrationFailed(DatabaseUnavailable):
    """A revision failed while upgrading; the upgrade's one transaction was rolled back."""

    slug = "database-migration-failed"


class SchemaState(enum.StrEnum):
    empty = "empty"  # no hotline tables, no alembic_version
    unversioned = "unversioned"  # tables from before migrations, no alembic_version
    behind = "behind"  # a known revision older than head
    current = "current"  # at head
    newer = "newer"  # a revision this code does not know


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    state: SchemaState
    revisions: tuple[str, ...]  # what alembic_version holds (empty: nothing)
    head: str  # this code's newest revision
    where: str  # the database URL, without its password

    @property
    def revision(self) -> str | None:
        return ",".join(self.revisions) or None

    def describe(self) -> str:
        """One line for people: where the database is and what to do about it."""
        at = self.revision
        match self.state:
            case SchemaState.current:
                return f"database {self.where} is at revision {at} (head)"
            case SchemaState.empty:
                return (
                    f"database {self.where} has no tables yet: run `{UPGRADE_COMMAND}` to "
                    f"create them (revision {self.head})"
                )
            case SchemaState.unversioned:
                return (
                    f"database {self.where} holds tables made before schema migrations "
                    f"existed (no {VERSION_TABLE} table): run `{UPGRADE_COMMAND}`, which "
                    f"checks them, records them as revision {BASELINE} and upgrades them to "
                    f"{self.head}"
                )
            case SchemaState.behind:
                return (
                    f"database {self.where} is at revision {at}, this hotline needs "
                    f"{self.head}: run `{UPGRADE_COMMAND}`"
                )
            case SchemaState.newer:
                return (
                    f"database {self.where} is at revision {at}, which this hotline does not "
                    f"know (its newest is {self.head}): a newer version of hotline upgraded "
                    "it; run that version, or restore the backup taken before its upgrade "
                    "(nothing was changed)"
                )


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What :func:`upgrade` did."""

    before: SchemaStatus
    head: str
    applied: tuple[str, ...]  # revisions run, oldest first (empty: it was at head)
    adopted: bool = False  # tables from before migrations, stamped BASELINE
    indexes_created: tuple[str, ...] = field(default=())  # while adopting


# --- Alembic's configuration, in code ----------------------------------------------------------
def alembic_config(connection: Connection | None = None, location: Path = MIGRATIONS) -> Config:
    """Alembic's configuration without an ini file; env.py works on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # 0002_add_agents.py
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def scripts(location: Path = MIGRATIONS) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(location=location))


def _chain(directory: ScriptDirectory) -> list[str]:
    """The revisions oldest first; the history is one line (one head), as reviewed."""
    heads = directory.get_heads()
    if len(heads) > 1:
        raise RuntimeError(
            f"the migrations in {directory.dir} have {len(heads)} heads ({', '.join(heads)}): "
            "give the newer revision the other as its down_revision"
        )
    return [script.revision for script in reversed(list(directory.walk_revisions()))]


def head(location: Path = MIGRATIONS) -> str:
    return _chain(scripts(location))[-1]


def history(location: Path = MIGRATIONS) -> list[Revision]:
    """Every revision, oldest first."""
    directory = scripts(location)
    top = _chain(directory)[-1]
    found = []
    for script in reversed(list(directory.walk_revisions())):
        down = script.down_revision
        found.append(
            Revision(
                revision=script.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=(script.doc or "").strip(),
                is_head=script.revision == top,
            )
        )
    return found


# --- where a database is -----------------------------------------------------------------------
def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _unavailable(where: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
    if isinstance(exc, OperationalError):  # DatabaseBusy for a write lock held too long
        found = database_error(exc)
        return type(found)(f"database {where}: {found.message}", **found.details)
    cause = getattr(exc, "orig", None) or exc  # the driver's error, without the SQL
    return DatabaseUnavailable(f"database {where}: {type(cause).__name__}: {cause}")


def _status(connection: Connection, directory: ScriptDirectory, where: str) -> SchemaStatus:
    chain = _chain(directory)
    top = chain[-1]
    inspector = inspect(connection)
    revisions: tuple[str, ...] = ()
    if inspector.has_table(VERSION_TABLE):
        revisions = tuple(
            sorted(connection.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))
        )
    if not revisions:
        ours = set(inspector.get_table_names()) & set(Base.metadata.tables)
        state = SchemaState.unversioned if ours else SchemaState.empty
    elif any(revision not in chain for revision in revisions):
        state = SchemaState.newer
    elif revisions == (top,):
        state = SchemaState.current
    else:
        state = SchemaState.behind
    return SchemaStatus(state, revisions, top, where)


def current(engine: Engine, location: Path = MIGRATIONS) -> SchemaStatus:
    """The database's revision and state (reads only)."""
    where = _where(engine)
    directory = scripts(location)
    try:
        with engine.connect() as connection:
            return _status(connection, directory, where)
    except SQLAlchemyError as exc:
        raise _unavailable(where, exc) from exc


def require_head(engine: Engine, location: Path = MIGRATIONS) -> SchemaStatus:
    """What each role does at start: return if the database is at head, else refuse with
    :class:`SchemaOutdated` (naming ``ivr db upgrade``) or :class:`SchemaNewer`."""
    found = current(engine, location)
    if found.state is SchemaState.current:
        return found
    details: dict[str, Any] = {"state": found.state.value, "revision": found.revision,
                               "head": found.head}  # fmt: skip
    if found.state is SchemaState.newer:
        raise SchemaNewer(found.describe(), **details)
    raise SchemaOutdated(found.describe(), command=UPGRADE_COMMAND, **details)


# --- upgrading ---------------------------------------------------------------------------------
def upgrade(engine: Engine, location: Path = MIGRATIONS) -> Upgrade:
    """Bring the database to head in one transaction (see the module's docstring): create
    an empty one, adopt one from before migrations, apply the revisions a database lacks.
    Refuses a database newer than this code. Running it again at head does nothing."""
    where = _where(engine)
    directory = scripts(location)
    chain = _chain(directory)
    try:
        with _transaction(engine) as connection:
            before = _status(connection, directory, where)
            if before.state is SchemaState.newer:
                raise SchemaNewer(before.describe(), revision=before.revision, head=before.head)
            if before.state is SchemaState.current:
                return Upgrade(before, before.head, ())
            adopted = before.state is SchemaState.unversioned
            created: tuple[str, ...] = ()
            start = 0
            if adopted:
                created = _adopt(connection, location, where)
                start = chain.index(BASELINE) + 1
            elif before.revisions:
                start = chain.index(before.revisions[0]) + 1
            try:
                if adopted:
                    command.stamp(alembic_config(connection, location), BASELINE)
                command.upgrade(alembic_config(connection, location), "head")
                if connection.dialect.name == "sqlite":
                    _foreign_key_check(connection)
            except HotlineError:
                raise
            except Exception as exc:  # a revision's SQL or its Python: all rolled back
                cause = getattr(exc, "orig", None) or exc
                raise MigrationFailed(
                    f"upgrading database {where} from {before.revision or before.state.value} "
                    f"to {before.head} failed: {type(cause).__name__}: {cause}; the upgrade "
                    "runs in one transaction, so nothing was changed: fix the cause and run "
                    f"`{UPGRADE_COMMAND}` again",
                    revision=before.revision,
                    head=before.head,
                ) from exc
            after = _status(connection, directory, where)
            if after.state is not SchemaState.current:  # a revision file out of order
                raise MigrationFailed(f"{after.describe()} after the upgrade; rolled back")
    except HotlineError:
        raise
    except SQLAlchemyError as exc:
        raise _unavailable(where, exc) from exc
    done = Upgrade(before, before.head, tuple(chain[start:]), adopted, created)
    logger.info(
        "database upgraded",
        extra={"database": where, "from": before.revision or before.state.value,
               "to": done.head, "applied": list(done.applied), "adopted": adopted},
    )  # fmt: skip
    return done


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a whole upgrade (see the module's docstring)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            yield connection
        return
    own = create_engine(engine.url, poolclass=NullPool, echo=engine.echo)
    event.listen(own, "connect", _sqlite_for_migrations)
    event.listen(own, "begin", _sqlite_begin)
    try:
        with own.begin() as connection:
            yield connection
    finally:
        own.dispose()


def _sqlite_for_migrations(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver begins nothing: SQLAlchemy does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=OFF")  # checked before the commit instead
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode=WAL")  # as the roles' engines: kept by the file
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now: upgraders take turns


def _foreign_key_check(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        listed = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in broken[:10])
        raise MigrationFailed(
            f"the upgrade would leave {len(broken)} row(s) whose foreign key points nowhere "
            f"({listed}); rolled back, nothing was changed",
            rows=len(broken),
        )


# --- adopting a database from before migrations ------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Baseline:
    columns: dict[str, dict[str, str]]  # table -> column -> type (as SQLite shows it)
    indexes: dict[str, dict[str, tuple[list[str], bool]]]  # table -> name -> (columns, unique)


def _baseline(location: Path) -> _Baseline:
    """The tables, columns and indexes revision 0001 creates, read back from a scratch
    in-memory SQLite database that the revision itself builds (so they cannot drift)."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.connect() as connection:
            command.upgrade(alembic_config(connection, location), BASELINE)
            inspector = inspect(connection)
            tables = [name for name in inspector.get_table_names() if name != VERSION_TABLE]
            return _Baseline(
                columns={
                    table: {c["name"]: str(c["type"]) for c in inspector.get_columns(table)}
                    for table in tables
                },
                indexes={
                    table: {
                        str(index["name"]): (
                            [str(column) for column in index["column_names"]],
                            bool(index["unique"]),
                        )
                        for index in inspector.get_indexes(table)
                    }
                    for table in tables
                },
            )
    finally:
        scratch.dispose()


def _adopt(connection: Connection, location: Path, where: str) -> tuple[str, ...]:
    """Check that tables from before migrations are revision 0001's (else refuse, naming
    what is missing); create the indexes 0001 has and they lack. Returns those indexes."""
    baseline = _baseline(location)
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    missing_tables = sorted(set(baseline.columns) - present)
    missing_columns: dict[str, dict[str, str]] = {}
    for table in sorted(set(baseline.columns) & present):
        have = {column["name"] for column in inspector.get_columns(table)}
        lacking = {c: kind for c, kind in baseline.columns[table].items() if c not in have}
        if lacking:
            missing_columns[table] = lacking
    if missing_tables or missing_columns:
        parts = []
        if missing_tables:
            parts.append("the tables " + ", ".join(missing_tables))
        if missing_columns:
            parts.append(
                "the columns "
                + ", ".join(
                    f"{table}.{column} {kind}"
                    for table, columns in missing_columns.items()
                    for column, kind in columns.items()
                )
            )
        raise SchemaUnrecognised(
            f"database {where} holds tables from before schema migrations, but not those of "
            f"revision {BASELINE} (the last release before migrations): it lacks "
            f"{' and '.join(parts)}. Nothing was changed: add them by hand (the types are "
            f"SQLite's names) and run `{UPGRADE_COMMAND}` again",
            missing_tables=missing_tables,
            missing_columns=missing_columns,
        )
    created = []
    for table_name, indexes in baseline.indexes.items():
        named = {index["name"] for index in inspector.get_indexes(table_name)}
        absent = sorted(name for name in indexes if name not in named)
        if not absent:
            continue
        reflected = Table(table_name, MetaData(), autoload_with=connection)
        for name in absent:
            columns, unique = indexes[name]
            Index(name, *(reflected.c[c] for c in columns), unique=unique).create(connection)
            created.append(name)
    return tuple(created)


# --- the models and the migrations must agree ---------------------------------------------------
def drift(connection: Connection, metadata: MetaData = Base.metadata) -> list[Any]:
    """What Alembic's autogenerate finds between a database (at head) and ``metadata``:
    empty when the migrations make exactly the models' schema."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": metadata}
    )
    return list(compare_metadata(context, metadata))


def check(location: Path = MIGRATIONS) -> list[Any]:
    """``ivr db check`` (run by scripts/lint): :func:`drift` on a scratch SQLite database that
    the migrations bring to head. Not empty: a model changed without a revision (or the
    reverse). The tests run the same comparison on PostgreSQL too."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.connect() as connection:
            command.upgrade(alembic_config(connection, location), "head")
            return drift(connection)
    finally:
        scratch.dispose()


# --- new revisions (developers) ----------------------------------------------------------------
REVISION_ID = re.compile(r"^\d{4}$")


def new_revision(message: str, *, autogenerate: bool, location: Path = MIGRATIONS) -> Path:
    """Write ``versions/NNNN_<slug>.py`` (the next number) and return its path. With
    ``autogenerate`` it holds the operations that bring a database at head to the models,
    compared on a scratch SQLite database built by the migrations: review it, PostgreSQL
    may need more (and SQLite's ALTERs become batch operations)."""
    directory = scripts(location)
    numbers = [int(rev) for rev in _chain(directory) if REVISION_ID.match(rev)]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    scratch = create_engine("sqlite://")
    try:
        with scratch.connect() as connection:
            config = alembic_config(connection, location)
            _ruff_hooks(config)
            command.upgrade(config, "head")
            written = command.revision(
                config, message=message, autogenerate=autogenerate, rev_id=rev_id
            )
    finally:
        scratch.dispose()
    script = written[0] if isinstance(written, list) else written
    if script is None:
        raise RuntimeError("alembic wrote no revision")
    return Path(script.path)


def _ruff_hooks(config: Config) -> None:
    """Format and sort the imports of a new revision with the project's ruff, if installed."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        return
    config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
    for name, options in (("ruff_fix", "check --fix --select I,F401"), ("ruff_format", "format")):
        config.set_section_option("post_write_hooks", f"{name}.type", "exec")
        config.set_section_option("post_write_hooks", f"{name}.executable", ruff)
        config.set_section_option(
            "post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME"
        )
