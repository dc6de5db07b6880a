"""The STT queue's decisions (ivr.core.stt_jobs): backoff, retry or dead, takeover, start."""

from __future__ import annotations

import pytest

from ivr.core.stt_jobs import (
    Action,
    Failure,
    FailureKind,
    RetryPolicy,
    Start,
    backoff_s,
    decide_failure,
    decide_start,
    given_up_reason,
    is_due,
    takeover_idle_s,
)

POLICY = RetryPolicy(max_attempts=4, backoff_initial_s=5.0, backoff_max_s=300.0, claim_idle_s=60.0)
TRANSIENT = Failure(FailureKind.transient, "decode error: ffmpeg died")


def test_given_attempts_when_backoff_then_doubles_from_initial_up_to_the_cap():
    policy = RetryPolicy(max_attempts=12, backoff_initial_s=5, backoff_max_s=300, claim_idle_s=60)
    assert [backoff_s(policy, n) for n in range(1, 10)] == [
        5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0,
    ]  # fmt: skip


def test_given_a_huge_attempt_number_when_backoff_then_the_cap_without_overflow():
    assert backoff_s(POLICY, 10_000) == 300.0


def test_given_attempt_zero_when_backoff_then_refused():
    with pytest.raises(ValueError, match="from 1"):
        backoff_s(POLICY, 0)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 5.0), (2, 10.0), (3, 20.0)])
def test_given_transient_failure_before_the_last_attempt_when_decided_then_retry_after_backoff(
    attempt, delay
):
    decision = decide_failure(POLICY, attempt, TRANSIENT)
    assert decision.action is Action.retry
    assert decision.delay_s == delay
    assert decision.reason == "decode error: ffmpeg died"


def test_given_transient_failure_on_the_last_attempt_when_decided_then_dead_with_the_reason():
    decision = decide_failure(POLICY, 4, TRANSIENT)
    assert decision.action is Action.dead
    assert decision.reason == "failed 4 times; last error: decode error: ffmpeg died"


def test_given_permanent_failure_on_the_first_attempt_when_decided_then_dead_at_once():
    failure = Failure(FailureKind.permanent, "not audio: x.wav has no audio stream")
    decision = decide_failure(POLICY, 1, failure)
    assert (decision.action, decision.reason) == (Action.dead, failure.reason)


def test_given_model_failure_even_on_the_last_attempt_when_decided_then_waits_uncounted():
    failure = Failure(FailureKind.model, "no vosk model at /m", status="no model")
    decision = decide_failure(POLICY, 4, failure)
    assert decision.action is Action.wait_model
    assert decision.status == "no model"


def test_given_entry_of_a_running_worker_when_takeover_then_claim_idle():
    assert takeover_idle_s(POLICY, waiting_retry=False, deliveries=3) == 60.0
    assert not is_due(POLICY, waiting_retry=False, deliveries=1, idle_s=59.9)
    assert is_due(POLICY, waiting_retry=False, deliveries=1, idle_s=60.0)


def test_given_entry_waiting_for_retry_when_takeover_then_due_after_that_attempts_backoff():
    assert takeover_idle_s(POLICY, waiting_retry=True, deliveries=1) == 5.0
    assert takeover_idle_s(POLICY, waiting_retry=True, deliveries=3) == 20.0
    assert not is_due(POLICY, waiting_retry=True, deliveries=2, idle_s=9.0)
    assert is_due(POLICY, waiting_retry=True, deliveries=2, idle_s=10.0)


def test_given_backoff_beyond_claim_idle_when_takeover_then_the_backoff_wins():
    policy = RetryPolicy(max_attempts=9, backoff_initial_s=50, backoff_max_s=600, claim_idle_s=60)
    assert takeover_idle_s(policy, waiting_retry=True, deliveries=3) == 200.0
    assert not is_due(policy, waiting_retry=True, deliveries=3, idle_s=120.0)


def test_given_finished_job_redelivered_when_started_then_skipped():
    assert decide_start(POLICY, finished=True, deliveries=9) is Start.skip


def test_given_delivery_within_attempts_when_started_then_run():
    assert decide_start(POLICY, finished=False, deliveries=4) is Start.run


def test_given_delivery_beyond_attempts_when_started_then_given_up_with_reason():
    assert decide_start(POLICY, finished=False, deliveries=5) is Start.give_up
    assert given_up_reason(5, None) == (
        "gave up after 4 attempts that never finished (worker killed or lost)"
    )
    assert given_up_reason(5, "decode error: x").endswith("; last error: decode error: x")
