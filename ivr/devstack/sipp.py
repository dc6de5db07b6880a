"""Drive SIP calls with sipp 3.8 inside the Debian sid root (see scripts/build-asterisk-root).

Two scenarios live in the repository's ``sipp/`` directory as ``string.Template`` files:

* ``caller.xml``, a resident calling the hotline (UAC): it speaks (``g711a.pcap``), presses
  keys (``dtmf_2833_<key>.pcap``, RFC 2833 payload 101) and waits for the hotline's BYE,
  or hangs up itself after a hold time. Run it with :func:`run_caller`.
* ``agent.xml``, an agent's phone (UAS) on its own port: rings, answers with PCMA, speaks,
  and hangs up unless the PBX does first; a CANCEL while ringing is a normal ending. Run it
  with :func:`start_agent` and :func:`stop_agent`.

Each run renders its scenario into a work directory inside the root and starts
``chroot ROOT sh -c 'cd WORKDIR && exec sipp …'``, so sipp writes its files there:

* ``stats.csv`` (``-trace_stat -stf stats.csv``): the statistics, one row per ``-fd`` period
  and a final row written when sipp exits. :class:`SippResult` comes from that last row:
  ``TotalCallCreated``, ``SuccessfulCall(C)``, ``FailedCall(C)`` and ``CurrentCall``.
* ``errors.log`` (``-trace_err``): unexpected messages, and one line per ``ontimeout`` jump,
  which the scenarios use as timed waits (these lines are not failures).
* ``screen.log`` (``-trace_screen``): the final screens, per-message counts included.
* ``<scenario>_<pid>_counts.csv`` (``-trace_counts``): per-message counts, see
  :func:`message_counts`.
* ``sipp.stderr``: sipp's standard error; :attr:`SippResult.stderr_tail` is its end.

sipp's exit status is in :attr:`SippResult.returncode`: 0 when every call succeeded, 1 when
some failed, 255 on ``-timeout_error`` or a fatal error, 254 when it could not bind.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import math
import os
import re
import shlex
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ivr.errors import StackError

logger = logging.getLogger(__name__)

SIPP_BIN = "/usr/bin/sipp"  # inside the root
PCAP_DIR = PurePosixPath("/usr/share/sip-tester")  # Debian's RTP pcaps, inside the root
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "sipp"  # the repository's sipp/

LOCAL_IP = "127.0.0.1"
SPEECH_MS = 7200  # g711a.pcap lasts 7.05 s
DIGIT_PCAPS: dict[str, str] = {d: f"dtmf_2833_{d}.pcap" for d in "0123456789"} | {
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}

_USER_PART = re.compile(r"[0-9A-Za-z+._-]{1,64}")
_DIALLED = re.compile(r"[0-9A-Za-z+._*-]{1,64}")  # a number an agent dials: feature codes *21
_TARGET = re.compile(r"[0-9A-Za-z.-]+:[0-9]{1,5}")
_OUTPUT_GLOBS = ("stats.csv", "errors.log", "screen.log", "sipp.stderr", "*_counts.csv")
_STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class SippResult:
    """How a sipp run ended, from the final row of its ``stats.csv``.

    ``total`` is the number of calls sipp created; ``failed`` is sipp's ``FailedCall`` plus
    the calls still open when it stopped (a ``-timeout`` or a hard stop), so that
    ``successful + failed == total``.
    """

    total: int
    successful: int
    failed: int
    returncode: int
    workdir: Path  # on the host
    stderr_tail: str


class AgentProcess(subprocess.Popen[bytes]):
    """A running agent UAS; remembers its work directory for :func:`stop_agent`."""

    workdir: Path


def run_caller(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    target: str,
    did: str,
    caller_id: str = "13800138000",
    digits: str = "",
    calls: int = 1,
    concurrency: int = 1,
    rate_per_s: float = 10.0,
    hold_s: float = 10.0,
    local_port: int = 0,
    timeout_s: float = 120.0,
    digit_interval_s: float = 0.5,
    digits_after_s: float = SPEECH_MS / 1000,
    local_ip: str = LOCAL_IP,
    speak_after_keys: int = 0,
) -> SippResult:
    """Place ``calls`` calls to ``did`` at ``target`` ("127.0.0.1:<sip_port>") and wait.

    Each call speaks (g711a.pcap, 7.05 s) and, ``digits_after_s`` seconds after the answer
    (at least the speech, default 7.2 s), presses ``digits`` one every ``digit_interval_s`` s,
    speaks again ``speak_after_keys`` times in a row (to the queue, then to the agent), then
    waits up to ``hold_s`` seconds for the hotline's BYE before hanging up itself.
    At most ``concurrency`` calls are open at once, started at ``rate_per_s`` per second.
    ``local_port`` 0 picks a free UDP port; ``local_ip`` is the caller's own address, on
    the loopback network only (127.x.y.z: a second caller address for allow-list tests).
    sipp stops after ``timeout_s`` seconds whatever happens (``-timeout``,
    ``-timeout_error``).
    """
    if not set(digits) <= DIGIT_PCAPS.keys():
        raise ValueError(f"digits must be 0-9, * or #: {digits!r}")
    for name, value in (("did", did), ("caller_id", caller_id)):
        if not _USER_PART.fullmatch(value):
            raise ValueError(f"{name} must be 1-64 of 0-9 A-Z a-z + . _ -: {value!r}")
    if not _TARGET.fullmatch(target):
        raise ValueError(f"target must be host:port: {target!r}")
    if calls < 1 or concurrency < 1:
        raise ValueError("calls and concurrency must be at least 1")
    if rate_per_s <= 0 or timeout_s <= 0 or hold_s < 0 or digit_interval_s < 0.2:
        raise ValueError(
            "rate_per_s and timeout_s must be positive, hold_s not negative, "
            "digit_interval_s at least 0.2 (a key press lasts 0.14 s)"
        )
    if not 0 <= local_port <= 65535:
        raise ValueError(f"local_port out of range: {local_port}")
    if not ipaddress.ip_address(local_ip).is_loopback:
        raise ValueError(f"local_ip must be a loopback address (127.x.y.z): {local_ip!r}")
    if not 0 <= speak_after_keys <= 100:
        raise ValueError(f"speak_after_keys must be 0 to 100: {speak_after_keys}")

    workdir = _prepare(root, workdir_inner)
    _render(
        "caller.xml",
        workdir,
        speech_ms=str(max(SPEECH_MS, round(digits_after_s * 1000))),
        digits=_digit_block(digits, round(digit_interval_s * 1000))
        + _speech_block(speak_after_keys),
        hold_ms=str(max(1, round(hold_s * 1000))),  # a timeout of 0 would mean none
    )
    port = local_port or _free_udp_port()
    args = [
        target,
        "-sf", "caller.xml",
        "-s", did,
        "-key", "caller_id", caller_id,
        "-p", str(port),
        "-m", str(calls),
        "-l", str(concurrency),
        "-r", f"{rate_per_s:g}",
        "-timeout", f"{math.ceil(timeout_s * 1000)}ms",
        "-timeout_error",
        *_common_args(local_ip),
    ]  # fmt: skip
    command = _chroot_command(root, workdir_inner, args)
    with (workdir / "sipp.stderr").open("wb") as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode = proc.wait(timeout=timeout_s + 15.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
    return _result(workdir, returncode)


def register(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    target: str,
    username: str,
    password: str,
    transport: str = "udp",
    local_ip: str = LOCAL_IP,
    user_agent: str = "sipp-agent-phone",
    expires_s: int = 600,
    timeout_s: float = 10.0,
) -> SippResult:
    """Register ``username`` at ``target`` with digest authentication, once (``register.xml``).

    ``transport`` is ``udp`` or ``tcp``. The run always ends as a "successful call"; what
    Asterisk answered is in :func:`message_counts`: ``200_Recv`` registered, ``401_Recv``
    (2 when the digest was refused) and ``403_Recv`` refused."""
    if not _USER_PART.fullmatch(username) or not password.isalnum():
        raise ValueError("username: 1-64 of 0-9 A-Z a-z + . _ -; password: letters and digits")
    if not _TARGET.fullmatch(target):
        raise ValueError(f"target must be host:port: {target!r}")
    if transport not in ("udp", "tcp"):
        raise ValueError(f"transport must be udp or tcp: {transport!r}")
    if not _USER_PART.fullmatch(user_agent.replace(" ", "-")) or expires_s < 0:
        raise ValueError("user_agent: 1-64 of 0-9 A-Z a-z + . _ - and spaces; expires_s >= 0")
    if not ipaddress.ip_address(local_ip).is_loopback:
        raise ValueError(f"local_ip must be a loopback address (127.x.y.z): {local_ip!r}")
    workdir = _prepare(root, workdir_inner)
    _render(
        "register.xml", workdir, password=password, expires=str(expires_s), user_agent=user_agent
    )
    args = [
        target,
        "-sf", "register.xml",
        "-s", username,
        "-t", "u1" if transport == "udp" else "t1",
        "-p", str(_free_udp_port()),  # sipp's default (5060) may be anyone's
        "-m", "1",
        "-timeout", f"{math.ceil(timeout_s * 1000)}ms",
        "-timeout_error",
        *_common_args(local_ip),
    ]  # fmt: skip
    return _run_once(root, workdir_inner, workdir, args, timeout_s)


def dial_as_agent(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    target: str,
    username: str,
    password: str,
    number: str,
    local_ip: str = LOCAL_IP,
    timeout_s: float = 15.0,
) -> SippResult:
    """Call ``number`` from agent ``username``'s phone, with digest authentication, once
    (``agent_dial.xml``). Asterisk's answer is in :func:`message_counts`: ``200_Recv``
    (answered, hung up at once), ``403_Recv``, ``404_Recv`` …"""
    if not _USER_PART.fullmatch(username):
        raise ValueError(f"username must be 1-64 of 0-9 A-Z a-z + . _ -: {username!r}")
    if not _DIALLED.fullmatch(number):
        raise ValueError(f"number must be 1-64 of 0-9 A-Z a-z + . _ - *: {number!r}")
    if not password.isalnum() or not _TARGET.fullmatch(target):
        raise ValueError("password: letters and digits; target: host:port")
    if not ipaddress.ip_address(local_ip).is_loopback:
        raise ValueError(f"local_ip must be a loopback address (127.x.y.z): {local_ip!r}")
    workdir = _prepare(root, workdir_inner)
    _render("agent_dial.xml", workdir, password=password, username=username)
    args = [
        target,
        "-sf", "agent_dial.xml",
        "-s", number,
        "-p", str(_free_udp_port()),
        "-m", "1",
        "-timeout", f"{math.ceil(timeout_s * 1000)}ms",
        "-timeout_error",
        *_common_args(local_ip),
    ]  # fmt: skip
    return _run_once(root, workdir_inner, workdir, args, timeout_s)


def phone_command(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    target: str,
    username: str,
    password: str,
    ring_s: float = 2.0,
    speak_after_s: float = 7.0,
    talk_s: float = 60.0,
    expires_s: int = 120,
    local_ip: str = LOCAL_IP,
    local_port: int = 0,
    user_agent: str = "sipp-agent-phone",
    run_as: tuple[int, int] | None = None,
) -> list[str]:
    """The command of an agent's registered phone (``agent-phone.xml``), rendered and ready.

    The phone registers ``username`` at ``target`` with digest authentication and registers
    again every ``expires_s / 2`` seconds, for as long as it runs; each call it gets rings
    ``ring_s`` seconds, is answered with PCMA, and the agent speaks ``speak_after_s`` after
    the answer (once the whisper and the caller's announcement are over: ``g711a.pcap``,
    7.05 s, once), then stays on until the PBX hangs up, or hangs up ``talk_s`` later. The
    calls (and Asterisk's qualify OPTIONS) go to ``agent-phone-call.xml``, sipp's out-of-call
    scenario on the same socket. A refused registration (403, or 401 to the digest: a wrong
    password) stops sipp at once; :func:`phone_result` then says why. ``local_port``: the
    phone's SIP port on ``local_ip`` (0: a free one), so its contact is known in advance.
    ``run_as`` (uid, gid): sipp runs as them, not as root (the dev stack's phones).
    Start it with :func:`start_phone` or as a detached process (the dev stack's roles)."""
    if not _USER_PART.fullmatch(username) or not password.isalnum():
        raise ValueError("username: 1-64 of 0-9 A-Z a-z + . _ -; password: letters and digits")
    if not _TARGET.fullmatch(target):
        raise ValueError(f"target must be host:port: {target!r}")
    if min(ring_s, speak_after_s, talk_s) < 0 or expires_s < 60:
        raise ValueError("ring_s, speak_after_s, talk_s must not be negative; expires_s >= 60")
    if not _USER_PART.fullmatch(user_agent.replace(" ", "-")):
        raise ValueError("user_agent: 1-64 of 0-9 A-Z a-z + . _ - and spaces")
    if not ipaddress.ip_address(local_ip).is_loopback:
        raise ValueError(f"local_ip must be a loopback address (127.x.y.z): {local_ip!r}")
    workdir = _prepare(root, workdir_inner)
    _render(
        "agent-phone.xml",
        workdir,
        password=password,
        expires=str(expires_s),
        refresh_ms=str(expires_s * 1000 // 2),
        user_agent=user_agent,
    )
    _render(
        "agent-phone-call.xml",
        workdir,
        ring_ms=str(max(1, round(ring_s * 1000))),
        speak_after_ms=str(max(1, round(speak_after_s * 1000))),
        talk_ms=str(max(1, round(talk_s * 1000))),
    )
    args = [
        target,
        "-sf", "agent-phone.xml",
        "-oocsf", "agent-phone-call.xml",
        "-s", username,
        "-p", str(local_port or _free_udp_port()),
        "-m", "1",
        *_common_args(local_ip),
    ]  # fmt: skip
    if run_as is not None:  # sipp writes its counts and logs there as that user
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, *run_as, follow_symlinks=False)
    return _chroot_command(root, workdir_inner, args, run_as)


def start_phone(
    root: Path, workdir_inner: PurePosixPath, **options: Any
) -> subprocess.Popen[bytes]:
    """Start an agent's registered phone (:func:`phone_command`'s ``options``); it runs
    until :func:`stop_agent`, which then counts its calls."""
    command = phone_command(root, workdir_inner, **options)
    workdir = root / workdir_inner.relative_to("/")
    with (workdir / "sipp.stderr").open("wb") as err:
        proc = AgentProcess(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip
    proc.workdir = workdir
    return proc


def phone_result(workdir: Path) -> str:
    """What a phone's counts say about its registration, in words (for ``ivr up``)."""
    counts = _counts(workdir)
    if counts.get("403_Recv"):
        return "Asterisk refused it (403: the address is blocked)"
    if counts.get("401_Recv", 0) >= 2 and not counts.get("200_Recv"):
        return "Asterisk refused its password (401 to the digest): wrong password or realm"
    if counts.get("200_Recv"):
        return "it registered, then stopped"
    if counts.get("REGISTER_Sent") or counts.get("REGISTER_Timeout"):
        return "Asterisk did not answer its REGISTER"
    return "sipp did not start"


def start_agent(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    port: int,
    ring_s: float = 0.5,
    talk_s: float = 3.0,
    max_run_s: float = 3600.0,
) -> subprocess.Popen[bytes]:
    """Start an agent phone (UAS) on 127.0.0.1:``port``; it runs until :func:`stop_agent`.

    Every INVITE rings for ``ring_s`` seconds, is answered with PCMA, and the agent hangs up
    after ``talk_s`` seconds unless the PBX does first. sipp ends by itself after
    ``max_run_s`` seconds (``-timeout``), so a forgotten agent does not live forever.
    Returns once sipp has bound the port.
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    if ring_s < 0 or talk_s < 0 or max_run_s <= 0:
        raise ValueError("ring_s and talk_s must not be negative, max_run_s must be positive")
    if not _udp_port_free(port):
        raise StackError(f"UDP port 127.0.0.1:{port} is already in use", port=port)

    workdir = _prepare(root, workdir_inner)
    _render(
        "agent.xml",
        workdir,
        ring_ms=str(max(1, round(ring_s * 1000))),
        talk_ms=str(max(1, round(talk_s * 1000))),
    )
    return _start_uas(root, workdir_inner, workdir, "agent", port, max_run_s)


RESIDENT_MODES = ("answer", "busy", "reject", "ring")


def start_resident(
    root: Path,
    workdir_inner: PurePosixPath,
    *,
    port: int,
    mode: str = "answer",
    keys: tuple[tuple[float, str], ...] = (),
    ring_s: float = 0.5,
    talk_s: float = 20.0,
    max_run_s: float = 3600.0,
    speak: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the resident a 回访 call reaches (``sipp/resident.xml``, UAS) on
    127.0.0.1:``port``, the outbound trunk's address; it runs until :func:`stop_agent`.

    Every INVITE rings ``ring_s`` seconds, then per ``mode``: ``answer`` (PCMA; then each
    ``(after_s, key)`` of ``keys``: waits ``after_s`` seconds and presses the key, RFC 2833;
    then stays ``talk_s`` seconds unless the PBX hangs up first; ``speak``: the resident says
    ``g711a.pcap``, 7.05 s, once, right after the answer, while the keys' waits run),
    ``busy`` (486), ``reject`` (403: a trunk refusing every call) or ``ring`` (until the PBX
    gives up: no answer).
    Debian's DTMF pcaps carry fixed RTP sequence numbers and timestamps, so Asterisk may take
    a later key for a repeat of an earlier one and drop it: a key pressed twice is heard once,
    and so is 1 after 2 (measured); 1 then 2, and 2 then 3, are both heard.
    """
    if mode not in RESIDENT_MODES:
        raise ValueError(f"mode must be one of {', '.join(RESIDENT_MODES)}: {mode!r}")
    if any(key not in DIGIT_PCAPS or after < 0 for after, key in keys):
        raise ValueError(f"keys must be (seconds >= 0, one of 0-9 * #): {keys!r}")
    if not _udp_port_free(port):
        raise StackError(f"UDP port 127.0.0.1:{port} is already in use", port=port)
    workdir = _prepare(root, workdir_inner)
    _render(
        "resident.xml",
        workdir,
        ring_ms=str(max(1, round(ring_s * 1000))),
        answer=_resident_block(mode, keys, max(1, round(talk_s * 1000)), speak=speak),
    )
    return _start_uas(root, workdir_inner, workdir, "resident", port, max_run_s)


def _start_uas(
    root: Path, workdir_inner: PurePosixPath, workdir: Path, scenario: str, port: int,
    max_run_s: float,
) -> AgentProcess:  # fmt: skip
    """Start the rendered ``<scenario>.xml`` (a UAS) on 127.0.0.1:``port``; returns once it
    listens, or stops it and raises :class:`StackError` with the tail of its stderr."""
    args = [
        "-sf", f"{scenario}.xml",
        "-p", str(port),
        "-timeout", f"{math.ceil(max_run_s * 1000)}ms",
        *_common_args(),
    ]  # fmt: skip
    command = _chroot_command(root, workdir_inner, args)
    with (workdir / "sipp.stderr").open("wb") as err:
        proc = AgentProcess(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip
    proc.workdir = workdir
    deadline = time.monotonic() + 10.0
    while _udp_port_free(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise StackError(
                f"sipp {scenario} did not start on port {port}:\n{_tail(workdir / 'sipp.stderr')}",
                port=port,
                returncode=proc.returncode,
            )
        time.sleep(0.05)
    return proc


_REFUSALS = {"busy": "486 Busy Here", "reject": "403 Forbidden"}


def _resident_block(
    mode: str, keys: tuple[tuple[float, str], ...], talk_ms: int, *, speak: bool = False
) -> str:
    """The scenario's part after the ringing, per mode (see :func:`start_resident`)."""
    if mode == "ring":
        return '  <recv request="CANCEL" next="cancelled"/>\n'
    if mode in _REFUSALS:
        return (
            '  <send retrans="500"><![CDATA[\n\n'
            f"      SIP/2.0 {_REFUSALS[mode]}\n      [last_Via:]\n      [last_From:]\n"
            "      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n"
            "      [last_CSeq:]\n      Content-Length: 0\n\n    ]]></send>\n"
            '  <recv request="ACK" crlf="true" next="done"/>\n'
        )
    lines = [
        '  <send retrans="500"><![CDATA[\n\n'
        "      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n"
        "      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n"
        "      [last_CSeq:]\n"
        "      Contact: <sip:resident@[local_ip]:[local_port];transport=[transport]>\n"
        "      Content-Type: application/sdp\n      Content-Length: [len]\n\n"
        "      v=0\n      o=resident 53655765 2353687637 IN IP[media_ip_type] [media_ip]\n"
        "      s=hotline resident\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n"
        "      m=audio [media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n"
        "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n"
        "      a=ptime:20\n      a=sendrecv\n\n    ]]></send>\n",
        '  <recv request="ACK" rtd="true" crlf="true"/>\n',
    ]
    if speak:
        lines.append(
            f'  <nop><action><exec play_pcap_audio="{PCAP_DIR / "g711a.pcap"}"/></action></nop>\n'
        )
    for n, (after_s, key) in enumerate(keys):
        lines.append(
            f'  <recv request="BYE" timeout="{max(1, round(after_s * 1000))}"'
            f' ontimeout="key_{n}" next="server_bye"/>\n'
            f'  <label id="key_{n}"/>\n'
            f'  <nop><action><exec play_pcap_audio="{PCAP_DIR / DIGIT_PCAPS[key]}"/>'
            "</action></nop>\n"
        )
    lines.append(
        f'  <recv request="BYE" timeout="{talk_ms}" ontimeout="hang_up" next="server_bye"/>\n'
    )
    return "".join(lines)


def stop_agent(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> SippResult:
    """Stop an agent started by :func:`start_agent` and count its calls.

    SIGUSR1 asks sipp to take no new call and exit once the open ones have ended; calls
    still open after ``timeout_s`` seconds are cut short (SIGINT, then SIGKILL) and count
    as failed.
    """
    if not isinstance(proc, AgentProcess):
        raise TypeError("stop_agent needs the process returned by start_agent")
    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode is not None
    return _result(proc.workdir, proc.returncode)


def message_counts(result: SippResult) -> dict[str, int]:
    """Per-message totals of a run, from its ``-trace_counts`` file.

    Keys are ``<message>_<what>`` summed over the scenario's steps, e.g. ``BYE_Recv`` (BYEs
    from the other side), ``BYE_Sent``, ``CANCEL_Recv``, ``487_Sent``, ``BYE_Timeout``
    (timed waits that ran out). Empty if sipp wrote no counts file.
    """
    return _counts(result.workdir)


def _counts(workdir: Path) -> dict[str, int]:
    files = sorted(workdir.glob("*_counts.csv"))
    if not files:
        return {}
    rows = list(csv.reader(files[-1].read_text().splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    totals: dict[str, int] = {}
    for column, value in zip(rows[0][2:], rows[-1][2:], strict=False):
        if not column or not value.isdigit():
            continue
        key = column.split("_", 1)[1]
        totals[key] = totals.get(key, 0) + int(value)
    return totals


# --- helpers --------------------------------------------------------------------------


def _common_args(local_ip: str = LOCAL_IP) -> list[str]:
    return [
        "-nostdin",
        "-i", local_ip,
        "-bind_local",
        "-mi", local_ip,
        "-ci", local_ip,
        "-aa",
        "-trace_stat", "-stf", "stats.csv",
        "-trace_err", "-error_file", "errors.log",
        "-trace_screen", "-screen_file", "screen.log",
        "-trace_counts",
    ]  # fmt: skip


def _run_once(
    root: Path, workdir_inner: PurePosixPath, workdir: Path, args: list[str], timeout_s: float
) -> SippResult:
    """Run one sipp scenario in the root to its end (its own ``-timeout`` plus a margin)."""
    command = _chroot_command(root, workdir_inner, args)
    with (workdir / "sipp.stderr").open("wb") as err:
        proc = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            timeout=timeout_s + 15.0, check=False,
        )  # fmt: skip
    return _result(workdir, proc.returncode)


def _chroot_command(
    root: Path,
    workdir_inner: PurePosixPath,
    args: list[str],
    run_as: tuple[int, int] | None = None,
) -> list[str]:
    """sipp in the root; ``run_as`` (uid, gid): the root's ``setpriv`` drops to them, with no
    supplementary group, before sipp starts, keeping CAP_NET_RAW alone (sipp plays an agent's
    voice from a pcap through a raw socket, which nothing else may open)."""
    script = f"cd {shlex.quote(str(workdir_inner))} && exec {SIPP_BIN} {shlex.join(args)}"
    logger.info("sipp", extra={"root": str(root), "command": script})
    drop = (
        [
            "setpriv",
            f"--reuid={run_as[0]}",
            f"--regid={run_as[1]}",
            "--clear-groups",
            "--inh-caps=+net_raw",
            "--ambient-caps=+net_raw",
        ]  # fmt: skip
        if run_as
        else []
    )
    return ["chroot", str(root), *drop, "sh", "-c", script]


def _prepare(root: Path, workdir_inner: PurePosixPath) -> Path:
    if not workdir_inner.is_absolute():
        raise ValueError(f"workdir_inner must be an absolute path inside the root: {workdir_inner}")
    if not (root / SIPP_BIN.lstrip("/")).exists():
        raise StackError(f"no sipp in {root}: run scripts/provision first", root=str(root))
    workdir = root / workdir_inner.relative_to("/")
    workdir.mkdir(parents=True, exist_ok=True)
    for pattern in _OUTPUT_GLOBS:
        for old in workdir.glob(pattern):
            old.unlink()
    return workdir


def _render(name: str, workdir: Path, **values: str) -> None:
    template = string.Template((SCENARIO_DIR / name).read_text(encoding="iso-8859-1"))
    (workdir / name).write_text(template.substitute(values), encoding="iso-8859-1")


def _digit_block(digits: str, interval_ms: int) -> str:
    """One play_pcap_audio per key, each followed by a timed wait that a BYE cuts short."""
    blocks = []
    for n, key in enumerate(digits):
        pcap = PCAP_DIR / DIGIT_PCAPS[key]
        blocks.append(
            f"  <!-- key {key} -->\n"
            f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
            f'  <recv request="BYE" timeout="{interval_ms}" ontimeout="key_{n}"'
            f' next="server_bye"/>\n'
            f'  <label id="key_{n}"/>\n'
        )
    return "".join(blocks)


def _speech_block(times: int) -> str:
    """The speech again ``times`` times in a row, each wait cut short by a BYE."""
    pcap = PCAP_DIR / "g711a.pcap"
    return "".join(
        f"  <!-- speech again, {n + 1} of {times} -->\n"
        f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        f'  <recv request="BYE" timeout="{SPEECH_MS}" ontimeout="again_{n}"'
        f' next="server_bye"/>\n'
        f'  <label id="again_{n}"/>\n'
        for n in range(times)
    )


def _result(workdir: Path, returncode: int) -> SippResult:
    stats = _final_stats(workdir / "stats.csv")
    total = stats.get("TotalCallCreated", 0)
    successful = stats.get("SuccessfulCall(C)", 0)
    failed = stats.get("FailedCall(C)", 0) + stats.get("CurrentCall", 0)
    return SippResult(
        total=total,
        successful=successful,
        failed=failed,
        returncode=returncode,
        workdir=workdir,
        stderr_tail=_tail(workdir / "sipp.stderr"),
    )


def _final_stats(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    values = lines[-1].split(";")
    return {k: int(v) for k, v in zip(header, values, strict=False) if v.isdigit()}


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    return path.read_text(errors="replace")[-_STDERR_TAIL:]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCAL_IP, 0))
        port: int = sock.getsockname()[1]
        return port


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((LOCAL_IP, port))
        except OSError:
            return False
        return True
