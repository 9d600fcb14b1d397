"""Execution views kept up to date by reading only what was committed since the last look.

A page that follows a running execution asks for its view several times a second; each time the cache
reads the events with a seq above the last one it folded (noetl.store.sequencing: seq is commit order,
so nothing is missed or folded twice) and, for a finished execution, keeps the finished view as it is.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from noetl.engine.events import EventType as T
from noetl.server.execution_view import ExecutionView

_ENDS = (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED)


class ViewCache:
    def __init__(self, store: Any, size: int = 32) -> None:
        self.store = store
        self.size = size
        self._views: OrderedDict[str, ExecutionView] = OrderedDict()
        self._finished: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def view(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's view as of now, or None when the store has no event of it.

        A finished execution's view is kept as it is until its log grows again (`noetl retry` opens it
        again): one cheap look at its last seq per call tells.
        """
        with self._lock_of(execution_id):
            done = self._finished.get(execution_id)
            if done is not None and self.store.last_seq(execution_id) <= done["last_seq"]:
                return done
            view = self._current(execution_id)
            if view.start is None:
                return None
            snapshot = view.to_dict(time.time())
            with self._lock:
                if view.finished:
                    self._finished[execution_id] = snapshot
                    while len(self._finished) > self.size:
                        self._finished.pop(next(iter(self._finished)))
                else:
                    self._finished.pop(execution_id, None)
            return snapshot

    def last_seq(self, execution_id: str) -> int:
        return int(self.store.last_seq(execution_id))

    def _current(self, execution_id: str) -> ExecutionView:
        with self._lock:
            view = self._views.get(execution_id)
            if view is None:
                view = self._views[execution_id] = ExecutionView(execution_id)
                while len(self._views) > self.size:
                    self._views.popitem(last=False)
            self._views.move_to_end(execution_id)
        upto = self.store.last_seq(execution_id)
        if upto > view.last_seq:
            # Everything up to `upto` is committed, so these reads see all of it, whatever their order.
            lanes = self.store.lane_events(execution_id, after=view.last_seq)
            rows = self.store.item_outcomes(execution_id, after=view.last_seq)
            starts = []
            ends = [e.event_type for e in lanes if e.event_type in _ENDS or e.event_type == T.EXECUTION_RETRY]
            if not ends or ends[-1] == T.EXECUTION_RETRY:  # finished: no item is running, no count needed
                windows = view.starts_windows(lanes, upto)
                starts = [(b, self.store.item_starts(execution_id, a, b)) for a, b in windows]
            view.add(lanes, rows, starts, upto)
        return view

    def _lock_of(self, execution_id: str) -> threading.Lock:
        with self._lock:
            lock = self._locks.get(execution_id)
            if lock is None:
                if len(self._locks) > 4 * self.size:
                    self._locks = {k: v for k, v in self._locks.items() if v.locked()}
                lock = self._locks[execution_id] = threading.Lock()
            return lock
