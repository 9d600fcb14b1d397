"""The offline examples run, and their stored events follow EVENTS.md: types, order, statuses, durations."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.engine.events import END_TYPES, STATUS_OF, Event
from tests.helpers import REPO, cli, run_file, types_of

EXAMPLES = REPO / "examples"
ACTION = ["step_started", "action_started", "action_completed", "step_completed"]
ROUTER = ["step_started", "step_completed"]


def assert_well_formed(events: list[Event]) -> None:
    """Properties every log must have, whatever the playbook."""
    ids = [e.event_id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "event ids increase"
    assert events[0].event_type == "execution_start"
    assert events[-1].event_type in ("execution_complete", "execution_failed")
    for e in events:
        assert e.status == STATUS_OF[e.event_type] or (
            e.event_type == "iteration_failed" and e.status == "SKIPPED"
        )
        if e.event_type in END_TYPES:
            assert e.duration is not None and e.duration >= 0, (
                f"{e.event_type} of {e.node_name} has a duration"
            )
        assert e.created_at


def test_hello_world_with_edge_payload(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "hello/hello_world.yaml")
    assert outcome.status == "COMPLETED"
    assert outcome.result == {"text": "Hello from NoETL, world!", "length": 16}
    assert types_of(events) == ["execution_start", *ROUTER, *ACTION, *ROUTER, "execution_complete"]
    assert_well_formed(events)
    assert [e.node_name for e in events[1:-1:2]] == ["start", "greet", "greet", "end"]
    started = next(e for e in events if e.event_type == "action_started")
    assert started.context == {"inputs": {"name": "world", "greeting": "Hello from NoETL"}}


def test_hot_path_fans_out_and_joins_at_end_once(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "branching/weather_branch.yaml")
    assert outcome.status == "COMPLETED"
    assert outcome.result == {
        "path": "hot",
        "notified": "London is hot",
        "logged": "London is hot",
        "note": None,
    }
    assert_well_formed(events)
    assert types_of(events, "cold_path") == []
    assert types_of(events, "end") == ROUTER, "end runs once"
    end_start = next(e.event_id for e in events if e.node_name == "end")
    for branch in ("notify_ops", "log_alert"):
        assert types_of(events, branch) == ACTION
        done = next(e for e in events if e.node_name == branch and e.event_type == "step_completed")
        assert done.event_id < end_start, f"end waits for {branch}"
    # The two branches overlapped in time: both started before either finished.
    started = [
        e.event_id
        for e in events
        if e.event_type == "action_started" and e.node_name in ("notify_ops", "log_alert")
    ]
    finished = [
        e.event_id
        for e in events
        if e.event_type == "action_completed" and e.node_name in ("notify_ops", "log_alert")
    ]
    assert max(started) < min(finished)


def test_cold_payload_takes_the_cold_path(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "branching/weather_branch.yaml", {"temperature_c": 12})
    assert outcome.result["path"] == "cold" and outcome.result["note"] == "London is mild, nothing to do"
    assert types_of(events, "hot_path") == [] and types_of(events, "cold_path") == ACTION
    completed = next(e for e in events if e.node_name == "eval_flag" and e.event_type == "step_completed")
    assert completed.meta["next"] == [{"step": "cold_path", "data": None}]


def test_actionable_start_and_end(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "actionable/start_end_actions.yaml")
    assert outcome.result == {"summary": "[1, 2, 3] adds up to 6"}
    assert types_of(events, "start") == ACTION and types_of(events, "end") == ACTION
    assert_well_formed(events)


def test_flaky_step_succeeds_on_third_attempt_and_workflow_continues(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "retry/flaky_retry.yaml")
    assert outcome.status == "COMPLETED"
    assert outcome.result == {"continued": True, "attempts_needed": 3}
    assert types_of(events, "flaky") == [
        "step_started",
        "action_started",
        "action_error",
        "action_retry",
        "action_started",
        "action_error",
        "action_retry",
        "action_started",
        "action_completed",
        "step_completed",
    ]
    retries = [e for e in events if e.event_type == "action_retry"]
    assert [r.meta["next_attempt"] for r in retries] == [2, 3]
    assert [r.meta["delay"] for r in retries] == [0.05, 0.1]
    errors = [e for e in events if e.event_type == "action_error"]
    assert "transient failure on attempt 1" in (errors[0].error or "")
    assert types_of(events, "after") == ACTION
    assert_well_formed(events)


def test_sub_playbook_result_is_used_and_linked(store: Any) -> None:
    outcome, events = run_file(store, EXAMPLES / "subplaybook/parent.yaml")
    assert outcome.result == {"child_said": 49, "parent_made": 50}
    children = [r for r in store.executions() if r.parent_execution_id == outcome.execution_id]
    assert len(children) == 1
    child_events = store.read(children[0].execution_id)
    assert all(e.parent_execution_id == outcome.execution_id for e in child_events)
    assert child_events[-1].event_type == "execution_complete"
    # The parent's step ends after the child's execution ended.
    parent_done = next(
        e for e in events if e.node_name == "call_child" and e.event_type == "action_completed"
    )
    assert parent_done.created_at >= child_events[-1].created_at
    assert_well_formed(child_events)


def test_failing_step_fails_the_execution(store: Any) -> None:
    from tests.helpers import run_text

    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: boom}
        workflow:
          - step: start
            next: [{step: explode}]
          - step: explode
            type: python
            code: |
              def main():
                  raise ValueError("the data is bad")
            next: [{step: end}]
          - step: end
    """,
    )
    assert outcome.status == "FAILED"
    assert "explode" in (outcome.error or "") and "the data is bad" in (outcome.error or "")
    assert types_of(events)[-4:] == ["action_started", "action_error", "step_failed", "execution_failed"]
    assert types_of(events, "end") == []
    error = next(e for e in events if e.event_type == "action_error")
    assert error.meta["error_type"] == "ValueError" and "Traceback" in error.meta["traceback"]
    assert_well_formed(events)


@pytest.mark.parametrize(
    ("example", "expected"),
    [("hello/hello_world.yaml", "Hello from NoETL, world!"), ("subplaybook/parent.yaml", "parent_made")],
)
def test_cli_run_prints_result_and_timeline(tmp_path: Any, example: str, expected: str) -> None:
    db = str(tmp_path / "cli.db")
    done = cli("run", str(EXAMPLES / example), "--db", db, "--timeline")
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout and "execution_complete" in done.stdout
    execution_id = done.stdout.split("execution ")[-1].split(":")[0]
    listed = cli("events", execution_id, "--db", db, "--json")
    assert listed.returncode == 0
    import json

    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows[0]["event_type"] == "execution_start" and rows[-1]["event_type"] == "execution_complete"
    for key in (
        "event_id",
        "execution_id",
        "parent_execution_id",
        "event_type",
        "node_name",
        "node_id",
        "node_type",
        "status",
        "current_index",
        "duration",
        "error",
        "meta",
        "created_at",
    ):
        assert key in rows[0]
    status = cli("status", execution_id, "--db", db)
    assert "COMPLETED" in status.stdout
