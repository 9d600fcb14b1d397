"""The one way events leave the code that does the work: stamped, redacted, stored, then observed."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from noetl.engine.events import FIELD_ORDER, Event, EventType
from noetl.engine.state import WORKFLOW_TYPES
from noetl.errors import ExecutionClosed
from noetl.runtime.redact import Redactor
from noetl.store.ports import EventStore

log = logging.getLogger("noetl.sink")
Observer = Callable[[Event], None]


def _clock() -> Callable[[], str]:
    """The time now as ISO 8601 in UTC with microseconds: the same text as datetime.isoformat(), always
    with its 6 digits. Two per item, so the date part is formatted once per second, not per event, and
    the rest is plain arithmetic and concatenation: 0.40 us a call, where an object's __call__ with
    divmod and a format spec took 0.96 us."""
    # (the first microsecond of the current second, its text up to the "."): one tuple, read and set whole
    current: list[tuple[int, str]] = [(-(10**9), "")]
    time_ns = time.time_ns

    def now() -> str:
        micros = time_ns() // 1000
        known = current[0]
        offset = micros - known[0]
        if not 0 <= offset < 1_000_000:  # (threads at once may each format it; each uses its own)
            start = micros - micros % 1_000_000
            known = (start, datetime.fromtimestamp(start // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
            current[0] = known
            offset = micros - start
        return known[1] + str(offset + 1_000_000)[1:] + "+00:00"

    return now


utc_now_iso = _clock()

# The fields of an Event its emitter gives (the sink sets the execution, type, id and time; the store
# sets seq).
_CALLER_FIELDS = frozenset(FIELD_ORDER) - {"execution_id", "event_type", "event_id", "created_at", "seq"}
# The events EventSink.node_event writes, and their node_type.
_NODE_TYPES = {
    **dict.fromkeys(
        (EventType.ITERATION_STARTED, EventType.ITERATION_COMPLETED, EventType.ITERATION_FAILED), "iteration"
    ),
    **dict.fromkeys(
        (EventType.SAVE_STARTED, EventType.SAVE_COMPLETED, EventType.SAVE_FAILED, EventType.SAVE_ERROR),
        "save",
    ),
}


class IdBlocks:
    """Event ids for a writer that shares its execution with other processes: reserved from the store in
    blocks (8, then doubling up to 256), so that a job pays one round trip per block, not per event."""

    def __init__(self, store: EventStore, execution_id: str, first: int = 8, largest: int = 256) -> None:
        self._store = store
        self._execution_id = execution_id
        self._size = first
        self._largest = largest
        self._next = 1
        self._last = 0  # the block is used up when _next > _last

    def __call__(self) -> int:
        if self._next > self._last:
            self._last = self._store.reserve_event_ids(self._execution_id, self._size)
            self._next = self._last - self._size + 1
            self._size = min(self._size * 2, self._largest)
        self._next += 1
        return self._next - 1


class EventSink:
    """Assigns event ids per execution and writes through the store's batch writer. `new` is the only
    way an event is written (issue 8: one way to emit), by the steps and items of both modes and by the
    control plane (control_sink): built once, stamped, redacted, stored, folded.

    `on_event` is the runner's own state fold and must not fail; it is told of the workflow events
    (state.WORKFLOW_TYPES) only, the ones a fold reads, and not of an item's; `observers` (printers, progress bars,
    exporters) are best effort: an observer that raises is logged and the execution goes on. Once the
    store says the execution is closed (it ended while this work ran: a cancel), every emit raises
    ExecutionClosed, so the work stops at its next event instead of writing past the end.
    """

    def __init__(
        self,
        store: EventStore,
        execution_id: str,
        *,
        parent_execution_id: str | None = None,
        start_id: int = 0,
        redactor: Redactor | None = None,
        on_event: Observer | None = None,
        observers: Iterable[Observer] = (),
        allocate: Callable[[], int] | None = None,
        meta_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.execution_id = execution_id
        self.parent_execution_id = parent_execution_id
        self.redactor = redactor or Redactor()
        self._secrets = self.redactor.secrets
        # In one process a counter is enough; workers sharing an execution take ids from the store.
        self._next_id = allocate or itertools.count(start_id + 1).__next__
        # The lock keeps ids in the order events are queued (and so in `seq` order), and the state fold
        # in that order too. Item and save events need neither: across items their order is arbitrary
        # anyway (`concurrency` threads), within an item one thread emits them in turn, and the fold
        # skips them. Taken from this process's counter (whose next() is atomic) and queued by an
        # atomic deque extend, they go without it: with 8 item threads, that lock, taken twice per
        # item, was a convoy that cost more than the items (issue 10). Ids from the store's blocks
        # (workers: IdBlocks) are not thread-safe, so those sinks lock for every event.
        self._item_events_unlocked = allocate is None
        self._meta_defaults = meta_defaults
        self._lock = threading.Lock()
        self._on_event = on_event
        self._observers = list(observers)
        self._closed = store.closed
        self._append = store.append

    def _check_open(self) -> None:
        if self._closed(self.execution_id):
            raise ExecutionClosed(
                f"execution {self.execution_id} has ended (cancelled); this work for it stops here"
            )

    def new(self, event_type: str, **fields: Any) -> Event:
        """Build, stamp and emit an event of this execution (one Event built: this is per item, twice,
        so it is kept to the few steps it needs)."""
        if self._closed(self.execution_id):
            self._check_open()
        fields.setdefault("parent_execution_id", self.parent_execution_id)
        if self._meta_defaults:  # e.g. the worker id on every event a worker writes
            fields["meta"] = {**self._meta_defaults, **(fields.get("meta") or {})}
        if self._item_events_unlocked and event_type not in WORKFLOW_TYPES:
            event = self._emit(event_type, fields)
        else:
            with self._lock:
                event = self._emit(event_type, fields)
        if self._observers:
            self._observe(event)
        return event

    def node_event(
        self,
        event_type: str,
        step: str,
        node_id: str,
        index: int | None,
        attempt: int | None,
        parent_event_id: int | None,
        current_item: Any,
        duration: float | None,
        result: Any,
        error: str | None,
        meta: dict[str, Any] | None,
        context: Any = None,
    ) -> Event:
        """An iterator item's event (iteration_started/completed/failed, node_type `iteration`) or a
        save's (save_started/completed/failed/error, node_type `save`): what `new` writes, with every
        field given in order. Two to four per item in both modes: `new` spends about 2 us more on
        each, packing and unpacking its keywords."""
        node_type = _NODE_TYPES.get(event_type)
        if node_type is None:
            raise ValueError(f"{event_type!r} is not an item's or a save's event")
        if self._closed(self.execution_id):
            self._check_open()
        if self._meta_defaults:
            meta = {**self._meta_defaults, **(meta or {})}
        event = Event(
            self.execution_id,
            event_type,
            step,
            node_id,
            node_type,
            None,
            0,  # the id and the time are set as it is queued
            self.parent_execution_id,
            parent_event_id,
            "",
            duration,
            index,
            current_item,
            attempt,
            context,
            result,
            error,
            {} if meta is None else meta,
        )
        if self._item_events_unlocked:
            # _stamp_and_queue and _queue spelled out (two to four events per item; a node event is no
            # workflow event, so there is nothing to fold)
            event.event_id = self._next_id()
            event.created_at = utc_now_iso()
            if self._secrets:  # (most executions hold none: no call)
                event = self.redactor.event(event)
            self._append((event,))
        else:
            with self._lock:
                event = self._stamp_and_queue(event)
        if self._observers:
            self._observe(event)
        return event

    def _stamp_and_queue(self, event: Event) -> Event:
        event.event_id = self._next_id()
        event.created_at = utc_now_iso()
        return self._queue(event)

    def _emit(self, event_type: str, fields: dict[str, Any]) -> Event:
        """Build, stamp, redact, queue and fold one event (under the lock, but for item events)."""
        if not _CALLER_FIELDS.issuperset(fields):
            unknown = ", ".join(sorted(set(fields) - _CALLER_FIELDS))
            raise TypeError(f"an event has no field {unknown}")
        # Positional, in events.FIELD_ORDER: a keyword call of Event's __init__ costs 0.6 us more per
        # event (two per item), these lookups included.
        g = fields.get
        event = Event(
            self.execution_id,
            event_type,
            g("node_name"),
            g("node_id"),
            g("node_type"),
            g("status"),
            self._next_id(),
            g("parent_execution_id"),
            g("parent_event_id"),
            utc_now_iso(),
            g("duration"),
            g("current_index"),
            g("current_item"),
            g("attempt"),
            g("context"),
            g("result"),
            g("error"),
            g("meta", {}),
        )
        return self._queue(event)

    def _queue(self, event: Event) -> Event:
        """Redact, queue and fold a built event."""
        event = self.redactor.event(event)
        self._append((event,))
        if self._on_event is not None and event.event_type in WORKFLOW_TYPES:
            self._on_event(event)
        return event

    def _observe(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer never breaks the work (dramatiq's middleware rule)
                log.exception("event observer %r failed; the execution goes on", observer)


def control_sink(
    store: Any, execution_id: str, parent_execution_id: str | None = None, **kw: Any
) -> EventSink:
    """A sink for the few events the control plane writes (an execution's start, the broker's end of an
    execution, a cancel, an abandoned attempt): its ids are taken from the store one at a time, since
    the execution's workers reserve theirs from the same counter."""
    return EventSink(
        store,
        execution_id,
        parent_execution_id=parent_execution_id,
        allocate=lambda: int(store.allocate_event_id(execution_id)),
        **kw,
    )
