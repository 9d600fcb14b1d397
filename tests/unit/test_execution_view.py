"""The execution view folded from a real store: the same figures whether read at once or bit by bit,
an iterator that runs again counts only its new run, and large loops leave as numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.server.view_cache import ViewCache
from noetl.store import open_store


def _at(second: float) -> str:
    whole = int(second)
    return f"2024-05-01T10:{whole // 60:02d}:{whole % 60:02d}.{int((second - whole) * 1e6):06d}+00:00"


class Log:
    """Writes one execution's events, one at a time, as a runner would."""

    def __init__(self, store: Any, x: str = "x") -> None:
        self.store, self.x, self.n, self.t = store, x, 0, 0.0

    def add(self, event_type: str, node: str = "loop", **fields: Any) -> None:
        self.n += 1
        self.t += fields.pop("dt", 0.5)
        fields.setdefault("status", _STATUS.get(event_type, "COMPLETED"))
        self.store.append(
            [
                Event(
                    execution_id=self.x,
                    event_type=event_type,
                    event_id=self.n,
                    created_at=_at(self.t),
                    node_name=node,
                    **fields,
                )
            ]
        )
        self.store.flush()

    def items(self, indexes: range, failing: tuple[int, ...] = (), duration: float = 1.0) -> None:
        for i in indexes:
            self.add(T.ITERATION_STARTED, current_index=i, attempt=1)
            if i in failing:
                self.add(
                    T.ITERATION_FAILED, current_index=i, duration=duration, error=f"boom {i}", status="FAILED"
                )
            else:
                self.add(T.ITERATION_COMPLETED, current_index=i, duration=duration * (i + 1))


_STATUS = {T.STEP_STARTED: "RUNNING", T.ITERATOR_STARTED: "RUNNING", T.ITERATION_STARTED: "RUNNING"}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(str(tmp_path / "noetl.db"))
    yield s
    s.close()


def _start(log: Log) -> None:
    log.add(
        T.EXECUTION_START, node="demo", status="STARTED", context={"path": "demo/loop", "workload": {"n": 4}}
    )
    log.add(T.STEP_STARTED, attempt=1)
    log.add(T.ACTION_STARTED, attempt=1, status="STARTED")
    log.add(T.ITERATOR_STARTED, meta={"count": 4, "mode": "sequential"})


def test_a_view_read_piece_by_piece_equals_the_view_read_at_once(store: Any, tmp_path: Path) -> None:
    log = Log(store)
    cache = ViewCache(store)
    _start(log)
    seen = [cache.view("x")]
    log.items(range(2), failing=(1,))
    seen.append(cache.view("x"))
    log.add(T.ITERATION_STARTED, current_index=2, attempt=1)
    running = cache.view("x")
    assert running is not None
    it = running["iterators"]["loop"]
    assert (it["done"], it["failed"], it["running"], it["queued"]) == (1, 1, 1, 1)
    log.add(T.ITERATION_COMPLETED, current_index=2, duration=3.0)
    log.items(range(3, 4))
    log.add(T.ITERATOR_COMPLETED, meta={"count": 4})
    log.add(T.ACTION_COMPLETED, attempt=1)
    log.add(T.STEP_COMPLETED, result=[{"n": i} for i in range(4)])
    log.add(T.EXECUTION_COMPLETE, node="demo", result={"ok": True})
    piecewise = cache.view("x")
    at_once = ViewCache(store).view("x")
    assert piecewise == at_once
    assert piecewise is not None
    it = piecewise["iterators"]["loop"]
    assert (it["done"], it["failed"], it["running"], it["queued"], it["count"]) == (3, 1, 0, 0, 4)
    assert [f["index"] for f in it["failures"]] == [1]
    assert [s["index"] for s in it["slowest"]] == [3, 2, 0]
    assert (it["p50"], it["max"]) == (3.0, 4.0)
    assert sum(it["density"]["counts"]) == 4
    assert sum(it["histogram"]["done"]) == 3 and sum(it["histogram"]["failed"]) == 1
    assert piecewise["status"] == "COMPLETED" and piecewise["result"] == {"ok": True}
    assert piecewise["headline"] == {"kind": "failed_items", "failed": 1, "steps": {"loop": 1}}
    assert [lane["step"] for lane in piecewise["lanes"]] == ["loop"]
    assert piecewise["payload"] == {"n": 4}


def test_an_iterator_that_runs_again_counts_its_new_run_only(store: Any) -> None:
    log = Log(store)
    _start(log)
    log.items(range(3), failing=(2,))
    log.add(T.ITERATOR_FAILED, status="FAILED")
    log.add(T.ACTION_ERROR, attempt=1, status="FAILED", error="item 2 failed")
    log.add(T.ACTION_RETRY, attempt=1, status="RETRYING", meta={"retry_at": 0})
    log.add(T.ACTION_STARTED, attempt=2, status="STARTED", dt=2.0)
    log.add(T.ITERATOR_STARTED, meta={"count": 4})
    log.add(T.ITERATION_STARTED, current_index=0, attempt=2)  # started in the new run, still running
    view = ViewCache(store).view("x")
    assert view is not None
    it = view["iterators"]["loop"]
    assert (it["done"], it["failed"], it["running"], it["status"]) == (0, 0, 1, "RUNNING")
    attempts = view["lanes"][0]["runs"][0]["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "FAILED"), (2, "RUNNING")]
    assert view["lanes"][0]["iterator_runs"] == 2


def test_a_failed_execution_names_the_failing_step_and_item(store: Any) -> None:
    log = Log(store)
    _start(log)
    log.items(range(2), failing=(1,))
    log.add(T.ITERATOR_FAILED, status="FAILED")
    log.add(T.STEP_FAILED, status="FAILED", error="step loop failed: item 1")
    log.add(T.EXECUTION_FAILED, node="demo", status="FAILED", error="step loop failed: item 1")
    view = ViewCache(store).view("x")
    assert view is not None
    assert view["headline"]["kind"] == "failed"
    assert view["headline"]["step"] == "loop"
    assert view["headline"]["item"]["index"] == 1 and view["headline"]["item"]["error"] == "boom 1"


def test_a_view_of_many_items_stays_small(store: Any) -> None:
    import json

    log = Log(store)
    _start(log)
    rows = []
    for i in range(20_000):
        log.n += 1
        rows.append(
            Event(
                execution_id="x",
                event_type=T.ITERATION_COMPLETED,
                event_id=log.n,
                created_at=_at(10 + i / 1000),
                node_name="loop",
                current_index=i,
                duration=0.001 * (i % 100 + 1),
                status="COMPLETED",
            )
        )
    store.append(rows)
    store.flush()
    view = ViewCache(store).view("x")
    assert view is not None and view["iterators"]["loop"]["done"] == 20_000
    assert len(json.dumps(view)) < 20_000  # numbers, not one entry per item
