"""Per-item saves written N items at a time (`save: {batch: N}`): the items waiting for their batch.

An item joins a batch once its task is done and its save has started (save_started is written, the
rows are rendered). Batches are kept per target (storage, credential, database), so items never share
a transaction with another target's. The item that fills a batch takes it and writes it; the others
go on, into the next batch. What is left when the iterator ends is written by `ItemRunner.close()`.
Items of several threads (async mode) join the same batch under one lock; writing happens outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from noetl.actions.iteration.collection import WorkItem
from noetl.actions.retrying import Attempts
from noetl.actions.save.executor import StartedSave


@dataclass(slots=True)  # (not frozen: one per item, and a frozen dataclass takes 3x as long to build)
class Joined:
    """An item whose task is done, waiting for its batch to commit before it is reported."""

    item: WorkItem
    save: StartedSave
    result: Any  # the task's result: the item's result once its rows are committed
    t0: float  # when the item started: its iteration_completed duration counts from here
    node_id: str  # of its iteration events
    attempts: Attempts  # of its task


class SaveBatches:
    def __init__(self, size: int) -> None:
        self.size = size
        self._pending: dict[tuple[Hashable, ...], list[Joined]] = {}
        self._lock = threading.Lock()

    def add(self, joined: Joined) -> list[Joined] | None:
        """Join the item's batch; the batch, taken out, when this item filled it (the caller writes it)."""
        key = joined.save.batch_key
        with self._lock:
            batch = self._pending.setdefault(key, [])
            batch.append(joined)
            if len(batch) < self.size:
                return None
            del self._pending[key]
            return batch

    def drain(self) -> list[list[Joined]]:
        """Every batch not yet full, taken out: the iterator has no more items for them."""
        with self._lock:
            batches = list(self._pending.values())
            self._pending.clear()
        return batches
