"""The FastAGI ``inbound`` route: the call flow driven over one FastAGI session.

The translation and the loop are sans-I/O in :mod:`ivr.protocols.agi_flow`, shared with
the process-AGI script in ``agi_scripts/``; this module only does the socket I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ivr.adapters.telephony.fastagi_server import AgiSession
from ivr.core import callflow
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
