"""Users, passwords, sessions and `ivr users`, against a real SQLite file in tmp_path; what
reads or writes rows runs on a real PostgreSQL server too (``on_sql_backends``)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr import cli_users
from ivr.adapters.sql import db as sql
from ivr.adapters.sql import schema, ticket_desk, users
from ivr.adapters.sql.db import AuditEntry, Role, User, UserSession
from ivr.settings import Settings
from tests.pg_support import on_sql_backends

PASSWORD = "correct horse battery"
WEAK_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of a database at head, as ``ivr db upgrade`` leaves it."""
    settings = Settings(run_dir=tmp_path, database={"url": database_url})
    engine = sql.settings_engine(settings)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def add(db: Session, name: str, role: Role | str = Role.qa, password: str = PASSWORD) -> User:
    user = users.create_user(db, name, password, role)
    db.commit()
    return user


# --- passwords --------------------------------------------------------------------------------
def test_given_password_when_hashed_then_argon2id_and_only_that_password_verifies():
    digest = users.hash_password(PASSWORD)

    assert digest.startswith("$argon2id$")
    assert PASSWORD not in digest
    assert users.verify_password(digest, PASSWORD)
    assert not users.verify_password(digest, PASSWORD + "!")
    assert not users.verify_password("not-a-hash", PASSWORD)


@on_sql_backends
def test_given_hash_with_old_parameters_when_signing_in_then_rehashed_with_current(db):
    users.create_user(db, "alice", PASSWORD, Role.qa, hasher=WEAK_HASHER)
    db.commit()
    old_hash = users.require_user(db, "alice").password_hash
    assert users.PASSWORDS.check_needs_rehash(old_hash)

    user = users.authenticate(db, "alice", PASSWORD)
    db.commit()

    assert user.password_hash != old_hash
    assert not users.PASSWORDS.check_needs_rehash(user.password_hash)
    assert users.verify_password(user.password_hash, PASSWORD)
    assert user.last_login_at is not None


@on_sql_backends
def test_given_current_hash_when_signing_in_then_hash_kept(db):
    add(db, "alice")
    before = users.require_user(db, "alice").password_hash

    assert users.authenticate(db, "alice", PASSWORD).password_hash == before


@pytest.mark.parametrize("password", ["short", " " * 20, "x" * 1025])
def test_given_password_breaking_policy_when_user_added_then_refused(db, password):
    with pytest.raises(users.InvalidUserInput, match="password"):
        users.create_user(db, "alice", password, Role.qa)


# --- names and roles --------------------------------------------------------------------------
@on_sql_backends
def test_given_mixed_case_username_when_added_then_stored_lower_case_and_found_either_way(db):
    add(db, "  Alice.W ")

    assert users.require_user(db, "alice.w").username == "alice.w"
    assert users.get_user(db, "ALICE.W") is not None


@pytest.mark.parametrize("name", ["a", "1abc", "al ice", "alice@example", "x" * 65])
def test_given_bad_username_when_added_then_refused(db, name):
    with pytest.raises(users.InvalidUserInput, match="username"):
        users.create_user(db, name, PASSWORD, Role.qa)


def test_given_unknown_role_when_added_then_refused_naming_the_roles(db):
    with pytest.raises(users.InvalidUserInput, match="qa, supervisor, admin"):
        users.create_user(db, "alice", PASSWORD, "root")


@on_sql_backends
def test_given_existing_username_when_added_again_then_refused(db):
    add(db, "alice")

    with pytest.raises(users.UserExists):
        users.create_user(db, "ALICE", PASSWORD, Role.admin)


@pytest.mark.parametrize(
    ("role", "required", "expected"),
    [
        (Role.qa, (Role.qa,), True),
        (Role.qa, (Role.supervisor,), False),
        (Role.supervisor, (Role.qa,), False),
        (Role.supervisor, (Role.qa, Role.supervisor), True),
        (Role.admin, (Role.qa,), True),
        (Role.admin, (Role.supervisor,), True),
        (Role.admin, (Role.admin,), True),
        (Role.supervisor, (Role.admin,), False),
        (Role.agent, (Role.qa, Role.supervisor), False),  # the least access: none of theirs
        (Role.agent, (Role.admin,), False),
        (Role.agent, (Role.agent,), True),
        (Role.admin, (Role.agent,), True),
    ],
)
def test_given_role_when_checked_then_admin_implies_every_role(role, required, expected):
    user = User(username="u", password_hash="x", role=role)

    assert users.has_role(user, *required) is expected


@on_sql_backends
def test_given_role_changed_when_read_back_then_stored_as_enum(db):
    add(db, "alice", Role.qa)

    users.set_role(db, "alice", "supervisor")
    db.commit()
    db.expire_all()

    assert users.require_user(db, "alice").role is Role.supervisor


# --- sign-in ----------------------------------------------------------------------------------
@on_sql_backends
def test_given_wrong_password_or_unknown_user_when_signing_in_then_same_message(db):
    add(db, "alice")

    with pytest.raises(users.InvalidCredentials) as wrong:
        users.authenticate(db, "alice", "wrong password!!")
    with pytest.raises(users.InvalidCredentials) as unknown:
        users.authenticate(db, "bob", PASSWORD)
    with pytest.raises(users.InvalidCredentials) as malformed:
        users.authenticate(db, "not a name", PASSWORD)

    assert wrong.value.message == unknown.value.message == malformed.value.message
    assert (wrong.value.reason, unknown.value.reason) == ("bad-password", "unknown-user")
    assert wrong.value.details == {}


@on_sql_backends
def test_given_disabled_user_when_signing_in_then_refused_until_enabled(db):
    add(db, "alice")
    users.set_disabled(db, "alice", True)
    db.commit()

    with pytest.raises(users.InvalidCredentials) as refused:
        users.authenticate(db, "alice", PASSWORD)
    assert refused.value.reason == "disabled"

    users.set_disabled(db, "alice", False)
    db.commit()
    assert users.authenticate(db, "alice", PASSWORD).username == "alice"


# --- sessions ---------------------------------------------------------------------------------
@on_sql_backends
def test_given_session_when_looked_up_then_user_found_and_only_digest_stored(db):
    alice = add(db, "alice")

    token, row = users.start_session(db, alice, lifetime_s=3600, ip="127.0.0.1")
    db.commit()

    found = users.session_user(db, token)
    assert found is not None and found.user.username == "alice"
    assert token not in row.token_digest
    assert db.scalar(select(UserSession.token_digest)) == users.token_digest(token)
    assert users.session_user(db, token + "x") is None


@on_sql_backends
def test_given_expired_session_when_looked_up_then_none_and_purged(db):
    alice = add(db, "alice")
    start = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    token, _ = users.start_session(db, alice, lifetime_s=60, now=start)
    db.commit()

    assert users.session_user(db, token, now=start + timedelta(seconds=59)) is not None
    assert users.session_user(db, token, now=start + timedelta(seconds=60)) is None
    assert users.purge_expired_sessions(db, now=start + timedelta(seconds=61)) == 1


@on_sql_backends
def test_given_session_secret_when_token_checked_then_digest_is_keyed(db):
    alice = add(db, "alice")
    secret = SecretStr("k" * 32)
    token, _ = users.start_session(db, alice, lifetime_s=60, secret=secret)
    db.commit()

    assert users.session_user(db, token, secret=secret) is not None
    assert users.session_user(db, token) is None
    assert users.session_user(db, token, secret=SecretStr("j" * 32)) is None


@on_sql_backends
def test_given_sessions_when_disabled_or_password_changed_then_all_end(db):
    alice = add(db, "alice")
    tokens = [users.start_session(db, alice, lifetime_s=60)[0] for _ in range(2)]
    db.commit()

    _, ended = users.set_password(db, "alice", "another good password")
    db.commit()
    assert ended == 2
    assert all(users.session_user(db, t) is None for t in tokens)

    token, _ = users.start_session(db, alice, lifetime_s=60)
    _, ended = users.set_disabled(db, "alice", True)
    db.commit()
    assert ended == 1
    assert users.session_user(db, token) is None


@on_sql_backends
def test_given_session_when_ended_then_gone_and_its_user_returned(db):
    alice = add(db, "alice")
    token, _ = users.start_session(db, alice, lifetime_s=60)
    db.commit()

    ended = users.end_session(db, token)
    db.commit()

    assert ended is not None and ended.username == "alice"
    assert users.session_user(db, token) is None
    assert users.end_session(db, token) is None


# --- audit and time ---------------------------------------------------------------------------
@on_sql_backends
def test_given_action_when_audited_then_who_what_target_when_where_stored(db):
    alice = add(db, "alice")
    before = datetime.now(UTC)

    sql.audit(db, alice, "recording.replay", target="call:1700000000.1", ip="10.0.0.7")
    sql.audit(db, None, "auth.login_failed", target="mallory", ip="10.0.0.8", actor="mallory")
    db.commit()
    db.expire_all()

    rows = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(r.user_id, r.actor, r.action, r.target, r.ip) for r in rows] == [
        (alice.id, "alice", "recording.replay", "call:1700000000.1", "10.0.0.7"),
        (None, "mallory", "auth.login_failed", "mallory", "10.0.0.8"),
    ]
    assert rows[0].at.tzinfo is not None and rows[0].at >= before


@on_sql_backends
def test_given_naive_datetime_when_stored_then_refused(db):
    alice = add(db, "alice")
    alice.last_login_at = datetime(2025, 1, 1)

    with pytest.raises(Exception, match="naive datetime"):
        db.commit()


# --- ensure_dev_user --------------------------------------------------------------------------
def test_given_no_user_when_dev_user_ensured_then_created_once_with_random_password(tmp_path):
    engine = sql.create_db_engine(f"sqlite:///{tmp_path / 'fresh' / 'dev.db'}")
    try:
        schema.upgrade(engine)  # as `ivr up` does first
        password = users.ensure_dev_user(engine)
        again = users.ensure_dev_user(engine)

        assert password is not None and len(password) >= users.MIN_PASSWORD_LENGTH
        assert again is None
        with Session(engine) as db:
            user = users.authenticate(db, "supervisor", password)
            assert user.role is Role.admin
            assert len(users.list_users(db)) == 1
    finally:
        engine.dispose()


@on_sql_backends
def test_given_existing_user_when_dev_user_ensured_then_password_untouched(db, engine):
    add(db, "supervisor", Role.qa)

    assert users.ensure_dev_user(engine) is None
    assert users.authenticate(db, "supervisor", PASSWORD).role is Role.qa


# --- ivr users --------------------------------------------------------------------------------
def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ivr")
    cli_users.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run_cli(settings, monkeypatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli_users.run(settings, parse("users", *argv))


@on_sql_backends
def test_given_password_on_stdin_when_user_added_then_listed_and_can_sign_in(
    settings, monkeypatch, capsys
):
    code = run_cli(
        settings, monkeypatch, "add", "Alice", "--role", "qa", "--password-stdin", stdin=PASSWORD
    )
    assert code == 0
    assert "user alice added with role qa" in capsys.readouterr().out

    assert run_cli(settings, monkeypatch, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["username"], u["role"], u["disabled"]) for u in listed] == [("alice", "qa", False)]
    assert PASSWORD not in json.dumps(listed)

    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            assert users.authenticate(db, "alice", PASSWORD).username == "alice"
            actions = db.scalars(select(AuditEntry.actor + " " + AuditEntry.action)).all()
            assert len(actions) == 1 and actions[0].startswith("cli") and "user.add" in actions[0]
    finally:
        engine.dispose()


@on_sql_backends
def test_given_user_when_role_password_and_state_changed_by_cli_then_applied(
    settings, monkeypatch, capsys
):
    run_cli(settings, monkeypatch, "add", "bob", "--role", "qa", "--password-stdin", stdin=PASSWORD)
    new_password = "a much better password"

    assert run_cli(settings, monkeypatch, "set-role", "bob", "supervisor") == 0
    assert (
        run_cli(
            settings,
            monkeypatch,
            "set-password",
            "bob",
            "--password-stdin",
            stdin=new_password + "\n",
        )
        == 0
    )
    assert run_cli(settings, monkeypatch, "disable", "bob") == 0
    out = capsys.readouterr().out
    assert "bob now has role supervisor" in out
    assert "password of bob changed; 0 session(s) ended" in out
    assert "bob disabled" in out

    run_cli(settings, monkeypatch, "list")
    table = capsys.readouterr().out
    assert "bob" in table and "supervisor" in table and "disabled" in table

    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            with pytest.raises(users.InvalidCredentials, match="invalid username or password"):
                users.authenticate(db, "bob", new_password)
        run_cli(settings, monkeypatch, "enable", "bob")
        with Session(engine) as db:
            assert users.authenticate(db, "bob", new_password).role is Role.supervisor
    finally:
        engine.dispose()


def test_given_no_terminal_and_no_password_stdin_when_user_added_then_refused(
    settings, monkeypatch
):
    with pytest.raises(users.InvalidUserInput, match="--password-stdin"):
        run_cli(settings, monkeypatch, "add", "carol", "--role", "qa", stdin=PASSWORD)


def test_given_empty_stdin_when_password_read_then_refused(settings, monkeypatch):
    with pytest.raises(users.InvalidUserInput, match="no password on stdin"):
        run_cli(settings, monkeypatch, "add", "carol", "--role", "qa", "--password-stdin")


def test_given_password_in_argv_when_parsed_then_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse("users", "add", "carol", "--role", "qa", "--password", PASSWORD)
    assert "unrecognized arguments" in capsys.readouterr().err


def test_given_unknown_user_when_changed_by_cli_then_user_not_found(settings, monkeypatch):
    with pytest.raises(users.UserNotFound, match="no user 'nobody'"):
        run_cli(settings, monkeypatch, "set-role", "nobody", "admin")


def test_given_no_users_when_listed_then_says_how_to_add(settings, monkeypatch, capsys):
    assert run_cli(settings, monkeypatch, "list") == 0
    assert "ivr users add" in capsys.readouterr().out


def test_given_default_settings_when_url_resolved_then_sqlite_file_in_run_dir(tmp_path):
    assert sql.database_url(Settings(run_dir=tmp_path)) == f"sqlite:///{tmp_path}/hotline.db"


def test_given_unreachable_database_when_tables_created_then_database_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    engine = sql.create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    (tmp_path / "missing").rmdir()
    (tmp_path / "missing").symlink_to(blocker)
    try:
        with pytest.raises(sql.DatabaseUnavailable, match="OperationalError"):
            schema.upgrade(engine)
    finally:
        engine.dispose()


def test_given_an_unknown_user_then_exactly_one_verification_like_a_known_one(engine):
    class CountingHasher(PasswordHasher):
        hashes = 0
        verifies = 0

        def hash(self, password, *, salt=None):
            type(self).hashes += 1
            return super().hash(password, salt=salt)

        def verify(self, hash, password):
            type(self).verifies += 1
            return super().verify(hash, password)

    hasher = CountingHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    for attempt in range(3):
        with Session(engine) as db, pytest.raises(users.InvalidCredentials):
            users.authenticate(db, f"nobody{attempt}", "guess", hasher=hasher)
    assert CountingHasher.verifies == 3
    assert CountingHasher.hashes == 1  # the stand-in hash, made once


def test_given_department_role_when_added_by_cli_then_its_departments_are_kept(
    settings, monkeypatch, capsys
):
    code = run_cli(
        settings, monkeypatch, "add", "wx1", "--role", "department", "--department", "repair",
        "--department", "heating", "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert code == 0
    assert "user wx1 added with role department (heating, repair)" in capsys.readouterr().out
    assert run_cli(settings, monkeypatch, "set-departments", "wx1", "billing") == 0
    capsys.readouterr()
    assert run_cli(settings, monkeypatch, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["departments"] == ["billing"]
    assert run_cli(settings, monkeypatch, "list") == 0
    assert "departments: billing" in capsys.readouterr().out
    for argv, message in (
        (("add", "wx2", "--role", "department"), "needs --department"),
        (("add", "wx2", "--role", "department", "--department", "bakery"), "unknown department"),
        (("add", "wx2", "--role", "qa", "--department", "repair"), "only for the role department"),
    ):
        with pytest.raises(users.InvalidUserInput, match=message):
            run_cli(settings, monkeypatch, *argv, "--password-stdin", stdin=PASSWORD)
    engine = sql.settings_engine(settings)
    try:
        with Session(engine) as db:
            user = users.require_user(db, "wx1")
            assert ticket_desk.departments_of(db, user) == ["billing"]
            assert users.get_user(db, "wx2") is None
            logged = db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
            assert logged == ["user.add", "user.set_departments", "user.set_departments"]
    finally:
        engine.dispose()
