"""Agents' phones as real SIP user agents (sipp, ``agent-phone.xml``): agent 1001 added with
``ivr agents``, its phone registered with digest, logged in to ``repair`` with QueueAdd; a
hotline call reaches it: the caller hears the 工号 announcement, queue_log's CONNECT names
1001, and the recording has the caller on the left and, on the right, the announcement and
then the agent's voice. A wrong password: the phone never registers and stops, saying why."""

from __future__ import annotations

import asyncio
import audioop
import json
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, RecordingStatus, settings_engine
from ivr.adapters.telephony import sip_directory
from ivr.adapters.telephony.originate import place_call
from ivr.devstack.sipp import PCAP_DIR, message_counts, phone_result, start_phone, stop_agent
from ivr.devstack.stack import Stack, asterisk_instance
from ivr.errors import StackError
from ivr.settings import Settings
from tests.conftest import routing_for_tests
from tests.stack_support import ivr_cli, private_stack, wait_for
from tests.web_support import ARTIFACTS, PASSWORD, add_user, chromium, sign_in_on_page

pytestmark = pytest.mark.integration

INTRO_1001 = ["agent-intro", "digit-1", "digit-0", "digit-0", "digit-1", "agent-serving"]
FRAME = 160  # 20 ms at 8 kHz
PHONE_IP = "127.0.0.31"  # not the trunk's address (127.0.0.1), where nobody is an agent


@pytest.fixture(scope="module")
def phones_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("phones")
    routing = routing_for_tests(base / "routing")
    with private_stack(base, "phones", "phones-logs", sim_agents=False, routing_dir=routing) as st:
        yield st


def _registered(settings: Settings, username: str) -> bool:
    return any(r.username == username for r in sip_directory.registrations(settings))


def _envelope(pcm: bytes) -> list[int]:
    step = FRAME * 2
    return [audioop.rms(pcm[i : i + step], 2) for i in range(0, len(pcm) - step + 1, step)]


def _correlation(a: list[int], b: list[int]) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    mean_a, mean_b = sum(a) / n, sum(b) / n
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    if var_a == 0 or var_b == 0:
        return 0.0
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    return float(cov / (var_a * var_b) ** 0.5)


def _pcap_speech(root: Path) -> bytes:
    """The agent's voice: the A-law RTP payloads of sipp's g711a.pcap, as 16-bit PCM."""
    blob = (root / PCAP_DIR.relative_to("/") / "g711a.pcap").read_bytes()
    pos, pcm = 24, bytearray()
    while pos + 16 <= len(blob):
        size = struct.unpack_from("<I", blob, pos + 8)[0]
        packet = blob[pos + 16 : pos + 16 + size]
        pcm += audioop.alaw2lin(packet[14 + 20 + 8 + 12 :], 2)  # Ethernet, IPv4, UDP, RTP
        pos += 16 + size
    return bytes(pcm)


def _queue_log_connects(settings: Settings) -> list[list[str]]:
    lines = asterisk_instance(settings).queue_log.read_text(errors="replace").splitlines()
    return [fields for line in lines if (fields := line.split("|"))[4:5] == ["CONNECT"]]


def test_given_agent_1001_logged_in_with_a_real_phone_then_a_hotline_call_reaches_it(
    phones_stack: Stack,
) -> None:
    s = phones_stack.settings
    added = ivr_cli(s, "agents", "add", "1001", "--name", "张三", "--desk", "repair:0", "--json")
    assert added.returncode == 0, added.stderr
    password = json.loads(added.stdout)["sip_password"]
    inst = asterisk_instance(s)
    wait_for(lambda: "Unable to find" not in inst.rx("pjsip show endpoint 1001"), 3, "the endpoint")
    phone = start_phone(
        s.asterisk.root, inst.base / "sipp" / "phone-1001",
        target=f"127.0.0.1:{s.asterisk.sip_port}", username="1001", password=password,
        ring_s=1.0, talk_s=60.0, local_ip=PHONE_IP,
    )  # fmt: skip
    try:
        wait_for(lambda: _registered(s, "1001"), 5, "1001's phone registered")
        logged_in = ivr_cli(s, "agents", "login", "1001")  # the ami role adds it to repair
        assert logged_in.returncode == 0, logged_in.stderr
        # Asterisk's first qualify (OPTIONS) makes the realtime endpoint available to the queue
        wait = sip_directory.QUALIFY_S + 3
        wait_for(lambda: "(Not in use)" in inst.rx("queue show repair"), wait, "1001 available")
        report = asyncio.run(
            place_call(s, did="95158", caller="13800138701", keys=["1"], hold_s=35)
        )
        # Paused (小休): a caller waits, the phone is not rung; resumed, it is.
        paused = ivr_cli(s, "agents", "pause", "1001", "--reason", "小休")
        assert paused.returncode == 0, paused.stderr
        wait_for(lambda: "paused:小休" in inst.rx("queue show repair"), 3, "1001 paused")
        unanswered = asyncio.run(
            place_call(s, did="95158", caller="13800138702", keys=["1"], hold_s=22)
        )
        assert unanswered.queue == "repair"
        assert not unanswered.event_counts.get("AgentCalled"), unanswered.event_counts
        assert not unanswered.event_counts.get("AgentConnect")
    finally:
        counts = message_counts(stop_agent(phone, timeout_s=1.0))  # it registers for ever
    assert counts.get("401_Recv", 0) >= 1 and counts.get("200_Recv", 0) >= 1, counts  # registered

    # The caller's channel streamed the announcement once the agent answered.
    assert report.queue == "repair"
    assert report.event_counts.get("AgentCalled", 0) >= 1  # what the paused call must lack
    streamed = [c.split("/zh/", 1)[1].split(" ")[0] for c in report.agi_commands if "/zh/" in c]
    assert streamed[streamed.index("agent-intro") :] == INTRO_1001
    # queue_log names the member (log_membername_as_agent): "1001 张三"
    (connect,) = _queue_log_connects(s)  # this stack's only answered call
    assert connect[2] == "repair" and connect[3].split(" ")[0] == "1001", connect

    engine = settings_engine(s)
    try:

        def catalogued() -> Recording | None:
            with Session(engine) as session:
                query = select(Recording).where(Recording.caller == "13800138701")
                return session.scalars(query).first()

        rec = wait_for(catalogued, 10, "the call's recording in the catalog")
    finally:
        engine.dispose()
    assert rec.status == RecordingStatus.ok and rec.agent == "1001 张三"
    with wave.open(str(s.recordings_dir / rec.file_name)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        data = w.readframes(w.getnframes())
    left = _envelope(audioop.tomono(data, 2, 1, 0))
    right = _envelope(audioop.tomono(data, 2, 0, 1))
    assert sum(x > 300 for x in left) > 20 * 50  # the caller speaks (hello-world, over and over)
    # On the right, what the caller heard: the menu, silence while the phone rings and the
    # agent hears the whisper, the announcement, then the agent's voice (g711a.pcap).
    connected = next(
        i for i in range(50, len(right)) if max(right[i - 50 : i]) < 50 and right[i] > 300
    )  # the first sound after a second of silence
    intro = right[connected : connected + 2 * 50]
    assert sum(x > 300 for x in intro) > 50, intro  # the announcement, over 1 s of it
    speech = _envelope(_pcap_speech(s.asterisk.root))
    lags = range(connected, len(right) - len(speech) + 1)
    match = max(_correlation(right[lag:], speech) for lag in lags)
    assert match > 0.8, match


def test_given_a_wrong_password_then_the_phone_never_registers_and_says_why(
    phones_stack: Stack,
) -> None:
    s = phones_stack.settings
    added = ivr_cli(s, "agents", "add", "1002", "--name", "李四", "--desk", "billing:0")
    assert added.returncode == 0, added.stderr
    inst = asterisk_instance(s)
    wait_for(lambda: "Unable to find" not in inst.rx("pjsip show endpoint 1002"), 3, "the endpoint")
    phone = start_phone(
        s.asterisk.root, inst.base / "sipp" / "phone-1002",
        target=f"127.0.0.1:{s.asterisk.sip_port}", username="1002", password="Wrong2026pass",
        local_ip="127.0.0.32",
    )  # fmt: skip
    try:
        wait_for(lambda: phone.poll() is not None, 10, "the refused phone stopping")
    finally:
        result = stop_agent(phone, timeout_s=1.0)
    assert "refused its password" in phone_result(result.workdir)
    assert not _registered(s, "1002")


async def _pause_seen_on_the_page(stack: Stack, profile: Path) -> None:
    s = stack.settings
    engine = settings_engine(s)
    try:
        add_user(engine, "sup-demo", PASSWORD, "supervisor")
    finally:
        engine.dispose()
    base_url = f"http://{s.web.host}:{s.web.port}"
    row = "#agent-states tr[data-work-number='{}']"
    async with chromium(profile, viewport=(1360, 1000), timezone_id=s.metrics.timezone) as browser:
        page = await browser.new_page()
        await sign_in_on_page(page, base_url, "/supervisor", "sup-demo")
        await page.wait_for_selector(row.format("1002") + "[data-state=idle]", timeout=15_000)
        paused = await asyncio.to_thread(ivr_cli, s, "agents", "pause", "1002", "--reason", "培训")
        assert paused.returncode == 0, paused.stderr
        await page.wait_for_selector(row.format("1002") + "[data-state=paused]", timeout=5000)
        assert await page.text_content(row.format("1002") + " td.state") == "小休 paused培训"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "supervisor-demo-agents.png"), full_page=True)
    resumed = await asyncio.to_thread(ivr_cli, s, "agents", "resume", "1002")
    assert resumed.returncode == 0, resumed.stderr


def test_the_dev_stack_brings_up_two_demo_agents_with_registered_phones(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("demo")
    routing = routing_for_tests(base / "routing")
    with private_stack(
        base, "demo", "demo-logs", sim_agents=False, demo_agents=True, routing_dir=routing
    ) as stack:
        s = stack.settings
        summary = "\n".join(stack._summary("95158"))
        assert "demo agent 1001 张三 (repair, consultation)" in summary
        assert "demo agent 1002 李四 (billing, complaints, consultation, emergency)" in summary
        assert "logged in to their desks" in summary
        roles = json.loads(stack.state_file.read_text())["roles"]
        assert {"phone-1001", "phone-1002"} <= roles.keys()
        assert _registered(s, "1001") and _registered(s, "1002")
        for role in ("phone-1001", "phone-1002"):  # sipp too runs as the service user
            uids = Path(f"/proc/{roles[role]['pid']}/status").read_text().split("Uid:")[1]
            assert "0" not in uids.splitlines()[0].split(), (role, uids)
        inst = asterisk_instance(s)  # logged in by `up`: the ami role puts them in the queues
        wait_for(lambda: "1001 张三" in inst.rx("queue show repair"), 3, "1001 in repair")
        wait_for(lambda: "1002 李四" in inst.rx("queue show emergency"), 3, "1002 in emergency")
        # a pause by the service reaches Asterisk, then the supervisor page (AMI events)
        asyncio.run(_pause_seen_on_the_page(stack, tmp_path_factory.mktemp("chromium")))
        # a call reaches 1001's phone, which runs unprivileged and keeps running after it
        wait = sip_directory.QUALIFY_S + 3
        wait_for(lambda: "(Not in use)" in inst.rx("queue show repair"), wait, "1001 available")
        report = asyncio.run(
            place_call(s, did="95158", caller="13800138703", keys=["1"], hold_s=30)
        )
        assert report.event_counts.get("AgentConnect") == 1, report.event_counts
        assert {st.name: st.ok for st in stack.status()}["phone-1001"]
        for work_number in ("1001", "1002"):
            path = s.run_dir / "demo-agents" / f"{work_number}.password"
            assert path.stat().st_mode & 0o777 == 0o600
        statuses = {st.name: st for st in stack.status()}
        assert statuses["phone-1001"].ok and "registered" in statuses["phone-1001"].detail
        listed = ivr_cli(s, "agents", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        names = {a["work_number"]: a["name"] for a in json.loads(listed.stdout)}
        assert names == {"1001": "张三", "1002": "李四"}
        history = ivr_cli(s, "agents", "history", "1001", "--json")
        assert '"ivr up"' in history.stdout, history.stdout  # audited as the dev stack
        # restartable, and the same password still registers
        old = roles["phone-1001"]["pid"]
        new = stack.restart_role("phone-1001")
        assert new.pid != old and _registered(s, "1001")

        # a wrong password: `ivr up` stops, saying which phone and why
        stack.down()
        (s.run_dir / "demo-agents" / "1002.password").write_text("Wrong2026pass\n")
        again = Stack(s, sim_agents=False, demo_agents=True)
        with pytest.raises(StackError) as refused:
            again.up()
        message = refused.value.message
        assert "demo agent 1002 did not register" in message
        assert "refused its password" in message and "1002.password" in message
        assert again.running() == {}  # everything it started is stopped again
