"""Which items of a step's run are done (noetl/engine/items.py): per run, across attempts."""

from __future__ import annotations

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import items_done, run_events


def ev(n: int, kind: str, step: str = "loop", index: int | None = None, result: object = None) -> Event:
    return Event(
        execution_id="x",
        event_type=kind,
        event_id=n,
        created_at="2026-12-01T00:00:00+00:00",
        node_name=step,
        current_index=index,
        result=result,
    )


LOG = [
    ev(1, T.STEP_STARTED),
    ev(2, T.ITERATION_COMPLETED, index=0, result="a"),
    ev(3, T.ITERATION_FAILED, index=1),
    ev(4, T.ITERATION_COMPLETED, step="other", index=5, result="no"),
    ev(5, T.ITERATION_COMPLETED, index=1, result="b"),  # a second attempt of the same run
    ev(6, T.STEP_STARTED),  # the step runs again (a cycle): a new run starts afresh
    ev(7, T.ITERATION_COMPLETED, index=2, result="c"),
]


def test_items_done_count_every_attempt_of_one_run_and_only_that_run() -> None:
    assert items_done(LOG, "loop", 1) == {0: "a", 1: "b"}
    assert items_done(LOG, "loop", 2) == {2: "c"}
    assert items_done(LOG, "loop") == {2: "c"}  # the latest run
    assert items_done(LOG, "loop", 3) == {}
    assert items_done(LOG, "missing") == {}


def test_run_events_are_those_from_the_runs_step_started() -> None:
    assert [e.event_id for e in run_events(LOG, "loop", 1)] == [1, 2, 3, 5]
    assert [e.event_id for e in run_events(LOG, "loop", 2)] == [6, 7]
