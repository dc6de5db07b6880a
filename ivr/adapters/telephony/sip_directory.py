"""The agents' SIP accounts as Asterisk reads them: two small SQLite files inside the instance.

``directory.sqlite3``: Asterisk's PJSIP takes the agents' endpoints, digest credentials and
AORs, and the blocked addresses, from it through sorcery realtime (``res_sorcery_realtime``
over ``res_config_sqlite3``; dialplan/sorcery.conf, dialplan/extconfig.conf and the
generated res_config_sqlite3.conf). Asterisk only reads it, on every lookup, caching
nothing, so:

- a change written here applies to the next SIP request, with no reload (the AMI accounts
  may not reload anything);
- Asterisk keeps working from the last projection when the service is down.

``astdb.sqlite3``: Asterisk's own key-value store (``astdbdir``), where it keeps the
registered contacts (``/registrar/contact/<aor>;@<hash>``, a JSON object each). Contacts are
not in the realtime file because res_config_sqlite3 (Asterisk 22) cannot delete a row by
id: its destroy callback builds its WHERE clause from the extra fields only, which sorcery
never passes, so an unregistered, replaced or expired contact would stay (measured: the
registrar logs "Removed contact ... due to remove existing" and the row stays).
The service reads the contacts (:func:`registrations`) and deletes them
(:func:`drop_registrations`); a trigger created with the file keeps when each contact first
registered (Asterisk keeps no such time).

Both files live in ``<instance>/sip/`` (directory 2770, files 0660: Asterisk's user and the
service's group, nothing for others), in WAL mode (readers never block the writer: Asterisk
keeps an astdb transaction open up to a second after each write). Every write here is one
short ``BEGIN IMMEDIATE`` transaction with a busy timeout. The service writes from a list of
:class:`ivr.core.sip_accounts.SipAccount` (:func:`sync_accounts`, idempotent): an enabled
account becomes an endpoint, its auth (``md5_cred``: the HA1, never a password) and its AOR;
a disabled or absent one is removed with its contacts.

Rows per agent ``<username>`` (the 工号): endpoint, auth and AOR share the id; the endpoint
takes calls into the ``from-agents`` context (nothing but what the agents' features add; no
trunk), PCMA/PCMU, and ``webrtc=yes`` (DTLS-SRTP with a certificate Asterisk generates at
start, ICE, AVPF, rtcp-mux) for the browser; desk phones use UDP or TCP on the same account.
Asterisk qualifies every contact each :data:`QUALIFY_S` seconds (OPTIONS).
The desk phones' AOR holds :data:`MAX_CONTACTS` contacts; a further device replaces the oldest
contact (``remove_existing``). The browser's AOR holds one: a second tab or browser of the same
agent that registers replaces the first, so only one rings (the agent desk page also tells
its other tabs to stop).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Final

from ivr.adapters.telephony import instance_dirs
from ivr.core.agent_presence import BROWSER_SUFFIX  # the browser's endpoint and AOR
from ivr.core.sip_accounts import Registration, SipAccount
from ivr.errors import SipDirectoryError
from ivr.settings import Settings

logger = logging.getLogger(__name__)

SIP_SUBDIR: Final = "sip"  # inside the instance directory
FILE_NAME: Final = "directory.sqlite3"
ASTDB_NAME: Final = "astdb.sqlite3"  # Asterisk's name for it, in astdbdir
SCHEMA_VERSION: Final = 1  # PRAGMA user_version; another one is rebuilt (a projection)
_CONTACT_KEY: Final = "/registrar/contact/"
AGENTS_CONTEXT: Final = "from-agents"
MAX_CONTACTS: Final = 2  # desk phones of one agent
BROWSER_MAX_CONTACTS: Final = 1  # the newest browser tab that registered
# Asterisk sends each contact OPTIONS this often, the first at some moment within it. Not
# only a health check: a realtime endpoint that appeared after Asterisk started stays
# Unavailable to app_queue (never rung) until one of its contacts turns Avail, which only a
# qualify does (measured on 22.10: with 0, a registered agent was never rung).
QUALIFY_S: Final = 10
BUSY_TIMEOUT_S: Final = 5.0
DIR_MODE: Final = 0o2770
FILE_MODE: Final = 0o660
_BLOCK_PREFIX: Final = "block-"
_EPOCH: Final = datetime.fromtimestamp(0, UTC)

# Columns Asterisk 22 reads (its contrib/ast-db-manage tables, the ones used here; a NULL
# reaches Asterisk as an empty value, so every column is one it accepts empty). ps_acls
# rows are res_pjsip_acl's `acl` objects: `deny` is read on every SIP request;
# blocked_until and failures are ours (sorcery ignores columns it does not know).
_SCHEMA: Final = """
CREATE TABLE ps_endpoints (
    id TEXT PRIMARY KEY, transport TEXT, aors TEXT, auth TEXT, context TEXT, allow TEXT,
    callerid TEXT, dtmf_mode TEXT, direct_media TEXT, rtp_symmetric TEXT, force_rport TEXT,
    rewrite_contact TEXT, webrtc TEXT, dtls_auto_generate_cert TEXT
);
CREATE TABLE ps_auths (
    id TEXT PRIMARY KEY, auth_type TEXT, username TEXT, realm TEXT, md5_cred TEXT,
    password TEXT
);
CREATE TABLE ps_aors (
    id TEXT PRIMARY KEY, max_contacts INTEGER, remove_existing TEXT, qualify_frequency INTEGER,
    default_expiration INTEGER, maximum_expiration INTEGER, minimum_expiration INTEGER
);
CREATE TABLE ps_acls (id TEXT PRIMARY KEY, deny TEXT, blocked_until REAL, failures INTEGER);
CREATE TABLE sip_failures (
    address TEXT PRIMARY KEY, total INTEGER NOT NULL, last_at REAL NOT NULL
);
"""
_TABLES: Final = ("ps_endpoints", "ps_auths", "ps_aors", "ps_acls", "sip_failures")
# Asterisk's astdb table as it creates it, and when each contact key first appeared. A
# refresh is ast_db_put's INSERT OR REPLACE of a key already there: the BEFORE INSERT trigger
# still sees the old row then, so only a new contact sets its time (an AFTER DELETE trigger
# would not do: SQLite 3.40 fires it for the REPLACE too, measured). Times of contacts
# Asterisk removed itself are cleared by drop_registrations and create.
_ASTDB_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS astdb(key TEXT, value TEXT, PRIMARY KEY(key));
CREATE TABLE IF NOT EXISTS hotline_contact_since (key TEXT PRIMARY KEY, since INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS hotline_contact_added BEFORE INSERT ON astdb
    WHEN substr(new.key, 1, 19) = '/registrar/contact/'
        AND NOT EXISTS (SELECT 1 FROM astdb WHERE key = new.key)
    BEGIN INSERT OR REPLACE INTO hotline_contact_since (key, since)
          VALUES (new.key, CAST(strftime('%s', 'now') AS INTEGER)); END;
"""
_FORGET_GONE: Final = "DELETE FROM hotline_contact_since WHERE key NOT IN (SELECT key FROM astdb)"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What :func:`sync_accounts` changed (usernames, sorted)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    contacts_dropped: int


@dataclass(frozen=True, slots=True)
class AddressState:
    """A source address with failed authentications: all counted, and its block if any."""

    address: str
    failures: int
    last_failure: datetime | None
    blocked_until: datetime | None


# --- the file ---------------------------------------------------------------------------
def directory_inner(instance: str) -> PurePosixPath:
    """The file as Asterisk sees it, inside the root."""
    return instance_dirs.instance_base(instance) / SIP_SUBDIR / FILE_NAME


def directory_file(settings: Settings) -> Path:
    """The local instance's file, on the host."""
    inner = directory_inner(settings.asterisk.instance)
    return instance_dirs.host_path(settings.asterisk.root, inner)


def astdb_file(settings: Settings) -> Path:
    """The local instance's astdb (where Asterisk keeps the contacts), on the host."""
    return directory_file(settings).with_name(ASTDB_NAME)


def create(path: Path) -> None:
    """Create the directory file with its schema if it is missing or of another schema
    version (then its tables are rebuilt: it is a projection), and astdb beside it with the
    contacts' trigger (kept: Asterisk's own data). Before Asterisk starts. Sets the modes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(DIR_MODE)
    astdb = path.with_name(ASTDB_NAME)
    with _connect(astdb) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_ASTDB_SCHEMA)
        db.execute(_FORGET_GONE)
    with _connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            for table in _TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
    for made in (path, astdb):
        made.chmod(FILE_MODE)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise SipDirectoryError(f"cannot open the SIP directory {path}: {exc}") from None
    try:
        yield db
    except sqlite3.OperationalError as exc:
        raise SipDirectoryError(f"the SIP directory {path}: {exc}", path=str(path)) from None
    finally:
        db.close()


@contextlib.contextmanager
def _transaction(settings: Settings, path: Path | None = None) -> Iterator[sqlite3.Connection]:
    path = path or directory_file(settings)
    if not path.exists():
        raise SipDirectoryError(
            f"no SIP directory at {path}: the Asterisk instance is not prepared "
            "(ivr up, or ivr asterisk prepare)",
            path=str(path),
        )
    with _connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


# --- accounts ---------------------------------------------------------------------------


def browser_endpoint(username: str) -> str:
    return f"{username}{BROWSER_SUFFIX}"


def account_of(endpoint: str) -> str:
    """The account (工号) an endpoint or AOR belongs to: ``1001-webrtc`` -> ``1001``."""
    return endpoint.removesuffix(BROWSER_SUFFIX)


def _rows(account: SipAccount, realm: str) -> list[tuple[str, dict[str, str | int]]]:
    """One account, two endpoints on the same credentials (one auth): ``<工号>`` for desk
    phones (plain RTP over UDP or TCP) and ``<工号>-webrtc`` for the browser (DTLS-SRTP, ICE,
    AVPF over WebSocket). Asterisk cannot serve both from one endpoint: with ``webrtc=yes``
    it sends a desk phone's plain RTP/AVP offer no audio at all (measured). Each has its own
    AOR; the browser registers with the URI user ``<工号>-webrtc`` and the auth user ``<工号>``."""
    name = account.username
    caller = account.display_name.replace('"', "").replace("<", "").replace(">", "")
    common: dict[str, str | int] = {
        "auth": name, "context": AGENTS_CONTEXT, "allow": "!all,alaw,ulaw",
        "callerid": f'"{caller}" <{name}>', "dtmf_mode": "rfc4733", "direct_media": "no",
        "rtp_symmetric": "yes", "force_rport": "yes", "rewrite_contact": "yes",
    }  # fmt: skip
    aor: dict[str, str | int] = {
        "max_contacts": MAX_CONTACTS, "remove_existing": "yes", "qualify_frequency": QUALIFY_S,
        "default_expiration": 600, "maximum_expiration": 3600, "minimum_expiration": 60,
    }  # fmt: skip
    web = browser_endpoint(name)
    return [
        ("ps_endpoints", {"id": name, "aors": name, **common, "webrtc": "no"}),
        (
            "ps_endpoints",
            {
                "id": web,
                "aors": web,
                **common,
                "webrtc": "yes",
                "dtls_auto_generate_cert": "yes",
            },
        ),  # fmt: skip
        (
            "ps_auths",
            {
                "id": name,
                "auth_type": "md5",
                "username": name,
                "realm": realm,
                "md5_cred": account.ha1,
            },
        ),  # fmt: skip
        ("ps_aors", {"id": name, **aor}),
        ("ps_aors", {"id": web, **aor, "max_contacts": BROWSER_MAX_CONTACTS}),
    ]


def sync_accounts(settings: Settings, accounts: Iterable[SipAccount]) -> SyncResult:
    """Make the file hold exactly the enabled ``accounts`` (one transaction, idempotent).

    A disabled account, or one no longer listed, loses its endpoint, auth, AOR and contacts:
    Asterisk refuses its next request and calls to it."""
    wanted = {a.username: _rows(a, settings.asterisk.sip_realm) for a in accounts if a.enabled}
    added: list[str] = []
    changed: list[str] = []
    with _transaction(settings) as db:
        present = {account_of(row[0]) for row in db.execute("SELECT id FROM ps_endpoints")}
        removed = sorted(present - wanted.keys())
        for name in removed:
            for table, ids in (
                ("ps_endpoints", (name, browser_endpoint(name))),
                ("ps_auths", (name,)),
                ("ps_aors", (name, browser_endpoint(name))),
            ):
                for row_id in ids:
                    db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))  # noqa: S608
        for name, rows in sorted(wanted.items()):
            differs = False
            for table, row in rows:
                differs |= _upsert(db, table, row)
            if name not in present:
                added.append(name)
            elif differs:
                changed.append(name)
    dropped = sum(drop_registrations(settings, name) for name in removed)
    result = SyncResult(tuple(added), tuple(changed), tuple(removed), dropped)
    if added or changed or removed:
        logger.info(
            "sip accounts synced",
            extra={"added": added, "changed": changed, "removed": removed, "dropped": dropped},
        )
    return result


def _upsert(db: sqlite3.Connection, table: str, row: dict[str, str | int]) -> bool:
    """Write ``row`` unless the same one is there; True if it was written."""
    columns = list(row)
    current = db.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?",  # noqa: S608
        (row["id"],),
    ).fetchone()
    if current is not None and list(current) == [row[c] for c in columns]:
        return False
    db.execute(f"DELETE FROM {table} WHERE id = ?", (row["id"],))  # noqa: S608
    db.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in columns)})",
        [row[c] for c in columns],
    )
    return True


# --- registrations ----------------------------------------------------------------------
def registrations(settings: Settings, now: datetime | None = None) -> list[Registration]:
    """The agents' registered contacts that have not expired, by username then time."""
    at = (now or datetime.now(UTC)).timestamp()
    with _connect(_existing(astdb_file(settings))) as db:
        rows = db.execute(
            "SELECT a.key, a.value, s.since FROM astdb a "
            "LEFT JOIN hotline_contact_since s ON s.key = a.key "
            "WHERE substr(a.key, 1, ?) = ?",
            (len(_CONTACT_KEY), _CONTACT_KEY),
        ).fetchall()
    found = []
    for key, value, since in rows:
        contact = _json_object(value)
        expires = _time(contact.get("expiration_time"))
        if expires is None or expires.timestamp() <= at:
            continue  # Asterisk ignores it too (and prunes it within a minute)
        aor = key[len(_CONTACT_KEY) :].split(";@", 1)[0]
        found.append(
            Registration(
                username=account_of(str(contact.get("endpoint") or aor)),
                contact=str(contact.get("uri", "")),
                user_agent=str(contact.get("user_agent", "")),
                since=_time(since),
                expires=expires,
            )
        )
    return sorted(found, key=lambda r: (r.username, r.since or r.expires or _EPOCH, r.contact))


def drop_registrations(settings: Settings, username: str) -> int:
    """Forget every contact of ``username`` (returns how many). Asterisk reads astdb inside a
    transaction it commits only after its own next write (a registration or refresh of any
    phone), so it may go on seeing the contacts until then; for a disabled account that does
    not matter: its endpoint and AOR are gone at once, so nothing can call the phone."""
    dropped = 0
    with _transaction(settings, astdb_file(settings)) as db:
        for aor in (username, browser_endpoint(username)):  # the desk phones and the browser
            prefix = f"{_CONTACT_KEY}{aor};@"
            cursor = db.execute(
                "DELETE FROM astdb WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            )
            dropped += cursor.rowcount
        db.execute(_FORGET_GONE)
    return dropped


# --- blocked addresses ------------------------------------------------------------------
def record_failure(settings: Settings, address: str, at: float) -> None:
    """Count one failed authentication from ``address`` (kept for ``ivr agents list``)."""
    with _transaction(settings) as db:
        db.execute(
            "INSERT INTO sip_failures (address, total, last_at) VALUES (?, 1, ?) "
            "ON CONFLICT (address) DO UPDATE SET total = total + 1, last_at = excluded.last_at",
            (address, at),
        )


def block(settings: Settings, address: str, until: float, failures: int) -> None:
    """Refuse every SIP request from ``address`` (Asterisk answers 403) until unblocked."""
    ip = ipaddress.ip_address(address)
    with _transaction(settings) as db:
        db.execute(
            "INSERT OR REPLACE INTO ps_acls (id, deny, blocked_until, failures) "
            "VALUES (?, ?, ?, ?)",
            (f"{_BLOCK_PREFIX}{ip}", f"{ip}/{ip.max_prefixlen}", until, failures),
        )
    logger.warning(
        "sip address blocked", extra={"address": address, "until": until, "failures": failures}
    )


def unblock(settings: Settings, addresses: Iterable[str]) -> None:
    """Lift the blocks of ``addresses``."""
    names = [f"{_BLOCK_PREFIX}{ipaddress.ip_address(a)}" for a in addresses]
    if not names:
        return
    with _transaction(settings) as db:
        db.executemany("DELETE FROM ps_acls WHERE id = ?", [(n,) for n in names])
    logger.info("sip addresses unblocked", extra={"addresses": sorted(addresses)})


def blocks(settings: Settings) -> list[tuple[str, float]]:
    """The blocked addresses and until when (seconds since the epoch)."""
    with _connect(_existing(directory_file(settings))) as db:
        rows = db.execute(
            "SELECT id, blocked_until FROM ps_acls WHERE substr(id, 1, ?) = ? ORDER BY id",
            (len(_BLOCK_PREFIX), _BLOCK_PREFIX),
        ).fetchall()
    return [(name[len(_BLOCK_PREFIX) :], float(until)) for name, until in rows]


def address_states(settings: Settings) -> list[AddressState]:
    """Every address with failed authentications or a block, by address."""
    blocked = dict(blocks(settings))
    with _connect(_existing(directory_file(settings))) as db:
        counted = {a: (t, last) for a, t, last in db.execute("SELECT * FROM sip_failures")}
    return [
        AddressState(
            address=address,
            failures=counted.get(address, (0, None))[0],
            last_failure=_time(counted.get(address, (0, None))[1]),
            blocked_until=_time(blocked.get(address)),
        )
        for address in sorted(counted.keys() | blocked.keys())
    ]


def _existing(path: Path) -> Path:
    if not path.exists():
        raise SipDirectoryError(f"no SIP directory at {path}", path=str(path))
    return path


def _json_object(value: str | None) -> dict[str, object]:
    try:
        loaded = json.loads(value or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(str(value)), UTC)
    except ValueError:
        return None
