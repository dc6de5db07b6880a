#!/usr/bin/env python3
"""Process AGI (one process per call, pyst2) running the same ``inbound`` call flow.

For sites that prefer classic AGI to FastAGI. In the dialplan, instead of the FastAGI URL:

    same = n,AGI(/opt/hotline/agi_scripts/inbound.py,${IVR_PROMPTS})

Reads routing from ``IVR_ROUTING_DIR`` (default: the repository's routing/). The same pure
core (ivr.core.callflow) decides; ivr.adapters.flow_runner.agi_command translates.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from asterisk.agi import AGI, AGIAppError, AGIException, AGIHangup

from ivr.adapters.flow_runner import agi_command, event_after
from ivr.adapters.routing_files import load_routing
from ivr.core import callflow
from ivr.protocols.agi import format_command

REPO = Path(__file__).resolve().parent.parent


def run(agi: AGI, prompts_dir: str, config: callflow.FlowConfig) -> callflow.CallState:
    facts = callflow.CallFacts(
        did=agi.env.get("agi_extension", ""),
        caller=agi.env.get("agi_callerid", ""),
        now=time.time(),
    )
    state, batch = callflow.start(config, facts)
    while batch:
        try:
            for cmd in batch:
                words = agi_command(cmd, prompts_dir)
                if words is None:
                    continue
                try:
                    agi.execute(format_command(*words).decode().rstrip("\n"))
                except AGIAppError:
                    if not isinstance(cmd, callflow.Play):  # a missing prompt is not fatal
                        raise
        except AGIHangup:
            state, _ = callflow.step(state, callflow.CallerHungUp(now=time.time()))
            return state
        event = event_after(batch, time.time())
        if event is None:
            break
        state, batch = callflow.step(state, event)
    return state


def main() -> int:
    if len(sys.argv) < 2 or not sys.argv[1].startswith("/"):
        sys.stderr.write("usage: inbound.py PROMPTS_DIR (absolute, as Asterisk sees it)\n")
        return 2
    with open(os.devnull, "w") as quiet:  # pyst2 writes debug lines to stderr
        agi = AGI(stderr=quiet)
        config = callflow.flow_config(
            load_routing(Path(os.environ.get("IVR_ROUTING_DIR", REPO / "routing")))
        )
        try:
            run(agi, sys.argv[1], config)
        except AGIException as exc:
            sys.stderr.write(f"inbound.py: AGI error: {exc}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
