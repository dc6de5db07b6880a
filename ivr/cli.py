"""The ``ivr`` command: the stack (up/down/status), the roles, and operator tools.

Wiring happens here and only here: each role builds its adapters from the one Settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from ivr.errors import ConfigError, HotlineError
from ivr.logging_setup import setup_logging
from ivr.settings import Settings, load_settings


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


ROLES = ("agi", "ami", "web")


# --- supervision ------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside the task group when SIGTERM/SIGINT arrives."""


async def supervise(*coros: Coroutine[Any, Any, None]) -> None:
    """Run long-lived loops in one TaskGroup until a signal; a crash in one stops all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def stopper() -> None:
        await stop.wait()
        raise _Stop

    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
            group.create_task(stopper())
    except* _Stop:
        pass


# --- roles ------------------------------------------------------------------------------
async def run_agi(settings: Settings) -> None:
    from ivr.adapters.fastagi_server import AgiSession, FastAgiServer
    from ivr.adapters.flow_runner import run_inbound
    from ivr.adapters.routing_files import load_routing
    from ivr.core.callflow import flow_config

    config = flow_config(load_routing(settings.routing_dir))
    server = FastAgiServer(settings.fastagi)

    async def inbound(session: AgiSession) -> None:
        await run_inbound(session, config)

    server.add_route("inbound", inbound)
    await server.start()
    try:
        await supervise(server.serve())
    finally:
        await server.drain(timeout=settings.fastagi.command_timeout_s)


async def run_ami(settings: Settings) -> None:
    import redis.asyncio as aioredis

    from ivr.adapters.ami_client import AmiClient
    from ivr.adapters.event_sink import RedisEventSink

    client_redis = aioredis.Redis.from_url(
        settings.redis.url, socket_timeout=5, socket_connect_timeout=5
    )
    sink = RedisEventSink(client_redis, settings.redis.events_maxlen)
    ami = AmiClient(settings.ami, settings.ami_secret(), on_event=sink.on_event)

    async def heartbeat() -> None:
        while True:
            await sink.heartbeat(ami)
            await asyncio.sleep(1.0)

    try:
        await supervise(ami.run(), heartbeat())
    finally:
        await client_redis.aclose()


def run_web(settings: Settings) -> None:
    import uvicorn

    from ivr.web.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.web.host,
        port=settings.web.port,
        log_config=None,
        access_log=False,
    )


# --- commands ---------------------------------------------------------------------------
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.stack import Stack, StackAlreadyUp

    try:
        lines = Stack(settings, sim_agents=not args.no_sim_agents).up()
    except StackAlreadyUp as exc:
        _out(exc.message)
        return 0
    for line in lines:
        _out(line)
    return 0


def cmd_down(settings: Settings, _: argparse.Namespace) -> int:
    from ivr.stack import Stack

    for line in Stack(settings).down():
        _out(line)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.stack import Stack

    statuses = Stack(settings).status()
    if args.json:
        _out(json.dumps([{"role": s.name, "ok": s.ok, "detail": s.detail} for s in statuses]))
    else:
        for s in statuses:
            _out(f"{'ok  ' if s.ok else 'DOWN'} {s.name:<9} {s.detail}")
    return 0 if all(s.ok for s in statuses) else 1


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.originate import place_call

    report = asyncio.run(
        place_call(
            settings,
            did=args.did,
            caller=args.caller,
            digits=args.digits,
            hold_s=args.hold,
            timeout_s=args.timeout,
        )
    )
    doc = report.to_json()
    if args.json:
        _out(json.dumps({k: doc[k] for k in ("linkedid", "agi_routes", "queue", "variables",
                                             "hangup_cause", "agi_commands", "channels")},
                        ensure_ascii=False))  # fmt: skip
        return 0
    _out(f"call {report.linkedid}")
    _out(f"  AGI routes reached : {', '.join(report.agi_routes) or '(none)'}")
    for command in report.agi_commands:
        _out(f"    AGI command      : {command}")
    _out(f"  queue joined       : {report.queue or '(none)'}")
    for name, value in report.variables.items():
        _out(f"  variable           : {name}={value}")
    _out(f"  hang-up cause      : {report.hangup_cause or '(unknown)'}")
    return 0


def cmd_check_routing(settings: Settings, _: argparse.Namespace) -> int:
    from ivr.adapters import prompts
    from ivr.adapters.routing_files import load_routing

    routing = load_routing(settings.routing_dir)
    catalog = prompts.load_catalog(settings.prompts_dir / "catalog.yaml", routing.hotline.name)
    _out(f"routing OK: {len(routing.hotline.dids)} DIDs, {len(catalog)} prompts")
    return 0


def cmd_prompts_build(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters import prompts
    from ivr.adapters.routing_files import load_routing

    routing = load_routing(settings.routing_dir)
    catalog = prompts.load_catalog(settings.prompts_dir / "catalog.yaml", routing.hotline.name)
    written = prompts.build(catalog, settings.prompts_dir, settings.prompts_build_dir)
    _out(f"{len(written)} prompt(s) rendered into {settings.prompts_build_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="hotline IVR service")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole stack on 127.0.0.1")
    up.add_argument("--no-sim-agents", action="store_true", help="no simulated agents")
    sub.add_parser("down", help="stop what `ivr up` started")
    for name in ("status", "health"):
        st = sub.add_parser(name, help="health of each role (exit 1 if any is down)")
        st.add_argument("--json", action="store_true")
    call = sub.add_parser("call", help="place a test call through Asterisk (Local channel)")
    call.add_argument("--did", default="95158", help="hotline number dialled")
    call.add_argument("--from", dest="caller", default="13800138000", help="caller number")
    call.add_argument("--digits", default="", help="keys the caller presses (0-9 * #)")
    call.add_argument("--hold", type=float, default=30.0, help="most seconds the caller stays")
    call.add_argument("--timeout", type=float, default=120.0, help="give up after this")
    call.add_argument("--json", action="store_true", help="one JSON object")
    sub.add_parser("agi", help="role: the FastAGI server")
    sub.add_parser("ami", help="role: the AMI listener (events into Redis)")
    sub.add_parser("web", help="role: the web app")
    sub.add_parser("check-routing", help="validate routing/ and the prompt catalog")
    prompts = sub.add_parser("prompts", help="prompt audio")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", required=True)
    prompts_sub.add_parser("build", help="render missing or stale prompts (espeak-ng, 8 kHz)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command in ROLES:
            setup_logging(settings.log_level, settings.log_json)
        else:  # operator commands: say only what went wrong, in plain text
            setup_logging("WARNING", json_lines=False)
        return _dispatch(settings, args)
    except ConfigError as exc:
        _err(f"ivr: {exc.message}")
        return 2
    except HotlineError as exc:
        _err(f"ivr {args.command}: {exc.message}")
        return 1
    except ValueError as exc:
        _err(f"ivr {args.command}: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    match args.command:
        case "agi":
            asyncio.run(run_agi(settings))
            return 0
        case "ami":
            asyncio.run(run_ami(settings))
            return 0
        case "web":
            run_web(settings)
            return 0
        case "prompts":
            return cmd_prompts_build(settings, args)
    handlers = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "health": cmd_status,
        "call": cmd_call,
        "check-routing": cmd_check_routing,
    }
    return handlers[args.command](settings, args)
