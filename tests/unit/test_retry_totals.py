"""`noetl retry` finds a step's failed items by comparing its done items with its total; for a streaming
collection the total is known only at the iterator's end (iterator_started has `count: null`)."""

from __future__ import annotations

from typing import Any

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.retry import _total


def _event(n: int, kind: str, **fields: Any) -> Event:
    return Event(execution_id="x", event_type=kind, event_id=n, node_name="loop", **fields)


def test_a_streaming_iterators_total_comes_from_its_end_event() -> None:
    events = [
        _event(1, T.STEP_STARTED),
        _event(2, T.ITERATOR_STARTED, meta={"count": None, "total": None, "streaming": True}),
        _event(3, T.ITERATION_COMPLETED, current_index=0),
        _event(4, T.ITERATION_FAILED, current_index=1),
        _event(5, T.ITERATOR_COMPLETED, meta={"count": 2, "total": 2, "failed": 1}),
    ]
    assert _total(events, "loop") == 2


def test_a_listed_collections_total_comes_from_iterator_started() -> None:
    events = [
        _event(1, T.STEP_STARTED),
        _event(2, T.ITERATOR_STARTED, meta={"count": 3, "total": 5}),
    ]
    assert _total(events, "loop") == 5
