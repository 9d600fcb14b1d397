"""Commit order for a batch of events: each gets the next `seq` of its execution, and nothing is kept
for an execution after its terminal event.

Both stores call this inside the transaction that writes the batch, while they hold the lock that
serializes writers of the same execution (a row lock on PostgreSQL, the database lock on SQLite). So
`seq` follows commit order: a reader that asks for `seq > N` after seeing N can never miss an event
committed later with a smaller number, which event ids taken before commit could not promise.

An execution is closed once its `execution_complete` or `execution_failed` is stored: a job still running
for it (a cancelled execution, a worker that had not heard yet) has its later events refused, and the
writer reports the execution as closed so that the job stops at its next event. Only an
`execution_retry` (`noetl retry`, written alone by the control plane) opens a closed execution again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from noetl.engine.events import Event, EventType

FINAL_TYPES = frozenset({EventType.EXECUTION_COMPLETE, EventType.EXECUTION_FAILED})
_ENDS_OR_REOPENS = FINAL_TYPES | {EventType.EXECUTION_RETRY}


@dataclass
class Sequenced:
    kept: list[tuple[Event, int]] = field(default_factory=list)  # (event, its seq), in batch order
    last_seq: dict[str, int] = field(default_factory=dict)  # execution -> its last seq after the batch
    finished: set[str] = field(default_factory=set)  # executions whose terminal event is in the batch
    refused: set[str] = field(default_factory=set)  # executions that had events dropped: they are closed
    reopened: set[str] = field(default_factory=set)  # closed executions an execution_retry opened again


def executions_of(events: Iterable[Event]) -> list[str]:
    """The executions of a batch in sorted order: writers lock them in this order, so two batches that
    share executions cannot deadlock."""
    return sorted({e.execution_id for e in events})


def sequence(events: Sequence[Event], last_seq: dict[str, int], closed: set[str]) -> Sequenced:
    """Number the events of a batch from each execution's `last_seq`; `closed`: executions already ended."""
    out = Sequenced(last_seq=dict(last_seq))
    if len(last_seq) == 1 and not closed:
        # The common batch: one open execution, no event that ends or reopens it. Numbered in one step
        # (the test is one pass over the batch, where the loop below is a dozen steps per event).
        ((execution, seq),) = last_seq.items()
        if not any(e.execution_id != execution or e.event_type in _ENDS_OR_REOPENS for e in events):
            out.kept = list(zip(events, range(seq + 1, seq + 1 + len(events)), strict=True))
            if events:
                out.last_seq[execution] = seq + len(events)
            return out
    ended = set(closed)
    last, keep = out.last_seq, out.kept.append  # (per event: no attribute lookups)
    for event in events:
        execution = event.execution_id
        if execution in ended:
            if event.event_type != EventType.EXECUTION_RETRY:
                out.refused.add(execution)
                continue
            ended.discard(execution)
            out.reopened.add(execution)
            out.finished.discard(execution)
        seq = last[execution] = last.get(execution, 0) + 1
        keep((event, seq))
        if event.event_type in FINAL_TYPES:
            ended.add(execution)
            out.finished.add(execution)
    return out
