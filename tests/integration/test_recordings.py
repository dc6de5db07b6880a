"""Call recordings: real calls through Asterisk catalogued by the recorder role; the recorder
itself on prepared monitor directories (empty, corrupt, unfinished, crashed, late facts);
retention; the operator commands."""

from __future__ import annotations

import asyncio
import audioop
import hashlib
import json
import os
import signal
import statistics
import struct
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from ivr import cli_recordings, redis_keys
from ivr.adapters.processes import pid_alive
from ivr.adapters.recordings.audio_convert import to_mp3
from ivr.adapters.recordings.recorder import UNREADABLE, Recorder, apply_retention
from ivr.adapters.sql.db import (
    Recording,
    RecordingStatus,
    SttJob,
    Ticket,
    VoiceMessage,
    settings_engine,
)
from ivr.adapters.sql.schema import upgrade
from ivr.adapters.telephony.originate import place_call
from ivr.cli import build_parser
from ivr.core.recording_meta import CallFacts, recording_stem
from ivr.devstack.sipp import PCAP_DIR, run_caller
from ivr.devstack.stack import asterisk_instance
from ivr.logging_setup import mask_number
from ivr.settings import RecordingsSettings, Settings

pytestmark = pytest.mark.integration

EMERGENCY_DID = "96777"
FRAME = 160  # 20 ms at 8 kHz: the envelope's resolution


# --- helpers -------------------------------------------------------------------------------
@pytest.fixture
def engine(settings):
    engine = settings_engine(settings)
    yield engine
    engine.dispose()


def _recording(engine, **where) -> Recording | None:
    with Session(engine) as session:
        query = select(Recording)
        for name, value in where.items():
            query = query.where(getattr(Recording, name) == value)
        return session.scalars(query).first()


def _channels(path: Path) -> tuple[bytes, bytes, Any]:
    with wave.open(str(path)) as w:
        params = w.getparams()
        data = w.readframes(w.getnframes())
    return audioop.tomono(data, 2, 1, 0), audioop.tomono(data, 2, 0, 1), params


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
    return (
        sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True)) / (var_a * var_b) ** 0.5
    )


def _best_match(haystack: list[int], needle: list[int], lags: range) -> tuple[float, int]:
    return max((_correlation(haystack[lag:], needle), lag) for lag in lags)


def _second_by_second(haystack: list[int], needle: list[int]) -> list[float]:
    """How well each second of ``needle`` is found in ``haystack``, 0-1.5 s later.

    Each second is aligned on its own: when sipp's RTP stalls on a busy machine, the rest of
    the caller's audio lands later in the file (a 300 ms SIGSTOP of sipp moves it by ~16
    frames and takes a whole-call correlation from 0.95 to 0.6-0.7).
    """
    second = 8000 // FRAME
    return [
        max(
            _correlation(haystack[start + lag :], needle[start : start + second])
            for lag in range(75)
        )
        for start in range(0, len(needle) - second // 2, second)
    ]


def _pcap_speech(root: Path) -> bytes:
    """The caller's audio: the A-law RTP payloads of sipp's g711a.pcap, as 16-bit PCM."""
    blob = (root / PCAP_DIR.relative_to("/") / "g711a.pcap").read_bytes()
    pos, pcm = 24, bytearray()
    while pos + 16 <= len(blob):
        size = struct.unpack_from("<I", blob, pos + 8)[0]
        packet = blob[pos + 16 : pos + 16 + size]
        pcm += audioop.alaw2lin(packet[14 + 20 + 8 + 12 :], 2)  # Ethernet, IPv4, UDP, RTP
        pos += 16 + size
    return bytes(pcm)


def _agent_prompt(root: Path) -> bytes:
    """hello-world, which the simulated agent plays once connected."""
    path = next(root.glob("usr/share/asterisk/sounds/*/hello-world.wav"))
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        return w.readframes(w.getnframes())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mixmonitor_starts(settings: Settings, channel: str) -> int:
    log = asterisk_instance(settings).messages_log.read_text(errors="replace")
    return sum(1 for line in log.splitlines() if f'] MixMonitor("{channel}"' in line)


# --- real calls through the stack ----------------------------------------------------------
def test_given_sip_caller_through_menu_to_desk_then_stereo_file_caller_left_agent_right(
    settings, engine, redis_client, wait_for
):
    inst = asterisk_instance(settings)
    caller = "13912340001"
    result = run_caller(
        settings.asterisk.root,
        inst.base / "sipp" / "recorded-caller",
        target=f"127.0.0.1:{settings.asterisk.sip_port}",
        did="95158",
        caller_id=caller,
        digits="1",  # repair; the simulated agent answers after 1 s and plays hello-world
        digits_after_s=11,
        hold_s=60,
    )
    assert (result.total, result.successful, result.failed) == (1, 1, 0), result.stderr_tail
    # Swept every second: catalogued while the stack runs (the measured delay: README).
    rec = wait_for(lambda: _recording(engine, caller=caller), 10, "the call in the catalog")

    newchannel = [
        fields
        for _, fields in redis_client.xrange(redis_keys.AMI_EVENTS, "-", "+")
        if fields.get("Event") == "Newchannel" and fields.get("Linkedid") == rec.linkedid
    ]
    assert [e["CallerIDNum"] for e in newchannel][:1] == [mask_number(caller)]  # stored masked
    assert rec.uniqueid == rec.linkedid  # the SIP caller's own channel
    assert (rec.did, rec.caller, rec.caller_reversed) == ("95158", caller, caller[::-1])
    assert (rec.category, rec.desk, rec.queue) == ("repair", "repair", "repair")
    assert rec.agent == "Local/agent@sim-agents/n"
    assert rec.account is None and rec.emergency is False and rec.voice_message_id is None
    assert (rec.status, rec.status_detail) == (RecordingStatus.ok, None)
    assert 0.9 <= rec.wait_s <= 3.0
    assert rec.started_at <= rec.answered_at < rec.ended_at
    assert 12.0 < rec.duration_s < 40.0
    call_s = (rec.ended_at - rec.answered_at).total_seconds()
    assert rec.duration_s == pytest.approx(call_s, abs=0.002)

    path = settings.recordings_dir / rec.file_name
    assert rec.file_name == recording_stem(rec.linkedid, rec.started_at) + ".wav"
    assert rec.size_bytes == path.stat().st_size and rec.sha256 == _sha256(path)
    left, right, params = _channels(path)
    assert (params.nchannels, params.framerate, params.sampwidth) == (2, 8000, 2)
    assert rec.audio_s == pytest.approx(params.nframes / 8000, abs=0.001)
    assert 5.0 < rec.audio_s <= rec.duration_s + 0.1  # MixMonitor's file is shorter

    # The caller's pcap audio on the left, from the answer on.
    left_env, right_env = _envelope(left), _envelope(right)
    speech = _envelope(_pcap_speech(settings.asterisk.root))
    left_match = _second_by_second(left_env, speech)
    assert statistics.median(left_match) > 0.8, left_match
    assert sum(m > 0.8 for m in left_match) >= len(left_match) - 2, left_match
    right_match = _second_by_second(right_env, speech)  # not mixed into the right
    assert statistics.median(right_match) < 0.6, right_match
    # The agent's hello-world on the right, at the end, while the caller is silent.
    prompt = _envelope(_agent_prompt(settings.asterisk.root))
    lags = range(max(0, len(right_env) - 300), len(right_env) - len(prompt) + 1)
    match, lag = _best_match(right_env, prompt, lags)
    assert match > 0.9, match
    heard = slice(lag, lag + len(prompt))
    assert sum(right_env[heard]) / len(prompt) > 1000
    assert sum(left_env[heard]) / len(prompt) < 50

    leftovers = list(inst.monitor_dir.glob(f"{rec.uniqueid}*"))
    assert leftovers == []


async def test_given_emergency_did_then_recorded_once_with_emergency_facts(
    settings, engine, wait_for
):
    report = await place_call(settings, did=EMERGENCY_DID, caller="13800138020", hold_s=10)
    rec = await asyncio.to_thread(
        wait_for, lambda: _recording(engine, linkedid=report.linkedid), 10, "the emergency call"
    )
    assert rec.uniqueid == f"{report.linkedid}-2"
    assert (rec.did, rec.caller, rec.emergency) == (EMERGENCY_DID, "13800138020", True)
    assert (rec.category, rec.desk, rec.queue) == ("emergency", "emergency", "emergency")
    assert rec.agent == "Local/agent@sim-agents/n" and 0.9 <= rec.wait_s <= 3.0
    assert rec.status is RecordingStatus.ok and rec.audio_s > 1.0
    hotline_side = next(c for c in report.channels if c.endswith(";2") and "from-pstn" in c)
    assert _mixmonitor_starts(settings, hotline_side) == 1


async def test_given_menu_emergency_key_then_one_recording_from_the_answer(
    settings, engine, wait_for
):
    report = await place_call(settings, did="95158", caller="13800138021", keys=["9"])
    assert report.queue == "emergency"
    rec = await asyncio.to_thread(
        wait_for, lambda: _recording(engine, linkedid=report.linkedid), 10, "the call"
    )
    assert (rec.did, rec.emergency, rec.category, rec.queue) == (
        "95158", True, "emergency", "emergency"
    )  # fmt: skip
    hotline_side = next(c for c in report.channels if c.endswith(";2") and "from-pstn" in c)
    assert _mixmonitor_starts(settings, hotline_side) == 1  # [emergency] did not record again
    assert rec.audio_s > 8.0  # greeting, notice and menu included: recorded from the answer


async def test_given_voice_message_call_then_recorded_and_linked_to_its_message(
    settings, engine, wait_for
):
    report = await place_call(
        settings, did="95158", caller="13800138022", keys=["3", "1"], speak_s=3.0
    )  # complaints is closed today in the test stack: a message after the beep
    assert report.variables.get("IVR_REASON") == "message"
    rec = await asyncio.to_thread(
        wait_for, lambda: _recording(engine, linkedid=report.linkedid), 15, "the call"
    )
    with Session(engine) as session:
        message = session.scalars(
            select(VoiceMessage).where(VoiceMessage.uniqueid == rec.uniqueid)
        ).one()
    assert rec.voice_message_id == message.id
    assert (rec.desk, rec.category, rec.agent, rec.wait_s) == (
        "complaints", "complaints", None, None
    )  # fmt: skip
    assert rec.status is RecordingStatus.ok
    left, _, _ = _channels(settings.recordings_dir / rec.file_name)
    assert max(_envelope(left)) > 500  # the caller speaking their message

    # catalogued with its ticket and two transcription jobs (the call, the message); the
    # session stack has no model installed, so they wait in the queue saying so
    with Session(engine) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.linkedid == rec.linkedid)).one()
        assert (ticket.recording_id, ticket.voice_message_id) == (rec.id, message.id)
        assert (ticket.desk, ticket.caller) == ("complaints", "13800138022")

    def jobs() -> dict[str, str]:
        with Session(engine) as session:
            rows = session.scalars(
                select(SttJob).where(
                    (SttJob.recording_id == rec.id) | (SttJob.voice_message_id == message.id)
                )
            ).all()
            return {row.source_key: row.status.value for row in rows}

    waiting = {f"recording:{rec.id}": "no model", f"voice_message:{message.id}": "no model"}
    await asyncio.to_thread(wait_for, lambda: jobs() == waiting, 20, "jobs waiting: no model")


async def test_given_process_agi_voice_message_then_the_recorder_keeps_it_with_its_ticket(
    stack, settings, engine, wait_for
):
    """The process AGI has no SQL: the message named in the facts is saved by the recorder
    once the grace for a FastAGI save is over (30 s by default)."""
    inst = asterisk_instance(settings)
    inst.rx("dialplan set global IVR_AGI_MODE process")
    try:
        report = await place_call(
            settings, did="95158", caller="13800138024", keys=["3", "1"], speak_s=3.0
        )
    finally:
        inst.rx("dialplan set global IVR_AGI_MODE fastagi")
    assert report.agi_routes == [f"{inst.app_inner}/inbound-agi"]
    assert report.variables.get("IVR_REASON") == "message"
    grace = settings.recordings.facts_grace_s
    rec = await asyncio.to_thread(
        wait_for, lambda: _recording(engine, linkedid=report.linkedid), grace + 15, "the call"
    )
    with Session(engine) as session:
        message = session.get(VoiceMessage, rec.voice_message_id)
        assert message is not None and message.uniqueid == rec.uniqueid
        assert message.file_name == report.variables["IVR_MESSAGE"] + ".wav"
        assert (inst.messages_dir / message.file_name).stat().st_size > 0
        assert (message.desk, message.caller, message.complete) == (
            "complaints", "13800138024", True
        )  # fmt: skip
        assert message.duration_s == float(report.variables["IVR_MESSAGE_S"])
        ticket = session.scalars(select(Ticket).where(Ticket.linkedid == rec.linkedid)).one()
        assert (ticket.recording_id, ticket.voice_message_id) == (rec.id, message.id)
        jobs = session.scalars(select(SttJob).where(SttJob.voice_message_id == message.id)).all()
        assert len(jobs) == 1
    log = Path(stack.running()["recorder"].log).read_text(errors="replace")
    assert "voice message kept from the call's facts" in log


async def test_given_recorder_stopped_when_call_ends_then_catalogued_after_restart(
    stack, settings, engine, wait_for
):
    role = stack.running()["recorder"]
    os.kill(role.pid, signal.SIGTERM)
    try:
        await asyncio.to_thread(wait_for, lambda: not pid_alive(role.pid), 15, "SIGTERM")
        report = await place_call(settings, did=EMERGENCY_DID, caller="13800138023", hold_s=10)
        done = asterisk_instance(settings).monitor_dir / f"{report.linkedid}-2.done"
        await asyncio.to_thread(wait_for, done.exists, 5, "the end-of-call marker")
        await asyncio.sleep(1.5)  # longer than a scan interval: nobody catalogues it
        assert _recording(engine, linkedid=report.linkedid) is None
    finally:
        await asyncio.to_thread(stack.restart_role, "recorder")
    log = Path(role.log).read_text()
    assert '"msg": "recorder stopped"' in log  # a clean exit on SIGTERM
    rec = await asyncio.to_thread(
        wait_for, lambda: _recording(engine, linkedid=report.linkedid), 10, "the sweeper"
    )
    assert rec.status is RecordingStatus.ok and rec.emergency
    assert not done.exists()


# --- the recorder on prepared monitor directories -------------------------------------------
T0 = 1_790_000_000.0  # 2026-09-21: facts' times in the prepared calls


def _tone(seconds: float, hz: float, amplitude: int = 8000) -> bytes:
    import math

    n = int(seconds * 8000)
    return b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )


def _leg(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)


def _facts(name: str, *, linkedid: str | None = None, start: float = T0, **extra: str) -> str:
    fields = {
        "v": "1", "linkedid": linkedid or name, "uniqueid": name, "did": "95158",
        "caller": "13800138000", "category": "repair", "queue": "repair",
        "agent": "PJSIP%2Fagent1", "started": f"{start:.3f}", "answered": f"{start + 0.01:.3f}",
        "queued": f"{start + 10:.3f}", "connected": f"{start + 12.5:.3f}",
        "ended": f"{start + 40:.3f}", "reason": "menu",
    } | extra  # fmt: skip
    return "&".join(f"{k}={v}" for k, v in fields.items()) + "&end=1"


TONE = "tone"  # a leg as MixMonitor writes it: the caller 2 s of 440 Hz, the agent 3 s of 1 kHz


def _call(
    monitor: Path,
    name: str,
    *,
    caller: bytes | str | None = TONE,
    agent: bytes | str | None = TONE,
    facts: str | None = None,
    no_facts: bool = False,
    done: bool = True,
) -> None:
    """Files of one call as Asterisk leaves them: legs (TONE, bytes as they are, or None for
    no file), the facts line (default: a normal one), the end-of-call marker."""
    monitor.mkdir(parents=True, exist_ok=True)
    for suffix, blob, hz, seconds in (
        ("-caller.wav", caller, 440, 2.0),
        ("-agent.wav", agent, 1000, 3.0),
    ):
        if blob == TONE:
            _leg(monitor / f"{name}{suffix}", _tone(seconds, hz))
        elif isinstance(blob, bytes):
            (monitor / f"{name}{suffix}").write_bytes(blob)
    if not no_facts:
        (monitor / f"{name}.call").write_text(facts or _facts(name))
    if done:
        (monitor / f"{name}.done").touch()


def _age(monitor: Path, name: str, seconds: float) -> None:
    when = time.time() - seconds
    for path in monitor.glob(f"{name}*"):
        os.utime(path, (when, when))


@pytest.fixture
def lab(tmp_path):
    """Settings, engine and monitor directory of a recorder on its own (no Asterisk)."""
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    settings = Settings(
        run_dir=tmp_path / "run",
        recordings=RecordingsSettings(
            monitor_dir=monitor, incomplete_after_s=60.0, facts_grace_s=5.0
        ),
    )
    engine = settings_engine(settings)
    upgrade(engine)
    yield settings, engine, monitor
    engine.dispose()


def _rows(engine) -> list[Recording]:
    with Session(engine) as session:
        return list(session.scalars(select(Recording).order_by(Recording.id)))


def test_given_legs_of_different_lengths_then_padded_stereo_and_facts(lab):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000000.1")
    [rec] = Recorder(settings, engine).sweep_once()
    assert list(monitor.iterdir()) == []
    assert (rec.status, rec.status_detail) == (RecordingStatus.ok, None)
    assert rec.started_at == datetime.fromtimestamp(T0, UTC)
    assert (rec.wait_s, rec.duration_s, rec.audio_s) == (2.5, 39.99, 3.0)
    assert (rec.desk, rec.agent, rec.caller_reversed) == ("repair", "PJSIP/agent1", "00083100831")
    left, right, params = _channels(settings.recordings_dir / rec.file_name)
    assert params.nframes == 24000  # the agent's 3 s; the caller's 2 s padded with silence
    assert audioop.rms(left[: 2 * 16000], 2) > 5000 and audioop.rms(left[2 * 16000 :], 2) == 0
    assert audioop.rms(right, 2) > 5000
    assert left[:16000] == _tone(2.0, 440)[:16000] and right[:16000] == _tone(3.0, 1000)[:16000]
    assert rec.sha256 == _sha256(settings.recordings_dir / rec.file_name)


def test_given_zero_length_and_corrupt_legs_then_listed_with_status_and_nothing_lost(lab, capsys):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000000.2", agent=None)  # one leg missing
    _call(monitor, "pbx-1790000000.3", caller=b"", agent=b"")  # zero-length legs
    garbage = b"\x00\x01garbage" * 50
    _call(monitor, "pbx-1790000000.4", caller=garbage)  # the caller's leg undecodable
    good_agent = (monitor / "pbx-1790000000.4-agent.wav").read_bytes()
    rows = {r.uniqueid: r for r in Recorder(settings, engine).sweep_once()}
    assert list(monitor.iterdir()) == []

    one_leg = rows["pbx-1790000000.2"]
    assert one_leg.status is RecordingStatus.ok and one_leg.status_detail == "agent leg missing"
    assert _channels(settings.recordings_dir / one_leg.file_name)[2].nframes == 16000

    empty = rows["pbx-1790000000.3"]
    assert (empty.status, empty.file_name, empty.size_bytes) == (RecordingStatus.empty, None, None)
    assert empty.status_detail == "caller leg empty (0 bytes); agent leg empty (0 bytes)"

    corrupt = rows["pbx-1790000000.4"]
    stem = recording_stem(corrupt.linkedid, corrupt.started_at)
    assert (corrupt.status, corrupt.file_name) == (RecordingStatus.corrupt, None)
    assert corrupt.status_detail == (
        "caller leg cannot be decoded: not a RIFF/WAVE file; "
        f"legs kept in {UNREADABLE}/{stem}-*.wav"
    )
    kept = settings.recordings_dir / UNREADABLE
    assert (kept / f"{stem}-caller.wav").read_bytes() == garbage
    assert (kept / f"{stem}-agent.wav").read_bytes() == good_agent

    args = build_parser().parse_args(["recordings", "list", "--json"])
    assert cli_recordings.run(settings, args) == 0
    listed = {r["uniqueid"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["pbx-1790000000.3"]["status"] == "empty"
    assert listed["pbx-1790000000.4"]["status"] == "corrupt"
    assert listed["pbx-1790000000.4"]["status_detail"].startswith("caller leg cannot be decoded")
    assert listed["pbx-1790000000.4"]["caller"] == "138******00"  # masked by default
    args = build_parser().parse_args(["recordings", "list", "--status", "corrupt"])
    assert cli_recordings.run(settings, args) == 0
    text = capsys.readouterr().out
    assert "corrupt" in text and "138******00" in text and "13800138000" not in text
    assert len(text.strip().splitlines()) == 1


def test_given_legs_without_end_marker_then_wait_and_later_incomplete_but_playable(lab):
    settings, engine, monitor = lab
    leg = monitor.parent / "leg.wav"
    _leg(leg, _tone(2.0, 440))
    unfinished = leg.read_bytes()[:40] + b"\x00\x00\x00\x00" + leg.read_bytes()[44:]
    _call(monitor, "pbx-1790000000.5", caller=unfinished, no_facts=True, done=False)
    recorder = Recorder(settings, engine)
    assert recorder.sweep_once() == [] and recorder.waiting == 1  # may still be recording
    _age(monitor, "pbx-1790000000.5", 120)  # nothing written for longer than 60 s
    [rec] = recorder.sweep_once()
    assert rec.status is RecordingStatus.incomplete and rec.linkedid == "pbx-1790000000.5"
    assert rec.status_detail == (
        "caller leg header unfinished: read to the end of the file; no end-of-call marker: "
        "Asterisk stopped mid-call?; no facts file: times estimated from the files"
    )
    assert rec.audio_s == 3.0 and (settings.recordings_dir / rec.file_name).exists()
    estimated = time.time() - 120 - 3.0
    assert abs(rec.started_at.timestamp() - estimated) < 5
    assert rec.ended_at > rec.started_at and rec.duration_s is None


def test_given_crash_between_commit_and_cleanup_when_swept_again_then_no_duplicate(lab):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000000.6")
    _call(monitor, "pbx-1790000000.7", agent=b"not a wav at all")
    saved = {p.name: p.read_bytes() for p in monitor.iterdir()}
    first = Recorder(settings, engine).sweep_once()
    assert len(first) == 2
    ok = next(r for r in first if r.status is RecordingStatus.ok)
    digest = _sha256(settings.recordings_dir / ok.file_name)
    for name, blob in saved.items():  # the files as they were before the cleanup
        (monitor / name).write_bytes(blob)
    assert Recorder(settings, engine).sweep_once() == []
    assert list(monitor.iterdir()) == []
    assert [r.uniqueid for r in _rows(engine)] == ["pbx-1790000000.6", "pbx-1790000000.7"]
    assert _sha256(settings.recordings_dir / ok.file_name) == digest
    corrupt = next(r for r in first if r.status is RecordingStatus.corrupt)
    stem = recording_stem(corrupt.linkedid, corrupt.started_at)
    kept = settings.recordings_dir / UNREADABLE / f"{stem}-agent.wav"
    assert kept.read_bytes() == b"not a wav at all"  # moved aside again, never deleted


def test_given_facts_late_or_voice_message_late_then_waits_at_most_the_grace(lab):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000000.8", no_facts=True)
    _call(monitor, "pbx-1790000000.9", facts=_facts("pbx-1790000000.9", message="m1"))
    _call(monitor, "pbx-1790000001.0", facts=_facts("pbx-1790000001.0")[: -len("&end=1")])
    # Hung up inside the call flow (no reason, no agent): perhaps while leaving a message.
    in_flow = _facts("pbx-1790000001.6", reason="", agent="", connected="")
    _call(monitor, "pbx-1790000001.6", facts=in_flow)
    recorder = Recorder(settings, engine)
    assert recorder.sweep_once() == [] and recorder.waiting == 4
    with Session(engine) as session:
        for uniqueid in ("pbx-1790000000.9", "pbx-1790000001.6"):
            session.add(
                VoiceMessage(uniqueid=uniqueid, did="95158", caller="13800138000",
                             desk="complaints", category="complaints", language="zh",
                             file_name=f"{uniqueid}.wav", duration_s=3.0, complete=True)
            )  # fmt: skip
        session.commit()
    linked = {r.uniqueid: r for r in recorder.sweep_once()}
    assert set(linked) == {"pbx-1790000000.9", "pbx-1790000001.6"}
    assert all(r.voice_message_id is not None for r in linked.values())
    _age(monitor, "pbx-1790000000.8", 6)
    _age(monitor, "pbx-1790000001.0", 6)
    late = {r.uniqueid: r for r in recorder.sweep_once()}
    assert late["pbx-1790000000.8"].status_detail == (
        "no facts file: times estimated from the files"
    )
    assert late["pbx-1790000000.8"].caller == "" and late["pbx-1790000000.8"].did == ""
    cut = late["pbx-1790000001.0"]
    assert cut.status_detail == "no end=1: the line was cut short" and cut.caller == "13800138000"


def test_given_message_nobody_saved_when_grace_over_then_kept_from_the_facts(lab):
    """The process AGI (no SQL in Asterisk's root) names the message in IVR_MESSAGE only."""
    settings, engine, monitor = lab
    name = "pbx-1790000002.0"
    facts = _facts(
        name, category="complaints", queue="", agent="", queued="", connected="",
        reason="message", language="zh", message=f"complaints-{name}", message_s="4",
    )  # fmt: skip
    _call(monitor, name, facts=facts)
    recorder = Recorder(settings, engine)
    assert recorder.sweep_once() == [] and recorder.waiting == 1  # the FastAGI may save it
    _age(monitor, name, 6)
    [rec] = recorder.sweep_once()
    with Session(engine) as session:
        message = session.scalars(select(VoiceMessage)).one()
        assert rec.voice_message_id == message.id
        assert (message.uniqueid, message.did, message.caller) == (name, "95158", "13800138000")
        assert (message.desk, message.category, message.language) == (
            "complaints", "complaints", "zh"
        )  # fmt: skip
        assert (message.file_name, message.duration_s, message.complete) == (
            f"complaints-{name}.wav", 4.0, True
        )  # fmt: skip
        assert message.recorded_at == datetime.fromtimestamp(T0 + 40, UTC)
    assert (rec.status, rec.status_detail) == (RecordingStatus.ok, None)
    # A name that is no file name is not trusted: the call is kept, no message made up.
    bad = "pbx-1790000002.1"
    _call(monitor, bad, facts=_facts(bad, reason="message", message="..%2Fetc%2Fpasswd"))
    _age(monitor, bad, 6)
    [kept] = recorder.sweep_once()
    assert kept.voice_message_id is None
    assert kept.status_detail == "message: not a file name: ../etc/passwd"


def test_given_on_catalogued_then_inside_the_transaction_and_a_failure_keeps_the_call(lab):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000001.1")
    seen: list[tuple[bool, int | None]] = []
    after: list[int] = []

    def failing(session: Session, rec: Recording, facts: CallFacts | None) -> None:
        raise RuntimeError("ticket store down")

    recorder = Recorder(settings, engine, on_catalogued=failing)
    assert recorder.sweep_once() == [] and recorder.waiting == 1
    assert _rows(engine) == [] and len(list(monitor.iterdir())) == 4  # nothing lost

    def hook(session: Session, rec: Recording, facts: CallFacts | None) -> None:
        seen.append((session.in_transaction(), rec.id))

        def committed(_: Session) -> None:
            with Session(engine) as other:  # visible to everyone once committed
                after.append(other.scalar(select(func.count(Recording.id))))

        event.listen(session, "after_commit", committed, once=True)

    recorder.on_catalogued = hook
    assert recorder.sweep_once() == []  # backing off after the failure
    time.sleep(1.1)
    [rec] = recorder.sweep_once()
    assert seen == [(True, rec.id)] and after == [1]
    assert list(monitor.iterdir()) == []


def test_given_second_recorded_channel_of_one_call_then_kept_as_its_own_row(lab):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000001.2", facts=_facts("pbx-1790000001.2", linkedid="L7"))
    recorder = Recorder(settings, engine)
    [first] = recorder.sweep_once()
    _call(monitor, "pbx-1790000001.3", facts=_facts("pbx-1790000001.3", linkedid="L7"))
    [second] = recorder.sweep_once()
    assert (first.linkedid, first.uniqueid) == ("L7", "pbx-1790000001.2")
    assert (second.linkedid, second.uniqueid) == ("L7+pbx-1790000001.3", "pbx-1790000001.3")
    assert list(monitor.iterdir()) == []


def test_given_old_recordings_when_retention_then_files_gone_rows_marked_deleted(lab, capsys):
    settings, engine, monitor = lab
    old = time.time() - 400 * 86400
    _call(monitor, "old-ok", facts=_facts("old-ok", start=old))
    _call(monitor, "old-bad", caller=b"junk" * 10, facts=_facts("old-bad", start=old))
    _call(monitor, "old-empty", caller=None, agent=None, facts=_facts("old-empty", start=old))
    _call(monitor, "new-ok", facts=_facts("new-ok", start=time.time() - 86400))
    rows = {r.uniqueid: r for r in Recorder(settings, engine).sweep_once()}
    files = settings.recordings_dir
    old_file = files / rows["old-ok"].file_name
    kept = list((files / UNREADABLE).rglob("*.wav"))
    assert old_file.exists() and len(kept) == 2
    # a QA download made an mp3 of the old call: it goes with the recording
    mp3 = to_mp3(old_file, settings.conversion_dir, digest=rows["old-ok"].sha256)
    assert mp3.stat().st_size > 0

    decoy = settings.run_dir / "outside.wav"  # a row pointing outside the recordings dir
    decoy.write_bytes(b"keep me")
    with Session(engine) as session:
        tampered = session.get(Recording, rows["new-ok"].id)
        tampered.started_at = datetime.now(UTC) - timedelta(days=500)
        tampered.file_name = "../outside.wav"
        session.commit()

    result = apply_retention(settings, engine, days=365)
    assert (result.rows, result.files, result.missing, result.failed) == (2, 4, 0, 1)
    assert not old_file.exists() and not any(p.exists() for p in kept) and not mp3.exists()
    assert decoy.read_bytes() == b"keep me"
    after = {r.uniqueid: r for r in _rows(engine)}
    for name in ("old-ok", "old-bad"):
        assert after[name].status is RecordingStatus.deleted
        assert after[name].deleted_at is not None and after[name].file_name is None
        assert after[name].status_detail.startswith("deleted by retention (365 days)")
    assert after["old-empty"].status is RecordingStatus.empty  # it had no file to delete
    assert after["new-ok"].status is RecordingStatus.ok  # refused: left as it was

    args = build_parser().parse_args(["recordings", "retention", "--days", "365", "--json"])
    assert cli_recordings.run(settings, args) == 1  # the tampered row still fails
    doc = json.loads(capsys.readouterr().out)
    assert (doc["rows"], doc["failed"]) == (0, 1)


def test_given_sweep_command_then_same_code_catalogues_and_reports(lab, capsys):
    settings, engine, monitor = lab
    _call(monitor, "pbx-1790000001.4")
    _call(monitor, "pbx-1790000001.5", caller=b"x" * 10)
    args = build_parser().parse_args(["recordings", "sweep"])
    assert cli_recordings.run(settings, args) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 call(s) catalogued (corrupt 1, ok 1); 0 still recording")
    assert cli_recordings.run(settings, args) == 0  # a re-run finds nothing to do
    assert capsys.readouterr().out.startswith("0 call(s) catalogued; 0 still recording")
