"""What the speech-to-text queue decides about a job: pure, no Redis, no SQL, no clock.

An *attempt* is one delivery of the job's stream entry to a worker; the stream's pending
list counts them (the delivery count), so an attempt cut short by a killed worker counts
too. After a failure the job waits ``backoff_s(attempt)`` (``backoff_initial_s`` doubled per
attempt, at most ``backoff_max_s``) before the next one; after ``max_attempts`` it is dead.

Three kinds of failure (:class:`Failure`):

- permanent (not audio, too long, the file is gone): dead at once, trying again cannot help;
- transient (a decode error, a database hiccup, a bug): tried again after the backoff, dead
  once the attempts are used up;
- the model (missing or unloadable): the job is not the problem. It goes back to the queue
  uncounted and waits there, with the model's status, until a worker has a model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int  # deliveries before a job is dead
    backoff_initial_s: float  # wait after the first failed attempt; doubled after each one
    backoff_max_s: float  # the longest wait
    claim_idle_s: float  # a running job not heard of this long is taken over


class FailureKind(enum.StrEnum):
    permanent = "permanent"  # the input is bad: trying again cannot help
    transient = "transient"  # may work next time
    model = "model"  # no usable model: not the job's fault


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    reason: str  # for people: shown with the job (API, CLI)
    status: str | None = None  # for kind model: the job's status while it waits


class Action(enum.StrEnum):
    retry = "retry"  # back to the queue after ``delay_s``, counted
    dead = "dead"  # parked in the dead letters with ``reason``
    wait_model = "wait model"  # back to the queue uncounted, with ``status``


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    delay_s: float = 0.0
    status: str | None = None


class Start(enum.StrEnum):
    run = "run"  # transcribe it
    skip = "skip"  # already finished (a redelivery): acknowledge, do nothing
    give_up = "give up"  # delivered more often than allowed: every attempt was cut short


def backoff_s(policy: RetryPolicy, attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1-based): initial, doubled, capped.

    >>> p = RetryPolicy(max_attempts=9, backoff_initial_s=5, backoff_max_s=300, claim_idle_s=60)
    >>> [backoff_s(p, n) for n in (1, 2, 3, 4, 7, 8)]
    [5.0, 10.0, 20.0, 40.0, 300.0, 300.0]
    """
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    exponent = min(attempt - 1, 62)  # 2**62 s is beyond any cap; keeps the float finite
    return float(min(policy.backoff_max_s, policy.backoff_initial_s * 2.0**exponent))


def decide_start(policy: RetryPolicy, *, finished: bool, deliveries: int) -> Start:
    """What to do with a delivered job, before any work: ``finished`` = its row is final."""
    if finished:
        return Start.skip
    if deliveries > policy.max_attempts:
        return Start.give_up
    return Start.run


def given_up_reason(deliveries: int, last_error: str | None) -> str:
    """Why a job delivered ``deliveries`` times with no attempt finishing is dead."""
    why = f"gave up after {deliveries - 1} attempts that never finished (worker killed or lost)"
    return f"{why}; last error: {last_error}" if last_error else why


def decide_failure(policy: RetryPolicy, attempt: int, failure: Failure) -> Decision:
    """What follows failed attempt ``attempt`` (its delivery count)."""
    if failure.kind is FailureKind.model:
        return Decision(Action.wait_model, failure.reason, status=failure.status)
    if failure.kind is FailureKind.permanent:
        return Decision(Action.dead, failure.reason)
    if attempt >= policy.max_attempts:
        return Decision(Action.dead, f"failed {attempt} times; last error: {failure.reason}")
    return Decision(Action.retry, failure.reason, delay_s=backoff_s(policy, attempt))


def takeover_idle_s(policy: RetryPolicy, *, waiting_retry: bool, deliveries: int) -> float:
    """How long a pending entry must have been idle before a worker may take it.

    An entry waiting for its retry was parked when attempt ``deliveries`` failed: it is due
    after that attempt's backoff. Any other pending entry belongs to a running worker, which
    keeps it fresh with heartbeats: idle for ``claim_idle_s`` means the worker is gone.
    """
    if waiting_retry:
        return backoff_s(policy, max(deliveries, 1))
    return policy.claim_idle_s


def is_due(policy: RetryPolicy, *, waiting_retry: bool, deliveries: int, idle_s: float) -> bool:
    return idle_s >= takeover_idle_s(policy, waiting_retry=waiting_retry, deliveries=deliveries)
