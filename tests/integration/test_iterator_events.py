"""The iterator: items, order, scope names, failure policy and the lifecycle events of EVENTS.md."""

from __future__ import annotations

from typing import Any

from noetl.engine.events import Event
from tests.helpers import run_text, types_of

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: iterator_test}
"""


def between(
    events: list[Event], step: str, first: str = "action_started", last: str = "action_completed"
) -> list[Event]:
    own = [e for e in events if e.node_name == step]
    start = next(i for i, e in enumerate(own) if e.event_type == first)
    end = next(i for i, e in enumerate(own) if e.event_type in (last, "action_error"))
    return own[start + 1 : end]


def test_sequential_items_with_event_save_emit_the_13_event_sequence(store: Any) -> None:
    outcome, events = run_text(
        store,
        HEAD
        + """
workload:
  cities: [{name: London}, {name: Paris}, {name: Rome}]
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ workload.cities }}"
    element: city
    task:
      type: python
      data: {name: "{{ city.name }}", index: "{{ _loop.index }}", count: "{{ _loop.count }}",
             also: "{{ loop.result_index }}"}
      code: |
        def main(name, index, count, also):
            return {"name": name, "pos": f"{index}/{count}", "same": index == also}
      save:
        storage: event
        args: {city: "{{ city.name }}", upper: "{{ this.name | upper }}"}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED"
    inner = between(events, "loop")
    expected = ["iterator_started"]
    for _ in range(3):
        expected += ["iteration_started", "save_started", "save_completed", "iteration_completed"]
    expected += ["iterator_completed"]
    assert [e.event_type for e in inner] == expected and len(inner) == 14
    assert [e.node_id for e in inner[1:5]] == [
        "loop:iter_0",
        "loop:save_iter_0",
        "loop:save_iter_0",
        "loop:iter_0",
    ]
    started = inner[0]
    assert started.meta["count"] == 3 and started.meta["mode"] == "sequential"
    assert all(e.parent_event_id == started.event_id for e in inner if e.node_type == "iteration")
    saves = [e for e in inner if e.event_type == "save_completed"]
    assert [s.result for s in saves] == [
        [{"city": c, "upper": c.upper()}] for c in ("London", "Paris", "Rome")
    ]
    assert [s.current_index for s in saves] == [0, 1, 2]
    summary = inner[-1].meta
    assert (summary["count"], summary["succeeded"], summary["failed"], summary["rows_saved"]) == (3, 3, 0, 3)
    for key in ("duration", "items_per_second", "p50", "p95", "max", "failed_indexes"):
        assert key in summary
    result = next(e for e in events if e.event_type == "step_completed" and e.node_name == "loop").result
    assert result == [
        {"name": n, "pos": f"{i}/3", "same": True} for i, n in enumerate(["London", "Paris", "Rome"])
    ]


def test_where_order_by_limit_and_chunk(store: Any) -> None:
    outcome, _ = run_text(
        store,
        HEAD
        + """
workload:
  nums: [5, 3, 8, 1, 9, 2, 7]
workflow:
  - step: start
    next: [{step: pick}]
  - step: pick
    type: iterator
    collection: "{{ workload.nums }}"
    element: n
    where: "{{ n > 2 }}"
    order_by: "{{ n }}"
    limit: 4
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        def main(n):
            return n
    next: [{step: batches}]
  - step: batches
    type: iterator
    collection: "{{ pick.result }}"
    chunk: 3
    task:
      type: python
      data: {batch: "{{ batch }}"}
      code: |
        def main(batch):
            return sum(batch)
    next: [{step: end}]
  - step: end
    result: {picked: "{{ pick.result }}", sums: "{{ batches.result }}"}
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"picked": [3, 5, 7, 8], "sums": [15, 8]}


def test_async_results_stay_in_collection_order_and_items_overlap(store: Any) -> None:
    outcome, events = run_text(
        store,
        HEAD
        + """
workload:
  delays: [0.3, 0.1, 0.2, 0.05, 0.15, 0.1]
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    mode: parallel
    concurrency: 3
    collection: "{{ workload.delays }}"
    element: d
    task:
      type: python
      data: {d: "{{ d }}", i: "{{ _loop.index }}"}
      code: |
        import time
        def main(d, i):
            time.sleep(d)
            return i
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED"
    assert outcome.result == [0, 1, 2, 3, 4, 5]
    inner = between(events, "loop")
    assert inner[0].meta["mode"] == "async" and inner[0].meta["concurrency"] == 3
    starts = [e.current_index for e in inner if e.event_type == "iteration_started"]
    ends = [e.current_index for e in inner if e.event_type == "iteration_completed"]
    assert sorted(starts) == sorted(ends) == list(range(6))
    assert ends != sorted(ends), "items finished out of order, so they ran concurrently"
    step = next(e for e in events if e.event_type == "iterator_completed")
    assert step.duration is not None and step.duration < 0.9 * sum([0.3, 0.1, 0.2, 0.05, 0.15, 0.1])


FAILING = (
    HEAD
    + """
workload:
  items: [1, 2, 0, 4]
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ workload.items }}"
    element: x
    on_error: %s
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            return 12 // x
    next: [{step: end}]
  - step: end
"""
)


def test_failed_item_fails_the_step_and_later_items_are_skipped(store: Any) -> None:
    outcome, events = run_text(store, FAILING % "fail")
    assert outcome.status == "FAILED"
    assert "item 2" in (outcome.error or "") and "ZeroDivisionError" in (outcome.error or "")
    inner = between(events, "loop")
    assert [(e.event_type, e.current_index, e.status) for e in inner[-3:]] == [
        ("iteration_failed", 2, "FAILED"),
        ("iteration_failed", 3, "SKIPPED"),
        ("iterator_failed", None, "FAILED"),
    ]
    assert types_of(events)[-4:] == ["iterator_failed", "action_error", "step_failed", "execution_failed"]
    count = inner[0].meta["count"]
    finished = [e for e in inner if e.event_type in ("iteration_completed", "iteration_failed")]
    assert len(finished) == count == 4
    assert inner[-1].meta["failed_indexes"] == [2] and inner[-1].meta["skipped"] == 1


def test_on_error_continue_completes_and_lists_failed_indexes(store: Any) -> None:
    outcome, events = run_text(store, FAILING % "continue")
    assert outcome.status == "COMPLETED"
    loop = next(e for e in events if e.event_type == "step_completed" and e.node_name == "loop")
    assert loop.result[:2] == [12, 6] and loop.result[3] == 3
    assert loop.result[2]["failed"] is True and "ZeroDivisionError" in loop.result[2]["error"]
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["failed_indexes"] == [2] and summary["succeeded"] == 3


def test_max_failures_and_ratio_fail_the_step_past_the_threshold(store: Any) -> None:
    text = FAILING.replace("[1, 2, 0, 4]", "[0, 2, 0, 4]") % "continue"
    limited = text.replace("    on_error: continue\n", "    on_error: continue\n    max_failures: 1\n")
    outcome, _ = run_text(store, limited)
    assert outcome.status == "FAILED" and "max_failures 1" in (outcome.error or "")
    ratio = text.replace("    on_error: continue\n", "    on_error: continue\n    max_failure_ratio: 0.6\n")
    outcome, _ = run_text(store, ratio)
    assert outcome.status == "COMPLETED"


def test_template_error_in_a_save_is_a_save_error_naming_the_template(store: Any) -> None:
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: [1, 2]
    element: x
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            return {"v": x}
      save:
        storage: event
        args: {v: "{{ this.missing_field }}"}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "FAILED"
    error = next(e for e in events if e.event_type == "save_error")
    assert "{{ this.missing_field }}" in (error.error or "") and "missing_field" in (error.error or "")
    failed = next(e for e in events if e.event_type == "iteration_failed")
    assert failed.meta["failed_in"] == "save" and failed.meta["reason"] == "save_error"
    assert not [e for e in events if e.event_type == "iteration_completed"]


def test_nested_task_retry_is_applied_per_item(store: Any, tmp_path: Any) -> None:
    outcome, events = run_text(
        store,
        HEAD
        + f"""
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: [0, 1, 2]
    element: n
    task:
      type: python
      retry: {{max_attempts: 3, initial_delay: 0.01}}
      data: {{n: "{{{{ n }}}}"}}
      code: |
        import pathlib
        def main(n):
            marker = pathlib.Path("{tmp_path}") / f"item-{{n}}"
            if n == 1 and not marker.exists():
                marker.write_text("failed once")
                raise ConnectionError("flaky on first try")
            return n
    next: [{{step: end}}]
  - step: end
""",
    )
    assert outcome.status == "COMPLETED", outcome.error
    completed = {e.current_index: e.meta for e in events if e.event_type == "iteration_completed"}
    assert completed[1]["attempts"] == 2 and "flaky on first try" in completed[1]["retried_errors"][0]
    assert "attempts" not in completed[0]
