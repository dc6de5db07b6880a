"""Agents' SIP phones on a real Asterisk with sipp: digest registration over UDP and TCP,
accounts synced in and disabled without a reload, registrations read back, a second and a
third device, the WebSocket transport on loopback only, and failed authentications counted
and blocked from Asterisk's security events. The file logic alone:
tests/unit/test_sip_directory.py; the counting rule: tests/unit/test_sip_guard.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.adapters.telephony import sip_directory
from ivr.core.sip_accounts import SipAccount, digest_ha1
from ivr.devstack.sipp import dial_as_agent, message_counts, register
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.settings import Settings
from tests.stack_support import ivr_cli, private_stack, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "Right2026pass"
MAX_FAILURES = 3
BLOCK_S = 8  # the ami role's guard lifts a block after this


@pytest.fixture(scope="module")
def sip_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("sip-stack")
    guard = {"sip_max_failures": MAX_FAILURES, "sip_failure_window_s": 60, "sip_block_s": BLOCK_S}
    with private_stack(base, "tsip", "sip-stack-logs", sim_agents=False, asterisk=guard) as stack:
        yield stack


def agent(username: str, password: str = PASSWORD, enabled: bool = True) -> SipAccount:
    return SipAccount(username, digest_ha1(username, "hotline", password), "坐席", enabled)


def attempt(
    settings: Settings, username: str, password: str, ip: str, transport: str = "udp"
) -> dict[str, int]:
    """One REGISTER with digest from ``ip``: how many 200, 401 and 403 came back."""
    inst = asterisk_instance(settings)
    result = register(
        settings.asterisk.root,
        inst.base / "sipp" / f"register-{os.getpid()}",
        target=f"127.0.0.1:{settings.asterisk.sip_port}",
        username=username,
        password=password,
        transport=transport,
        local_ip=ip,
    )
    counts = message_counts(result)
    assert result.returncode == 0, result.stderr_tail
    return {code: counts.get(f"{code}_Recv", 0) for code in ("200", "401", "403")}


def contacts(settings: Settings, username: str) -> list[str]:
    return [r.contact for r in sip_directory.registrations(settings) if r.username == username]


def test_given_a_synced_account_then_it_registers_with_digest_and_is_listed(
    sip_stack: Stack,
) -> None:
    s = sip_stack.settings
    started = time.monotonic()
    sip_directory.sync_accounts(s, [agent("1001")])
    assert attempt(s, "1001", PASSWORD, "127.0.0.3") == {"200": 1, "401": 1, "403": 0}
    assert time.monotonic() - started < 2.0  # no reload: the next REGISTER finds it
    wait_for(lambda: any("127.0.0.3" in c for c in contacts(s, "1001")), 2, "the contact listed")
    (reg,) = [r for r in sip_directory.registrations(s) if "127.0.0.3" in r.contact]
    assert reg.user_agent == "sipp-agent-phone"
    assert reg.since is not None and reg.expires is not None and reg.since < reg.expires
    desk, browser = (endpoint_settings(s, name) for name in ("1001", "1001-webrtc"))
    # the desk phones' endpoint: plain RTP; the browser's: webrtc=yes as Asterisk applied it
    # (DTLS-SRTP with its own certificate, ICE, AVPF); both on the account's one auth
    assert desk["context"] == browser["context"] == "from-agents"
    assert desk["auth"] == browser["auth"] == "1001"
    assert desk["media_encryption"] == "no" and desk["ice_support"] == "false"
    assert browser["media_encryption"] == "dtls"
    assert browser["dtls_auto_generate_cert"] == "Yes"
    assert browser["ice_support"] == "true" and browser["use_avpf"] == "true"
    assert desk["allow"] == browser["allow"] == "(alaw|ulaw)"


def endpoint_settings(settings: Settings, name: str) -> dict[str, str]:
    """``pjsip show endpoint NAME`` as Asterisk applied it: option -> value."""
    shown = asterisk_instance(settings).rx(f"pjsip show endpoint {name}")
    return {
        parts[0]: parts[1]
        for line in shown.splitlines()
        if len(parts := [p.strip() for p in line.split(" : ", 1)]) == 2
    }


def test_given_a_wrong_password_then_401_and_no_registration(sip_stack: Stack) -> None:
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1001")])
    # Asterisk answers a wrong digest with a new challenge (401), not 403
    assert attempt(s, "1001", "Wrong2026pass", "127.0.0.4") == {"200": 0, "401": 2, "403": 0}
    time.sleep(1.5)  # Asterisk commits astdb within a second
    assert not any("127.0.0.4" in c for c in contacts(s, "1001"))
    log = asterisk_instance(s).messages_log.read_text(errors="replace")
    assert "failed for '127.0.0.4" in log and "Failed to authenticate" in log


def test_given_tcp_then_the_phone_registers_too(sip_stack: Stack) -> None:
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1001")])
    assert attempt(s, "1001", PASSWORD, "127.0.0.5", "tcp") == {"200": 1, "401": 1, "403": 0}
    log = asterisk_instance(s).messages_log.read_text(errors="replace")
    # the contact lives as long as its connection: sipp closes it, Asterisk removes it
    assert "Added contact 'sip:1001@127.0.0.5" in log and "transport=TCP" in log


def test_given_a_third_device_then_the_oldest_contact_is_replaced(sip_stack: Stack) -> None:
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1002")])
    for ip in ("127.0.0.11", "127.0.0.12", "127.0.0.13"):
        assert attempt(s, "1002", PASSWORD, ip)["200"] == 1
        time.sleep(1.1)  # Asterisk replaces the contact closest to expiry (whole seconds)

    def two_newest() -> bool:
        found = contacts(s, "1002")
        return len(found) == 2 and not any("127.0.0.11:" in c for c in found)

    wait_for(two_newest, 3, "two contacts, the first device's replaced")


def test_given_an_account_disabled_then_refused_within_2_s_and_its_contacts_gone(
    sip_stack: Stack,
) -> None:
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1003")])
    assert attempt(s, "1003", PASSWORD, "127.0.0.6")["200"] == 1
    wait_for(lambda: contacts(s, "1003"), 2, "the contact listed")
    started = time.monotonic()
    result = sip_directory.sync_accounts(s, [agent("1003", enabled=False)])
    assert result.removed == ("1003",) and result.contacts_dropped == 1
    assert contacts(s, "1003") == []
    inst = asterisk_instance(s)
    for kind in ("endpoint", "aor"):  # nothing left to call: Dial(PJSIP/1003) finds nothing
        assert "Unable to find object 1003" in inst.rx(f"pjsip show {kind} 1003")
    assert attempt(s, "1003", PASSWORD, "127.0.0.6") == {"200": 0, "401": 2, "403": 0}
    assert time.monotonic() - started < 2.0
    sip_directory.sync_accounts(s, [agent("1003")])  # enabled again: at once
    assert attempt(s, "1003", PASSWORD, "127.0.0.6")["200"] == 1


def _upgrade(host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: sip\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096)


def test_the_websocket_transport_answers_an_upgrade_on_loopback_only(sip_stack: Stack) -> None:
    port = sip_stack.settings.asterisk.http_port
    answer = _upgrade("127.0.0.1", port)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
    assert b"sec-websocket-protocol: sip" in answer.lower()
    with pytest.raises(ConnectionRefusedError):
        _upgrade("127.0.0.2", port)  # bound to 127.0.0.1, not to every address


async def test_given_repeated_failures_from_an_address_then_the_ami_role_blocks_it(
    sip_stack: Stack,
) -> None:
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1004")])
    for n in range(MAX_FAILURES):
        counts = await asyncio.to_thread(attempt, s, "1004", f"Wrong{n}pass", "127.0.0.9")
        assert counts["200"] == 0

    def blocked() -> sip_directory.AddressState | None:
        found = [x for x in sip_directory.address_states(s) if x.address == "127.0.0.9"]
        return found[0] if found and found[0].blocked_until is not None else None

    state = wait_for(blocked, 3, "the ami role's guard blocking 127.0.0.9")
    assert state.failures == MAX_FAILURES  # once per attempt, though each sends several events
    # the right password from the blocked address: refused outright, no challenge
    right = await asyncio.to_thread(attempt, s, "1004", PASSWORD, "127.0.0.9")
    assert right == {"200": 0, "401": 0, "403": 1}
    other = await asyncio.to_thread(attempt, s, "1004", PASSWORD, "127.0.0.10")
    assert other["200"] == 1  # another address is not affected
    # an unknown account counts as well, once per attempt
    await asyncio.to_thread(attempt, s, "9999", "Nobody12", "127.0.0.14")

    def unknown_counted() -> sip_directory.AddressState | None:
        found = [x for x in sip_directory.address_states(s) if x.address == "127.0.0.14"]
        return found[0] if found else None

    unknown = wait_for(unknown_counted, 3, "the unknown account's failure counted")
    assert unknown.failures == 1 and unknown.blocked_until is None
    # the block ends: the role's sweep lifts it once its time is up
    wait_for(lambda: blocked() is None, BLOCK_S + 3, "the block lifted")
    again = await asyncio.to_thread(attempt, s, "1004", PASSWORD, "127.0.0.9")
    assert again["200"] == 1


def test_the_directory_is_for_asterisk_and_the_service_only(sip_stack: Stack) -> None:
    path = sip_directory.directory_file(sip_stack.settings)
    for made in (path.parent, path, sip_directory.astdb_file(sip_stack.settings)):
        assert made.stat().st_mode & 0o007 == 0, made
    assert Path(path.parent).stat().st_mode & 0o2000  # set-group-ID: files keep the group


@pytest.mark.parametrize("number", ["95158", "96777", "13800138000", "1001", "desk-nowhere"])
def test_an_agents_phone_reaches_no_trunk_no_hotline_and_no_unknown_target(
    sip_stack: Stack, number: str
) -> None:
    """[from-agents] has neither the trunk nor the hotline flow: a number that is not an
    agent of the SIP directory (1001 is not, here) nor an existing desk queue is refused."""
    s = sip_stack.settings
    sip_directory.sync_accounts(s, [agent("1005")])
    inst = asterisk_instance(s)
    result = dial_as_agent(
        s.asterisk.root,
        inst.base / "sipp" / f"dial-{os.getpid()}",
        target=f"127.0.0.1:{s.asterisk.sip_port}",
        username="1005",
        password=PASSWORD,
        number=number,
        local_ip="127.0.0.15",
    )
    counts = message_counts(result)
    assert result.returncode == 0, result.stderr_tail
    assert counts.get("401_Recv") == 1 and counts.get("200_Recv", 0) == 0, counts
    refused = sum(counts.get(f"{code}_Recv", 0) for code in (403, 404, 480, 503, 603))
    assert refused == 1, counts
    log = inst.messages_log.read_text(errors="replace")
    refusal = (
        "[desk-nowhere@from-agents:7] Hangup"
        if number.startswith("desk-")
        else ("[s@agent-dial:5] Hangup")
    )
    assert f"Executing [{number}@from-agents:1] Set" in log and f"Executing {refusal}" in log


def test_given_an_agent_added_and_disabled_by_the_cli_then_the_ami_role_applies_it(
    sip_stack: Stack,
) -> None:
    """The whole path: SQL (ivr agents) -> the ami role's sync -> Asterisk, within 2 s."""
    s = sip_stack.settings
    added = ivr_cli(s, "agents", "add", "2001", "--name", "李四", "--desk", "repair:0", "--json")
    assert added.returncode == 0, added.stderr
    password = json.loads(added.stdout)["sip_password"]
    started = time.monotonic()
    inst = asterisk_instance(s)
    wait_for(lambda: "Unable to find" not in inst.rx("pjsip show endpoint 2001"), 2, "the endpoint")
    assert time.monotonic() - started < 2.0
    assert attempt(s, "2001", password, "127.0.0.21")["200"] == 1
    listed = ivr_cli(s, "agents", "list")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("2001")]
    assert "127.0.0.21" in row and "sipp-agent-phone" in row
    # a wrong password from another address is counted and shown under the agents
    attempt(s, "2001", "WrongPass1", "127.0.0.22")
    shown = wait_for(
        lambda: "127.0.0.22" in (out := ivr_cli(s, "agents", "list").stdout) and out, 3, "counted"
    )
    assert "failed SIP logins" in shown
    disabled = ivr_cli(s, "agents", "disable", "2001")
    assert disabled.returncode == 0, disabled.stderr
    started = time.monotonic()
    wait_for(lambda: contacts(s, "2001") == [], 2, "the registration dropped")
    assert attempt(s, "2001", password, "127.0.0.21")["200"] == 0
    assert time.monotonic() - started < 2.5
