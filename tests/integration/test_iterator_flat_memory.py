"""Issue 10, flat memory: `collect: false`, async items pulled by long-lived threads, bounded queues."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from noetl.actions.iteration.summary import Durations
from noetl.engine.events import Event
from noetl.store.batching import BatchWriter
from tests.helpers import run_text, types_of

LOOP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: collect_false}
workload: {n: 20}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: x
    mode: %(mode)s
    concurrency: 4
    collect: %(collect)s
    on_error: continue
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            if x %% 7 == 3:
                raise ValueError(f"no {x}")
            return x * 2
    next: [{step: after}]
  - step: after
    type: python
    data: {summary: "{{ loop }}"}
    code: |
      def main(summary):
          return summary
    next: [{step: end}]
  - step: end
"""


@pytest.mark.parametrize("mode", ["sequential", "async"])
def test_collect_false_makes_the_summary_the_steps_result(store: Any, mode: str) -> None:
    outcome, events = run_text(store, LOOP % {"mode": mode, "collect": "false"})
    assert outcome.status == "COMPLETED", outcome.error
    [completed] = [e for e in events if e.event_type == "iterator_completed"]
    [step_done] = [e for e in events if e.event_type == "step_completed" and e.node_name == "loop"]
    summary = step_done.result
    assert isinstance(summary, dict), summary
    assert summary == completed.meta
    assert (summary["count"], summary["succeeded"], summary["failed"]) == (20, 17, 3)
    assert summary["failed_indexes"] == [3, 10, 17]
    assert summary["succeeded_total"] == 17 and summary["total"] == 20
    # the next step sees the summary, not a list
    [after] = [e for e in events if e.event_type == "step_completed" and e.node_name == "after"]
    assert after.result["failed_indexes"] == [3, 10, 17]
    # every item still has its own events, with its own result
    results = {e.current_index: e.result for e in events if e.event_type == "iteration_completed"}
    assert len(results) == 17 and results[4] == 8
    [started] = [e for e in events if e.event_type == "iterator_started"]
    assert started.meta["collect"] is False


@pytest.mark.parametrize("mode", ["sequential", "async"])
def test_collect_true_keeps_every_result_in_order(store: Any, mode: str) -> None:
    outcome, events = run_text(store, LOOP % {"mode": mode, "collect": "true"})
    assert outcome.status == "COMPLETED", outcome.error
    [step_done] = [e for e in events if e.event_type == "step_completed" and e.node_name == "loop"]
    result = step_done.result
    assert [r for i, r in enumerate(result) if i % 7 != 3] == [x * 2 for x in range(20) if x % 7 != 3]
    assert result[3]["failed"] is True and "no 3" in result[3]["error"]


def test_collect_must_be_a_boolean(store: Any) -> None:
    from noetl.dsl import parse_playbook
    from noetl.errors import PlaybookError

    with pytest.raises(PlaybookError, match="collect must be true"):
        parse_playbook(LOOP % {"mode": "sequential", "collect": "'yes please'"})


def test_async_stops_starting_items_once_the_policy_fails(store: Any) -> None:
    text = (LOOP % {"mode": "async", "collect": "false"}).replace("on_error: continue", "on_error: fail")
    outcome, events = run_text(store, text.replace("n: 20", "n: 400"))
    assert outcome.status == "FAILED"
    loop = [e for e in events if e.node_name == "loop"]
    ended = [e for e in loop if e.event_type in ("iteration_completed", "iteration_failed")]
    started = types_of(loop).count("iteration_started")
    skipped = [e for e in ended if e.status == "SKIPPED"]
    assert len(ended) == 400 and len({e.current_index for e in ended}) == 400  # every item accounted once
    assert len(skipped) > 300  # items after the first failure did not start
    assert started == 400 - len(skipped)


def test_the_event_queue_is_bounded_and_the_producer_waits() -> None:
    release = threading.Event()
    written: list[int] = []

    def slow_write(batch: Any) -> set[str]:
        release.wait(10)
        written.append(len(batch))
        return set()

    writer = BatchWriter(slow_write, max_delay=0.001, max_pending=100)
    event = Event(execution_id="x", event_type="iteration_started", event_id=1)
    writer.append([event])  # taken by the writer, which now waits on `release`
    time.sleep(0.05)
    appended = 0

    def produce() -> None:
        nonlocal appended
        for _ in range(300):
            writer.append([event])
            appended += 1

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.3)
    assert appended == 100  # the queue is full: the producer waits instead of growing it
    release.set()
    producer.join(10)
    writer.flush()
    assert appended == 300 and sum(written) == 301
    writer.close()


def test_durations_are_exact_then_bucketed_within_one_percent() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-4, 1.2) for _ in range(50_000)]
    small = Durations()
    for value in samples[:1000]:
        small.add(value)
    ordered = sorted(samples[:1000])
    assert small.quantile(0.5) == ordered[round(0.5 * 999)]
    assert small.quantile(0.95) == ordered[round(0.95 * 999)]
    large = Durations()
    for value in samples:
        large.add(value)
    ordered = sorted(samples)
    for fraction in (0.5, 0.95, 0.99):
        exact = ordered[round(fraction * (len(ordered) - 1))]
        assert abs(large.quantile(fraction) - exact) / exact < 0.01, fraction
    assert large.max == ordered[-1] and large.count == 50_000
    assert len(large._buckets) < 2_000  # bounded by the range of durations, not by their number


def test_items_on_eight_threads_log_every_event_once_in_order(store: Any) -> None:
    """Item events are emitted without the sink's lock (noetl.runtime.sink): ids stay unique, `seq`
    counts every event once, and each item's own events keep their order."""
    text = LOOP % {"mode": "async", "collect": "true"}
    text = text.replace("n: 20", "n: 3000").replace("concurrency: 4", "concurrency: 8")
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED"  # on_error: continue; the failing items are counted below
    assert len({e.event_id for e in events}) == len(events)
    assert sorted(e.seq or 0 for e in events) == list(range(1, len(events) + 1))
    by_item: dict[int, list[str]] = {}
    for e in sorted(events, key=lambda e: e.seq or 0):
        if e.node_type == "iteration" and e.current_index is not None:
            by_item.setdefault(e.current_index, []).append(e.event_type)
    assert len(by_item) == 3000
    failing = {i for i in range(3000) if i % 7 == 3}
    for index, types in by_item.items():
        end = "iteration_failed" if index in failing else "iteration_completed"
        assert types == ["iteration_started", end], (index, types)
    (completed,) = [e for e in events if e.event_type == "iterator_completed"]
    assert completed.meta["succeeded"] == 3000 - len(failing)
