"""Asyncio AMI client: one supervised link to Asterisk, rebuilt whenever it fails.

Designed around panoramisk 1.4's AMI defects:

- frames are decoded whole (:class:`ivr.protocols.ami.AmiFramer`), never per TCP chunk;
- events go through a bounded queue to ONE consumer task, so ``on_event`` calls never overlap
  and keep arrival order; an exception in it is logged and counted, the link stays up;
- a ping every ``ping_interval_s`` must be answered within ``ping_timeout_s``, else the link is
  treated as dead (half-open) and rebuilt;
- ``on_login`` runs after every login, so the caller can resync state missed while away.

``run()`` is an explicit loop: connect, log in, serve until the link fails, wait a capped
exponential backoff, repeat. It raises nothing for link failures (a refused login included);
cancel it to stop. Any other exception is a bug and ends it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ivr.errors import AmiAuthError, AmiError, AmiTimeout, ProtocolError
from ivr.protocols.ami import AmiFramer, AmiMessage, encode_action
from ivr.settings import AmiSettings

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024
DROP_WARNING_INTERVAL_S = 10.0  # at most one "events dropped" warning per interval
IGNORED_EVENTS = frozenset({"TestEvent"})  # emitted by Debian's build of Asterisk

Fields = Mapping[str, str | Sequence[str]]
EventHandler = Callable[[AmiMessage], Awaitable[None]]
LoginHook = Callable[["AmiClient"], Awaitable[None]]


@dataclass(slots=True)
class _PendingAction:
    """An action waiting for its reply: the Response, plus the list events for a list action."""

    future: asyncio.Future[list[AmiMessage]]
    is_list: bool
    messages: list[AmiMessage] = field(default_factory=list)

    def accept(self, message: AmiMessage) -> bool:
        """Take ``message`` if it belongs to this action; resolve the future once complete."""
        if self.future.done() or (message.response is None and not self.is_list):
            return False
        self.messages.append(message)
        if not self.is_list or _list_ended(message):
            self.future.set_result(self.messages)
        return True


def _list_ended(message: AmiMessage) -> bool:
    """True for the last message of a list action's reply."""
    marker = (message.get("EventList") or "").lower()
    if message.response is not None:
        return message.response != "Success" or marker != "start"
    return marker == "complete"


class AmiClient:
    """Keep one logged-in AMI link, deliver its events in order, and send actions on it."""

    def __init__(
        self,
        settings: AmiSettings,
        secret: str,
        *,
        on_event: EventHandler | None = None,
        on_login: LoginHook | None = None,
        events: str = "on",
        username: str | None = None,
    ) -> None:
        """``username``: the account to log in as (default ``settings.username``, the
        listener's; ``settings.actions_username`` for actions)."""
        if username is not None:
            settings = settings.model_copy(update={"username": username})
        self._settings = settings
        self._secret = secret
        self._on_event = on_event
        self._on_login = on_login
        self._events = events
        self._queue: asyncio.Queue[AmiMessage] = asyncio.Queue(settings.event_queue_size)
        self._pending: dict[str, _PendingAction] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._logged_in = asyncio.Event()
        self._action_ids = itertools.count(1)
        self._action_prefix = f"hotline-{secrets.token_hex(4)}-"
        self._last_drop_warning = float("-inf")
        self.counters: dict[str, int] = {
            "events": 0,  # events received (TestEvent excluded), dropped ones included
            "dropped_events": 0,  # events lost because the queue was full
            "handler_errors": 0,  # on_event calls that raised
            "logins": 0,  # successful logins
            "reconnects": 0,  # connection attempts after the first
            "malformed_lines": 0,  # lines without a colon, skipped
        }

    @property
    def connected(self) -> bool:
        """True while the link is up and logged in."""
        return self._logged_in.is_set()

    async def wait_connected(self, timeout: float) -> None:
        """Return once logged in; raise AmiTimeout after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._logged_in.wait()
        except TimeoutError:
            raise AmiTimeout(f"AMI not connected within {timeout} s", timeout=timeout) from None

    async def send_action(
        self, action: str, fields: Fields | None = None, *, timeout: float | None = None
    ) -> AmiMessage:
        """Send ``action`` and return its Response (``Response: Error`` included, as-is).

        Raises AmiError when not connected or when the link drops before the reply, and
        AmiTimeout when no reply comes within ``timeout`` seconds (None: no limit).
        """
        self._require_connected(action)
        (response,) = await self._exchange(action, fields or {}, timeout, is_list=False)
        return response

    async def send_list_action(
        self, action: str, fields: Fields | None = None, *, timeout: float | None = None
    ) -> list[AmiMessage]:
        """Send a list action (QueueStatus, CoreShowChannels...) and return its list events.

        The initial Response and the closing ``EventList: Complete`` event are left out.
        Raises AmiError when Asterisk answers with an error, and as :meth:`send_action`.
        """
        self._require_connected(action)
        response, *events = await self._exchange(action, fields or {}, timeout, is_list=True)
        if response.response != "Success":
            raise AmiError(
                f"AMI {action} failed: {response.get('Message', '')}",
                action=action,
                response=response.to_dict(),
            )
        return events[:-1]

    async def run(self) -> None:
        """Connect, log in and serve forever, reconnecting with capped exponential backoff."""
        async with asyncio.TaskGroup() as tasks:
            if self._on_event is not None:
                tasks.create_task(self._deliver_events(self._on_event), name="ami-events")
            await self._reconnect_forever()

    async def _reconnect_forever(self) -> None:
        task = asyncio.current_task()
        delay = self._settings.backoff_initial_s
        while True:
            logins = self.counters["logins"]
            try:
                await self._session()
            except* AmiAuthError as refused:
                logger.error(
                    "AMI login as %s refused: %s; retrying in %.2f s",
                    self._settings.username,
                    refused.exceptions[0],
                    delay,
                )
            except* (AmiError, ProtocolError) as failed:
                if self.counters["logins"] > logins:
                    delay = self._settings.backoff_initial_s
                logger.warning(
                    "AMI link to %s:%d failed: %s; reconnecting in %.2f s",
                    self._settings.host,
                    self._settings.port,
                    failed.exceptions[0],
                    delay,
                )
            if task is not None and task.cancelling():
                # A TaskGroup turns a cancel that coincides with a link error into that error.
                raise asyncio.CancelledError
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.backoff_max_s)
            self.counters["reconnects"] += 1

    async def _session(self) -> None:
        """Serve one link until it fails; raises the AmiError or ProtocolError that ended it."""
        reader, writer = await self._open()
        self._writer = writer
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._read_messages(reader), name="ami-reader")
                await self._login()
                tasks.create_task(self._run_login_hook(), name="ami-on-login")
                # The body never ends normally: Python 3.11's TaskGroup leaks a cancel request
                # on its parent task when a child fails after the body has finished.
                await self._keep_alive()
        finally:
            await self._drop_link(writer)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self._settings.host, self._settings.port
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                return await asyncio.open_connection(host, port)
        except TimeoutError:
            raise AmiTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise AmiError(f"connect to {host}:{port} failed: {exc}") from exc

    async def _login(self) -> None:
        fields = {
            "Username": self._settings.username,
            "Secret": self._secret,
            "Events": self._events,
        }
        (response,) = await self._exchange(
            "Login", fields, self._settings.connect_timeout_s, is_list=False
        )
        if response.response != "Success":
            raise AmiAuthError(
                response.get("Message") or "login refused", username=self._settings.username
            )
        self.counters["logins"] += 1
        self._logged_in.set()
        logger.info(
            "AMI logged in to %s:%d as %s",
            self._settings.host,
            self._settings.port,
            self._settings.username,
        )

    async def _run_login_hook(self) -> None:
        if self._on_login is None:
            return
        try:
            await self._on_login(self)
        except Exception as exc:
            logger.exception("AMI on_login hook failed; recycling the link")
            raise AmiError(f"on_login hook failed: {exc!r}") from exc

    async def _keep_alive(self) -> None:
        """Ping forever; an unanswered ping raises AmiTimeout, which ends the session."""
        while True:
            await asyncio.sleep(self._settings.ping_interval_s)
            await self._exchange("Ping", {}, self._settings.ping_timeout_s, is_list=False)

    async def _read_messages(self, reader: asyncio.StreamReader) -> None:
        framer = AmiFramer()
        while True:
            try:
                data = await reader.read(READ_CHUNK_BYTES)
            except OSError as exc:
                raise AmiError(f"AMI read failed: {exc}") from exc
            if not data:
                raise AmiError("AMI connection closed by the peer")
            malformed_before = framer.malformed_lines
            for message in framer.feed(data):
                self._dispatch(message)
            self.counters["malformed_lines"] += framer.malformed_lines - malformed_before

    def _dispatch(self, message: AmiMessage) -> None:
        pending = self._pending.get(message.action_id or "")
        if pending is not None and pending.accept(message):
            return
        if message.event is not None:
            self._enqueue(message)
        else:
            logger.debug("AMI reply with no waiter dropped (ActionID %s)", message.action_id)

    def _enqueue(self, message: AmiMessage) -> None:
        if message.event in IGNORED_EVENTS:
            return
        self.counters["events"] += 1
        if self._on_event is None:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.counters["dropped_events"] += 1
            self._warn_dropped(message)

    def _warn_dropped(self, message: AmiMessage) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            logger.warning(
                "AMI event queue full (%d): dropped %s; %d dropped so far",
                self._queue.maxsize,
                message.event,
                self.counters["dropped_events"],
            )

    async def _deliver_events(self, handler: EventHandler) -> None:
        """The single consumer: hand queued events to ``handler`` one at a time, in order."""
        while True:
            message = await self._queue.get()
            await self._handle_event(handler, message)

    async def _handle_event(self, handler: EventHandler, message: AmiMessage) -> None:
        try:
            await handler(message)
        except Exception:
            self.counters["handler_errors"] += 1
            logger.exception("AMI event handler failed on %s", message.event)

    async def _exchange(
        self, action: str, fields: Fields, timeout: float | None, *, is_list: bool
    ) -> list[AmiMessage]:
        """Send one action and wait for its complete reply, matched by a fresh ActionID."""
        action_id = f"{self._action_prefix}{next(self._action_ids)}"
        future: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _PendingAction(future, is_list)
        try:
            await self._write(encode_action(action, action_id, fields))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise AmiTimeout(
                f"no reply to AMI {action} within {timeout} s", action=action, action_id=action_id
            ) from None
        finally:
            del self._pending[action_id]

    async def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise AmiError("AMI link is down")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise AmiError(f"AMI write failed: {exc}") from exc

    def _require_connected(self, action: str) -> None:
        if not self.connected:
            raise AmiError(f"AMI not connected: cannot send {action}", action=action)

    async def _drop_link(self, writer: asyncio.StreamWriter) -> None:
        """Mark the link down, fail every waiting action, and close the socket at once."""
        self._logged_in.clear()
        self._writer = None
        for action_id, pending in self._pending.items():
            if not pending.future.done():
                pending.future.set_exception(
                    AmiError("AMI link lost before the reply", action_id=action_id)
                )
        writer.transport.abort()
        try:
            await writer.wait_closed()
        except OSError:
            logger.debug("AMI socket closed with an error", exc_info=True)
