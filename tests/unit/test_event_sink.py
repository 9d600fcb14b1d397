"""The event sink builds each Event positionally (engine.events.FIELD_ORDER) for speed: every field
an emitter gives must land where it belongs, and a field that Event does not have must be refused,
as a keyword call would refuse it, rather than dropped. On a real SQLite store, read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from noetl.engine.events import FIELD_ORDER, Event, EventType
from noetl.runtime.sink import EventSink
from noetl.store import open_store


def test_every_field_an_emitter_gives_is_stored_where_it_belongs(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    sink = EventSink(store, "exec-1", parent_execution_id="parent-9")
    given = {
        "node_name": "loop",
        "node_id": "loop:iter_4",
        "node_type": "iteration",
        "status": "COMPLETED",
        "parent_event_id": 3,
        "duration": 0.25,
        "current_index": 4,
        "current_item": {"id": 4},
        "attempt": 2,
        "context": {"c": 1},
        "result": [8],
        "error": "none really",
        "meta": {"rows": 1},
    }
    event = sink.new(EventType.ITERATION_COMPLETED, **given)
    store.flush()
    (stored,) = store.read("exec-1")
    for e in (event, stored):
        assert {name: getattr(e, name) for name in given} == given
        assert (e.execution_id, e.event_type, e.parent_execution_id) == (
            "exec-1",
            "iteration_completed",
            "parent-9",
        )
        assert e.event_id == 1 and e.created_at.endswith("+00:00")
    assert stored.seq == 1
    store.close()


def test_defaults_are_those_of_the_event_class(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    event = EventSink(store, "exec-1").new(EventType.STEP_STARTED, node_name="a")
    plain = Event(execution_id="exec-1", event_type="step_started", node_name="a")
    for name in FIELD_ORDER:
        if name not in ("event_id", "created_at"):
            assert getattr(event, name) == getattr(plain, name), name
    assert event.meta == {} and event.meta is not EventSink(store, "x").new("step_started").meta
    store.close()


@pytest.mark.parametrize("field", ["node", "seq", "event_id", "created_at"])
def test_a_field_the_emitter_may_not_give_is_refused_by_name(tmp_path: Path, field: str) -> None:
    store = open_store(str(tmp_path / "s.db"))
    with pytest.raises(TypeError, match=field):
        EventSink(store, "exec-1").new(EventType.STEP_STARTED, **{field: 1})
    store.flush()
    assert store.read("exec-1") == []  # nothing half-written
    store.close()


def test_the_time_stamp_is_iso_8601_utc_with_six_digits_and_now() -> None:
    import re
    from datetime import UTC, datetime

    from noetl.runtime.sink import utc_now_iso

    for _ in range(3):
        before = datetime.now(UTC)
        stamp = utc_now_iso()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", stamp), stamp
        assert before.replace(microsecond=0) <= datetime.fromisoformat(stamp) <= after


@pytest.mark.parametrize(
    ("event_type", "node_type"),
    [
        (EventType.ITERATION_STARTED, "iteration"),
        (EventType.ITERATION_COMPLETED, "iteration"),
        (EventType.ITERATION_FAILED, "iteration"),
        (EventType.SAVE_STARTED, "save"),
        (EventType.SAVE_COMPLETED, "save"),
        (EventType.SAVE_FAILED, "save"),
        (EventType.SAVE_ERROR, "save"),
    ],
)
def test_an_item_or_save_event_written_positionally_is_the_event_new_writes(
    tmp_path: Path, event_type: str, node_type: str
) -> None:
    """EventSink.node_event is the fast path of the item and save events: the same event as `new`
    with the same fields, the worker's meta defaults and the parent execution included."""
    store = open_store(str(tmp_path / "s.db"))
    kw = {"parent_execution_id": "parent-9", "meta_defaults": {"worker_id": "w1"}}
    fast, slow = EventSink(store, "fast", **kw), EventSink(store, "slow", **kw)  # type: ignore[arg-type]
    context = {"storage": "postgres"}
    a = fast.node_event(
        event_type, "loop", "loop:iter_3", 3, 2, 11, {"id": 3}, 0.5, [6], "boom", {"rows": 1}, context
    )
    b = slow.new(
        event_type,
        node_name="loop",
        node_id="loop:iter_3",
        node_type=node_type,
        current_index=3,
        attempt=2,
        parent_event_id=11,
        current_item={"id": 3},
        duration=0.5,
        result=[6],
        error="boom",
        meta={"rows": 1},
        context=context,
    )
    store.flush()
    (stored_a,), (stored_b,) = store.read("fast"), store.read("slow")
    for x, y in ((a, b), (stored_a, stored_b)):
        different = [n for n in FIELD_ORDER if getattr(x, n) != getattr(y, n)]
        assert different == ["execution_id", "created_at"] or different == ["execution_id"]
    assert stored_a.meta == {"worker_id": "w1", "rows": 1} and stored_a.node_type == node_type
    assert stored_a.context == context
    store.close()


def test_the_node_event_path_refuses_other_events_and_writes_nothing_for_a_closed_execution(
    tmp_path: Path,
) -> None:
    from noetl.errors import ExecutionClosed

    store = open_store(str(tmp_path / "s.db"))
    sink = EventSink(store, "x")
    with pytest.raises(ValueError, match="step_started"):
        sink.node_event(EventType.STEP_STARTED, "a", "a", 0, 1, None, None, None, None, None, None)
    sink.new(EventType.EXECUTION_START)
    sink.new(EventType.EXECUTION_FAILED, error="cancelled")
    store.flush()
    sink.node_event(EventType.ITERATION_STARTED, "a", "a:iter_0", 0, 1, None, 0, None, None, None, None)
    store.flush()  # refused: the execution ended
    with pytest.raises(ExecutionClosed):
        sink.node_event(EventType.ITERATION_STARTED, "a", "a:iter_1", 1, 1, None, 1, None, None, None, None)
    assert [e.event_type for e in store.read("x")] == ["execution_start", "execution_failed"]
    store.close()


def test_the_clock_is_exact_across_seconds_and_backwards_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock formats the date part once per second: every stamp must still be the exact time,
    at a second's first and last microsecond, and when the system clock steps back."""
    from datetime import UTC, datetime

    from noetl.runtime import sink

    base = 1_796_300_000 * 10**9  # 2026-12-03T12:13:20Z
    times = [
        base + 999_999_000,
        base + 1_000_000_000,  # the next second's first microsecond
        base + 1_000_000_999,  # (nanoseconds below a microsecond are dropped)
        base + 1_999_999_000,
        base + 2_000_000_000,
        base + 500_000_000,  # the clock stepped back
        base + 86_400 * 10**9 + 7_000,  # a day later
    ]
    feed = iter(times)
    monkeypatch.setattr(sink.time, "time_ns", lambda: next(feed))
    now = sink._clock()
    for ns in times:
        us = ns // 1000
        expected = datetime.fromtimestamp(us // 10**6, UTC).replace(microsecond=us % 10**6)
        assert now() == expected.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def test_no_node_event_is_a_workflow_event() -> None:
    """node_event queues its events without the state fold (noetl.runtime.sink): were an item's or a
    save's event ever folded into the workflow state, it would have to go through `_queue` instead."""
    from noetl.engine.state import WORKFLOW_TYPES
    from noetl.runtime.sink import _NODE_TYPES

    assert set(_NODE_TYPES) and not WORKFLOW_TYPES & set(_NODE_TYPES)
