"""Each queue rings as routing/ says (section ringing): its strategy. The desks' wrap-up is a
后处理 pause, not the queues' (tests/integration/test_wrapup_pause.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import yaml

from ivr.devstack.stack import Stack, asterisk_instance
from tests.conftest import routing_for_tests
from tests.stack_support import ami_session, private_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wrapup_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("ringing")
    routing = routing_for_tests(base / "routing")
    desks = yaml.safe_load((routing / "desks.yaml").read_text(encoding="utf-8"))
    desks["ringing"]["repair"] = {"strategy": "fewestcalls", "ring_s": 10, "wrapup_s": 30}
    (routing / "desks.yaml").write_text(yaml.safe_dump(desks, allow_unicode=True))
    with private_stack(base, "ring", "ringing-logs", routing_dir=routing) as stack:
        yield stack


async def _queue_params(stack: Stack) -> dict[str | None, dict[str, str]]:
    async with ami_session(stack.settings) as client:
        entries = await client.send_list_action("QueueStatus", timeout=10)
    return {e.get("Queue"): e.to_dict() for e in entries if e.event == "QueueParams"}


def test_each_queue_has_the_strategy_of_its_routing(wrapup_stack: Stack) -> None:
    params = asyncio.run(_queue_params(wrapup_stack))
    strategies = {queue: p["Strategy"] for queue, p in params.items()}
    assert strategies["repair"] == "fewestcalls"  # the test's own routing
    assert strategies["billing"] == "leastrecent"  # as shipped in routing/desks.yaml
    assert strategies["emergency"] == strategies["emergency-backup"] == "ringall"


def test_the_queues_have_no_wrapup_of_asterisks_even_with_a_desks_wrapup(
    wrapup_stack: Stack,
) -> None:
    instance = asterisk_instance(wrapup_stack.settings)
    rendered = instance.host_path(instance.base / "etc" / "queues_ringing_generated.conf")
    text = rendered.read_text(encoding="utf-8")
    assert "[repair](+)" in text and "wrapuptime" not in text  # the template's 0 holds
