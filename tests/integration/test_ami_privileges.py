"""AMI least privilege against the session's real Asterisk 22: no account can start a program,
each account does its job, the dialplan's globals cannot be shadowed from an Originate, and
the secrets reach only the processes that use them."""

from __future__ import annotations

import asyncio
import stat
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ivr.adapters.telephony.ami_client import AmiClient
from ivr.adapters.telephony.asterisk import FORBIDDEN_WRITE
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.protocols.ami import AmiMessage
from ivr.settings import Settings

pytestmark = pytest.mark.integration

ACCOUNTS = ("listener", "actions")


def account(settings: Settings, which: str) -> tuple[str, str]:
    if which == "listener":
        return settings.ami.username, settings.ami_secret()
    return settings.ami.actions_username, settings.ami_actions_secret()


@asynccontextmanager
async def logged_in(settings: Settings, which: str) -> AsyncIterator[AmiClient]:
    username, secret = account(settings, which)
    client = AmiClient(settings.ami, secret, username=username, events="off")
    runner = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10)
        yield client
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def marker(settings: Settings, name: str) -> tuple[Path, str]:
    """A file a successful attack would create: (its host path, its path inside the root)."""
    inst = asterisk_instance(settings)
    inner = inst.base / "spool" / f"pwned-{name}-{uuid.uuid4().hex[:8]}"
    return inst.host_path(inner), str(inner)


def test_the_generated_manager_conf_is_private_and_grants_no_forbidden_class(settings):
    inst = asterisk_instance(settings)
    conf = inst.host_path(inst.base / "etc" / "manager_generated.conf")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    sections = [line.strip("[]") for line in text.splitlines() if line.startswith("[")]
    assert sections == [settings.ami.username, settings.ami.actions_username]
    for line in text.splitlines():
        if line.startswith("write"):
            classes = {c.strip() for c in line.partition("=")[2].split(",")}
            assert not classes & FORBIDDEN_WRITE, line


@pytest.mark.parametrize("which", ACCOUNTS)
@pytest.mark.parametrize(
    ("application", "data"),
    [
        ("System", "/usr/bin/touch {marker}"),
        ("AGI", "/usr/bin/touch,{marker}"),
        ("Exec", "System(/usr/bin/touch {marker})"),
        ("TrySystem", "/usr/bin/touch {marker}"),
    ],
)
async def test_given_any_account_when_originating_a_program_then_asterisk_refuses(
    settings, which, application, data
):
    host_path, inner = marker(settings, f"{which}-{application.lower()}")
    async with logged_in(settings, which) as ami:
        reply = await ami.send_action(
            "Originate",
            {"Channel": "Local/s@caller-sim", "Application": application,
             "Data": data.format(marker=inner), "Async": "true", "Timeout": "5000",
             "Variable": ["SIM_HOLD=2"]},
            timeout=10,
        )  # fmt: skip
    assert reply.response == "Error", reply.to_dict()
    if which == "actions":  # it may originate, but not a program: it lacks `system`
        assert "Originate Access Forbidden" in (reply.get("Message") or "")
    else:  # it may not originate at all
        assert reply.get("Message") == "Permission denied"
    await asyncio.sleep(3)  # what an accepted Originate would have run by now
    assert not host_path.exists()


async def test_given_the_actions_account_when_shadowing_the_dialplans_globals_then_no_program_runs(
    stack: Stack, wait_for
):
    """An Originate may set inherited channel variables on the hotline's own half of the
    call; the dialplan reads its globals (the AGI program, its arguments, the FastAGI URL)
    with GLOBAL(), so these change nothing: the call runs the normal call flow."""
    settings = stack.settings
    shell_marker, shell_inner = marker(settings, "process-agi")
    spool_marker, spool_inner = marker(settings, "mixmonitor-command")
    linkedid = f"probe-{uuid.uuid4().hex[:12]}"
    variables = [
        "__IVR_AGI_MODE=process",  # process AGI ...
        "__IVR_PROCESS_AGI=/bin/sh",  # ... of a shell ...
        "__IVR_PROMPTS=-c",  # ... with a command line
        f"__IVR_MESSAGES=/usr/bin/touch {shell_inner}",
        "__IVR_AGI_URL=agi://127.0.0.1:9",  # elsewhere: a FastAGI server could EXEC System
        # a built-in: MixMonitor's command (a shell) names the spool through it
        f"__ASTSPOOLDIR=/tmp;/usr/bin/touch {spool_inner};",
        "SIM_HOLD=4",
    ]
    events: list[AmiMessage] = []

    async def collect(message: AmiMessage) -> None:
        if message.get("Linkedid") == linkedid:
            events.append(message)

    username, secret = account(settings, "actions")
    ami = AmiClient(settings.ami, secret, username=username, on_event=collect)
    runner = asyncio.create_task(ami.run())
    try:
        await ami.wait_connected(10)
        reply = await ami.send_action(
            "Originate",
            {"Channel": "Local/95158@from-pstn", "Context": "caller-sim", "Exten": "s",
             "Priority": "1", "CallerID": '"13800138099" <13800138099>', "ChannelId": linkedid,
             "OtherChannelId": f"{linkedid}-2", "Async": "true", "Timeout": "10000",
             "Variable": variables},
            timeout=10,
        )  # fmt: skip
        assert reply.response == "Success", reply.to_dict()  # a call into a known context

        def hung_up() -> bool:
            channels = {e.get("Channel") for e in events if e.event == "Newchannel"}
            gone = {e.get("Channel") for e in events if e.event == "Hangup"}
            return bool(channels) and channels <= gone

        await asyncio.to_thread(wait_for, hung_up, 40, "the probe call to end")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert not shell_marker.exists()
    assert not spool_marker.exists()
    agi = [e.get("Command") or "" for e in events if e.event == "AGIExecStart"]
    assert agi and agi[0] == "ANSWER"  # the FastAGI call flow ran, at its own URL
    assert any(c.startswith("STREAM FILE /srv/hotline-") and "/prompts/zh/greeting" in c
               for c in agi)  # fmt: skip


async def test_the_listener_does_its_job_and_nothing_else(settings):
    async with logged_in(settings, "listener") as ami:
        assert (await ami.send_action("Ping", timeout=5)).response == "Success"
        await ami.send_list_action("CoreShowChannels", timeout=10)  # raises on an error
        members = await ami.send_list_action("QueueStatus", timeout=10)
        assert any(m.event == "QueueParams" for m in members)
        # the agents' membership, which it keeps in step with SQL (write class agent)
        probe = {"Queue": "consultation", "Interface": "PJSIP/99999"}
        assert (await ami.send_action("QueueAdd", probe, timeout=5)).response == "Success"
        assert (await ami.send_action("QueueRemove", probe, timeout=5)).response == "Success"
        for action, fields in (
            ("Originate", {"Channel": "Local/s@caller-sim", "Application": "Wait", "Data": "1"}),
            ("PlayDTMF", {"Channel": "Local/none", "Digit": "1"}),
            ("Command", {"Command": "core show uptime"}),
            ("Reload", {"Module": "res_pjsip.so"}),
            ("UpdateConfig", {"SrcFilename": "manager.conf", "DstFilename": "manager.conf"}),
        ):
            reply = await ami.send_action(action, fields, timeout=5)
            assert (reply.response, reply.get("Message")) == ("Error", "Permission denied"), action


async def test_the_actions_account_does_its_job_and_nothing_else(settings):
    probe = {"Queue": "consultation", "Interface": "Local/probe@sim-agents/n"}
    async with logged_in(settings, "actions") as ami:
        try:
            added = await ami.send_action("QueueAdd", {**probe, "Paused": "true"}, timeout=5)
            assert added.response == "Success", added.to_dict()
            paused = await ami.send_action("QueuePause", {**probe, "Paused": "true"}, timeout=5)
            assert paused.response == "Success", paused.to_dict()
        finally:
            removed = await ami.send_action("QueueRemove", probe, timeout=5)
        assert removed.response == "Success", removed.to_dict()
        dtmf = await ami.send_action("PlayDTMF", {"Channel": "Local/none", "Digit": "1"}, timeout=5)
        assert dtmf.get("Message") == "Channel not found"  # allowed: there is no such call
        for action, fields in (
            ("Command", {"Command": "core show uptime"}),
            ("Reload", {"Module": "res_pjsip.so"}),
            ("UpdateConfig", {"SrcFilename": "manager.conf", "DstFilename": "manager.conf"}),
            ("CoreShowChannels", {}),
        ):
            reply = await ami.send_action(action, fields, timeout=5)
            assert (reply.response, reply.get("Message")) == ("Error", "Permission denied"), action


def test_each_role_process_holds_only_the_secrets_it_uses(stack: Stack):
    """/proc/<pid>/environ of every role `ivr up` started: the AMI secrets, the Redis
    passwords of other users and the operator's are not there."""
    settings = stack.settings
    listener, actions = settings.ami_secret(), settings.ami_actions_secret()
    redis_default = settings.redis_password()
    assert redis_default
    for role, record in stack.running().items():
        if role in ("redis", "asterisk"):
            continue
        environ = Path(f"/proc/{record.pid}/environ").read_bytes().decode(errors="replace")
        assert (actions in environ) == (role == "ami"), role  # its 回访 and call-back calls
        assert redis_default not in environ, role
        assert (listener in environ) == (role == "ami"), role
        assert ("IVR_REDIS__USERNAME=" in environ) == (role != "agi"), role
        if role != "agi":
            assert f"IVR_REDIS__USERNAME={role}\0" in environ, role
