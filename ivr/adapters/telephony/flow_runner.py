"""The FastAGI routes: ``inbound`` (the call flow driven over one FastAGI session) and
``agent-intro`` (the agent's 工号 announced to the caller).

The translation and the loop are sans-I/O in :mod:`ivr.protocols.agi_flow`, shared with
the process-AGI script in ``agi_scripts/``; this module only does the socket I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ivr.adapters.telephony.fastagi_server import AgiSession
from ivr.core import callflow
from ivr.core.agent_intro import intro_prompts, work_number_of
from ivr.core.routing_models import LANGUAGES
from ivr.errors import AgiHangup
from ivr.protocols.agi_flow import AgiPaths, drive

logger = logging.getLogger(__name__)


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
    driver = drive(config, facts, paths, clock)
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
        state: callflow.CallState = done.value
    logger.info(
        "call flow finished",
        extra={**log, "state": state.stage.value, "path": ">".join(state.history)},
    )
    return state


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
