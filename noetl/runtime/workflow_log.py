"""The workflow events of the executions this process decides for or works on, read incrementally.

Every job and every broker decision folds an execution's workflow events. Reading them all each time
made a transition cost one full read per reader (growing with the execution); since `seq` is commit
order, the events after the last `seq` seen are exactly what is new, so a process keeps what it has
read and asks only for the rest. Bounded: the executions used least recently are forgotten.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from noetl.engine.events import Event

MAX_EXECUTIONS = 512


class WorkflowLog:
    def __init__(self, max_executions: int = MAX_EXECUTIONS) -> None:
        self._known: OrderedDict[tuple[str, str], list[Event]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_executions

    def read(self, store: Any, execution_id: str) -> list[Event]:
        """The execution's workflow events in commit order, as `store.read_workflow` would return them."""
        key = (str(getattr(store, "url", id(store))), execution_id)
        with self._lock:
            known = list(self._known.get(key, ()))
        after = (known[-1].seq or 0) if known else 0
        events = known + store.read_workflow(execution_id, after=after)
        with self._lock:
            current = self._known.get(key)
            if current is None or len(current) < len(events):  # a slower reader never shortens it
                self._known[key] = events
            self._known.move_to_end(key)
            while len(self._known) > self._max:
                self._known.popitem(last=False)
        return events


workflow_log = WorkflowLog()  # one per process: workers and servers share what they have read
