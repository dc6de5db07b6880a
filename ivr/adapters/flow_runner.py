"""Carries out the call flow's commands over AGI, for FastAGI (async) and process AGI.

``agi_command(cmd, prompts_dir)`` is the one translation from a call-flow command to AGI
words; both the FastAGI route here and ``agi_scripts/`` use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ivr.adapters.fastagi_server import AgiSession
from ivr.core import callflow
from ivr.errors import AgiHangup

logger = logging.getLogger(__name__)


def agi_command(cmd: callflow.Command, prompts_dir: str) -> tuple[str, ...] | None:
    """The AGI command for one call-flow command; None for ``Finish`` (nothing to send)."""
    match cmd:
        case callflow.Answer():
            return ("ANSWER",)
        case callflow.Play(prompt=prompt, language=language):
            return ("STREAM FILE", f"{prompts_dir}/{language}/{prompt}", "")
        case callflow.SetVariable(name=name, value=value):
            return ("SET VARIABLE", name, value)
        case callflow.Finish():
            return None


def event_after(batch: list[callflow.Command], now: float) -> callflow.Event | None:
    """The event to feed back once a batch ran; None when the batch finished the flow."""
    if any(isinstance(c, callflow.Finish) for c in batch):
        return None
    return callflow.PromptPlayed(now=now)


async def run_inbound(
    session: AgiSession, config: callflow.FlowConfig, clock: Callable[[], float] = time.time
) -> callflow.CallState:
    """The ``inbound`` route: run the call flow to its end on this channel."""
    env = session.env
    if not env.args or not env.args[0].startswith("/"):
        raise ValueError("the dialplan must pass the prompts directory as the AGI's 1st argument")
    prompts_dir = env.args[0]
    facts = callflow.CallFacts(
        did=env.get("agi_dnid") if env.extension in ("", "s") else env.extension,
        caller=env.callerid,
        now=clock(),
    )
    state, batch = callflow.start(config, facts)
    log = {"uniqueid": env.uniqueid, "did": facts.did}
    logger.info("call flow started", extra={**log, "state": state.stage.value})
    while batch:
        try:
            for cmd in batch:
                words = agi_command(cmd, prompts_dir)
                if words is not None:
                    await session.command(*words)
        except AgiHangup:
            state, batch = callflow.step(state, callflow.CallerHungUp(now=clock()))
            logger.info("call flow ended", extra={**log, "state": state.stage.value})
            raise
        event = event_after(batch, clock())
        if event is None:
            break
        state, batch = callflow.step(state, event)
        logger.info("call flow state", extra={**log, "state": state.stage.value})
    logger.info("call flow finished", extra={**log, "state": state.stage.value})
    return state
