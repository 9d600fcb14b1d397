"""A circuit breaker per save target: after N consecutive failures, fail at once until a timeout passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from noetl.dsl.models import CircuitBreakerSpec


class CircuitBreaker:
    def __init__(self, spec: CircuitBreakerSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """False while open; after reset_timeout exactly one trial call is let through."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial_running or self._clock() - self._opened_at < self.spec.reset_timeout:
                return False
            self._trial_running = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._trial_running = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._failures >= self.spec.failure_threshold:
                self._opened_at = self._clock()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None


class Breakers:
    """The breakers of one runner, keyed by target (storage kind + connection + table)."""

    def __init__(self) -> None:
        self._by_target: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, target: str, spec: CircuitBreakerSpec) -> CircuitBreaker:
        with self._lock:
            found = self._by_target.get(target)
            if found is None:
                found = self._by_target[target] = CircuitBreaker(spec)
            return found
