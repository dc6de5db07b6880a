"""The real FastAgiServer on 127.0.0.1, driven by a small fake Asterisk (as res_agi speaks).

Like panoramisk's tests/test_fast_agi.py: the fake connects, writes an ``agi_*`` block, and
answers each command line; the tests assert on the exact lines exchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ivr.adapters.telephony.fastagi_server import AgiSession, FastAgiServer
from ivr.adapters.telephony.flow_runner import run_inbound
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.callflow import flow_config
from ivr.devstack.ports import free_port
from ivr.errors import AgiCommandError
from ivr.protocols.agi import AgiResult
from ivr.settings import FastAgiSettings

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "agi"
PROMPTS = "/srv/hotline-hotline/prompts"
# Wednesday 2026-11-25 10:00 in Asia/Shanghai: every desk is open.
OPEN_HOURS = datetime(2026, 11, 25, 2, 0, tzinfo=UTC).timestamp()
FULL_CALL = [  # the caller presses 1 (repair) at the menu
    "ANSWER",
    f"STREAM FILE {PROMPTS}/zh/greeting 9",
    f"STREAM FILE {PROMPTS}/zh/emergency-notice 9",
    f"GET DATA {PROMPTS}/zh/menu 3000 1",
    "SET VARIABLE IVR_LANGUAGE zh",
    "SET VARIABLE IVR_QUEUE repair",
    "SET VARIABLE IVR_PRIORITY 0",
    "SET VARIABLE IVR_CATEGORY repair",
    "SET VARIABLE IVR_DESK repair",
    "SET VARIABLE IVR_KEYS 1",
    "SET VARIABLE IVR_REASON menu",
    "SET VARIABLE IVR_NEXT queue",
]
# A regression that freezes the event loop (panoramisk defect 3) must fail fast, not hang.
pytestmark = pytest.mark.timeout(5)

SILENT = b""  # a reply that is never sent
CLOSE = None  # instead of replying, close the connection


def recorded(name: str = "local_inbound.agi") -> bytes:
    return (FIXTURES / name).read_bytes()


def env_block(source: str = "local_inbound.agi", **changes: str | None) -> bytes:
    """A recorded block with ``agi_<key>`` replaced (or removed when None)."""
    lines = recorded(source).decode().splitlines()
    env = dict(line.split(": ", 1) for line in lines if line)
    for key, value in changes.items():
        if value is None:
            del env[f"agi_{key}"]
        else:
            env[f"agi_{key}"] = value
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


class FakeAsterisk:
    """One channel's FastAGI connection: sends the env block, answers commands in order."""

    def __init__(
        self,
        port: int,
        env: bytes,
        replies: dict[str, bytes | None] | None = None,
        delays: dict[str, float] | None = None,
    ) -> None:
        self.port = port
        self.env = env
        self.replies = replies or {}
        self.delays = delays or {}
        self.received: list[str] = []
        self.closed_by_server = False
        self.got: dict[str, asyncio.Event] = {}

    def seen(self, prefix: str) -> asyncio.Event:
        """Set once a command starting with ``prefix`` arrived."""
        return self.got.setdefault(prefix, asyncio.Event())

    def reply_to(self, command: str) -> bytes | None:
        for prefix, reply in self.replies.items():
            if command.startswith(prefix):
                return reply
        if command.startswith("STREAM FILE"):
            return b"200 result=0 endpos=28160\n"
        if command.startswith("SET VARIABLE"):
            return b"200 result=1\n"
        if command.startswith("GET DATA"):
            return b"200 result=1\n"
        return b"200 result=0\n"

    async def call(self) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(self.env)
            await writer.drain()
            while line := await reader.readline():
                command = line.decode().rstrip("\n")
                self.received.append(command)
                for prefix, event in self.got.items():
                    if command.startswith(prefix):
                        event.set()
                for prefix, delay in self.delays.items():
                    if command.startswith(prefix):
                        await asyncio.sleep(delay)
                reply = self.reply_to(command)
                if reply is CLOSE:
                    return self.received
                writer.write(reply)
                await writer.drain()
            self.closed_by_server = True
        except ConnectionResetError:
            self.closed_by_server = True
        finally:
            await close(writer)
        return self.received


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


MakeServer = Callable[..., Awaitable[FastAgiServer]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """``await make_server(**fastagi_settings)``: a started server on a free loopback port."""
    started: list[tuple[FastAgiServer, asyncio.Server]] = []

    async def make(**overrides: Any) -> FastAgiServer:
        settings = {"port": free_port(), "header_timeout_s": 0.3, "command_timeout_s": 1.0}
        server = FastAgiServer(FastAgiSettings(**(settings | overrides)))
        started.append((server, await server.start()))
        return server

    yield make
    for server, listener in started:
        await server.drain(timeout=1.0)
        await listener.wait_closed()
    handlers = [t for t in asyncio.all_tasks() if "FastAgiServer.handler" in repr(t.get_coro())]
    if handlers:
        await asyncio.wait(handlers, timeout=1.0)


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="ivr")
    return caplog


def add_inbound(server: FastAgiServer) -> None:
    """Register the `inbound` route the way `ivr agi` (cli.run_agi) does."""
    config = flow_config(load_routing(REPO / "routing"))

    async def inbound(session: AgiSession) -> None:
        await run_inbound(session, config, clock=lambda: OPEN_HOURS)

    server.add_route("inbound", inbound)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def port(server: FastAgiServer) -> int:
    return server.settings.port


# --- (a) the inbound route, end to end ---------------------------------------------------------
@pytest.mark.parametrize("source", ["local_inbound.agi", "pjsip_inbound.agi"])
async def test_given_inbound_call_when_served_then_greeting_and_queue_variables_then_closed(
    make_server, caplog, source
):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), recorded(source))

    async with asyncio.timeout(1.5):
        received = await asterisk.call()

    assert received == FULL_CALL
    assert asterisk.closed_by_server
    assert server.counters == {"requests": 1, "failed": 0, "bad_headers": 0, "hangups": 0}
    assert server.active == set()
    assert errors(caplog) == []
    finished = [r for r in caplog.records if r.getMessage() == "call flow finished"]
    assert [(r.state, r.path) for r in finished] == [("done", "greeting>emergency_notice>menu")]


# --- (b) the caller hangs up during the greeting -----------------------------------------------
async def test_given_hangup_during_greeting_when_served_then_route_stops_without_error(
    make_server, caplog
):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(
        port(server),
        recorded(),
        replies={"STREAM FILE": b"HANGUP\n200 result=-1 endpos=4000\n"},
    )

    async with asyncio.timeout(1.5):
        received = await asterisk.call()

    assert received == FULL_CALL[:2]
    assert asterisk.closed_by_server
    assert server.counters["failed"] == 0
    assert errors(caplog) == []
    ended = [r for r in caplog.records if r.getMessage() == "call flow finished"]
    assert [r.state for r in ended] == ["hung_up"]


async def test_given_asterisk_closes_during_greeting_when_served_then_counted_as_hangup(
    make_server, caplog
):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), recorded(), replies={"STREAM FILE": CLOSE})

    async with asyncio.timeout(1.5):
        received = await asterisk.call()
        while server.active:  # the server notices the EOF after our close
            await asyncio.sleep(0.01)

    assert received == FULL_CALL[:2]
    assert errors(caplog) == []
    ended = [r for r in caplog.records if r.getMessage() == "call flow finished"]
    assert [r.state for r in ended] == ["hung_up"]


# --- (c) a silent client does not hold up anyone (panoramisk defect 3) ------------------------
async def test_given_silent_half_header_when_other_call_then_it_is_served_and_silent_dropped(
    make_server, caplog
):
    server = await make_server(header_timeout_s=0.3)
    add_inbound(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(b"agi_network: yes\nagi_network_script: inbound\n")
        started = time.monotonic()

        async with asyncio.timeout(1.5):
            received = await FakeAsterisk(port(server), recorded()).call()
            served_after = time.monotonic() - started
            bad_headers_meanwhile = server.counters["bad_headers"]
            leftover = await until_closed(reader)
        dropped_after = time.monotonic() - started
    finally:
        await close(writer)

    assert received == FULL_CALL
    assert served_after < 0.25
    assert bad_headers_meanwhile == 0
    assert leftover == b""
    assert 0.28 <= dropped_after < 1.0
    assert server.counters == {"requests": 1, "failed": 0, "bad_headers": 1, "hangups": 0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not complete after 0.3 s" in warnings[0]


# --- (d) a client that closes before the blank line --------------------------------------------
async def test_given_client_closes_before_blank_line_when_served_then_dropped_at_once(
    make_server, caplog
):
    server = await make_server(header_timeout_s=5.0)
    add_inbound(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(b"agi_network: yes\nagi_network_script: inbound\n")
        writer.write_eof()
        wall, cpu = time.monotonic(), time.process_time()

        async with asyncio.timeout(1.0):
            leftover = await until_closed(reader)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    finally:
        await close(writer)

    assert leftover == b""
    assert wall < 0.5
    assert cpu < 0.5
    assert server.counters["bad_headers"] == 1
    assert server.counters["requests"] == 0
    assert server.active == set()
    assert any("closed before the end" in m for m in caplog.messages)


# --- (e) a header bigger than header_limit_bytes -----------------------------------------------
@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"".join(b"agi_arg_%d: %s\n" % (i, b"x" * 60) for i in range(1, 40)) + b"\n", "too large"),
        (b"agi_calleridname: " + b"x" * 5000, "line too long"),
    ],
    ids=["many-lines", "one-long-line"],
)
async def test_given_header_over_limit_when_served_then_refused(
    make_server, caplog, header, reason
):
    server = await make_server(header_limit_bytes=1024)
    calls: list[AgiSession] = []

    async def inbound(session: AgiSession) -> None:
        calls.append(session)

    server.add_route("inbound", inbound)
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(b"agi_network_script: inbound\n" + header)
        async with asyncio.timeout(1.0):
            leftover = await until_closed(reader)
    finally:
        await close(writer)

    assert leftover == b""
    assert calls == []
    assert server.counters["bad_headers"] == 1
    assert any(reason in m for m in caplog.messages)


@pytest.mark.parametrize(("size", "accepted"), [(1024, True), (1025, False)])
async def test_given_header_at_limit_when_served_then_accepted_one_byte_more_refused(
    make_server, size, accepted
):
    server = await make_server(header_limit_bytes=1024)
    add_inbound(server)
    name = "x" * (size - len(recorded()) + len("13800138000"))
    block = env_block(calleridname=name)
    assert len(block) == size

    async with asyncio.timeout(1.0):
        received = await FakeAsterisk(port(server), block).call()

    assert received == (FULL_CALL if accepted else [])
    assert server.counters["bad_headers"] == (0 if accepted else 1)


# --- (f) routes must be async (panoramisk defect 4) ---------------------------------------------
async def test_given_plain_function_when_added_as_route_then_type_error(make_server):
    server = await make_server()

    def sync_route(session: AgiSession) -> None:  # pragma: no cover - never called
        pass

    with pytest.raises(TypeError, match="'inbound' must be an async function"):
        server.add_route("inbound", sync_route)
    with pytest.raises(TypeError):
        server.add_route("inbound", lambda session: None)

    add_inbound(server)  # nothing was registered: the name is still free


# --- (g) a failing route is isolated -----------------------------------------------------------
async def test_given_route_raises_when_other_call_in_progress_then_only_that_request_fails(
    make_server, caplog
):
    server = await make_server()
    add_inbound(server)
    entered, release = asyncio.Event(), asyncio.Event()

    async def broken(session: AgiSession) -> None:
        await session.answer()
        entered.set()
        await release.wait()
        raise RuntimeError("bug in the route")

    server.add_route("broken", broken)
    failing = FakeAsterisk(port(server), env_block(network_script="broken", uniqueid="bad-1"))

    async with asyncio.timeout(1.5):
        failing_call = asyncio.create_task(failing.call())
        await entered.wait()
        received = await FakeAsterisk(port(server), recorded()).call()
        release.set()
        failing_received = await failing_call

    assert received == FULL_CALL
    assert failing_received == ["ANSWER"]
    assert failing.closed_by_server
    assert server.counters == {"requests": 2, "failed": 1, "bad_headers": 0, "hangups": 0}
    [error] = errors(caplog)
    assert error.getMessage() == "FastAGI route failed"
    assert error.uniqueid == "bad-1"
    assert error.route == "broken"
    assert error.exc_info is not None
    assert isinstance(error.exc_info[1], RuntimeError)


# --- (h) an unknown route --------------------------------------------------------------------
async def test_given_unknown_route_when_requested_then_closed_and_error_logged(make_server, caplog):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), env_block(network_script="nosuch?x=1", uniqueid="u-9"))

    async with asyncio.timeout(1.0):
        received = await asterisk.call()

    assert received == []
    assert asterisk.closed_by_server
    assert server.counters["failed"] == 1
    [error] = errors(caplog)
    assert error.getMessage() == "no FastAGI route 'nosuch'"
    assert error.uniqueid == "u-9"


# --- (i) the dialplan forgot the prompts directory ---------------------------------------------
@pytest.mark.parametrize(
    "arg_1", [None, "", "prompts/relative"], ids=["missing", "empty", "relative"]
)
async def test_given_no_prompts_dir_argument_when_inbound_then_route_fails_before_any_command(
    make_server, caplog, arg_1
):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), env_block(arg_1=arg_1))

    async with asyncio.timeout(1.0):
        received = await asterisk.call()

    assert received == []  # so no IVR_NEXT: the dialplan goes to its fallback
    assert asterisk.closed_by_server
    assert server.counters["failed"] == 1
    [error] = errors(caplog)
    assert isinstance(error.exc_info[1], ValueError)
    assert "AGI arguments" in str(error.exc_info[1])


# --- (j) drain() on shutdown ----------------------------------------------------------------
async def test_given_call_in_progress_when_drained_then_call_finishes_and_new_ones_refused(
    make_server,
):
    server = await make_server()
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), recorded(), delays={"STREAM FILE": 0.3})
    streaming = asterisk.seen("STREAM FILE")

    async with asyncio.timeout(1.5):
        call = asyncio.create_task(asterisk.call())
        await streaming.wait()
        await server.drain(timeout=1.0)
        received_when_drained = list(asterisk.received)
        active_when_drained = set(server.active)
        await call

    assert received_when_drained == FULL_CALL
    assert active_when_drained == set()
    assert asterisk.closed_by_server
    assert server.counters["failed"] == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port(server))


async def test_given_call_stuck_past_drain_timeout_when_drained_then_cut_off(make_server):
    server = await make_server(command_timeout_s=10.0)
    add_inbound(server)
    asterisk = FakeAsterisk(port(server), recorded(), replies={"STREAM FILE": SILENT})
    streaming = asterisk.seen("STREAM FILE")

    async with asyncio.timeout(1.5):
        call = asyncio.create_task(asterisk.call())
        await streaming.wait()
        started = time.monotonic()
        await server.drain(timeout=0.2)
        received = await call
    elapsed = time.monotonic() - started

    assert 0.18 <= elapsed < 0.6
    assert received == FULL_CALL[:2]
    assert asterisk.closed_by_server


# --- AgiSession: reply handling -----------------------------------------------------------------
async def run_probe(
    server: FastAgiServer,
    probe: Callable[[AgiSession], Awaitable[Any]],
    replies: dict[str, bytes | None],
) -> tuple[list[Any], list[str]]:
    """Run ``probe`` as a route; return (its results or exception, the lines Asterisk got)."""
    outcomes: list[Any] = []

    async def route(session: AgiSession) -> None:
        try:
            outcomes.append(await probe(session))
        except Exception as exc:
            outcomes.append(exc)
            raise

    server.add_route("probe", route)
    asterisk = FakeAsterisk(port(server), env_block(network_script="probe"), replies=replies)
    async with asyncio.timeout(1.5):
        received = await asterisk.call()
    return outcomes, received


async def test_given_trying_line_when_command_sent_then_real_answer_returned(make_server):
    server = await make_server()

    async def probe(session: AgiSession) -> AgiResult:
        return await session.command("EXEC", "Playback", "hello-world")

    outcomes, received = await run_probe(
        server, probe, {"EXEC": b"100 result=0 Trying...\n200 result=0\n"}
    )

    assert received == ["EXEC Playback hello-world"]
    assert outcomes == [AgiResult(code=200, result="0")]


async def test_given_usage_error_when_command_sent_then_refused_and_next_reply_in_sync(make_server):
    server = await make_server()
    usage = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: STREAM FILE <filename> <escape digits> [sample offset]\n"
        b"520 End of proper usage.\n"
    )

    async def probe(session: AgiSession) -> list[Any]:
        with pytest.raises(AgiCommandError) as info:
            await session.command("STREAM FILE")
        return [info.value.details["code"], await session.get_variable("CHANNEL(language)")]

    outcomes, received = await run_probe(
        server, probe, {"STREAM FILE": usage, "GET VARIABLE": b"200 result=1 (zh)\n"}
    )

    assert received == ["STREAM FILE", "GET VARIABLE CHANNEL(language)"]
    assert outcomes == [[520, "zh"]]


async def test_given_unknown_command_when_sent_then_agi_command_error(make_server, caplog):
    server = await make_server()

    async def probe(session: AgiSession) -> None:
        await session.command("FROB")

    outcomes, _ = await run_probe(server, probe, {"FROB": b"510 Invalid or unknown command\n"})

    [exc] = outcomes
    assert isinstance(exc, AgiCommandError)
    assert exc.details == {"code": 510}
    assert server.counters["failed"] == 1
    assert len(errors(caplog)) == 1


async def test_given_unset_variable_when_read_then_none(make_server):
    server = await make_server()

    async def probe(session: AgiSession) -> str | None:
        return await session.get_variable("IVR_NOPE")

    outcomes, received = await run_probe(server, probe, {"GET VARIABLE": b"200 result=0\n"})

    assert received == ["GET VARIABLE IVR_NOPE"]
    assert outcomes == [None]


async def test_given_no_reply_when_command_sent_then_times_out_and_route_fails(make_server):
    server = await make_server(command_timeout_s=0.2)

    async def probe(session: AgiSession) -> None:
        await session.answer()

    started = time.monotonic()
    outcomes, received = await run_probe(server, probe, {"ANSWER": SILENT})

    assert 0.18 <= time.monotonic() - started < 1.0
    assert received == ["ANSWER"]
    [exc] = outcomes
    assert isinstance(exc, AgiCommandError)
    assert "no AGI reply within 0.2 s" in exc.message
    assert server.counters["failed"] == 1
