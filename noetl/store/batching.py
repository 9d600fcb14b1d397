"""Group commit: events are queued and written in batches, one transaction each; `flush` makes them
durable."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence

from noetl.engine.events import Event, EventType
from noetl.engine.state import WORKFLOW_TYPES
from noetl.errors import StoreError

BATCH = 512  # events worth one transaction
_MARK_WAIT = 0.005  # how often a flush whose mark another thread is writing checks it may write itself


class _Mark:
    """A place in the queue: flush() puts one after the events it waits for, and whoever writes the
    batch that ends at it sets `written` once that batch has committed (or failed)."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written = threading.Event()


class BatchWriter:
    """Collects appends and hands them to `write_batch` in one transaction at a time.

    A background thread writes what has waited `max_delay` seconds, so a slow producer's events are
    visible soon after they happen. A busy producer writes a full batch itself (`inline=True`, the
    caller-runs policy of a bounded executor) or leaves it to that thread (`inline=False`):

    - inline suits SQLite. Its driver lets go of the GIL around every row it inserts and must take it
      back before the next, so a writer thread beside a busy producer waits for the GIL at every row,
      and the two threads together cost about twice what one loop doing both costs (issue 10).
    - the thread suits PostgreSQL, whose driver lets go of the GIL for a whole round trip: the network
      wait then overlaps the producer's work.

    Batches are taken from the queue and written under one lock, so they commit in the order their
    events were appended whoever writes them. A failed write is remembered and raised on the next append
    or flush, so it fails the execution instead of vanishing. `write_batch` returns the executions whose
    events it refused because they had ended (see noetl.store.sequencing); `closed` answers for them,
    so that the work still running for one stops.

    This is on the path of every event (two per item), so an append takes no lock: a deque's `extend` is
    atomic, and the writer is woken or called only when a batch is worth writing.

    `flush` waits for the events appended before it and no others: it queues a mark behind them and
    returns when the batch that ends at the mark has committed. It used to take the write lock and
    write until the queue was empty, so under a steady stream of events (the other chunks of a worker)
    it waited for events appended after it too, and every chunk of a worker ended at the same moment
    (issue 8: chunks ran in waves with the machine half idle between them).
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[Event]], Collection[str]],
        max_delay: float = 0.05,
        max_pending: int = 8192,
        inline: bool = False,
    ) -> None:
        self._write_batch = write_batch
        self._ended: set[str] = set()
        self._max_delay = max_delay
        # Backpressure: a producer that outruns the writer thread waits once this many events are
        # queued, so memory stays flat however many items a loop has (issue 10). Inline, producers
        # wait while a batch is written, so the queue holds about one batch.
        self._max_pending = max_pending
        self._inline = inline
        self._queue: deque[Event | _Mark] = deque()
        self._writing = threading.Lock()  # held while a batch is taken from the queue and written
        self._inline_writes = 0  # batches producers wrote themselves (inline)
        # Workflow events (state.WORKFLOW_TYPES: a few per step) appended and not yet committed, so that
        # a read of only those (read_workflow) waits for a write only when it would miss one of them.
        self._workflow_pending = 0
        self._workflow_lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._error: BaseException | None = None
        self._reported = False  # the error was raised to someone
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="noetl-event-writer", daemon=True)
        self._thread.start()

    def append(self, events: Sequence[Event]) -> None:
        if self._error is not None:
            self._raise_if_failed()
        if self._closed:
            raise StoreError("the event store is closed")
        for event in events:
            if event.event_type in WORKFLOW_TYPES:  # counted before it can be written
                with self._workflow_lock:
                    self._workflow_pending += 1
        queue = self._queue
        if self._inline:
            if self._writing.locked():
                # A batch is being written: wait for it rather than run beside it. Beside it, this
                # thread would take the GIL at every row the write lets go of it, and the write would
                # wait to get it back (threads of an async iterator). This also bounds the queue.
                with self._writing:
                    pass
            queue.extend(events)
            if len(queue) >= BATCH:
                with self._writing:
                    self._write_queued()
                    self._inline_writes += 1
                self._raise_if_failed()
            return
        if len(queue) >= self._max_pending:
            self._wait_for_room()
        queue.extend(events)
        if len(queue) >= BATCH and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Every event appended before this call is written (or the write's error is raised); events
        appended after it are not waited for."""
        self._raise_if_failed()
        # Also when the queue is empty: a batch another thread took may be in flight, and waiting for
        # the write lock instead would wait for that thread to empty the queue, however long others
        # keep filling it. The mark is reached once that batch is written.
        mark = _Mark()
        self._queue.append(mark)
        # Written by this thread when no other is writing (no hand-over to the writer thread, whose
        # turn at the GIL can take milliseconds); else by the writer that reaches the mark first.
        while not mark.written.is_set() and self._error is None:
            if self._writing.acquire(blocking=False):
                try:
                    if not mark.written.is_set():  # (else its writer released the lock just now)
                        self._write_queued(until=mark)
                finally:
                    self._writing.release()
            else:
                mark.written.wait(_MARK_WAIT)
        self._raise_if_failed()

    def flush_workflow(self) -> None:
        """As flush, for a reader of workflow events only: when none is waiting to be written (the item
        events of a busy job may be), there is nothing to wait for. On workers a job's state is read
        this way at every job start; waiting there for the writer's backlog of item events was about as
        long as a chunk's own final flush (py-spy, 2 workers, 2026-12-02)."""
        if self._workflow_pending or self._error is not None:
            self.flush()

    def closed(self, execution_id: str) -> bool:
        """True once a batch had events of this execution refused: it ended while work for it ran."""
        return execution_id in self._ended

    def close(self) -> None:
        # A failure already raised to a caller is not raised again here: close() runs in `finally`
        # blocks, where raising it again would replace the error the caller is handling.
        if not self._reported:
            self.flush()
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)

    def _wait_for_room(self) -> None:
        with self._room:
            while len(self._queue) >= self._max_pending and self._error is None and self._thread.is_alive():
                self._wake.set()
                self._room.wait(0.5)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self._reported = True
            raise StoreError(f"writing events to the store failed: {self._error}") from self._error

    def _loop(self) -> None:
        seen = -1
        while not self._closed and self._error is None:
            if not self._inline:
                if not self._queue:
                    self._wake.wait(self._max_delay)
                self._wake.clear()
                with self._writing:
                    self._write_queued()
                continue
            # Inline, a busy producer writes its own batches, and this thread must not write beside
            # it (that is the contention inline avoids): it writes only for a producer that wrote
            # nothing itself for `max_delay`, so that an event waits at most twice that.
            self._wake.wait(self._max_delay)
            self._wake.clear()
            if self._inline_writes == seen and self._queue:
                with self._writing:
                    self._write_queued()
            seen = self._inline_writes

    def _write_queued(self, until: _Mark | None = None) -> None:
        """Write what is queued, in batches, or only up to the mark `until`; the caller holds `_writing`.
        A batch ends at the first mark, so that its flush returns as soon as its own events commit.
        After a failure nothing more is written: the error stands for every event not yet stored."""
        queue = self._queue
        while queue and self._error is None:
            batch: list[Event] = []
            mark = None
            for _ in range(min(len(queue), self._max_pending)):
                e = queue.popleft()
                if isinstance(e, _Mark):
                    mark = e
                    break
                batch.append(e)
            if batch:
                self._write_one(batch)
            if mark is not None:
                mark.written.set()
                if mark is until:
                    return

    def _write_one(self, batch: list[Event]) -> None:
        try:
            refused = self._write_batch(batch)
        except BaseException as exc:  # remembered and raised to the caller; never swallowed
            self._error = exc
        else:
            # One pass: the workflow events written, and the executions an execution_retry that was
            # kept opened again (noetl.store.sequencing); execution_retry is a workflow event.
            workflow = 0
            reopened = set()
            for e in batch:
                if e.event_type in WORKFLOW_TYPES:
                    workflow += 1
                    if e.event_type == EventType.EXECUTION_RETRY:
                        reopened.add(e.execution_id)
            if workflow:
                with self._workflow_lock:
                    self._workflow_pending -= workflow
            self._ended.difference_update(reopened - set(refused))
            self._ended.update(refused)
        with self._room:
            self._room.notify_all()
