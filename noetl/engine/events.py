"""The Event value, its types and statuses: the vocabulary of the append-only execution log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final


class EventType:
    """Every event type of EVENTS.md; nothing else is ever written to the log."""

    EXECUTION_START: Final = "execution_start"
    STEP_STARTED: Final = "step_started"
    ACTION_STARTED: Final = "action_started"
    ITERATOR_STARTED: Final = "iterator_started"
    ITERATION_STARTED: Final = "iteration_started"
    SAVE_STARTED: Final = "save_started"
    SAVE_COMPLETED: Final = "save_completed"
    SAVE_FAILED: Final = "save_failed"
    SAVE_ERROR: Final = "save_error"
    ITERATION_COMPLETED: Final = "iteration_completed"
    ITERATION_FAILED: Final = "iteration_failed"
    ITERATOR_COMPLETED: Final = "iterator_completed"
    ITERATOR_FAILED: Final = "iterator_failed"
    ACTION_COMPLETED: Final = "action_completed"
    ACTION_ERROR: Final = "action_error"
    ACTION_RETRY: Final = "action_retry"
    STEP_COMPLETED: Final = "step_completed"
    STEP_FAILED: Final = "step_failed"
    EXECUTION_COMPLETE: Final = "execution_complete"
    EXECUTION_FAILED: Final = "execution_failed"
    EXECUTION_RETRY: Final = "execution_retry"  # a finished execution runs a step again (noetl retry)


class Status:
    STARTED: Final = "STARTED"
    RUNNING: Final = "RUNNING"
    COMPLETED: Final = "COMPLETED"
    FAILED: Final = "FAILED"
    RETRYING: Final = "RETRYING"
    SKIPPED: Final = "SKIPPED"


ALL_TYPES: Final = frozenset(v for k, v in vars(EventType).items() if k.isupper())
ALL_STATUSES: Final = frozenset(v for k, v in vars(Status).items() if k.isupper())

# The status each type carries; one table so that no emitter can get it wrong.
STATUS_OF: Final[dict[str, str]] = {
    EventType.EXECUTION_START: Status.STARTED,
    EventType.STEP_STARTED: Status.RUNNING,
    EventType.ACTION_STARTED: Status.STARTED,
    EventType.ITERATOR_STARTED: Status.RUNNING,
    EventType.ITERATION_STARTED: Status.RUNNING,
    EventType.SAVE_STARTED: Status.RUNNING,
    EventType.SAVE_COMPLETED: Status.COMPLETED,
    EventType.SAVE_FAILED: Status.FAILED,
    EventType.SAVE_ERROR: Status.FAILED,
    EventType.ITERATION_COMPLETED: Status.COMPLETED,
    EventType.ITERATION_FAILED: Status.FAILED,
    EventType.ITERATOR_COMPLETED: Status.COMPLETED,
    EventType.ITERATOR_FAILED: Status.FAILED,
    EventType.ACTION_COMPLETED: Status.COMPLETED,
    EventType.ACTION_ERROR: Status.FAILED,
    EventType.ACTION_RETRY: Status.RETRYING,
    EventType.STEP_COMPLETED: Status.COMPLETED,
    EventType.STEP_FAILED: Status.FAILED,
    EventType.EXECUTION_COMPLETE: Status.COMPLETED,
    EventType.EXECUTION_FAILED: Status.FAILED,
    EventType.EXECUTION_RETRY: Status.RUNNING,
}

# End events carry a duration (seconds since the matching start).
END_TYPES: Final = frozenset(
    t for t in ALL_TYPES if t.endswith(("_completed", "_complete", "_failed", "_error"))
)


@dataclass(slots=True)
class Event:
    """One record of the log. Built with keywords; `event_id` and `created_at` are set by the sink.

    Treat it as immutable: change an event with `dataclasses.replace`, which makes a new one. It is not
    declared frozen because a frozen dataclass's `__init__` sets each of its 19 fields through
    `object.__setattr__`, four times the cost of a plain one, and two events are built per item (issue 10).

    `seq` is set by the store when the event commits: the order of the log (1, 2, 3, ... per execution,
    in commit order), so that a reader asking for the events after the last `seq` it saw misses none.
    `event_id` is the event's identity (what `parent_event_id` points at); writers on several hosts take
    ids in blocks, so ids are unique but not in commit order. None until the event is stored.
    """

    execution_id: str
    event_type: str
    node_name: str | None = None
    node_id: str | None = None
    node_type: str | None = None
    status: str | None = None
    event_id: int = 0
    parent_execution_id: str | None = None
    parent_event_id: int | None = None
    created_at: str = ""
    duration: float | None = None
    current_index: int | None = None
    current_item: Any = None
    attempt: int | None = None
    context: Any = None
    result: Any = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def __post_init__(self) -> None:
        if self.event_type not in ALL_TYPES:
            raise ValueError(f"unknown event type {self.event_type!r}")
        if self.status is None:
            self.status = STATUS_OF[self.event_type]
        elif self.status not in ALL_STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


# Event's fields in the order of its __init__. The two builders that run once per event or row
# (runtime.sink.EventSink, store.codec.row_to_event) pass them positionally: a keyword call of
# the 19-field __init__ costs three times as much (1.3 us against 0.4 us). They are spelled out here so
# that a change of order fails at import instead of mixing up fields. (Not an assert: kept under -O.)
FIELD_ORDER: Final = (
    "execution_id",
    "event_type",
    "node_name",
    "node_id",
    "node_type",
    "status",
    "event_id",
    "parent_execution_id",
    "parent_event_id",
    "created_at",
    "duration",
    "current_index",
    "current_item",
    "attempt",
    "context",
    "result",
    "error",
    "meta",
    "seq",
)
if tuple(Event.__dataclass_fields__) != FIELD_ORDER:
    raise RuntimeError("Event's fields changed order: update FIELD_ORDER and the positional builders")
