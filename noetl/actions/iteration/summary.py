"""The iterator's summary (counts, timings, rows) and the failure policy that judges it."""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from noetl.dsl.models import IteratorSpec


def _rank(count: int, fraction: float) -> int:
    return min(count - 1, max(0, round(fraction * (count - 1))))


class Durations:
    """Item durations for p50/p95/max in bounded memory.

    Exact up to EXACT samples (an array of doubles, 8 bytes each); past that they move into buckets
    of 1% relative width, so a loop of millions of items holds a few hundred counters instead of
    millions of floats, and its percentiles are within 1% of the exact ones.
    """

    EXACT = 10_000
    _FLOOR = 1e-6  # durations at or under a microsecond share the first bucket
    _LOG_RATIO = math.log(1.01)

    def __init__(self) -> None:
        self.count = 0
        self.max = 0.0
        self._exact: array[float] | None = array("d")
        self._buckets: Counter[int] = Counter()

    def add(self, seconds: float) -> None:
        self.count += 1
        if seconds > self.max:
            self.max = seconds
        exact = self._exact
        if exact is None:
            self._buckets[self._bucket(seconds)] += 1
        else:
            exact.append(seconds)
            if self.count > self.EXACT:
                self._buckets.update(self._bucket(v) for v in exact)
                self._exact = None

    def _bucket(self, seconds: float) -> int:
        return 0 if seconds <= self._FLOOR else 1 + int(math.log(seconds / self._FLOOR) / self._LOG_RATIO)

    def quantile(self, fraction: float) -> float:
        if not self.count:
            return 0.0
        rank = _rank(self.count, fraction)
        if self._exact is not None:
            return sorted(self._exact)[rank]
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen > rank:  # the bucket's geometric middle, never above the largest duration seen
                middle = self._FLOOR * math.exp((bucket - 0.5) * self._LOG_RATIO) if bucket else self._FLOOR
                return min(middle, self.max)
        return self.max


@dataclass
class Tally:
    """Outcomes of the items of one attempt; updated from several threads in async mode."""

    count: int
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    rows_saved: int = 0
    failed_indexes: list[int] = field(default_factory=list)
    durations: Durations = field(default_factory=Durations)
    first_error: tuple[int, str] | None = None
    errors: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, duration: float, rows: int) -> None:
        with self._lock:
            self.succeeded += 1
            if rows:
                self.rows_saved += rows
            durations = self.durations
            if durations._exact is not None and durations.count < durations.EXACT:
                # Durations.add's common case spelled out (once per item): kept exact, no new maximum
                # to test twice
                durations.count += 1
                durations._exact.append(duration)
                if duration > durations.max:
                    durations.max = duration
            else:
                durations.add(duration)

    def fail(self, index: int, duration: float, error: str) -> None:
        with self._lock:
            self.failed += 1
            self.failed_indexes.append(index)
            self.errors[index] = error
            self.durations.add(duration)
            if self.first_error is None or index < self.first_error[0]:
                self.first_error = (index, error)

    def skip(self) -> None:
        with self._lock:
            self.skipped += 1

    def meta(self, spec: IteratorSpec, elapsed: float) -> dict[str, Any]:
        with self._lock:
            durations = self.durations
            done = self.succeeded + self.failed
            return {
                "count": self.count,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "skipped": self.skipped,
                "failed_indexes": sorted(self.failed_indexes),
                "duration": round(elapsed, 6),
                "items_per_second": round(done / elapsed, 2) if elapsed > 0 else None,
                "p50": round(durations.quantile(0.50), 6),
                "p95": round(durations.quantile(0.95), 6),
                "max": round(durations.max, 6),
                "rows_saved": self.rows_saved,
                "mode": spec.mode,
                "on_error": spec.on_error,
            }


def breach(spec: IteratorSpec, tally: Tally) -> str | None:
    """Why the failure policy fails the iterator now, or None while it holds."""
    return breach_of(spec, tally.failed, tally.count)


def breach_of(spec: IteratorSpec, failed: int, count: int) -> str | None:
    """breach() from the counts alone: a chunk asks before every item, and needs no Tally for it."""
    if failed == 0:
        return None
    if spec.on_error == "fail":
        return "on_error is fail"
    if spec.max_failures is not None and failed > spec.max_failures:
        return f"{failed} items failed, more than max_failures {spec.max_failures}"
    if spec.max_failure_ratio is not None and count and failed / count > spec.max_failure_ratio:
        return f"{failed} of {count} items failed, more than max_failure_ratio {spec.max_failure_ratio}"
    return None
