"""Retry a nested task (an iterator's body, a workbook entry) by its own `retry` policy."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from noetl.dsl.models import RetryPolicy
from noetl.engine import policy
from noetl.errors import ActionError, CredentialError, TemplateError


@dataclass
class Attempts:
    """How many attempts a call took and why the earlier ones failed (reported in the item's event)."""

    count: int = 0
    errors: list[str] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {"attempts": self.count, "retried_errors": self.errors} if self.count > 1 else {}


def not_retryable(exc: BaseException) -> bool:
    """Mistakes in the playbook or its credentials fail the same way every time: do not retry them."""
    if isinstance(exc, (TemplateError, CredentialError)):
        return True
    return isinstance(exc, ActionError) and exc.non_retryable


def call_with_retry(retry: RetryPolicy | None, fn: Callable[[], Any], attempts: Attempts) -> Any:
    while True:
        attempts.count += 1
        try:
            return fn()
        except Exception as exc:
            outcome = policy.Outcome(
                False,
                getattr(exc, "result", None),
                str(exc),
                getattr(exc, "status_code", None),
                non_retryable=not_retryable(exc),
            )
            decision = policy.decide(retry, attempts.count, outcome, random.random())
            if not decision.retry:
                raise
            attempts.errors.append(f"attempt {attempts.count}: {exc}")
            time.sleep(decision.delay)
