"""The timeline tells runs and attempts apart: a step that runs more than once shows each run's inputs
on its action_started, and an item that took more than one attempt says how many and why the earlier
ones failed; still one line per event, fitted to the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noetl.timeline import _runs_of, format_timeline
from tests.helpers import run_text, types_of

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: reruns}
workload: {marks: MARKS}
workflow:
  - step: start
    next: [{step: count, data: {n: 0}}]
  - step: count
    type: python
    data: {n: "{{ n }}"}
    code: |
      def main(n):
          return {"n": int(n) + 1}
    next:
      - when: "{{ count.n < 3 }}"
        step: count
        data: {n: "{{ count.n }}"}
      - step: loop
  - step: loop
    type: iterator
    collection: [0, 1, 2]
    element: i
    on_error: continue
    task:
      type: python
      retry: {max_attempts: 3, initial_delay: 0.01}
      data: {i: "{{ i }}", marks: "{{ workload.marks }}"}
      code: |
        import os
        def main(i, marks):
            mark = os.path.join(marks, str(i))
            tries = os.path.getsize(mark) if os.path.exists(mark) else 0
            with open(mark, "a") as f:
                f.write("x")
            if i == 1 and tries == 0:
                raise RuntimeError("flaky on the first try")
            if i == 2:
                raise ValueError(f"always wrong, try {tries + 1}")
            return i
    next: [{step: end}]
  - step: end
"""


def _run(store: Any, tmp_path: Path) -> list[Any]:
    outcome, events = run_text(store, PLAYBOOK.replace("MARKS", str(tmp_path)))
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "count").count("action_started") == 3
    return events


def _row(text: str, event_id: int) -> str:
    return next(line for line in text.splitlines() if line.split()[:1] == [str(event_id)])


def test_each_run_of_a_step_shows_its_inputs(store: Any, tmp_path: Path) -> None:
    events = _run(store, tmp_path)
    text = format_timeline(events, width=10_000)
    started = [e for e in events if e.event_type == "action_started" and e.node_name == "count"]
    assert [_row(text, e.event_id).split("inputs: ")[1] for e in started] == [
        '{"n": 0}',
        '{"n": 1}',
        '{"n": 2}',
    ]
    once = next(e for e in events if e.event_type == "action_started" and e.node_name == "loop")
    assert "inputs" not in _row(text, once.event_id)  # a step that ran once: nothing to tell apart


def test_an_item_with_attempts_says_how_many_and_why_they_failed(store: Any, tmp_path: Path) -> None:
    events = _run(store, tmp_path)
    text = format_timeline(events, width=10_000)
    ends = {e.current_index: e for e in events if e.event_type in ("iteration_completed", "iteration_failed")}
    assert "attempts" not in _row(text, ends[0].event_id)  # one attempt: nothing more to say
    assert _row(text, ends[1].event_id).endswith("attempts: 2; retried: attempt 1: flaky on the first try")
    failed = _row(text, ends[2].event_id)
    assert "attempts: 3; error: item 2: task failed: ValueError: always wrong, try 3" in failed
    assert failed.endswith("retried: attempt 1: always wrong, try 1 | attempt 2: always wrong, try 2")
    narrow = format_timeline(events, width=80).splitlines()
    assert all(len(line) <= 80 for line in narrow) and len(narrow) == len(text.splitlines())


def test_the_same_error_in_attempts_one_after_the_other_is_said_once() -> None:
    errors = ["attempt 1: boom", "attempt 2: boom", "attempt 3: other", "attempt 4: boom"]
    assert _runs_of(errors) == ["attempts 1-2: boom", "attempt 3: other", "attempt 4: boom"]
    assert _runs_of(["no number"]) == ["attempt 1: no number"]
