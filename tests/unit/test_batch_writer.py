"""The batch writer (noetl.store.batching): who writes a batch, in what order, and what a failed write does.

Inline (SQLite's mode) a busy producer writes its own full batches, so that no writer thread fights it
for the GIL at every row; the writer thread then only writes what a quiet producer left waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.errors import StoreError
from noetl.store.batching import BATCH, BatchWriter


def _event(n: int) -> Event:
    return Event(execution_id="x", event_type="iteration_started", event_id=n)


class Recorder:
    """A write_batch that records which thread wrote which ids, and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[int]]] = []
        self.fail_at: int | None = None

    def __call__(self, batch: Sequence[Event]) -> set[str]:
        ids = [e.event_id for e in batch]
        if self.fail_at is not None and self.fail_at in ids:
            raise OSError("disk full")
        self.batches.append((threading.get_ident(), ids))
        return set()

    def written(self) -> list[int]:
        return [n for _, ids in self.batches for n in ids]


def test_inline_a_busy_producer_writes_its_own_batches_in_order() -> None:
    record = Recorder()
    writer = BatchWriter(record, max_delay=10, inline=True)  # the thread's timer never fires here
    for n in range(1, 5 * BATCH + 1):
        writer.append([_event(n)])
    assert {thread for thread, _ in record.batches} == {threading.get_ident()}
    assert record.written() == list(range(1, 5 * BATCH + 1))
    writer.append([_event(5 * BATCH + 1)])
    writer.flush()
    assert record.written()[-1] == 5 * BATCH + 1
    writer.close()


def test_inline_a_quiet_producers_events_are_written_by_the_thread_soon() -> None:
    record = Recorder()
    writer = BatchWriter(record, max_delay=0.02, inline=True)
    writer.append([_event(1), _event(2)])
    deadline = time.monotonic() + 5
    while not record.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert record.written() == [1, 2]  # without a flush: a poller sees them within 2 x max_delay
    assert record.batches[0][0] != threading.get_ident()
    writer.close()


def test_without_inline_the_thread_writes_full_batches() -> None:
    record = Recorder()
    writer = BatchWriter(record, max_delay=10)  # only a full batch wakes the thread
    for n in range(1, BATCH + 1):
        writer.append([_event(n)])
    deadline = time.monotonic() + 5
    while not record.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert record.written() == list(range(1, BATCH + 1))
    assert record.batches[0][0] != threading.get_ident()  # the producer did not write it
    writer.append([_event(BATCH + 1)])
    writer.flush()  # what is left, written by the time flush returns
    assert record.written() == list(range(1, BATCH + 2))
    writer.close()


def test_inline_batches_of_several_producers_keep_each_producers_order() -> None:
    record = Recorder()
    writer = BatchWriter(record, max_delay=0.001, max_pending=BATCH * 2, inline=True)

    def produce(first: int) -> None:
        for n in range(first, first + 3000):
            writer.append([_event(n)])

    threads = [threading.Thread(target=produce, args=(k * 10_000,)) for k in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    written = record.written()
    assert len(written) == 12_000 and len(set(written)) == 12_000
    for k in range(1, 5):
        own = [n for n in written if k * 10_000 <= n < (k + 1) * 10_000]
        assert own == list(range(k * 10_000, k * 10_000 + 3000))
    writer.close()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "thread"])
def test_a_failed_write_is_raised_and_nothing_after_it_is_written(inline: bool) -> None:
    record = Recorder()
    record.fail_at = BATCH + 10
    writer = BatchWriter(record, max_delay=10, inline=inline)
    with pytest.raises(StoreError, match="disk full"):
        for n in range(1, 4 * BATCH):
            writer.append([_event(n)])
        writer.flush()
    written = record.written()  # a prefix of what was appended, up to the failed batch
    assert written == list(range(1, len(written) + 1)) and len(written) < BATCH + 10
    with pytest.raises(StoreError):
        writer.append([_event(10**6)])
    writer.close()  # the failure was reported: close does not raise it again


@pytest.mark.parametrize("limit", [32766, 999], ids=["SQLite 3.32+", "older SQLite: 999 parameters"])
def test_sqlite_inserts_many_rows_per_statement_within_the_parameter_limit(tmp_path: Any, limit: int) -> None:
    import sqlite3

    from noetl.store import open_store
    from noetl.store.codec import event_to_row
    from noetl.store.sqlite import EventInserts

    path = tmp_path / "s.db"
    open_store(str(path)).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    insert = EventInserts(conn)
    assert insert.rows == (128 if limit == 32766 else 999 // 19)
    values = [v for n in range(1, 3 * insert.rows + 8) for v in event_to_row(_event(n), n)]  # whole + rest
    cur = conn.cursor()
    cur.execute("BEGIN")
    insert(cur, values)
    cur.execute("COMMIT")
    stored = [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY seq")]
    assert stored == list(range(1, 3 * insert.rows + 8))


def test_a_workflow_read_waits_only_for_workflow_events_not_yet_written() -> None:
    release = threading.Event()
    written: list[str] = []

    def slow_write(batch: Sequence[Event]) -> set[str]:
        release.wait(10)
        written.extend(e.event_type for e in batch)
        return set()

    writer = BatchWriter(slow_write, max_delay=0.001)
    writer.append([_event(1)])  # an item event, taken by the writer, which now waits on `release`
    time.sleep(0.05)
    t0 = time.monotonic()
    writer.flush_workflow()  # nothing a workflow read would miss: no wait
    assert time.monotonic() - t0 < 1 and written == []

    writer.append([Event(execution_id="x", event_type="step_started", event_id=2)])
    waiter = threading.Thread(target=writer.flush_workflow)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # a step_started is not written yet: the read waits for it
    release.set()
    waiter.join(10)
    assert not waiter.is_alive() and written == ["iteration_started", "step_started"]
    t0 = time.monotonic()
    writer.flush_workflow()
    assert time.monotonic() - t0 < 1
    writer.close()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "thread"])
def test_a_flush_waits_for_the_events_before_it_not_for_those_appended_after(inline: bool) -> None:
    """A worker's chunk flushes at its end while the worker's other chunks keep appending: the flush
    must return once its own events are written (it used to write until the queue was empty, so it
    chased the other producers and every chunk of a worker ended together)."""
    written: list[int] = []

    def slow_write(batch: Sequence[Event]) -> set[str]:
        time.sleep(0.001 + 0.00002 * len(batch))  # slower than the producer, as a worker's writer is
        written.extend(e.event_id for e in batch)
        return set()

    writer = BatchWriter(slow_write, max_delay=0.001, inline=inline)
    with _producing(writer) as producer:
        time.sleep(0.05)
        writer.append([_event(7)])
        flusher = threading.Thread(target=writer.flush)
        flusher.start()
        flusher.join(5)
        assert not flusher.is_alive(), "flush() waited for events appended after it"
        assert 7 in written and producer.is_alive()
        before = written.index(7)  # what the producer appended before it, in order, nothing skipped
        assert written[:before] == list(range(1_000_001, 1_000_001 + before))


def test_a_flush_while_the_writer_thread_holds_the_whole_queue_waits_for_that_batch_only() -> None:
    """The queue is empty at the flush because the writer thread took it all and is writing it: the
    flush must return once that batch commits, not once the writer thread has also written what
    other producers append meanwhile (waiting for its lock would)."""
    entered, gate = threading.Event(), threading.Event()
    written: list[int] = []

    def slow_write(batch: Sequence[Event]) -> set[str]:
        if any(e.event_id == 7 for e in batch):
            entered.set()
            gate.wait(10)
        time.sleep(0.00002 * len(batch))  # slower than the producer, as a worker's writer is
        written.extend(e.event_id for e in batch)
        return set()

    writer = BatchWriter(slow_write, max_delay=0.001)
    writer.append([_event(7)])
    assert entered.wait(5)  # the writer thread has taken 7: the queue is empty
    flusher = threading.Thread(target=writer.flush)
    flusher.start()
    with _producing(writer) as producer:
        time.sleep(0.05)
        gate.set()
        flusher.join(5)
        assert not flusher.is_alive(), "flush() waited for events appended after it"
        assert written[0] == 7 and producer.is_alive()


@contextmanager
def _producing(writer: BatchWriter) -> Iterator[threading.Thread]:
    """A producer appending events 1,000,001, 1,000,002, ... until the block ends; then the rest is
    flushed and the writer closed."""
    stop = threading.Event()

    def produce() -> None:
        n = 1_000_000
        while not stop.is_set():
            n += 1
            writer.append([_event(n)])

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        yield producer
    finally:
        stop.set()
        producer.join(10)
        writer.flush()
        writer.close()
