"""The FastAGI server: panoramisk's ``Application`` with its known defects designed out.

panoramisk 1.4 gives us the route table; we override its extension points:

- ``handler`` reads the ``agi_*`` block with a size limit and a timeout (defect 3: the
  original loop spins forever on a connection that closes before the blank line), and runs
  each request in isolation: an exception is logged for that call alone and the socket is
  always closed, so Asterisk's dialplan continues (and falls back) at once.
- ``add_route`` accepts coroutine functions only (defect 4: it wraps plain functions with
  ``asyncio.coroutine``, which Python 3.11 no longer has).
- Commands go through :class:`AgiSession`, which uses our parser (``ivr.protocols.agi``),
  a per-command timeout, and turns ``HANGUP``/EOF into :class:`ivr.errors.AgiHangup`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.fast_agi import Application, Request

from ivr.errors import AgiCommandError, AgiHangup, AgiHeaderError
from ivr.protocols.agi import (
    AgiRequest,
    AgiResult,
    EnvBlock,
    format_command,
    parse_env,
    parse_result,
)
from ivr.settings import FastAgiSettings

logger = logging.getLogger(__name__)


async def read_env_block(reader: asyncio.StreamReader, *, limit: int, timeout: float) -> bytes:
    """Read the environment block up to its blank line, with a size limit and a timeout.

    Fixes panoramisk defect 3 (its loop spins forever on a connection that closes early).
    Raises AgiHeaderError when the peer is too slow, sends too much, or closes first.
    """
    block = EnvBlock(limit)
    try:
        async with asyncio.timeout(timeout):
            while not block.feed(await reader.readline()):
                pass
    except TimeoutError:
        raise AgiHeaderError(
            f"AGI environment not complete after {timeout:g} s", received=block.received
        ) from None
    except ValueError:  # StreamReader's own line limit
        raise AgiHeaderError("AGI environment line too long", limit=limit) from None
    return block.data


class AgiSession:
    """One FastAGI connection: the channel's environment and a command channel."""

    def __init__(self, request: Request, env: AgiRequest, command_timeout_s: float) -> None:
        self._request = request
        self.env = env
        self._timeout = command_timeout_s
        self.commands_sent: list[str] = []

    async def command(self, *parts: str) -> AgiResult:
        """Send one command and return its 200 result; raise on hang-up or refusal."""
        data = format_command(*parts)
        self.commands_sent.append(data.decode().rstrip("\n"))
        writer: asyncio.StreamWriter = self._request.writer
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError as exc:
            raise AgiHangup("channel gone while sending a command") from exc
        while True:
            result = parse_result(await self._readline())
            if result.message == "HANGUP":
                raise AgiHangup("caller hung up", command=parts[0])
            if result.code == 100:  # "100 result=0 Trying..." precedes the real answer
                continue
            if result.code == 520:  # usage text follows, ended by "520 End of proper usage."
                await self._skip_usage()
            if result.code != 200:
                raise AgiCommandError(
                    f"AGI {parts[0]} refused: {result.code} {result.message}",
                    code=result.code,
                )
            return result

    async def _readline(self) -> str:
        reader: asyncio.StreamReader = self._request.reader
        try:
            async with asyncio.timeout(self._timeout):
                line = await reader.readline()
        except TimeoutError:
            raise AgiCommandError(f"no AGI reply within {self._timeout:g} s") from None
        if not line:
            raise AgiHangup("AGI connection closed by Asterisk")
        return line.decode("utf-8", errors="replace")

    async def _skip_usage(self) -> None:
        while not (await self._readline()).startswith("520 "):
            pass

    # Convenience wrappers for the commands the call flow uses.
    async def answer(self) -> None:
        await self.command("ANSWER")

    async def stream_file(self, path: str, escape_digits: str = "") -> AgiResult:
        return await self.command("STREAM FILE", path, escape_digits)

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """A channel variable, a global, or a function such as ``CHANNEL(language)``; None
        when unset. (``GET FULL VARIABLE`` would substitute an expression instead: given a
        bare name it answers the name itself.)"""
        result = await self.command("GET VARIABLE", name)
        return result.data if result.result == "1" else None


Route = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer(Application):  # type: ignore[misc]  # panoramisk is untyped
    """Routes FastAGI requests by script name (``agi://host:port/<route>``)."""

    def __init__(self, settings: FastAgiSettings) -> None:
        super().__init__(default_encoding="utf-8", loop=asyncio.get_running_loop())
        self.settings = settings
        self.active: set[asyncio.Task[Any]] = set()
        self.counters = {"requests": 0, "failed": 0, "bad_headers": 0, "hangups": 0}
        self._server: asyncio.Server | None = None

    def add_route(self, path: str, endpoint: Route) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"FastAGI route {path!r} must be an async function")
        super().add_route(path, endpoint)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._handle(reader, writer, peer)
        finally:
            if task is not None:
                self.active.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            block = await read_env_block(
                reader,
                limit=self.settings.header_limit_bytes,
                timeout=self.settings.header_timeout_s,
            )
        except AgiHeaderError as exc:
            self.counters["bad_headers"] += 1
            logger.warning("bad FastAGI request from %s: %s", peer, exc.message)
            return
        env = parse_env(block)
        self.counters["requests"] += 1
        route = self._route.get(env.route)
        log = {"uniqueid": env.uniqueid, "route": env.route}
        if route is None:
            self.counters["failed"] += 1
            logger.error("no FastAGI route %r", env.route, extra=log)
            return
        session = AgiSession(
            Request(app=self, headers=env.env, reader=reader, writer=writer),
            env,
            self.settings.command_timeout_s,
        )
        logger.info("fastagi request", extra=log)
        try:
            await route(session)
        except AgiHangup:
            self.counters["hangups"] += 1
            logger.info("caller hung up during the route", extra=log)
        except Exception:
            self.counters["failed"] += 1
            logger.exception("FastAGI route failed", extra=log)

    async def start(self) -> asyncio.Server:
        self._server = await asyncio.start_server(
            self.handler,
            self.settings.host,
            self.settings.port,
            limit=self.settings.header_limit_bytes,
        )
        logger.info("fastagi listening on %s:%d", self.settings.host, self.settings.port)
        return self._server

    async def serve(self) -> None:
        server = self._server or await self.start()
        async with server:
            await server.serve_forever()

    async def drain(self, timeout: float) -> None:
        """Stop accepting; let calls in progress finish for up to ``timeout`` seconds."""
        if self._server is not None:
            self._server.close()
        pending = set(self.active)
        if pending:
            logger.info("waiting for %d call(s) in progress", len(pending))
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
