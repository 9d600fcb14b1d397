"""Retry decisions: whether another attempt follows, and after what delay. Pure (randomness passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.dsl.models import RetryPolicy
from noetl.dsl.render import render, truthy


@dataclass(frozen=True)
class Outcome:
    """What an attempt produced, as `retry_when`/`stop_when` see it."""

    success: bool
    result: Any = None
    error: str | None = None
    status_code: int | None = None
    non_retryable: bool = False


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


def delay_for(policy: RetryPolicy, attempt: int, jitter_fraction: float) -> float:
    """initial_delay * backoff_multiplier ** (attempt-1), capped at max_delay; jitter takes up to half off."""
    base = min(policy.initial_delay * policy.backoff_multiplier ** (attempt - 1), policy.max_delay)
    if policy.jitter:
        base *= 1 - 0.5 * min(max(jitter_fraction, 0.0), 1.0)
    return round(base, 4)


def decide(
    policy: RetryPolicy | None, attempt: int, outcome: Outcome, jitter_fraction: float
) -> RetryDecision:
    if policy is None or outcome.success:
        return RetryDecision(False, reason="no retry policy" if policy is None else "succeeded")
    if outcome.non_retryable:
        return RetryDecision(False, reason="the error is not retryable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"all {policy.max_attempts} attempts used")
    names = {
        "result": outcome.result,
        "error": outcome.error,
        "status_code": outcome.status_code,
        "attempt": attempt,
        "success": outcome.success,
    }
    if policy.stop_when and truthy(render(policy.stop_when, names, where="retry.stop_when")):
        return RetryDecision(False, reason="stop_when matched")
    if policy.retry_when and not truthy(render(policy.retry_when, names, where="retry.retry_when")):
        return RetryDecision(False, reason="retry_when did not match")
    return RetryDecision(True, delay_for(policy, attempt, jitter_fraction))
