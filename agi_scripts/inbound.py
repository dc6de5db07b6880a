#!/usr/bin/env python3
"""Process AGI (one process per call, pyst2) running the same ``inbound`` call flow.

For sites that prefer classic AGI to FastAGI. In the dialplan, instead of the FastAGI URL:

    same = n,AGI(/opt/hotline/agi_scripts/inbound.py,${IVR_PROMPTS},${IVR_MESSAGES})

Reads routing from ``IVR_ROUTING_DIR`` (default: the repository's routing/). The same pure
core decides and the same sans-I/O driver translates (ivr.adapters.telephony.flow_runner.drive);
pyst2 reads the environment, sends the commands and turns SIGHUP into a hang-up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from asterisk.agi import AGI, AGIHangup

from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import callflow
from ivr.errors import AgiHangup, HotlineError
from ivr.protocols.agi import AgiRequest, AgiResult, format_command, parse_result
from ivr.protocols.agi_flow import AgiPaths, drive

REPO = Path(__file__).resolve().parent.parent


def _command(agi: AGI, words: tuple[str, ...]) -> AgiResult:
    """Send one command through pyst2 and read its reply with our parser."""
    try:
        agi.test_hangup()
        agi.send_command(format_command(*words).decode().rstrip("\n"))
    except (AGIHangup, OSError) as exc:
        raise AgiHangup("caller hung up") from exc
    while True:
        line = agi.stdin.readline()
        if not line:
            raise AgiHangup("Asterisk closed the AGI pipe")
        result = parse_result(line)
        if result.message == "HANGUP" or result.code == 511:  # 511: dead channel
            raise AgiHangup("caller hung up")
        if result.code != 100:
            return result


def run(agi: AGI, config: callflow.FlowConfig) -> callflow.CallState:
    env = AgiRequest(env=agi.env)
    facts = callflow.CallFacts(
        did=env.extension, caller=env.callerid, now=time.time(), call_id=env.uniqueid
    )
    driver = drive(config, facts, AgiPaths.from_args(env), time.time)
    try:
        words = next(driver)
        while True:
            try:
                result = _command(agi, words)
            except AgiHangup as exc:
                words = driver.throw(exc)
            else:
                words = driver.send(result)
    except StopIteration as done:
        state: callflow.CallState = done.value
        return state


def main() -> int:
    with open(os.devnull, "w") as quiet:  # pyst2 writes debug lines to stderr
        agi = AGI(stderr=quiet)
        try:
            config = callflow.flow_config(
                load_routing(Path(os.environ.get("IVR_ROUTING_DIR", REPO / "routing")))
            )
            run(agi, config)
        except (ValueError, HotlineError) as exc:
            sys.stderr.write(f"inbound.py: {exc}\n")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
