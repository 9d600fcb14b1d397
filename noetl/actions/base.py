"""What an action sees: its rendered inputs and config, and the runtime services it may use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from noetl.actions.deadlines import Interrupts
from noetl.dsl.models import SaveSpec, Task
from noetl.engine.events import Event
from noetl.store.ports import CredentialRecord


class Sink(Protocol):
    execution_id: str

    def new(self, event_type: str, **fields: Any) -> Event: ...

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
        """An iterator item's or a save's event, its fields in this order (EventSink.node_event)."""
        ...


class CredentialSource(Protocol):
    def resolve(self, spec: Any, where: str) -> CredentialRecord: ...

    def resolve_map(self, spec: Any, where: str) -> dict[str, CredentialRecord]: ...


class Services(Protocol):
    """The runtime's side of the contract; actions never see the store itself."""

    # Read-only properties, so that an implementation may hold more specific types (covariance).
    @property
    def sink(self) -> Sink: ...

    @property
    def credentials(self) -> CredentialSource: ...

    @property
    def workdir(self) -> Path: ...

    def run_playbook(self, path: str, data: Any, return_step: str | None, ctx: ActionContext) -> Any: ...

    def run_action(
        self, task: Task, scope: Mapping[str, Any], ctx: ActionContext, inputs: Any = None
    ) -> Any: ...

    def run_save(
        self,
        spec: SaveSpec,
        ctx: ActionContext,
        this: Any,
        *,
        index: int | None = None,
        item: Any = None,
        parent_event_id: int | None = None,
    ) -> int: ...

    def breaker(self, target: str, spec: Any) -> Any: ...

    def completed_items(self, step: str, attempt: int = 1) -> dict[int, Any]:
        """Items of this run of `step` already finished (by a resumed run, an earlier attempt, another
        worker): index -> result. They are not run again."""
        ...

    def attempt_items(self, step: str, iterator_event_id: int) -> Sequence[Any]:
        """The item end events (iteration_completed / iteration_failed) of one iterator attempt, the one
        whose `iterator_started` has that id, in log order: the join of a fan-out reads them."""
        ...


class Awaiting(Exception):
    """Raised by an action whose work goes on in other jobs (an iterator's chunks, a sub-playbook's
    execution): the step runner writes nothing more for this attempt now; a join job finishes it."""


@dataclass(frozen=True)
class ActionContext:
    execution_id: str
    step: str
    task: Task
    config: dict[str, Any]  # the action's keys, rendered
    inputs: Any  # the step's `data`, rendered, with edge payloads merged over it
    scope: Mapping[str, Any]  # template names: workload, earlier steps, iteration names
    services: Services
    attempt: int = 1
    parent_event_id: int | None = None
    node_id: str = ""
    index: int | None = None  # the item's index when running inside an iterator
    # With a `timeout`: what stops the attempt's blocking work when it runs out (noetl.actions.deadlines)
    interrupts: Interrupts | None = None

    @property
    def sink(self) -> Sink:
        return self.services.sink

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        from noetl.dsl.render import render

        scope = {**self.scope, **extra} if extra else self.scope
        return render(value, scope, where=f"step '{self.step}'")

    def evolve(self, **changes: Any) -> ActionContext:
        # dataclasses.replace re-runs __init__; this copy is several times cheaper and runs per item.
        new = object.__new__(ActionContext)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    # The two copies made per item, spelled out: evolve's keywords cost 0.2 us more each.

    def for_item(
        self, index: int, node_id: str, parent_event_id: int | None, scope: Mapping[str, Any]
    ) -> ActionContext:
        """The context of one item of an iterator: evolve(index=..., node_id=..., ...)."""
        new = object.__new__(ActionContext)
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["index"], fields["node_id"], fields["parent_event_id"], fields["scope"] = (
            index,
            node_id,
            parent_event_id,
            scope,
        )
        return new

    def for_task(
        self, task: Task, config: dict[str, Any], inputs: Any, scope: Mapping[str, Any]
    ) -> ActionContext:
        """The context of a nested task: evolve(task=..., config=..., inputs=..., scope=...)."""
        new = object.__new__(ActionContext)
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["task"], fields["config"], fields["inputs"], fields["scope"] = task, config, inputs, scope
        return new


Action = Callable[[ActionContext], Any]
