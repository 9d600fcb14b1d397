"""noetl.store.codec: an event's row and back give the same event, every field in its own column."""

from __future__ import annotations

import json
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.store.codec import COLUMNS, event_to_row, json_text, row_to_event


def test_every_field_round_trips_through_its_row() -> None:
    event = Event(
        execution_id="e1",
        event_type="iteration_completed",
        node_name="loop",
        node_id="loop-id",
        node_type="iterator",
        status="COMPLETED",
        event_id=7,
        parent_execution_id="p1",
        parent_event_id=3,
        created_at="2026-12-03T10:00:00.000001+00:00",
        duration=0.25,
        current_index=4,
        current_item={"k": [1, 2]},
        attempt=2,
        context={"c": True},
        result=[10, "x"],
        error="none really",
        meta={"rows": 1},
    )
    row = event_to_row(event, seq=11)
    assert len(row) == len(COLUMNS)
    back = row_to_event(row)
    assert back == Event(**{**event.to_dict(), "seq": 11})


def test_empty_meta_reads_as_a_dict_and_null_json_as_none() -> None:
    row = event_to_row(Event(execution_id="e1", event_type="step_started", node_name="s"))
    back = row_to_event(row)
    assert (back.meta, back.result, back.context, back.current_item) == ({}, None, None, None)


def test_a_shared_meta_text_gives_each_event_its_own_dict() -> None:
    rows = [event_to_row(Event(execution_id="e1", event_type="step_started", meta={"worker_id": "w1"}))] * 2
    first, second = (row_to_event(r) for r in rows)
    assert first.meta == second.meta == {"worker_id": "w1"}
    first.meta["worker_id"] = "changed"
    assert second.meta == {"worker_id": "w1"}, "a later event must not see another's change"
    nested = row_to_event(event_to_row(Event(execution_id="e1", event_type="step_started", meta={"a": [1]})))
    assert nested.meta == {"a": [1]}


def test_json_numbers_read_back_exactly() -> None:
    for value in (0, 7, 10**30, -5, 1.5, "12", "²"):
        row = event_to_row(Event(execution_id="e1", event_type="step_completed", result=value))
        assert row_to_event(row).result == value


class _Odd:
    def __str__(self) -> str:
        return "odd thing"


@pytest.mark.parametrize(
    "value",
    [
        {"id": 12, "value": "v12"},
        [1, 2.5, None, True, False, "é", "tab\t", {"nested": [{"deep": "x"}]}],
        (1, 2),
        {7: "int key", 2.5: "float key", True: "bool key", None: "none key"},
        {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
        {"when": _Odd(), "bytes": b"x"},
        "plain text",
        "é",
        3.25,
        None,
        True,
        10**30,
        [],
        {},
    ],
)
def test_json_text_is_what_json_dumps_writes_byte_for_byte(value: Any) -> None:
    # SQLite keeps the text as written and its readers slice it (views_sql): the store's own encoder must
    # write exactly json.dumps(value, default=str).
    assert json_text(value) == json.dumps(value, default=str)


def test_a_value_that_contains_itself_is_an_error_not_a_crash() -> None:
    looped: dict[str, Any] = {"a": 1}
    looped["self"] = looped
    with pytest.raises((RecursionError, ValueError)):
        json_text(looped)
    assert json_text({"after": "fine"}) == '{"after": "fine"}'  # the encoder keeps working
