"""Retry decisions: the delay formula, its cap and jitter, stop_when before retry_when, attempts."""

from __future__ import annotations

import pytest

from noetl.dsl.models import RetryPolicy
from noetl.engine.policy import Outcome, decide, delay_for
from noetl.errors import TemplateError

NO_JITTER = RetryPolicy(
    max_attempts=10, initial_delay=0.5, backoff_multiplier=3.0, max_delay=10.0, jitter=False
)
FAILED = Outcome(success=False, error="boom", status_code=503)


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.5), (3, 4.5), (4, 10.0), (9, 10.0)])
def test_delay_is_initial_times_multiplier_to_the_attempt_capped_at_max_delay(
    attempt: int, expected: float
) -> None:
    assert delay_for(NO_JITTER, attempt, jitter_fraction=0.7) == expected


def test_multiplier_one_is_a_constant_delay() -> None:
    policy = RetryPolicy(initial_delay=2.0, backoff_multiplier=1.0, jitter=False)
    assert [delay_for(policy, a, 0.0) for a in (1, 2, 5)] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_jitter_takes_off_at_most_half(fraction: float) -> None:
    policy = RetryPolicy(initial_delay=4.0, backoff_multiplier=2.0, max_delay=100.0, jitter=True)
    delay = delay_for(policy, 2, fraction)
    assert 4.0 <= delay <= 8.0
    assert delay == pytest.approx(8.0 * (1 - 0.5 * fraction), abs=1e-4)


@pytest.mark.parametrize(("fraction", "expected"), [(-3.0, 8.0), (7.0, 4.0)])
def test_jitter_fraction_is_clamped(fraction: float, expected: float) -> None:
    policy = RetryPolicy(initial_delay=8.0, jitter=True)
    assert delay_for(policy, 1, fraction) == expected


def test_jitter_applies_after_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, backoff_multiplier=10.0, max_delay=5.0, jitter=True)
    assert delay_for(policy, 4, 1.0) == 2.5


def test_no_policy_or_success_means_no_retry() -> None:
    assert decide(None, 1, FAILED, 0.0).retry is False
    assert decide(RetryPolicy(), 1, Outcome(success=True), 0.0).retry is False


def test_any_error_is_retried_without_conditions_with_the_formula_delay() -> None:
    decision = decide(NO_JITTER, 2, FAILED, 0.0)
    assert decision.retry is True
    assert decision.delay == 1.5


def test_max_attempts_stops_retrying() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=False)
    assert decide(policy, 2, FAILED, 0.0).retry is True
    last = decide(policy, 3, FAILED, 0.0)
    assert last.retry is False
    assert "all 3 attempts used" in last.reason


def test_non_retryable_stops_at_once() -> None:
    outcome = Outcome(success=False, error="bad credentials", non_retryable=True)
    decision = decide(RetryPolicy(max_attempts=5), 1, outcome, 0.0)
    assert decision.retry is False
    assert "not retryable" in decision.reason


def test_stop_when_is_tested_before_retry_when() -> None:
    policy = RetryPolicy(retry_when="{{ status_code >= 500 }}", stop_when="{{ status_code == 503 }}")
    decision = decide(policy, 1, FAILED, 0.0)
    assert decision.retry is False
    assert decision.reason == "stop_when matched"


def test_retry_when_decides_when_stop_when_does_not_match() -> None:
    policy = RetryPolicy(
        retry_when="{{ status_code >= 500 }}", stop_when="{{ status_code == 404 }}", jitter=False
    )
    assert decide(policy, 1, FAILED, 0.0).retry is True
    client_error = Outcome(success=False, error="not found", status_code=400)
    decision = decide(policy, 1, client_error, 0.0)
    assert decision.retry is False
    assert decision.reason == "retry_when did not match"


def test_conditions_see_attempt_error_and_result() -> None:
    policy = RetryPolicy(retry_when="{{ attempt < 2 and 'timeout' in error and result.partial }}")
    outcome = Outcome(success=False, result={"partial": True}, error="read timeout")
    assert decide(policy, 1, outcome, 0.0).retry is True
    assert decide(RetryPolicy(max_attempts=9, retry_when=policy.retry_when), 2, outcome, 0.0).retry is False


def test_truthiness_words_apply_to_conditions() -> None:
    policy = RetryPolicy(retry_when="{{ 'no' }}")
    assert decide(policy, 1, FAILED, 0.0).retry is False


def test_an_undefined_name_in_a_condition_is_an_error_not_false() -> None:
    policy = RetryPolicy(retry_when="{{ status >= 500 }}")
    with pytest.raises(TemplateError, match="'status' is undefined"):
        decide(policy, 1, FAILED, 0.0)
