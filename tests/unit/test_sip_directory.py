"""The SIP directory file without Asterisk: its schema and modes, what sync_accounts writes
(idempotent, disabled accounts removed with their contacts), contacts read and dropped as
Asterisk's astdb holds them, blocks and counts.
With Asterisk: tests/integration/test_sip_phones.py."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.adapters.telephony import sip_directory
from ivr.adapters.telephony.asterisk import AsteriskInstance
from ivr.core.sip_accounts import SipAccount, digest_ha1
from ivr.errors import SipDirectoryError, StackError
from ivr.settings import Settings

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("IVR_")]:
        monkeypatch.delenv(key)
    s = Settings(run_dir=tmp_path / "run", asterisk={"root": tmp_path / "root", "instance": "t"})
    sip_directory.create(sip_directory.directory_file(s))
    return s


def account(username: str, password: str = "pw-123456", enabled: bool = True) -> SipAccount:
    return SipAccount(
        username, digest_ha1(username, "hotline", password), f"Agent {username}", enabled
    )


def rows(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(sip_directory.directory_file(settings)) as db:
        return db.execute(sql).fetchall()


def asterisk_registers(settings: Settings, aor: str, uri: str, expires: datetime) -> str:
    """What Asterisk's registrar does to astdb (ast_db_put: INSERT OR REPLACE)."""
    key = f"/registrar/contact/{aor};@{abs(hash(uri)):x}"
    value = json.dumps(
        {"uri": uri, "endpoint": aor, "user_agent": "Yealink T46U",
         "expiration_time": str(int(expires.timestamp()))}
    )  # fmt: skip
    with sqlite3.connect(sip_directory.astdb_file(settings)) as db:
        db.execute("INSERT OR REPLACE INTO astdb (key, value) VALUES (?, ?)", (key, value))
    return key


def test_files_are_for_asterisk_and_the_service_only(settings: Settings) -> None:
    path = sip_directory.directory_file(settings)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o2770
    for made in (path, sip_directory.astdb_file(settings)):
        assert stat.S_IMODE(made.stat().st_mode) == 0o660
    assert path.parent.name == "sip" and path.parent.parent.name == "hotline-t"


def test_create_again_keeps_the_accounts(settings: Settings) -> None:
    sip_directory.sync_accounts(settings, [account("1001")])
    sip_directory.create(sip_directory.directory_file(settings))
    assert rows(settings, "SELECT id FROM ps_endpoints") == [("1001",), ("1001-webrtc",)]


def test_sync_writes_endpoint_auth_and_aor_with_the_ha1_only(settings: Settings) -> None:
    result = sip_directory.sync_accounts(settings, [account("1001", "Secret-1"), account("1002")])
    assert result.added == ("1001", "1002") and not result.changed and not result.removed
    # one account, two endpoints on its one auth: desk phones (plain RTP) and the browser
    endpoints = rows(
        settings,
        "SELECT id, context, auth, aors, webrtc, allow FROM ps_endpoints WHERE auth='1001'"
        " ORDER BY id",
    )
    assert endpoints == [
        ("1001", "from-agents", "1001", "1001", "no", "!all,alaw,ulaw"),
        ("1001-webrtc", "from-agents", "1001", "1001-webrtc", "yes", "!all,alaw,ulaw"),
    ]
    auth = rows(
        settings,
        "SELECT auth_type, username, realm, md5_cred, password FROM ps_auths WHERE id='1001'",
    )
    assert auth == [("md5", "1001", "hotline", digest_ha1("1001", "hotline", "Secret-1"), None)]
    aor = rows(settings, "SELECT id, max_contacts, remove_existing FROM ps_aors ORDER BY id")
    assert aor[:2] == [("1001", 2, "yes"), ("1001-webrtc", 1, "yes")]  # one browser tab rings


def test_sync_is_idempotent_and_reports_changes(settings: Settings) -> None:
    sip_directory.sync_accounts(settings, [account("1001"), account("1002")])
    again = sip_directory.sync_accounts(settings, [account("1001"), account("1002")])
    assert (again.added, again.changed, again.removed) == ((), (), ())
    changed = sip_directory.sync_accounts(
        settings, [account("1001", "new-pass-1"), account("1002")]
    )
    assert changed.changed == ("1001",)


def test_a_disabled_or_absent_account_is_removed_with_its_contacts(settings: Settings) -> None:
    sip_directory.sync_accounts(settings, [account("1001"), account("1002"), account("1003")])
    later = datetime(2030, 1, 1, tzinfo=UTC)
    asterisk_registers(settings, "1001", "sip:1001@192.0.2.1:5060", later)
    asterisk_registers(settings, "1002", "sip:1002@192.0.2.2:5060", later)
    asterisk_registers(settings, "1002-webrtc", "sip:1002-webrtc@192.0.2.3:5060", later)
    result = sip_directory.sync_accounts(
        settings, [account("1001"), account("1002", enabled=False)]
    )
    assert result.removed == ("1002", "1003") and result.contacts_dropped == 2
    assert rows(settings, "SELECT id FROM ps_endpoints") == [("1001",), ("1001-webrtc",)]
    assert rows(settings, "SELECT id FROM ps_aors") == [("1001",), ("1001-webrtc",)]
    assert rows(settings, "SELECT id FROM ps_auths") == [("1001",)]
    assert [r.username for r in sip_directory.registrations(settings, NOW)] == ["1001"]


def test_registrations_since_first_registration_and_expired_ones_left_out(
    settings: Settings,
) -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    key = asterisk_registers(settings, "1001", "sip:1001@192.0.2.1:5060", later)
    asterisk_registers(
        settings, "1002", "sip:1002@192.0.2.2:5060", datetime(2020, 1, 1, tzinfo=UTC)
    )
    with sqlite3.connect(sip_directory.astdb_file(settings)) as db:
        db.execute("UPDATE hotline_contact_since SET since = 1000 WHERE key = ?", (key,))
    asterisk_registers(settings, "1001", "sip:1001@192.0.2.1:5060", later)  # a refresh
    (reg,) = sip_directory.registrations(settings, NOW)
    assert (reg.username, reg.contact, reg.user_agent) == (
        "1001",
        "sip:1001@192.0.2.1:5060",
        "Yealink T46U",
    )
    assert reg.since == datetime.fromtimestamp(1000, UTC)  # the first registration, kept
    assert reg.expires == later


def test_drop_registrations_of_one_agent_only(settings: Settings) -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    asterisk_registers(settings, "1001", "sip:1001@192.0.2.1:5060", later)
    asterisk_registers(settings, "1001", "sip:1001@192.0.2.9:5060", later)
    asterisk_registers(settings, "10011", "sip:10011@192.0.2.3:5060", later)
    assert sip_directory.drop_registrations(settings, "1001") == 2
    assert [r.username for r in sip_directory.registrations(settings, NOW)] == ["10011"]
    with sqlite3.connect(sip_directory.astdb_file(settings)) as db:
        assert db.execute("SELECT count(*) FROM hotline_contact_since").fetchone() == (1,)


def test_blocks_and_counts(settings: Settings) -> None:
    sip_directory.record_failure(settings, "192.0.2.7", 100.0)
    sip_directory.record_failure(settings, "192.0.2.7", 130.0)
    sip_directory.block(settings, "192.0.2.7", 1000.0, 2)
    sip_directory.block(settings, "2001:db8::1", 2000.0, 5)
    assert rows(settings, "SELECT id, deny FROM ps_acls ORDER BY id") == [
        ("block-192.0.2.7", "192.0.2.7/32"), ("block-2001:db8::1", "2001:db8::1/128"),
    ]  # fmt: skip
    states = {s.address: s for s in sip_directory.address_states(settings)}
    assert states["192.0.2.7"].failures == 2
    assert states["192.0.2.7"].last_failure == datetime.fromtimestamp(130, UTC)
    assert states["192.0.2.7"].blocked_until == datetime.fromtimestamp(1000, UTC)
    assert states["2001:db8::1"].failures == 0
    sip_directory.unblock(settings, ["192.0.2.7"])
    assert sip_directory.blocks(settings) == [("2001:db8::1", 2000.0)]
    with pytest.raises(ValueError):
        sip_directory.block(settings, "not-an-address", 1.0, 1)


def test_given_no_file_then_a_clear_error(tmp_path: Path) -> None:
    s = Settings(run_dir=tmp_path / "run", asterisk={"root": tmp_path / "nowhere", "instance": "x"})
    with pytest.raises(SipDirectoryError, match="no SIP directory"):
        sip_directory.sync_accounts(s, [account("1001")])
    with pytest.raises(SipDirectoryError):
        sip_directory.registrations(s)


def test_transports_bind_where_told(tmp_path: Path) -> None:
    inst = AsteriskInstance(
        root=tmp_path, name="t", sip_port=5070, ami_port=5038, agi_url="agi://127.0.0.1:4573",
        dialplan_dir=tmp_path, sip_bind="10.0.0.5",
    )  # fmt: skip
    conf = inst._pjsip_conf()
    for transport in ("udp", "tcp"):
        assert (
            f"[transport-{transport}]\ntype = transport\nprotocol = {transport}\n"
            "bind = 10.0.0.5:5070\n" in conf
        )
    assert "protocol = ws" in conf
    assert (
        "127.0.0.1:5070"
        in AsteriskInstance(
            root=tmp_path, name="t", sip_port=5070, ami_port=5038, agi_url="", dialplan_dir=tmp_path
        )._pjsip_conf()
    )
    with pytest.raises(StackError, match="sip_bind"):
        AsteriskInstance(
            root=tmp_path, name="t", sip_port=5070, ami_port=5038, agi_url="",
            dialplan_dir=tmp_path, sip_bind="0.0.0.0\n[evil]",
        )._pjsip_conf()  # fmt: skip


def test_a_browser_registration_is_listed_under_its_agent(settings: Settings) -> None:
    sip_directory.sync_accounts(settings, [account("1001")])
    later = datetime(2030, 1, 1, tzinfo=UTC)
    asterisk_registers(settings, "1001-webrtc", "sip:abc@df7jal23ls0d.invalid;transport=ws", later)
    (found,) = sip_directory.registrations(settings, NOW)
    assert (found.username, found.contact) == ("1001", "sip:abc@df7jal23ls0d.invalid;transport=ws")
    assert sip_directory.drop_registrations(settings, "1001") == 1
    assert sip_directory.registrations(settings, NOW) == []
