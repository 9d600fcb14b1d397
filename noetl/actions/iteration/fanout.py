"""An async iterator's items sent out as chunk jobs: the step's job ends there, and a join job finishes
the step once every chunk has ended (noetl.runtime.distributed). No job waits for others while it holds a
lease, and the step's worker slot is free while the chunks run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.actions.base import Awaiting


class FannedOut(Awaiting):
    """Raised by the iterator once its items are out as chunk jobs; the step runner writes nothing more
    for this attempt now (its join job will)."""


@dataclass(frozen=True)
class FanOut:
    """What the join needs to finish an iterator attempt, carried in the chunk and join payloads."""

    iterator_event_id: int
    action_event_id: int
    total: int  # items in the collection (the step's result has one entry per item)
    todo: int  # items this attempt sent out (the others were done before)
    attempt: int
    started_at: str  # iterator_started's created_at: the iterator's duration runs from there

    @classmethod
    def of(cls, payload: dict[str, Any]) -> FanOut:
        return cls(
            iterator_event_id=int(payload["iterator_event_id"]),
            action_event_id=int(payload["action_event_id"]),
            total=int(payload["count"]),
            todo=int(payload["todo"]),
            attempt=int(payload["attempt"]),
            started_at=str(payload.get("started_at") or ""),
        )

    def payload(self) -> dict[str, Any]:
        return {
            "iterator_event_id": self.iterator_event_id,
            "action_event_id": self.action_event_id,
            "count": self.total,
            "todo": self.todo,
            "attempt": self.attempt,
            "started_at": self.started_at,
        }
