"""The store's ports: a few methods each, so that every backend (and every fake) is small."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from noetl.engine.events import Event
from noetl.store.views_sql import EventFilter, ExecutionFilter


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    playbook_path: str
    status: str
    created_at: str
    finished_at: str | None = None
    parent_execution_id: str | None = None
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class CredentialRecord:
    name: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CatalogEntry:
    path: str
    version: int
    name: str
    content: str
    created_at: str


class EventStore(Protocol):
    def append(self, events: Sequence[Event]) -> None:
        """Queue events for writing; they are durable once `flush` returns."""

    def flush(self) -> None:
        """Block until every appended event is committed; raise StoreError if any write failed."""

    def read(self, execution_id: str, after: int = 0) -> list[Event]:
        """The execution's stored events with `seq` above `after`, in commit order (see Event.seq)."""
        ...

    def read_workflow(self, execution_id: str, after: int = 0) -> list[Event]:
        """`read` restricted to the types fold() uses (engine.state.WORKFLOW_TYPES): the state of a large
        iterator's execution without reading its items' events."""
        ...

    def closed(self, execution_id: str) -> bool:
        """True once this store refused events of the execution because its terminal event was stored
        (a cancelled execution): the work still running for it must stop (noetl.store.sequencing)."""
        ...

    def last_event_id(self, execution_id: str) -> int: ...

    def allocate_event_id(self, execution_id: str) -> int:
        """One new event id of the execution: `reserve_event_ids(execution_id, 1)`."""
        ...

    def reserve_event_ids(self, execution_id: str, n: int) -> int:
        """Reserve `n` new event ids of the execution, unique across every process sharing the store;
        returns the last of them (the block is last - n + 1 .. last).

        Ids above every event already written (flushed), and never handed out twice. Writers that share an
        execution (broker, workers, control plane) must take their ids from here; only a sole local writer
        may number its own events, and must flush them before anyone reserves ids for that execution. Ids
        of different writers interleave: the order of the log is `seq`, given at commit.
        """

    def executions(self, limit: int = 50) -> list[ExecutionRecord]: ...

    def execution(self, execution_id: str) -> ExecutionRecord | None: ...

    def event_stats(self) -> list[tuple[Any, ...]]:
        """Every stored event counted by (event_type, status), with a duration histogram: the rollup the
        batch writer keeps (noetl.store.event_stats), read by /metrics without scanning the log."""
        ...


class LogViews(Protocol):
    """The reads behind the UI: pages and light rows, so that a large execution is never read whole."""

    def query_events(
        self, execution_id: str, f: EventFilter, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Up to `limit` events matching `f` with seq > `after`, in commit order."""
        ...

    def last_seq(self, execution_id: str) -> int:
        """The seq of the last committed event: every smaller seq is committed (0: no events)."""
        ...

    def lane_events(self, execution_id: str, after: int = 0) -> list[Event]:
        """The events of views_sql.LANE_TYPES with seq > `after`, in commit order; step results left out."""
        ...

    def item_outcomes(self, execution_id: str, after: int = 0) -> list[tuple[Any, ...]]:
        """The items that ended, as rows of views_sql.OUTCOME_COLUMNS, in commit order."""
        ...

    def item_starts(self, execution_id: str, after: int, upto: int) -> dict[str, int]:
        """How many items of each step started with seq in (after, upto]."""
        ...

    def find_executions(self, f: ExecutionFilter, limit: int = 50, offset: int = 0) -> list[ExecutionRecord]:
        """Newest first, without their results."""
        ...

    def count_executions(self, f: ExecutionFilter) -> int: ...

    def execution_facts(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: {"children": count, "version": catalog version or None}}."""
        ...


class Credentials(Protocol):
    def put_credential(self, name: str, type_: str, data: dict[str, Any]) -> None: ...

    def get_credential(self, name: str) -> CredentialRecord | None: ...

    def seal(self, execution_id: str, name: str, value: Any) -> None:
        """Keep a value the log shows masked, encrypted, beside the log (never in events)."""
        ...

    def unseal(self, execution_id: str, name: str) -> Any:
        """A sealed value, or None."""
        ...

    def delete_credential(self, name: str) -> bool:
        """Remove a credential; False when there was none of that name."""
        ...

    def list_credentials(self) -> list[tuple[str, str]]:
        """(name, type) pairs; values are never listed."""


class Catalog(Protocol):
    def register(self, path: str, name: str, content: str) -> int: ...

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None: ...

    def list_playbooks(self) -> list[CatalogEntry]: ...


class Store(EventStore, LogViews, Credentials, Catalog, Protocol):
    url: str

    def close(self) -> None: ...
