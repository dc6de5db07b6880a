"""The failed-authentication rule (ivr/core/sip_guard.py): counting per address, one count per
refused attempt, the block at the limit, trunk addresses never blocked, expiry."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from ivr.core.sip_guard import (
    Block,
    GuardPolicy,
    GuardState,
    expire,
    failure_address,
    record_failure,
    restored,
)

POLICY = GuardPolicy(max_failures=3, window_s=60, block_s=600)


def fail(
    state: GuardState, address: str, at: float, session: str = ""
) -> tuple[GuardState, Block | None]:
    return record_failure(state, POLICY, address, at, session or f"call-{address}-{at}")


@pytest.mark.parametrize(
    ("event", "address"),
    [
        (
            {"Event": "ChallengeResponseFailed", "RemoteAddress": "IPV4/UDP/192.0.2.7/5060"},
            "192.0.2.7",
        ),
        ({"Event": "InvalidAccountID", "RemoteAddress": "IPV4/TCP/192.0.2.8/41000"}, "192.0.2.8"),
        (
            {"Event": "InvalidPassword", "RemoteAddress": "IPV6/UDP/[2001:db8::1]/5060"},
            "2001:db8::1",
        ),
        ({"Event": "ChallengeSent", "RemoteAddress": "IPV4/UDP/192.0.2.7/5060"}, None),
        ({"Event": "SuccessfulAuth", "RemoteAddress": "IPV4/UDP/192.0.2.7/5060"}, None),
        ({"Event": "InvalidPassword", "RemoteAddress": "garbage"}, None),
        ({"Event": "InvalidPassword", "RemoteAddress": "IPV4/UDP/not-an-ip/5060"}, None),
        ({"Event": "InvalidPassword"}, None),
    ],
)
def test_failure_address(event: dict[str, str], address: str | None) -> None:
    assert failure_address(event) == address


def test_given_failures_below_the_limit_then_counted_and_not_blocked() -> None:
    state = GuardState()
    for at in (0.0, 10.0):
        state, block = fail(state, "192.0.2.7", at)
        assert block is None
    assert state.recent("192.0.2.7") == 2 and state.totals["192.0.2.7"] == 2
    assert state.blocks == {}


def test_given_the_limit_within_the_window_then_blocked_for_block_s() -> None:
    state = GuardState()
    for at in (0.0, 10.0):
        state, _ = fail(state, "192.0.2.7", at)
    state, block = fail(state, "192.0.2.7", 20.0)
    assert block == Block("192.0.2.7", 620.0, 3)
    assert state.blocks == {"192.0.2.7": 620.0}


def test_given_failures_spread_beyond_the_window_then_never_blocked() -> None:
    state = GuardState()
    for at in (0.0, 40.0, 80.0, 120.0, 160.0):  # never 3 within 60 s
        state, block = fail(state, "192.0.2.7", at)
        assert block is None
    assert state.totals["192.0.2.7"] == 5 and state.recent("192.0.2.7") == 2


def test_given_events_of_one_attempt_then_counted_once() -> None:
    # An unknown account's REGISTER: InvalidAccountID then ChallengeResponseFailed, 3 ms apart
    state, _ = fail(GuardState(), "192.0.2.7", 0.0, "abc@192.0.2.7")
    state, _ = fail(state, "192.0.2.7", 0.003, "abc@192.0.2.7")
    state, _ = fail(state, "192.0.2.7", 0.005, "abc@192.0.2.7")
    assert state.totals["192.0.2.7"] == 1


def test_given_one_dialog_retrying_slowly_then_each_attempt_counts() -> None:
    state = GuardState()
    for at in (0.0, 0.9, 1.5, 3.0):  # a brute force reusing its Call-ID
        state, block = fail(state, "192.0.2.7", at, "same-call-id")
    assert state.totals["192.0.2.7"] == 3  # 0.9 s after the first is the same attempt
    assert "192.0.2.7" in state.blocks


def test_given_addresses_then_counted_apart() -> None:
    state = GuardState()
    for at, address in ((0.0, "192.0.2.7"), (1.0, "192.0.2.8"), (2.0, "192.0.2.7")):
        state, block = fail(state, address, at)
        assert block is None
    assert dict(state.totals) == {"192.0.2.7": 2, "192.0.2.8": 1}


def test_given_a_trunk_address_then_counted_but_never_blocked() -> None:
    policy = GuardPolicy(3, 60, 600, never_block=(ip_network("198.51.100.0/24"),))
    state = GuardState()
    for at in range(10):
        state, block = record_failure(state, policy, "198.51.100.9", float(at), f"c{at}")
        assert block is None
    assert state.totals["198.51.100.9"] == 10 and state.blocks == {}
    state, block = record_failure(state, policy, "2001:db8::9", 0.0, "v6")  # other family
    assert block is None


def test_given_a_blocked_address_failing_again_then_its_block_is_not_extended() -> None:
    state = GuardState()
    for at in (0.0, 1.0, 2.0):
        state, _ = fail(state, "192.0.2.7", at)
    state, block = fail(state, "192.0.2.7", 3.0)
    assert block is None and state.blocks == {"192.0.2.7": 602.0}


def test_expire_lifts_blocks_whose_time_is_up_and_forgets_old_failures() -> None:
    state = GuardState()
    for at in (0.0, 1.0, 2.0):
        state, _ = fail(state, "192.0.2.7", at)
    state, _ = fail(state, "192.0.2.8", 500.0)
    state, lifted = expire(state, 601.0, POLICY.window_s)
    assert lifted == [] and "192.0.2.7" in state.blocks
    state, lifted = expire(state, 602.0, POLICY.window_s)
    assert lifted == ["192.0.2.7"] and state.blocks == {}
    assert set(state.failures) == set()  # 192.0.2.8's failure is older than the window too
    assert dict(state.totals) == {"192.0.2.7": 3, "192.0.2.8": 1}  # totals are kept


def test_restored_state_keeps_the_blocks() -> None:
    state = restored([("192.0.2.7", 900.0)])
    _, block = fail(state, "192.0.2.7", 0.0)
    assert block is None and state.blocks == {"192.0.2.7": 900.0}


@pytest.mark.parametrize(("n", "window", "block"), [(0, 60, 600), (3, 0, 600), (3, 60, 0)])
def test_policy_refuses_nonsense(n: int, window: float, block: float) -> None:
    with pytest.raises(ValueError):
        GuardPolicy(n, window, block)
