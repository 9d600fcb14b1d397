"""The iterator's summary (counts, timings, rows) and the failure policy that judges it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from noetl.dsl.models import IteratorSpec


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[rank]


@dataclass
class Tally:
    """Outcomes of the items of one attempt; updated from several threads in async mode."""

    count: int
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    rows_saved: int = 0
    failed_indexes: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    first_error: tuple[int, str] | None = None
    errors: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, duration: float, rows: int) -> None:
        with self._lock:
            self.succeeded += 1
            self.rows_saved += rows
            self.durations.append(duration)

    def fail(self, index: int, duration: float, error: str) -> None:
        with self._lock:
            self.failed += 1
            self.failed_indexes.append(index)
            self.errors[index] = error
            self.durations.append(duration)
            if self.first_error is None or index < self.first_error[0]:
                self.first_error = (index, error)

    def skip(self) -> None:
        with self._lock:
            self.skipped += 1

    def meta(self, spec: IteratorSpec, elapsed: float) -> dict[str, Any]:
        with self._lock:
            durations = sorted(self.durations)
            done = self.succeeded + self.failed
            return {
                "count": self.count,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "skipped": self.skipped,
                "failed_indexes": sorted(self.failed_indexes),
                "duration": round(elapsed, 6),
                "items_per_second": round(done / elapsed, 2) if elapsed > 0 else None,
                "p50": round(_percentile(durations, 0.50), 6),
                "p95": round(_percentile(durations, 0.95), 6),
                "max": round(durations[-1], 6) if durations else 0.0,
                "rows_saved": self.rows_saved,
                "mode": spec.mode,
                "on_error": spec.on_error,
            }


def breach(spec: IteratorSpec, tally: Tally) -> str | None:
    """Why the failure policy fails the iterator now, or None while it holds."""
    if tally.failed == 0:
        return None
    if spec.on_error == "fail":
        return "on_error is fail"
    if spec.max_failures is not None and tally.failed > spec.max_failures:
        return f"{tally.failed} items failed, more than max_failures {spec.max_failures}"
    if (
        spec.max_failure_ratio is not None
        and tally.count
        and tally.failed / tally.count > spec.max_failure_ratio
    ):
        return f"{tally.failed} of {tally.count} items failed, more than max_failure_ratio {spec.max_failure_ratio}"
    return None
