"""The FastAGI routes: ``inbound`` (the call flow driven over one FastAGI session),
``agent-intro`` (the agent's 工号 announced to the caller), ``survey`` (the post-call survey
when the agent hung up first), ``followup`` (the 回访 call's questions, on the resident's
answered channel) and ``agent-feature`` (a feature code from an agent's phone:
log in, log out, pause, resume).

The translation and the loop are sans-I/O in :mod:`ivr.protocols.agi_flow`, shared with
the process-AGI script in ``agi_scripts/``; this module only does the socket I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents
from ivr.adapters.telephony.fastagi_server import AgiSession
from ivr.core import callflow, followup_call, survey
from ivr.core.agent_intro import intro_prompts, work_number_of
from ivr.core.agent_presence import FEATURE_CODES, seat_of_endpoint
from ivr.core.recording_meta import desk_for
from ivr.core.routing_models import LANGUAGES, Routing
from ivr.errors import AgiHangup, HotlineError
from ivr.protocols.agi import AgiResult
from ivr.protocols.agi_flow import AgiPaths, Words, drive, drive_machine, drive_survey

logger = logging.getLogger(__name__)

S = TypeVar("S")


async def run_inbound(
    session: AgiSession, config: callflow.FlowConfig, clock: Callable[[], float] = time.time
) -> callflow.CallState:
    """The ``inbound`` route: run the call flow to its end on this channel."""
    env = session.env
    paths = AgiPaths.from_args(env)
    facts = callflow.CallFacts(
        did=env.get("agi_dnid") if env.extension in ("", "s") else env.extension,
        caller=env.callerid,
        now=clock(),
        call_id=env.uniqueid,
    )
    log = {"uniqueid": env.uniqueid, "did": facts.did}
    state: callflow.CallState = await _run(session, drive(config, facts, paths, clock))
    logger.info(
        "call flow finished",
        extra={**log, "state": state.stage.value, "path": ">".join(state.history)},
    )
    return state


async def _run(session: AgiSession, driver: Generator[Words, AgiResult, S]) -> S:
    """Send a sans-I/O driver's AGI commands over the session until it returns its state;
    a hang-up is thrown into it (it ends there)."""
    try:
        words = next(driver)
        while True:
            try:
                result = await session.command(*words)
            except AgiHangup as exc:
                words = driver.throw(exc)
            else:
                words = driver.send(result)
    except StopIteration as done:
        final: S = done.value
        return final


async def run_survey(
    session: AgiSession,
    config: survey.SurveyConfig,
    desks: DeskIndex,
    clock: Callable[[], float] = time.time,
) -> survey.SurveyState:
    """The ``survey`` route: the post-call survey on the caller's channel, run by the dialplan
    after Queue() returned because the agent hung up first (``AGI(url/survey,${IVR_PROMPTS})``).
    The desk comes from the call's IVR_CATEGORY, else its queue; the language from
    IVR_LANGUAGE. The outcome is left in IVR_SURVEY (and IVR_SURVEY_KEY) for the call's facts:
    the recorder stores it with the call. If this server is down, the dialplan hangs up."""
    args = session.env.args
    if not args or not args[0].startswith("/"):
        raise ValueError("the dialplan must pass the prompts directory as the AGI argument")
    category = await session.get_variable("IVR_CATEGORY")
    queue = await session.get_variable("QUEUENAME") or await session.get_variable("IVR_QUEUE")
    language = await session.get_variable("IVR_LANGUAGE")
    previous = await session.get_variable(survey.IVR_SURVEY)
    desk = desk_for(category, queue, desks.by_category, desks.by_queue) or ""
    state, batch = survey.start(
        config,
        desk=desk,
        language=language if language in LANGUAGES else LANGUAGES[0],
        previous=previous,
    )
    state = await _run(session, drive_survey(state, batch, args[0].rstrip("/"), clock))
    logger.info(
        "survey finished",
        extra={
            "uniqueid": session.env.uniqueid,
            "desk": desk,
            "outcome": state.outcome.value if state.outcome else "",
            "path": ">".join((*state.history, state.stage.value)),
        },
    )
    return state


async def run_followup(
    session: AgiSession,
    config: followup_call.FollowupCallConfig,
    clock: Callable[[], float] = time.time,
) -> followup_call.FollowupCallState:
    """The ``followup`` route: the 回访 call's questions on the resident's channel, which the
    follow-up loop originated into ``[followup-call]`` (``AGI(url/followup,${IVR_PROMPTS})``).
    The language is the channel's IVR_LANGUAGE (set by the Originate; default zh). The result
    is left in IVR_FOLLOWUP, IVR_FOLLOWUP_RESOLVED and IVR_SURVEY for the loop to read."""
    args = session.env.args
    if not args or not args[0].startswith("/"):
        raise ValueError("the dialplan must pass the prompts directory as the AGI argument")
    language = await session.get_variable("IVR_LANGUAGE")
    state, batch = followup_call.start(
        config, language=language if language in LANGUAGES else LANGUAGES[0]
    )
    step = followup_call.step
    state = await _run(session, drive_machine(step, state, batch, args[0].rstrip("/"), clock))
    logger.info(
        "follow-up call finished",
        extra={
            "uniqueid": session.env.uniqueid,
            "outcome": state.outcome,
            "resolved": state.resolved,
            "path": ">".join((*state.history, state.stage.value)),
        },
    )
    return state


@dataclass(frozen=True, slots=True)
class DeskIndex:
    """Desks by their ticket category and by their queue (as the recorder finds a call's)."""

    by_category: dict[str, str]
    by_queue: dict[str, str]

    @classmethod
    def of(cls, routing: Routing) -> DeskIndex:
        return cls(
            by_category={d.category: d.id for d in routing.desks},
            by_queue={d.queue: d.id for d in routing.desks},
        )


async def run_agent_intro(session: AgiSession) -> None:
    """The ``agent-intro`` route: Queue()'s AGI, run on the caller's channel once an agent has
    answered and before they are bridged. "工号1001为您服务" in the call's language; nothing
    for a member without a 工号. If this server is down, Queue() bridges without it."""
    work_number = work_number_of(await session.get_variable("MEMBERNAME"))
    if work_number is None:
        return
    language = await session.get_variable("IVR_LANGUAGE")
    prompts = await session.get_variable("IVR_PROMPTS")  # the dialplan's global
    lang = language if language in LANGUAGES else LANGUAGES[0]
    for key in intro_prompts(work_number):
        await session.stream_file(f"{prompts}/{lang}/{key}")


async def run_agent_feature(session: AgiSession, engine: Engine) -> None:
    """The ``agent-feature`` route: a feature code dialled from an agent's phone
    (``[from-agents]``: *21 log in, *22 log out, *23N pause with reason N, *24 resume). The
    agent is the channel's authenticated endpoint (Asterisk names the channel
    ``PJSIP/<endpoint>-<n>``: ``<工号>`` for the desk phone, ``<工号>-webrtc`` for the browser's
    softphone, which *21 logs in on), never a number the phone sends, and is known from the
    AGI environment, so a phone that hangs up at once has still logged in.
    Sets ``IVR_FEATURE_RESULT`` to the action done (login, logout, pause, resume) or
    ``failed``; the dialplan plays the matching prompt. The ami role applies the change to
    Asterisk's queues within about a second."""
    args = session.env.args
    code = args[0] if args else ""
    endpoint = endpoint_of_channel(session.env.get("agi_channel") or "")
    feature = FEATURE_CODES.get(code)
    seat = seat_of_endpoint(endpoint)
    log = {"uniqueid": session.env.uniqueid, "code": code, "endpoint": endpoint}
    result = "failed"
    if feature is None or seat is None:
        logger.warning("unknown agent feature code or not an agent's phone", extra=log)
    else:
        action, reason = feature
        work_number, device = seat
        try:
            await asyncio.to_thread(
                _change_presence, engine, work_number, action, reason, device, endpoint
            )
        except (HotlineError, SQLAlchemyError) as exc:
            logger.warning("agent feature refused: %s", exc, extra=log)
        else:
            result = action
            logger.info("agent feature", extra={**log, "action": action, "reason": reason})
    await session.set_variable("IVR_FEATURE_RESULT", result)


def _change_presence(
    engine: Engine, work_number: str, action: str, reason: str, device: str, endpoint: str
) -> None:
    with Session(engine) as db:
        actor = agents.Actor(f"phone:{endpoint}")  # phone:1001, or phone:1001-webrtc
        agents.change_presence(db, work_number, action, reason, actor, device)
        db.commit()


def endpoint_of_channel(channel: str) -> str:
    """``PJSIP/1001-00000003`` -> ``1001``; "" for any other kind of channel.

    >>> endpoint_of_channel("PJSIP/1001-00000003"), endpoint_of_channel("Local/x@y-0001;2")
    ('1001', '')
    """
    kind, _, rest = channel.partition("/")
    return rest.rpartition("-")[0] if kind == "PJSIP" else ""
