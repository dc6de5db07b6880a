"""AmiClient against a small fake AMI server on 127.0.0.1 (no Asterisk needed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ivr.adapters.telephony.ami_client import AmiClient
from ivr.errors import AmiError, AmiTimeout
from ivr.protocols.ami import AmiFramer, AmiMessage
from ivr.settings import AmiSettings

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
SECRET = "t0p-s3cret-never-logged"
LOGGER = "ivr.adapters.telephony.ami_client"
QUEUE_STATUS = Path(__file__).resolve().parent.parent / "fixtures" / "ami" / "queue_status.ami"
RECORDED_ACTION_ID = b"hotline-5f3a9c01-9"

Responder = Callable[[AmiMessage, asyncio.StreamWriter], Awaitable[None]]


def frame(**fields: str) -> bytes:
    lines = "".join(f"{key}: {value}\r\n" for key, value in fields.items())
    return (lines + "\r\n").encode()


def reply(action: AmiMessage, **fields: str) -> bytes:
    return frame(Response="Success", ActionID=action.action_id or "", **fields)


class FakeAsterisk:
    """Speaks just enough AMI: banner, Login, Ping, plus per-test responders."""

    def __init__(self) -> None:
        self.secret = SECRET
        self.answer_pings = True
        self.responders: dict[str, Responder] = {}
        self.actions: list[AmiMessage] = []
        self.connections = 0
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and drop every connection, like an Asterisk restart."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._handlers)

    async def send(self, data: bytes) -> None:
        for writer in self._writers:
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        self.connections += 1
        try:
            writer.write(BANNER)
            framer = AmiFramer()
            while data := await reader.read(65536):
                for action in framer.feed(data):
                    self.actions.append(action)
                    await self._answer(action, writer)
        except ConnectionError:
            pass
        finally:
            self._writers.remove(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    async def _answer(self, action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        name = action.get("Action") or ""
        if name == "Login":
            writer.write(self._login_reply(action))
        elif name == "Ping":
            if self.answer_pings:
                writer.write(reply(action, Ping="Pong", Timestamp="1732329601.000000"))
        elif name in self.responders:
            await self.responders[name](action, writer)
        else:
            writer.write(
                frame(
                    Response="Error",
                    ActionID=action.action_id or "",
                    Message="Invalid/unknown command",
                )
            )

    def _login_reply(self, action: AmiMessage) -> bytes:
        if action.get("Secret") != self.secret:
            return frame(
                Response="Error", ActionID=action.action_id or "", Message="Authentication failed"
            )
        self.logins += 1
        return reply(action, Message="Authentication accepted")


class Recorder:
    """An on_event handler that records events, can be held shut, and tracks overlap."""

    def __init__(self) -> None:
        self.events: list[AmiMessage] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.active = 0
        self.max_active = 0

    async def __call__(self, message: AmiMessage) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)
            self.events.append(message)
        finally:
            self.active -= 1

    def values(self, key: str) -> list[str | None]:
        return [event.get(key) for event in self.events]


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.002)


def settings_for(port: int, **overrides: float) -> AmiSettings:
    values: dict[str, float] = {
        "connect_timeout_s": 1.0,
        "ping_interval_s": 0.05,
        "ping_timeout_s": 1.0,  # generous, so a loaded machine does not recycle links
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.04,
        "event_queue_size": 100,
    }
    values.update(overrides)
    return AmiSettings(host="127.0.0.1", port=port, username="hotline", **values)


@contextlib.asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    server = FakeAsterisk()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def delays_logged(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (re.search(r"in (\d+\.\d+) s$", r.getMessage()) for r in caplog.records)
    return [float(match.group(1)) for match in found if match]


async def test_given_good_secret_when_running_then_logged_in_and_on_login_called(fake, logs):
    logins: list[AmiClient] = []

    async def on_login(client: AmiClient) -> None:
        logins.append(client)

    client = AmiClient(settings_for(fake.port), SECRET, on_login=on_login, events="call,agent")
    async with running(client):
        await client.wait_connected(2)
        await until(lambda: bool(logins))

        assert client.connected
        assert logins == [client]
        login = fake.actions[0]
        assert (login.get("Action"), login.get("Username")) == ("Login", "hotline")
        assert (login.get("Secret"), login.get("Events")) == (SECRET, "call,agent")
        assert client.counters["logins"] == 1
        assert any("AMI logged in" in r.getMessage() for r in logs.records)
    assert not client.connected
    assert SECRET not in logs.text


async def test_given_refused_login_then_error_logged_retried_and_secret_never_logged(fake, logs):
    fake.secret = "something-else"
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client) as task:
        await until(lambda: fake.connections >= 3)

        assert not client.connected
        assert not task.done()
        refusals = [r for r in logs.records if r.levelno == logging.ERROR]
        assert "Authentication failed" in refusals[0].getMessage()

        fake.secret = SECRET
        await client.wait_connected(2)
    assert SECRET not in logs.text


async def test_given_no_server_then_backoff_doubles_up_to_the_cap(logs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AmiClient(settings_for(port), SECRET)
    async with running(client):
        await until(lambda: len(delays_logged(logs)) >= 5)
        with pytest.raises(AmiTimeout):
            await client.wait_connected(0.01)

    assert delays_logged(logs)[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert client.counters["reconnects"] >= 4


async def test_given_server_restarted_on_same_port_then_reconnects_and_on_login_runs_again(
    fake, logs
):
    logins: list[int] = []

    async def on_login(client: AmiClient) -> None:
        logins.append(fake.connections)

    client = AmiClient(settings_for(fake.port), SECRET, on_login=on_login)
    async with running(client):
        await client.wait_connected(2)
        await fake.stop()
        await until(lambda: len(delays_logged(logs)) >= 3)
        assert not client.connected

        await fake.start()
        await until(lambda: len(logins) == 2)
        assert client.connected
        failures_before = len(delays_logged(logs))
        await fake.stop()
        await until(lambda: len(delays_logged(logs)) > failures_before)
        await fake.start()
        await until(lambda: len(logins) == 3)

    delays = delays_logged(logs)
    assert delays[:3] == [0.01, 0.02, 0.04]  # initial after a login, then doubled
    assert delays[failures_before] == 0.01  # reset again by the second login
    assert fake.logins == 3


async def test_given_server_ignoring_pings_then_link_declared_dead_and_rebuilt(fake, logs):
    logins: list[int] = []

    async def on_login(client: AmiClient) -> None:
        logins.append(fake.connections)

    client = AmiClient(settings_for(fake.port, ping_timeout_s=0.1), SECRET, on_login=on_login)
    async with running(client):
        await client.wait_connected(2)
        fake.answer_pings = False
        await until(lambda: fake.connections >= 2)
        fake.answer_pings = True
        await until(lambda: len(logins) >= 2 and client.connected)

        await asyncio.sleep(0.15)  # answered pings keep the link up
        assert fake.open_connections == 1
    assert any("Ping" in r.getMessage() for r in logs.records if r.levelno == logging.WARNING)


async def test_events_are_delivered_in_arrival_order_one_at_a_time(fake, recorder):
    client = AmiClient(settings_for(fake.port, event_queue_size=1000), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        for batch in range(4):
            await fake.send(
                b"".join(frame(Event="Newstate", Seq=str(batch * 50 + i)) for i in range(50))
            )
        await until(lambda: len(recorder.events) == 200)

    assert recorder.values("Seq") == [str(i) for i in range(200)]
    assert recorder.max_active == 1
    assert client.counters["events"] == 200


async def test_given_chinese_name_split_across_tcp_writes_then_delivered_intact(fake, recorder):
    data = frame(Event="Newchannel", CallerIDName="张三", Uniqueid="1732329601.7")
    split = data.index("张".encode()) + 1
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(data[:split])
        await asyncio.sleep(0.02)
        await fake.send(data[split:])
        await until(lambda: len(recorder.events) == 1)

    assert recorder.values("CallerIDName") == ["张三"]


async def test_given_handler_raising_on_one_event_then_link_stays_up_and_later_events_arrive(
    fake, logs
):
    seen: list[str | None] = []

    async def on_event(message: AmiMessage) -> None:
        if message.event == "Boom":
            raise RuntimeError("handler bug")
        seen.append(message.get("Seq"))

    client = AmiClient(settings_for(fake.port), SECRET, on_event=on_event)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(
            frame(Event="Hangup", Seq="1") + frame(Event="Boom") + frame(Event="Hangup", Seq="2")
        )
        await fake.send(frame(Event="Hangup", Seq="3"))
        await until(lambda: len(seen) == 3)

        assert client.connected
    assert seen == ["1", "2", "3"]
    assert fake.connections == 1
    assert client.counters["handler_errors"] == 1
    failure = next(r for r in logs.records if "handler failed" in r.getMessage())
    assert "Boom" in failure.getMessage()
    assert failure.exc_info is not None


async def test_given_test_event_then_ignored(fake, recorder):
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(frame(Event="TestEvent", Type="StateChange") + frame(Event="Hangup"))
        await until(lambda: len(recorder.events) == 1)
        await asyncio.sleep(0.01)

    assert [e.event for e in recorder.events] == ["Hangup"]
    assert client.counters["events"] == 1


async def test_given_malformed_line_then_counted_and_event_still_delivered(fake, recorder):
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(b"Event: Hangup\r\nnot a header\r\nCause: 16\r\n\r\n")
        await until(lambda: len(recorder.events) == 1)

    assert recorder.values("Cause") == ["16"]
    assert client.counters["malformed_lines"] == 1


async def test_given_full_queue_then_events_dropped_counted_and_warned_once(fake, recorder, logs):
    recorder.gate.clear()
    client = AmiClient(settings_for(fake.port, event_queue_size=10), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(b"".join(frame(Event="Newstate", Seq=str(i)) for i in range(40)))
        await until(lambda: client.counters["events"] == 40)

        dropped = client.counters["dropped_events"]
        assert 29 <= dropped <= 30  # 10 queued, perhaps 1 already taken by the handler
        recorder.gate.set()
        await until(lambda: len(recorder.events) == 40 - dropped)
        assert client.connected
    warnings = [r for r in logs.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1


async def test_given_queued_events_when_link_drops_then_delivered_after_reconnect(fake, recorder):
    recorder.gate.clear()
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        await fake.send(b"".join(frame(Event="Hangup", Seq=str(i)) for i in range(5)))
        await until(lambda: client.counters["events"] == 5)
        await fake.stop()
        await fake.start()
        await until(lambda: fake.logins == 2)

        recorder.gate.set()
        await until(lambda: len(recorder.events) == 5)
    assert recorder.values("Seq") == ["0", "1", "2", "3", "4"]


async def test_send_action_replies_are_matched_by_action_id_not_by_order(fake, recorder):
    waiting: list[tuple[AmiMessage, asyncio.StreamWriter]] = []

    async def getvar(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        waiting.append((action, writer))
        if len(waiting) == 2:
            for request, out in reversed(waiting):
                out.write(frame(Event="Newstate", ActionID=request.action_id or ""))
                out.write(
                    reply(
                        request,
                        Variable=request.get("Variable") or "",
                        Value="v-" + (request.get("Variable") or ""),
                    )
                )

    fake.responders["Getvar"] = getvar
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        first, second = await asyncio.gather(
            client.send_action("Getvar", {"Variable": "A"}, timeout=2),
            client.send_action("Getvar", {"Variable": "B"}, timeout=2),
        )
        await until(lambda: len(recorder.events) == 2)

    assert (first.get("Value"), second.get("Value")) == ("v-A", "v-B")
    assert first.action_id != second.action_id
    assert [e.event for e in recorder.events] == ["Newstate", "Newstate"]  # events, not replies


async def test_send_action_returns_an_error_response_as_is(fake):
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client):
        await client.wait_connected(2)
        response = await client.send_action("NoSuchAction", timeout=2)

    assert response.response == "Error"
    assert response.get("Message") == "Invalid/unknown command"


async def test_send_list_action_collects_its_events_until_complete(fake, recorder):
    async def queue_status(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        recorded = QUEUE_STATUS.read_bytes().replace(
            RECORDED_ACTION_ID, (action.action_id or "").encode()
        )
        first, rest = recorded.split(b"\r\n\r\n", 1)
        writer.write(first + b"\r\n\r\n" + frame(Event="Newchannel", Channel="PJSIP/x-1"))
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(rest)

    fake.responders["QueueStatus"] = queue_status
    client = AmiClient(settings_for(fake.port), SECRET, on_event=recorder)
    async with running(client):
        await client.wait_connected(2)
        items = await client.send_list_action("QueueStatus", {"Queue": "gas-repair"}, timeout=2)
        await until(lambda: len(recorder.events) == 1)

    assert [m.event for m in items] == ["QueueParams", "QueueMember", "QueueEntry"]
    assert items[1].get("Name") == "李四"
    assert [e.event for e in recorder.events] == ["Newchannel"]
    assert fake.actions[-1].get("Queue") == "gas-repair"


async def test_given_refused_list_action_then_ami_error(fake):
    async def refuse(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        writer.write(
            frame(Response="Error", ActionID=action.action_id or "", Message="Permission denied")
        )

    fake.responders["CoreShowChannels"] = refuse
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client):
        await client.wait_connected(2)
        with pytest.raises(AmiError, match="Permission denied"):
            await client.send_list_action("CoreShowChannels", timeout=2)


async def test_given_not_connected_when_sending_then_ami_error():
    client = AmiClient(settings_for(5038), SECRET)

    with pytest.raises(AmiError, match="not connected"):
        await client.send_action("Ping")
    with pytest.raises(AmiError, match="not connected"):
        await client.send_list_action("CoreShowChannels")


async def test_given_no_reply_within_timeout_then_ami_timeout_and_link_kept(fake):
    async def never(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        return None

    fake.responders["Slow"] = never
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client):
        await client.wait_connected(2)
        with pytest.raises(AmiTimeout):
            await client.send_action("Slow", timeout=0.02)

        assert client.connected
        assert (await client.send_action("Unknown", timeout=2)).response == "Error"


async def test_given_link_drops_while_waiting_then_pending_action_fails_with_ami_error(fake):
    async def drop(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    fake.responders["Restart"] = drop
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client):
        await client.wait_connected(2)
        with pytest.raises(AmiError) as raised:
            await client.send_action("Restart", timeout=2)

    assert not isinstance(raised.value, AmiTimeout)


async def test_given_on_login_hook_failing_then_logged_and_link_recycled(fake, logs):
    calls: list[int] = []

    async def on_login(client: AmiClient) -> None:
        calls.append(fake.connections)
        if len(calls) == 1:
            raise RuntimeError("resync failed")

    client = AmiClient(settings_for(fake.port), SECRET, on_login=on_login)
    async with running(client):
        await until(lambda: len(calls) == 2)
        await client.wait_connected(2)

    assert calls == [1, 2]
    failure = next(r for r in logs.records if "on_login hook failed" in r.getMessage())
    assert failure.exc_info is not None


async def test_on_login_hook_can_resync_through_the_client(fake):
    async def channels(action: AmiMessage, writer: asyncio.StreamWriter) -> None:
        action_id = action.action_id or ""
        writer.write(reply(action, EventList="start", Message="Channels will follow"))
        writer.write(frame(Event="CoreShowChannel", ActionID=action_id, Channel="PJSIP/a-1"))
        writer.write(
            frame(
                Event="CoreShowChannelsComplete",
                ActionID=action_id,
                EventList="Complete",
                ListItems="1",
            )
        )

    resynced: list[list[str | None]] = []

    async def on_login(client: AmiClient) -> None:
        items = await client.send_list_action("CoreShowChannels", timeout=2)
        resynced.append([item.get("Channel") for item in items])

    fake.responders["CoreShowChannels"] = channels
    client = AmiClient(settings_for(fake.port), SECRET, on_login=on_login)
    async with running(client):
        await until(lambda: bool(resynced))

    assert resynced == [["PJSIP/a-1"]]


async def test_when_run_is_cancelled_then_it_stops_and_closes_the_socket(fake):
    client = AmiClient(settings_for(fake.port), SECRET)
    async with running(client) as task:
        await client.wait_connected(2)

    assert task.cancelled()
    assert not client.connected
    await until(lambda: fake.open_connections == 0)
