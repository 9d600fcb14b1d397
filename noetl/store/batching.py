"""Group commit: events are queued and written in batches by one thread; `flush` makes them durable."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence

from noetl.engine.events import Event, EventType
from noetl.errors import StoreError


class _Flush:
    """A marker in the queue: set once every event queued before it is written (or the writer failed)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BatchWriter:
    """Collects appends and hands them to `write_batch` in one transaction at a time.

    Writes happen on a background thread so an item's work never waits for a commit; a failed write is
    remembered and raised on the next append or flush, so it fails the execution instead of vanishing.
    `write_batch` returns the executions whose events it refused because they had ended (see
    noetl.store.sequencing); `closed` answers for them, so that the work still running for one stops.

    This is on the path of every event (two per item), so an append takes no lock: a deque's `extend`
    is atomic, the writer is woken only when a batch is worth writing, and a flush is a marker in the
    queue rather than counters shared under a condition.
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[Event]], Collection[str]],
        max_delay: float = 0.05,
        max_pending: int = 8192,
    ) -> None:
        self._write_batch = write_batch
        self._ended: set[str] = set()
        self._max_delay = max_delay
        # Backpressure: a producer that outruns the writer (they share the GIL) waits once this many
        # events are queued, so memory stays flat however many items a loop has (issue 10).
        self._max_pending = max_pending
        self._queue: deque[Event | _Flush] = deque()
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
        queue = self._queue
        if len(queue) >= self._max_pending:
            self._wait_for_room()
        queue.extend(events)
        if len(queue) >= 512 and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        self._raise_if_failed()
        if self._closed and not self._thread.is_alive():
            return
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        while not marker.done.wait(0.5):
            if not self._thread.is_alive():  # it stopped on an error: raised below
                break
        self._raise_if_failed()

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
        queue = self._queue
        while True:
            if not queue:
                if self._closed:
                    return
                self._wake.wait(self._max_delay)
            self._wake.clear()
            taken = [queue.popleft() for _ in range(len(queue))]
            if not taken:
                continue
            batch = [e for e in taken if not isinstance(e, _Flush)]
            flushes = [e for e in taken if isinstance(e, _Flush)]
            try:
                refused = self._write_batch(batch) if batch else set()
            except BaseException as exc:  # remembered and raised to the caller; never swallowed
                self._error = exc
                self._release(flushes)
                for rest in queue:  # flushes queued after the failure learn of it too
                    if isinstance(rest, _Flush):
                        rest.done.set()
                return
            # An execution_retry that was kept opened its execution again (noetl.store.sequencing).
            reopened = {e.execution_id for e in batch if e.event_type == EventType.EXECUTION_RETRY} - set(
                refused
            )
            self._ended.difference_update(reopened)
            self._ended.update(refused)
            self._release(flushes)

    def _release(self, flushes: list[_Flush]) -> None:
        for marker in flushes:
            marker.done.set()
        with self._room:
            self._room.notify_all()
