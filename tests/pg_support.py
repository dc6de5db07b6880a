"""A private PostgreSQL server for the test session, and the SQL backends the tests run on.

    PostgresServer.start()      initdb into a fresh temp dir, then a server on 127.0.0.1 (a
                                free port, unix sockets in that dir only), fsync off
    server.create_database()    an empty database owned by the app's role; its name
    server.copy_database(name)  a new database, a copy of ``name`` (nobody connected to it)
    server.take_database()      one at the migrations' head and no rows (reused:
    server.give_back(name)      wiped when given back, ids from 1 again)
    server.url(name)            postgresql+psycopg://hotline:<password>@127.0.0.1:<port>/<name>
    server.drop_database(name)
    server.stop()               pg_ctl stop -m fast, and the dir is removed

Like a real deployment, the app connects over TCP with a password (scram-sha-256) as an
ordinary role that owns its database, not as a superuser. The cluster compares text with
the ICU ``zh-CN`` collation and its clock is in Asia/Shanghai (a utility's server in China),
so that nothing passes only because PostgreSQL happened to sort bytes or keep UTC like
SQLite. The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, apt: postgresql;
``scripts/provision`` installs it). initdb refuses to run as root: as root, every server
command runs as the ``postgres`` system user, which owns the temp dir.

``SQL_BACKENDS`` names the backends for ``@pytest.fixture(params=SQL_BACKENDS)`` or
:data:`on_sql_backends`; the fixtures (``postgres``, ``sql_backend``, ``database_url``)
are in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql as pgsql

from ivr.devstack.ports import free_port

SQL_BACKENDS: Final = ("sqlite", "postgresql")
#: Run a test once per backend (its fixtures take ``database_url``).
on_sql_backends = pytest.mark.parametrize("sql_backend", SQL_BACKENDS, indirect=True)

PG_ROOT: Final = Path("/usr/lib/postgresql")
APP_ROLE: Final = "hotline"
SYSTEM_USER: Final = "postgres"


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = [p for p in PG_ROOT.glob("*/bin") if (p / "initdb").is_file()]
    if not found:
        raise RuntimeError(
            f"no PostgreSQL under {PG_ROOT}: install Debian's postgresql (scripts/provision does)"
        )
    return max(found, key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])


class PostgresServer:
    def __init__(self, bin_dir: Path, base: Path, superuser_password: str, app_password: str):
        self.bin = bin_dir
        self.base = base
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.log = base / "server.log"
        self.port = 0
        self._superuser_password = superuser_password
        self._app_password = app_password
        self._databases = 0
        self._spare: list[str] = []  # wiped databases with the schema, for take_database

    # --- life ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, attempts: int = 3) -> PostgresServer:
        bin_dir = pg_bin()
        base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        superuser_password = secrets.token_urlsafe(18)
        server = cls(bin_dir, base, superuser_password, secrets.token_urlsafe(18))
        try:
            server._init()
            for attempt in range(1, attempts + 1):
                server.port = free_port()
                server._configure()
                if server._pg_ctl("start", "-w", "-t", "60", "-l", str(server.log)):
                    break
                if attempt == attempts or "could not bind" not in server.log_tail():
                    raise RuntimeError(f"PostgreSQL did not start:\n{server.log_tail()}")
            server._create_app_role()
        except BaseException:
            server._pg_ctl("stop", "-m", "immediate", "-w")
            shutil.rmtree(base, ignore_errors=True)
            raise
        return server

    def stop(self) -> None:
        try:
            if not self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60"):
                raise RuntimeError(f"pg_ctl stop failed:\n{self.log_tail()}")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _init(self) -> None:
        self.sockets.mkdir()
        pwfile = self.base / "pwfile"
        pwfile.write_text(self._superuser_password + "\n")
        if os.geteuid() == 0:
            account = pwd.getpwnam(SYSTEM_USER)
            for path in (self.base, self.sockets, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(self.base, 0o700)
        done = self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=zh-CN",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        # Loopback only, with a password; the socket sits in our 0700 dir.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _configure(self) -> None:
        (self.data / "postgresql.auto.conf").write_text(
            f"listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.sockets}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "shared_buffers = 32MB\n"
            "timezone = 'Asia/Shanghai'\n"
        )

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            command = ("runuser", "-u", SYSTEM_USER, "--", *command)
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, cwd=self.base
        )

    def _pg_ctl(self, *args: str) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return True
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args).returncode == 0

    # --- databases ----------------------------------------------------------------------------
    def _admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database,
            password=self._superuser_password, autocommit=True, connect_timeout=10,
        )  # fmt: skip

    def _create_app_role(self) -> None:
        with self._admin() as conn:
            conn.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    pgsql.Identifier(APP_ROLE), pgsql.Literal(self._app_password)
                )
            )

    def create_database(self) -> str:
        """A new, empty database owned by the app's role (its ``public`` schema too)."""
        self._databases += 1
        name = f"t{self._databases}"
        with self._admin() as conn:
            conn.execute(
                pgsql.SQL("CREATE DATABASE {} OWNER {}").format(
                    pgsql.Identifier(name), pgsql.Identifier(APP_ROLE)
                )
            )
        return name

    def copy_database(self, template: str) -> str:
        """A new database owned by the app's role, a copy of ``template`` (which must have
        no open connections)."""
        self._databases += 1
        name = f"t{self._databases}"
        with self._admin() as conn:
            conn.execute(
                pgsql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    pgsql.Identifier(name), pgsql.Identifier(template), pgsql.Identifier(APP_ROLE)
                )
            )
        return name

    def take_database(self) -> str:
        """A database at the migrations' head with no rows in its tables, the caller's
        alone until :meth:`give_back`. Databases are reused, wiped in between: making one
        (a copy of 8 MB of catalog) costs far more than the test that uses it."""
        if self._spare:
            return self._spare.pop()
        from ivr.adapters.sql import db as sql
        from ivr.adapters.sql import schema  # the schema under test

        name = self.create_database()
        engine = sql.create_db_engine(self.url(name))
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        return name

    def give_back(self, name: str) -> None:
        """Wipe a database from :meth:`take_database` for the next test: its connections
        ended, every row deleted (but its revision in alembic_version), every id counting
        from 1 again. A database whose tables or revision are not exactly the schema's any
        more is dropped instead."""
        from ivr.adapters.sql import db as sql
        from ivr.adapters.sql import schema

        with self._admin(name) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            at_head = schema.VERSION_TABLE in tables and [
                row[0] for row in conn.execute(f"SELECT version_num FROM {schema.VERSION_TABLE}")
            ] == [schema.head()]
            tables.discard(schema.VERSION_TABLE)
            if at_head and tables == set(sql.Base.metadata.tables):
                with conn.transaction():
                    conn.execute("SET LOCAL session_replication_role = replica")  # no FK checks
                    conn.execute("SET LOCAL lock_timeout = '10s'")
                    for table in sorted(tables):
                        conn.execute(pgsql.SQL("DELETE FROM {}").format(pgsql.Identifier(table)))
                    conn.execute(
                        "SELECT setval(c.oid, 1, false) FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.relkind = 'S' AND n.nspname = 'public'"
                    )
                self._spare.append(name)
                return
        self.drop_database(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )

    def url(self, database: str, *, password: str | None = None) -> str:
        secret = self._app_password if password is None else password
        return f"postgresql+psycopg://{APP_ROLE}:{secret}@127.0.0.1:{self.port}/{database}"
