"""The ``agent-feature`` route (a feature code dialled from an agent's phone) on the real
FastAgiServer, driven by the fake Asterisk of test_fastagi_server, against SQLite: the agent
is the channel's endpoint, its desk phone (``PJSIP/1001-…``) or its browser's softphone
(``PJSIP/1001-webrtc-…``), never a number the phone sends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.telephony.fastagi_server import AgiSession
from ivr.adapters.telephony.flow_runner import run_agent_feature
from ivr.core.agent_presence import Presence
from tests.agent_support import engine_with_agent_1001
from tests.protocols.test_fastagi_server import FakeAsterisk, env_block, make_server, port

__all__ = ["make_server"]  # the fixture, used by name

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with engine_with_agent_1001(tmp_path, logged_in=False) as engine:
        yield engine


async def dial(make_server, engine: Engine, channel: str, code: str) -> list[str]:
    server = await make_server()

    async def feature(session: AgiSession) -> None:
        await run_agent_feature(session, engine)

    server.add_route("agent-feature", feature)
    env = env_block(
        "pjsip_inbound.agi", network_script="agent-feature", channel=channel, arg_1=code,
        arg_2=None, context="from-agents", extension=code,
    )  # fmt: skip
    async with asyncio.timeout(3):
        return await FakeAsterisk(port(server), env).call()


def presence(engine: Engine) -> Presence:
    with Session(engine) as db:
        return agent_store.get_presence(db, "1001")


def actors(engine: Engine) -> list[str]:
    with Session(engine) as db:
        return [c.actor for c in agent_store.history(db, "1001")][1:]


async def test_feature_codes_from_the_browsers_softphone_are_the_agents(make_server, engine):
    browser = "PJSIP/1001-webrtc-0000002a"

    assert await dial(make_server, engine, browser, "*21") == [
        "SET VARIABLE IVR_FEATURE_RESULT login"
    ]
    assert presence(engine) == Presence(True, device="browser")  # logged in where it dialled
    await dial(make_server, engine, browser, "*231")
    assert presence(engine) == Presence(True, True, "小休", "browser")
    await dial(make_server, engine, "PJSIP/1001-0000002b", "*21")  # the desk phone takes over
    assert presence(engine) == Presence(True, True, "小休", "desk")
    assert actors(engine) == ["phone:1001-webrtc", "phone:1001-webrtc", "phone:1001"]


@pytest.mark.parametrize("channel", ["PJSIP/pstn-00000001", "PJSIP/1001-webrtcx-00000001",
                                     "Local/1001@sim-agents-00000001;2"])  # fmt: skip
async def test_feature_codes_from_anything_but_an_agents_endpoint_fail(
    make_server, engine, channel
):
    assert await dial(make_server, engine, channel, "*21") == [
        "SET VARIABLE IVR_FEATURE_RESULT failed"
    ]
    assert presence(engine) == Presence()
