"""Commit order for a batch (noetl/store/sequencing.py): each event the next seq of its execution,
nothing kept after an execution's end but an execution_retry."""

from __future__ import annotations

import random

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.store.sequencing import Sequenced, sequence


def _event(kind: str, execution: str = "e") -> Event:
    return Event(execution, kind)


def _as_tuple(batch: Sequenced) -> tuple[object, ...]:
    kept = [(e.event_type, e.execution_id, seq) for e, seq in batch.kept]
    return kept, batch.last_seq, batch.finished, batch.refused, batch.reopened


def test_one_open_execution_is_numbered_on_from_its_last_seq() -> None:
    events = [_event(T.ITERATION_STARTED), _event(T.ITERATION_COMPLETED)]
    batch = sequence(events, {"e": 7}, set())
    assert [(e, s) for e, s in batch.kept] == [(events[0], 8), (events[1], 9)]
    assert batch.last_seq == {"e": 9} and not (batch.finished or batch.refused or batch.reopened)


def test_nothing_is_kept_after_the_end_but_a_retry() -> None:
    events = [
        _event(T.STEP_COMPLETED),
        _event(T.EXECUTION_COMPLETE),
        _event(T.ITERATION_COMPLETED),
        _event(T.EXECUTION_RETRY),
        _event(T.STEP_STARTED),
    ]
    batch = sequence(events, {"e": 0}, set())
    assert [(e.event_type, s) for e, s in batch.kept] == [
        (T.STEP_COMPLETED, 1),
        (T.EXECUTION_COMPLETE, 2),
        (T.EXECUTION_RETRY, 3),
        (T.STEP_STARTED, 4),
    ]
    assert batch.refused == {"e"} and batch.reopened == {"e"} and batch.finished == set()


KINDS = [T.ITERATION_STARTED, T.ITERATION_COMPLETED, T.SAVE_STARTED, T.EXECUTION_COMPLETE, T.EXECUTION_RETRY]


@pytest.mark.parametrize("seed", range(40))
def test_the_short_way_for_one_open_execution_numbers_as_the_loop_does(seed: int) -> None:
    # A closed execution that is not in the batch makes sequence take its general loop: both ways must
    # give the same kept events, numbers and sets, whatever the batch holds.
    rng = random.Random(seed)
    events = [
        _event(
            rng.choice(KINDS if seed % 2 else KINDS[:3]),
            rng.choice(["e", "e", "e", "f"] if seed % 5 == 0 else ["e"]),
        )
        for _ in range(rng.randrange(0, 30))
    ]
    last = {"e": rng.randrange(0, 100)}
    if any(e.execution_id == "f" for e in events):
        last["f"] = 3
    short, loop = sequence(events, last, set()), sequence(events, last, {"not-in-the-batch"})
    assert _as_tuple(short) == _as_tuple(loop)
    assert last == (
        {"e": last["e"], "f": 3} if "f" in last else {"e": last["e"]}
    )  # the caller's dict untouched
