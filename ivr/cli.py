"""The ``ivr`` command: the stack (up/down/status), the roles, and operator tools.

Wiring happens here and only here: each role builds its adapters from the one Settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from ivr import (
    cli_agents,
    cli_db,
    cli_recordings,
    cli_report,
    cli_stt,
    cli_stt_worker,
    cli_tickets,
    cli_units,
    cli_users,
)
from ivr.core.sip_accounts import Registration
from ivr.errors import ConfigError, HotlineError, InvalidInput, SipDirectoryError
from ivr.logging_setup import setup_logging
from ivr.settings import Settings, load_settings
from ivr.supervision import supervise


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


ROLES = ("agi", "ami", "web", "stt-worker", "recorder")


# --- roles ------------------------------------------------------------------------------
async def run_agi(settings: Settings) -> None:
    from ivr.adapters.recordings import voice_messages
    from ivr.adapters.sql.db import settings_engine
    from ivr.adapters.sql.schema import require_head
    from ivr.adapters.telephony.config_check import load_checked
    from ivr.adapters.telephony.fastagi_server import AgiSession, FastAgiServer
    from ivr.adapters.telephony.flow_runner import (
        DeskIndex,
        run_agent_feature,
        run_agent_intro,
        run_followup,
        run_inbound,
        run_survey,
    )
    from ivr.core.callflow import flow_config
    from ivr.core.followup_call import call_config
    from ivr.core.survey import survey_config

    routing, _ = load_checked(settings.routing_dir, settings.prompts_dir, settings.dialplan_dir)
    config = flow_config(routing)
    engine = settings_engine(settings)
    require_head(engine)  # refuses a database not at this code's revision, naming the fix
    server = FastAgiServer(settings.fastagi)

    async def inbound(session: AgiSession) -> None:
        state = await run_inbound(session, config)
        message = voice_messages.message_from(state, session.env.uniqueid, time.time())
        if message is not None:
            await asyncio.to_thread(voice_messages.save, engine, message)

    server.add_route("inbound", inbound)
    server.add_route("agent-intro", run_agent_intro)
    surveyed, desks = survey_config(routing), DeskIndex.of(routing)

    async def post_call_survey(session: AgiSession) -> None:
        await run_survey(session, surveyed, desks)

    server.add_route("survey", post_call_survey)
    followup_questions = call_config(routing)

    async def followup(session: AgiSession) -> None:
        await run_followup(session, followup_questions)

    server.add_route("followup", followup)

    async def agent_feature(session: AgiSession) -> None:
        await run_agent_feature(session, engine)

    server.add_route("agent-feature", agent_feature)
    await server.start()
    try:
        await supervise(server.serve())
    finally:
        await server.drain(timeout=settings.fastagi.command_timeout_s)
        engine.dispose()


async def run_ami(settings: Settings) -> None:
    """The AMI listener: AMI events into the metrics reducer, Redis (stream, counters, live)
    and each call's outcome into SQL (the call facts)."""
    import time

    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from ivr.adapters.metrics.call_facts import CallFactsWriter
    from ivr.adapters.metrics.listener import MetricsListener
    from ivr.adapters.metrics.store import MetricsStore
    from ivr.adapters.sql.db import settings_engine
    from ivr.adapters.sql.schema import require_head
    from ivr.adapters.telephony.ami_client import AmiClient
    from ivr.adapters.telephony.connect_tickets import ConnectTickets
    from ivr.adapters.telephony.followup_calls import FollowupCalls
    from ivr.adapters.telephony.membership import MembershipKeeper
    from ivr.adapters.telephony.routing_files import load_routing
    from ivr.adapters.telephony.sip_guard import SipGuard
    from ivr.adapters.telephony.sip_sync import AccountSync
    from ivr.adapters.telephony.wrapup_pauses import WrapupPauses
    from ivr.errors import SipDirectoryError
    from ivr.protocols.ami import AmiMessage

    metrics = settings.metrics
    # One immediate retry (a pooled connection that Redis closed), then the store buffers.
    client_redis = aioredis.Redis.from_url(
        settings.redis.url, **settings.redis_auth(), socket_timeout=5, socket_connect_timeout=5,
        retry=Retry(NoBackoff(), 1),
    )  # fmt: skip
    store = MetricsStore.from_settings(
        client_redis, metrics, settings.redis.events_maxlen, settings.redis.events_max_age_s
    )
    engine = settings_engine(settings)
    require_head(engine)  # the agents' SIP accounts come from SQL, the call facts go there
    facts = CallFactsWriter(engine, buffer_max=metrics.buffer_max)
    listener = MetricsListener(
        store,
        store.config,
        metrics.queue_log_path,
        queue_log_lookback_s=metrics.queue_log_lookback_s,
        facts=facts,
    )
    jobs: list[Coroutine[Any, Any, None]] = []
    guard: SipGuard | None = None
    try:
        guard = SipGuard(settings)
    except SipDirectoryError as exc:  # no Asterisk instance beside this role (compose)
        logging.getLogger("ivr.ami").warning(
            "no SIP directory here: agents' accounts not synced, failed logins not counted (%s)",
            exc.message,
        )
    else:
        jobs += [guard.sweep_forever(), AccountSync(settings, engine).run()]

    routing = load_routing(settings.routing_dir)
    tickets = ConnectTickets(engine, routing, settings)  # AgentConnect: the agent's 工单
    followup = routing.hotline.followup
    if followup is not None and settings.has_ami_actions_secret():
        # 回访 (when enabled) and the agents' click-to-call: its own AMI link, the actions account
        calls = FollowupCalls.for_role(settings, engine, routing)
        jobs += [calls.ami.run(), calls.run()]

    async def on_event(message: AmiMessage) -> None:
        await listener.on_event(message)
        await tickets.on_event(message)
        await wrapups.on_event(message)
        if guard is not None:
            await guard.on_event(message)

    async def on_login(client: AmiClient) -> None:
        await listener.on_login(client)  # the metrics' resync
        await keeper.on_login(client)  # the agents' membership, back as SQL says

    ami = AmiClient(  # the listener's account: events, its resync and the agents' membership
        settings.ami, settings.ami_secret(), on_event=on_event, on_login=on_login
    )
    keeper = MembershipKeeper(engine, routing, ami)
    wrapups = WrapupPauses(engine, routing, keeper)  # 后处理: paused after a queue call
    try:
        await listener.replay(metrics.replay_window_s)
        await supervise(
            ami.run(),
            store.run(),
            facts.run(),
            listener.heartbeat(ami),
            keeper.run(),
            tickets.run(),
            wrapups.run(),
            *jobs,
        )
    finally:
        deadline = time.monotonic() + 5.0  # flush what is buffered, but do not hang on exit
        while store.pending and time.monotonic() < deadline and not await store.flush():
            await asyncio.sleep(0.2)
        while facts.pending and time.monotonic() < deadline and not await facts.flush():
            await asyncio.sleep(0.2)
        engine.dispose()
        await client_redis.aclose()


def _registrations(settings: Settings) -> dict[str, list[Registration]] | None:
    """The contacts Asterisk holds, by 工号; None where no SIP directory is beside us."""
    from ivr.adapters.telephony import sip_directory

    try:
        found = sip_directory.registrations(settings)
    except SipDirectoryError:
        return None
    by_agent: dict[str, list[Registration]] = {}
    for registration in found:
        by_agent.setdefault(registration.username, []).append(registration)
    return by_agent


def run_web(settings: Settings) -> None:
    import uvicorn

    from ivr.adapters.sql.db import settings_engine
    from ivr.adapters.sql.schema import require_head
    from ivr.web.app import create_app

    engine = settings_engine(settings)
    try:  # refused here with one line, before uvicorn (the app checks again at start-up)
        require_head(engine)
    finally:
        engine.dispose()

    uvicorn.run(
        create_app(settings),
        host=settings.web.host,
        port=settings.web.port,
        log_config=None,
        access_log=False,
        # the client address is ours to tell, from web.trusted_proxies only (ivr.web.auth)
        proxy_headers=False,
        timeout_graceful_shutdown=3,  # open live streams must not hold up a deploy
    )


# --- commands ---------------------------------------------------------------------------
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.devstack.stack import Stack, StackAlreadyUp

    try:
        demo = not args.no_demo_agents  # the simulated agents stand in when there are none
        sim = args.sim_agents or (not demo and not args.no_sim_agents)
        stack = Stack(settings, sim_agents=sim, demo_agents=demo)
        lines = stack.up()
    except StackAlreadyUp as exc:
        _out(exc.message)
        return 0
    for line in lines:
        _out(line)
    return 0


def cmd_down(settings: Settings, _: argparse.Namespace) -> int:
    from ivr.devstack.stack import Stack

    for line in Stack(settings).down():
        _out(line)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.devstack.stack import Stack

    statuses = Stack(settings).status()
    if args.json:
        _out(json.dumps([{"role": s.name, "ok": s.ok, "detail": s.detail, "fix": s.fix}
                         for s in statuses]))  # fmt: skip
    else:
        for s in statuses:
            _out(f"{'ok  ' if s.ok else 'DOWN'} {s.name:<10} {s.detail}")
            if s.fix:
                _out(f"     {'':<10} bring it back: {s.fix}")
    return 0 if all(s.ok for s in statuses) else 1


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.telephony.originate import parse_keys, place_call

    report = asyncio.run(
        place_call(
            settings,
            did=args.did,
            caller=args.caller,
            keys=parse_keys(args.digits),
            silent=args.silent,
            speak_s=args.speak,
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


def cmd_metrics(settings: Settings, args: argparse.Namespace) -> int:
    """Print the metrics document of GET /api/metrics/summary, or a short table of it."""
    import time

    import redis.asyncio as aioredis

    from ivr.adapters.metrics.store import PERIODS, MetricsStore
    from ivr.logging_setup import mask_number

    now = time.time()

    async def read() -> tuple[MetricsStore, dict[str, Any], dict[str, Any]]:
        client = aioredis.Redis.from_url(
            settings.redis.url, **settings.redis_auth(), socket_timeout=5,
            socket_connect_timeout=5,
        )  # fmt: skip
        try:
            store = MetricsStore.from_settings(
                client, settings.metrics, settings.redis.events_maxlen,
                settings.redis.events_max_age_s,
            )  # fmt: skip
            document = await store.summary(args.period, now)
            health = {} if args.json else await store.health(now)
            return store, document, health
        finally:
            await client.aclose()

    store, doc, health = asyncio.run(read())
    if args.json:
        _out(json.dumps(doc, ensure_ascii=False))
        return 0
    bucket = store.buckets(now)[PERIODS[args.period]]
    _out(f"answer rate, {args.period} ({bucket}, {settings.metrics.timezone})")
    _out(
        f"  {'':<18}{'offered':>8}{'answered':>9}{'late':>6}{'abandoned':>10}{'timed_out':>10}"
        f"{'ivr_only':>9}{'rate':>8}{'waiting':>8}{'longest':>9}{'over':>5}"
        f"{'free':>5}{'busy':>5}{'paused':>7}"
    )
    rows = [("total", doc), *sorted(doc["queues"].items())]
    for name, part in rows:
        rate = "-" if part["answer_rate"] is None else f"{part['answer_rate'] * 100:.1f}%"
        _out(
            f"  {name:<18}{part['offered']:>8}{part['answered']:>9}{part['answered_late']:>6}"
            f"{part['abandoned']:>10}{part['timed_out']:>10}{part['ivr_only']:>9}{rate:>8}"
            f"{part['waiting_now']:>8}{part['longest_wait_s']:>8.0f}s"
            f"{len(part['over_threshold_now']):>5}{part['agents_free']:>5}"
            f"{part['agents_busy']:>5}{part['agents_paused']:>7}"
        )
    for waiting in doc["over_threshold_now"]:
        _out(
            f"  over threshold: {mask_number(waiting['caller'])} in {waiting['queue']}, "
            f"{waiting['waited_s']:.0f} s"
        )
    for name in ("anomalies_today", "dropped"):
        counts = ", ".join(f"{k} {v}" for k, v in health[name].items()) or "none"
        _out(f"  {name.replace('_', ' ')}: {counts}")
    return 0


def cmd_messages(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.recordings import voice_messages
    from ivr.adapters.sql.db import settings_engine
    from ivr.adapters.sql.schema import require_head
    from ivr.logging_setup import mask_number

    engine = settings_engine(settings)
    try:
        require_head(engine)
        rows = voice_messages.recent(engine, args.limit)
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps([
            {"uniqueid": m.uniqueid, "recorded_at": m.recorded_at.isoformat(), "did": m.did,
             "caller": m.caller if args.show_numbers else mask_number(m.caller),
             "desk": m.desk, "category": m.category, "language": m.language,
             "file": m.file_name, "seconds": m.duration_s, "complete": m.complete}
            for m in rows
        ], ensure_ascii=False))  # fmt: skip
        return 0
    if not rows:
        _out("no voice messages")
    for m in rows:
        caller = m.caller if args.show_numbers else mask_number(m.caller)
        status = "" if m.complete else "  (caller hung up while recording)"
        _out(f"{m.recorded_at:%Y-%m-%d %H:%M} {m.desk:<13} {caller:<14} {m.duration_s:5.1f} s  "
             f"{m.file_name}{status}")  # fmt: skip
    return 0


def cmd_check_routing(settings: Settings, _: argparse.Namespace) -> int:
    from ivr.adapters.telephony.config_check import load_checked

    routing, catalog = load_checked(
        settings.routing_dir, settings.prompts_dir, settings.dialplan_dir
    )
    _out(
        f"routing OK: {len(routing.hotline.dids)} DIDs, "
        f"{len(routing.hotline.emergency_dids)} emergency DIDs, {len(routing.desks)} desks, "
        f"{len(catalog)} prompts"
    )
    return 0


def cmd_ringing_conf(settings: Settings, _: argparse.Namespace) -> int:
    """Print queues_ringing_generated.conf from routing/ (what `ivr up` renders itself; the
    compose stack's prompts one-shot writes it for the Asterisk container)."""
    from ivr.adapters.telephony.routing_files import load_routing
    from ivr.core.queue_ringing import ringing_conf

    sys.stdout.write(ringing_conf(load_routing(settings.routing_dir).ringing))
    return 0


def cmd_outbound_trunk_conf(settings: Settings, _: argparse.Namespace) -> int:
    """Print the outbound trunk's pjsip config from routing/ (what `ivr up` renders into
    pjsip_generated.conf; the compose stack's prompts one-shot writes it for the Asterisk
    container, whose entrypoint appends it there). Nothing without a followup section."""
    from ivr.adapters.telephony.asterisk import outbound_trunk_of
    from ivr.adapters.telephony.routing_files import load_routing

    sys.stdout.write(outbound_trunk_of(load_routing(settings.routing_dir)))
    return 0


def cmd_prompts_build(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.telephony import prompts
    from ivr.adapters.telephony.config_check import load_checked

    _, catalog = load_checked(settings.routing_dir, settings.prompts_dir, settings.dialplan_dir)
    written = prompts.build(catalog, settings.prompts_dir, settings.prompts_build_dir)
    _out(f"{len(written)} prompt(s) rendered into {settings.prompts_build_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="hotline IVR service")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole stack on 127.0.0.1")
    up.add_argument(
        "--sim-agents", action="store_true",
        help="also a simulated agent in each queue (the default with --no-demo-agents)",
    )  # fmt: skip
    up.add_argument(
        "--no-sim-agents", action="store_true",
        help="with --no-demo-agents: nobody in the queues",
    )  # fmt: skip
    up.add_argument(
        "--no-demo-agents", action="store_true",
        help="no demo agents 1001 and 1002, and no sipp phones for them",
    )  # fmt: skip
    sub.add_parser("down", help="stop what `ivr up` started")
    for name in ("status", "health"):
        st = sub.add_parser(name, help="health of each role (exit 1 if any is down)")
        st.add_argument("--json", action="store_true")
    call = sub.add_parser("call", help="place a test call through Asterisk (Local channel)")
    call.add_argument("--did", default="95158", help="hotline number dialled")
    call.add_argument("--from", dest="caller", default="13800138000", help="caller number")
    call.add_argument(
        "--digits",
        default="",
        help="keys per prompt the hotline listens at, space-separated (0-9 * #; _ = none), "
        "e.g. '2 11002233# 1'",
    )
    call.add_argument("--silent", action="store_true", help="the caller says nothing")
    call.add_argument("--speak", type=float, default=3.0, help="seconds of voice message")
    call.add_argument("--hold", type=float, default=60.0, help="most seconds the caller stays")
    call.add_argument("--timeout", type=float, default=120.0, help="give up after this")
    call.add_argument("--json", action="store_true", help="one JSON object")
    metrics = sub.add_parser("metrics", help="answer-rate metrics from Redis")
    metrics.add_argument("--period", choices=("hour", "today", "month"), default="today")
    metrics.add_argument("--json", action="store_true", help="the GET /api/metrics/summary JSON")
    sub.add_parser("agi", help="role: the FastAGI server")
    sub.add_parser("ami", help="role: the AMI listener (events into Redis)")
    sub.add_parser("web", help="role: the web app")
    sub.add_parser("check-routing", help="validate routing/ and the prompt catalog")
    sub.add_parser(
        "ringing-conf", help="print each queue's ringing (routing/) as Asterisk queue config"
    )
    sub.add_parser(
        "outbound-trunk-conf", help="print the outbound trunk (routing/) as Asterisk pjsip config"
    )
    messages = sub.add_parser("messages", help="list the voice messages left after hours")
    messages.add_argument("--limit", type=int, default=50)
    messages.add_argument("--json", action="store_true")
    messages.add_argument("--show-numbers", action="store_true", help="unmasked callers")
    cli_db.register(sub)
    cli_users.register(sub)
    cli_agents.register(sub)
    cli_recordings.register(sub)
    cli_tickets.register(sub)
    cli_report.register(sub)
    cli_stt_worker.register(sub)
    cli_stt.register(sub)
    cli_units.register(sub)
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
    except InvalidInput as exc:  # a bad option value: a usage error, as argparse's own
        _err(f"ivr {args.command}: {exc.message}")
        return 2
    except HotlineError as exc:
        _err(f"ivr {args.command}: {exc.message}")
        return 1
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
        case "db":
            return cli_db.run(settings, args)
        case "users":
            return cli_users.run(settings, args)
        case "agents":
            return cli_agents.run(settings, args, _registrations(settings))
        case "recorder":
            asyncio.run(cli_recordings.run_role(settings))
            return 0
        case "recordings":
            return cli_recordings.run(settings, args)
        case "tickets":
            return cli_tickets.run(settings, args)
        case "report":
            return cli_report.run(settings, args)
        case "stt-worker":
            return cli_stt_worker.run(settings, args)
        case "stt":
            return cli_stt.run(settings, args)
        case command if command in cli_units.COMMANDS:
            return cli_units.run(settings, args)
    handlers = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "health": cmd_status,
        "call": cmd_call,
        "check-routing": cmd_check_routing,
        "ringing-conf": cmd_ringing_conf,
        "outbound-trunk-conf": cmd_outbound_trunk_conf,
        "messages": cmd_messages,
        "metrics": cmd_metrics,
    }
    return handlers[args.command](settings, args)
