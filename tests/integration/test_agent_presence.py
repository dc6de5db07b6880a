"""Agents' login, pause and resume on the real Asterisk: from the CLI (the API and the CLI share
the store), and from the phone's feature codes; the ami role keeps the queues in step with
SQL, also across an Asterisk restart and an ami-role restart."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from ivr.devstack.sipp import dial_as_agent, message_counts
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.settings import Settings
from tests.stack_support import ami_session, ivr_cli, private_stack, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def presence_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("presence")
    with private_stack(base, "pres", "presence-logs", sim_agents=False) as stack:
        yield stack


async def _members(settings: Settings) -> dict[tuple[str, str], dict[str, str]]:
    async with ami_session(settings) as client:
        entries = await client.send_list_action("QueueStatus", timeout=10)
    return {
        (e.get("Queue") or "", e.get("Location") or ""): e.to_dict()
        for e in entries
        if e.event == "QueueMember"
    }


def members_of(settings: Settings, work_number: str) -> dict[str, dict[str, str]]:
    """The agent's memberships as Asterisk holds them, by queue."""
    held = asyncio.run(_members(settings))
    return {q: m for (q, where), m in held.items() if where == f"PJSIP/{work_number}"}


def _add(settings: Settings, work_number: str, *desks: str) -> str:
    args = [f"--desk={d}" for d in desks]
    done = ivr_cli(settings, "agents", "add", work_number, "--name", "王五", *args, "--json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["sip_password"])


def _until(settings: Settings, work_number: str, check: Any, what: str) -> dict[str, Any]:
    def held() -> dict[str, Any] | None:
        found = members_of(settings, work_number)
        return found if check(found) else None

    found: dict[str, Any] = wait_for(held, 3, what)
    return found


def test_login_pause_resume_logout_from_the_cli_reach_the_queues(presence_stack: Stack) -> None:
    s = presence_stack.settings
    _add(s, "3001", "repair:0", "billing:2")
    assert members_of(s, "3001") == {}  # added, not logged in
    assert ivr_cli(s, "agents", "login", "3001").returncode == 0
    held = _until(s, "3001", lambda m: len(m) == 2, "3001 in its desks' queues")
    assert {q: (m["Name"], m["Penalty"], m["Paused"]) for q, m in held.items()} == {
        "repair": ("3001 王五", "0", "0"),
        "billing": ("3001 王五", "2", "0"),
    }
    paused = ivr_cli(s, "agents", "pause", "3001", "--reason", "培训")
    assert paused.returncode == 0 and "培训" in paused.stdout, paused.stderr
    held = _until(s, "3001", lambda m: all(x["Paused"] == "1" for x in m.values()), "paused")
    assert {m["PausedReason"] for m in held.values()} == {"培训"}
    assert ivr_cli(s, "agents", "resume", "3001").returncode == 0
    _until(s, "3001", lambda m: m and all(x["Paused"] == "0" for x in m.values()), "resumed")
    assert ivr_cli(s, "agents", "logout", "3001").returncode == 0
    wait_for(lambda: members_of(s, "3001") == {}, 3, "3001 out of every queue")
    history = json.loads(ivr_cli(s, "agents", "history", "3001", "--json").stdout)
    assert [h["action"] for h in history] == ["add", "login", "pause", "resume", "logout"]


def test_given_bad_presence_requests_then_clear_answers_and_nothing_changes(
    presence_stack: Stack,
) -> None:
    s = presence_stack.settings
    _add(s, "3002", "repair:0")
    refused = ivr_cli(s, "agents", "pause", "3002", "--reason", "小休")
    assert refused.returncode == 1 and "log in before pausing" in refused.stderr
    unknown = ivr_cli(s, "agents", "login", "9999")
    assert unknown.returncode == 1 and "9999" in unknown.stderr
    assert members_of(s, "3002") == {}


def test_given_asterisk_or_the_ami_role_restarted_then_the_same_membership_and_pause(
    presence_stack: Stack,
) -> None:
    s = presence_stack.settings
    _add(s, "3003", "consultation:1")
    assert ivr_cli(s, "agents", "login", "3003").returncode == 0
    assert ivr_cli(s, "agents", "pause", "3003", "--reason", "会议").returncode == 0
    before = _until(s, "3003", lambda m: m and m["consultation"]["Paused"] == "1", "paused")
    presence_stack.restart_role("asterisk")  # its queues start empty
    after = _until(s, "3003", lambda m: "consultation" in m, "3003 back after the restart")
    keep = ("Name", "Penalty", "Paused", "PausedReason")
    assert {k: after["consultation"][k] for k in keep} == {
        k: before["consultation"][k] for k in keep
    }
    presence_stack.restart_role("ami")
    held = members_of(s, "3003")
    assert {k: held["consultation"][k] for k in keep} == {
        k: before["consultation"][k] for k in keep
    }


def test_feature_codes_from_an_agents_phone_log_it_in_and_pause_it(
    presence_stack: Stack,
) -> None:
    s = presence_stack.settings
    password = _add(s, "3004", "repair:0")
    wait_for(
        lambda: "Unable to find" not in asterisk_instance(s).rx("pjsip show endpoint 3004"),
        3,
        "3004's endpoint",
    )

    def dial(number: str) -> dict[str, int]:
        inst = asterisk_instance(s)
        result = dial_as_agent(
            s.asterisk.root,
            inst.base / "sipp" / f"feature-{os.getpid()}",
            target=f"127.0.0.1:{s.asterisk.sip_port}",
            username="3004",
            password=password,
            number=number,
            local_ip="127.0.0.31",
        )
        assert result.returncode == 0, result.stderr_tail
        return message_counts(result)

    assert dial("*21").get("200_Recv", 0) >= 1  # answered: the result is played
    held = _until(s, "3004", lambda m: "repair" in m, "3004 logged in by *21")
    assert held["repair"]["Paused"] == "0"
    dial("*232")
    held = _until(s, "3004", lambda m: m.get("repair", {}).get("Paused") == "1", "*232")
    assert held["repair"]["PausedReason"] == "培训"
    dial("*24")
    _until(s, "3004", lambda m: m.get("repair", {}).get("Paused") == "0", "*24 resumed")
    dial("*22")
    wait_for(lambda: members_of(s, "3004") == {}, 3, "*22 logged out")
    history = json.loads(ivr_cli(s, "agents", "history", "3004", "--json").stdout)
    assert [h["actor"] for h in history[1:]] == ["phone:3004"] * 4


async def _originate(settings: Settings, channel: str) -> str:
    fields = {"Channel": channel, "Application": "Wait", "Data": "1", "Timeout": "5000"}
    async with ami_session(settings, "actions") as client:
        reply = await client.send_action("Originate", fields, timeout=15)
    return f"{reply.response}: {reply.get('Message')}"


def test_given_a_feature_code_from_the_trunk_then_no_such_number(presence_stack: Stack) -> None:
    s = presence_stack.settings
    _add(s, "3005", "repair:0")
    answer = asyncio.run(_originate(s, "Local/*21@from-pstn"))
    assert answer.startswith("Error"), answer  # [from-pstn] takes digits only
    assert members_of(s, "3005") == {}
    history = json.loads(ivr_cli(s, "agents", "history", "3005", "--json").stdout)
    assert [h["action"] for h in history] == ["add"]
