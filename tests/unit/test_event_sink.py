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
