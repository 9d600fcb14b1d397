"""`/metrics`: a prometheus_client collector over the store's event rollup and the broker's queue.

The figures are read at each scrape from the rollup of noetl.store.event_stats, kept up to date in the
transaction of each batch of events: the scrape reads a few dozen rows, whatever the number of stored
events, and counts the events that workers on other hosts wrote too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from noetl.engine.events import EventType as T
from noetl.server.dispatch import is_postgres
from noetl.store.event_stats import BUCKETS, StatsRow

log = logging.getLogger("noetl.server")

# The classic text format, which Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# metric -> (help, the event types it counts)
COUNTERS = {
    "noetl_executions_total": (
        "Executions by status: STARTED when accepted, then COMPLETED or FAILED",
        (T.EXECUTION_START, T.EXECUTION_COMPLETE, T.EXECUTION_FAILED),
    ),
    "noetl_steps_total": (
        "Step events by status: RUNNING when started, then COMPLETED or FAILED",
        (T.STEP_STARTED, T.STEP_COMPLETED, T.STEP_FAILED),
    ),
    "noetl_items_total": (
        "Iterator items (iteration events) by status",
        (T.ITERATION_STARTED, T.ITERATION_COMPLETED, T.ITERATION_FAILED),
    ),
    "noetl_saves_total": (
        "Saves by status (FAILED counts save_failed and save_error)",
        (T.SAVE_STARTED, T.SAVE_COMPLETED, T.SAVE_FAILED, T.SAVE_ERROR),
    ),
}
HISTOGRAMS = {
    "noetl_execution_duration_seconds": ("Execution durations", (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED)),
    "noetl_step_duration_seconds": ("Step durations", (T.STEP_COMPLETED, T.STEP_FAILED)),
    "noetl_action_duration_seconds": ("Action attempt durations", (T.ACTION_COMPLETED, T.ACTION_ERROR)),
    "noetl_item_duration_seconds": ("Iterator item durations", (T.ITERATION_COMPLETED, T.ITERATION_FAILED)),
    "noetl_save_duration_seconds": ("Save durations", (T.SAVE_COMPLETED, T.SAVE_FAILED, T.SAVE_ERROR)),
}
_UP = ("noetl_store_up", "1 when the store answered the metrics query")


class StoreCollector(Collector):
    """Every noetl_* metric, read from `store` when the registry is collected."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            rows = self.store.event_stats()
        except Exception as exc:  # the scrape still answers, so an alert on noetl_store_up can fire
            log.warning("metrics: the store did not answer: %s", exc)
            yield GaugeMetricFamily(*_UP, value=0)
            return
        yield GaugeMetricFamily(*_UP, value=1)
        events = CounterMetricFamily(
            "noetl_events_total", "Events by type and status", labels=["event_type", "status"]
        )
        for r in rows:
            events.add_metric([r[0], r[1]], r[2])
        yield events
        for name, (text, types) in COUNTERS.items():
            counter = CounterMetricFamily(name, text, labels=["status"])
            for status, value in _by_status(rows, types):
                counter.add_metric([status], value)
            yield counter
        # An execution_retry opens a finished execution again: it counts as a start of its new end.
        started = sum(r[2] for r in rows if r[0] in (T.EXECUTION_START, T.EXECUTION_RETRY))
        ended = sum(r[2] for r in rows if r[0] in (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED))
        yield GaugeMetricFamily(
            "noetl_executions_running",
            "Executions started and not yet finished",
            value=max(started - ended, 0),
        )
        for name, (text, types) in HISTOGRAMS.items():
            yield _histogram(name, text, [r for r in rows if r[0] in types])
        yield from self._queue()

    def _queue(self) -> Iterator[Metric]:
        """Jobs by state and lease expiries: only a PostgreSQL store has a queue."""
        if not is_postgres(self.store):
            return
        from noetl.runtime.broker import lease_expiries, queue_depth

        try:
            depth, expired = queue_depth(self.store), lease_expiries(self.store)
        except Exception as exc:  # a failing queue query must not take the event figures down with it
            log.warning("metrics: the queue did not answer: %s", exc)
            return
        jobs = GaugeMetricFamily("noetl_queue_jobs", "Jobs in the queue by state", labels=["state"])
        for state, n in sorted(depth.items()):
            jobs.add_metric([state], n)
        yield jobs
        yield CounterMetricFamily(
            "noetl_lease_expiries_total",
            "Leases that expired and were handed to another worker",
            value=expired,
        )


def render(store: Any) -> str:
    """The whole exposition; a store that does not answer gives `noetl_store_up 0` and nothing else."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return exposition(registry)


def exposition(registry: CollectorRegistry) -> str:
    """The text format of what `registry` collects, as prometheus_client's generate_latest writes it but
    for two things /metrics has always done and its readers (dashboards, tests) rely on: labels keep the
    order they were given in (`status` before `le`; generate_latest sorts them), and whole numbers are
    written as integers (`1`, `2000000`, not `1.0`, `2e+06`)."""
    out: list[str] = []
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.type}\n")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sample.labels.items())
            out.append(f"{sample.name}{{{labels}}}" if labels else sample.name)
            out.append(f" {_number(sample.value)}\n")
    return "".join(out)


def _by_status(rows: Iterable[StatsRow], types: tuple[str, ...]) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for r in rows:
        if r[0] in types:
            totals[r[1]] = totals.get(r[1], 0) + r[2]
    return sorted(totals.items())


def _histogram(name: str, text: str, rows: list[StatsRow]) -> Metric:
    # Per status: the rows of several event types (completed, failed, error) add up.
    merged: dict[str, list[float]] = {}
    for r in rows:
        acc = merged.setdefault(r[1], [0.0] * (2 + len(BUCKETS)))
        for i, value in enumerate(r[3:]):  # timed, duration_sum, cumulative buckets
            acc[i] += value
    histogram = HistogramMetricFamily(name, text, labels=["status"])
    for status, (count, total, *buckets) in sorted(merged.items()):
        bounds = [(repr(bound), value) for bound, value in zip(BUCKETS, buckets, strict=True)]
        histogram.add_metric([status], [*bounds, ("+Inf", count)], sum_value=total)
    return histogram


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else floatToGoString(value)
