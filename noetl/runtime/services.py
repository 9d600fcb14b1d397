"""The services one execution offers its actions: events, credentials, nested runs, saves, breakers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.actions import python_action
from noetl.actions.base import ActionContext
from noetl.actions.deadlines import attempt_timeout, run_with_timeout
from noetl.actions.registry import Registry
from noetl.actions.save.breaker import Breakers, CircuitBreaker
from noetl.actions.save.executor import execute_save
from noetl.dsl.models import CircuitBreakerSpec, Playbook, SaveSpec, Task
from noetl.dsl.render import render
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import items_done
from noetl.runtime.assertions import check_expects, check_returns
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.scope import explicit_part, merge_inputs, with_inputs
from noetl.runtime.sink import EventSink
from noetl.runtime.workload import masked_values

if TYPE_CHECKING:
    from noetl.runtime.local import LocalRunner

# Config keys an action renders itself (per item, or never: `code` is Python, not a template).
_RENDERED_LATER = frozenset({"code", "task", "where", "order_by"})


def render_config(config: dict[str, Any], scope: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A task's action settings rendered in `scope`, except those its action renders itself."""
    out = {}
    for k, v in config.items():
        # A text without a template (a python task's code, per item) is kept without naming it for
        # an error that cannot happen.
        if k in _RENDERED_LATER or (type(v) is str and "{{" not in v and "{%" not in v):
            out[k] = v
        else:
            out[k] = render(v, scope, where=f"{where} {k}")
    return out


class RunServices:
    def __init__(
        self,
        runner: LocalRunner,
        playbook: Playbook,
        sink: EventSink,
        credentials: CredentialResolver,
        actions: Registry,
        storages: Registry,
        breakers: Breakers,
        resumed_items: dict[str, dict[int, Any]] | None = None,
    ) -> None:
        self.runner = runner
        self.playbook = playbook
        self.sink = sink
        self.credentials = credentials
        self.actions = actions
        self.storages = storages
        self.breakers = breakers
        self.resumed_items = resumed_items or {}
        self.depth = 0  # parents of this execution: sub-playbooks may nest MAX_PLAYBOOK_DEPTH deep
        self.workload: dict[str, Any] | None = None  # the real workload when the logged one is masked
        self.workdir = Path(playbook.source).parent if playbook.source != "<playbook>" else Path.cwd()

    def run_playbook(self, path: str, data: Any, return_step: str | None, ctx: ActionContext) -> Any:
        return self.runner.run_child(path, data, return_step, self, ctx)

    def keep_deadline(self, step: str, run: int, attempt: int, at: float, seconds: float) -> None:
        """An attempt that went on in other jobs must still end by `at` (epoch seconds). In one process
        no attempt goes on elsewhere: its timeout is kept by the thread that waits for it."""
        raise AssertionError(f"step '{step}' went on in other jobs in a local run")

    def called_by(self, ctx: ActionContext) -> dict[str, Any]:
        """What a sub-playbook run inside this process records of its caller (its step and item)."""
        return {"step": ctx.step, "index": ctx.index}

    def run_action(self, task: Task, scope: Mapping[str, Any], ctx: ActionContext, inputs: Any = None) -> Any:
        """Run a nested task (a workbook entry, an iterator's body) in `scope`; its save is the caller's.
        With a `timeout` (the task's, else the playbook's) it is timed as a step's attempt is."""
        where = f"step '{ctx.step}'" if ctx.index is None else f"step '{ctx.step}' item {ctx.index}"
        no_timeout = task.timeout is None and self.playbook.timeout is None  # (most tasks: no call)
        timeout = None if no_timeout else attempt_timeout(task, self.playbook.timeout, scope, where)
        if timeout is None:
            return self._run_task(task, scope, ctx, inputs, where)
        return run_with_timeout(
            lambda services, interrupts: self._run_task(
                task, scope, ctx.evolve(services=services, interrupts=interrupts), inputs, where
            ),
            ctx.services,
            timeout,
            where,
        )

    def _run_task(
        self, task: Task, scope: Mapping[str, Any], ctx: ActionContext, inputs: Any, where: str
    ) -> Any:
        rendered = task.render_data(scope, where)
        if inputs:
            # An http entry written with `data: {query, body}` gets the caller's inputs inside the right
            # part, as a step gets its edge payload; the explicit form is never flattened.
            merged = merge_inputs(rendered, [inputs], explicit_part(task, rendered, scope))
        else:
            merged = rendered  # an iterator's task: no caller inputs (the per-item path, kept short)
        if task.assertions is not None:
            check_expects(task.assertions, merged, where)
        own = with_inputs(scope, merged)  # as in a step: the task's inputs are names in its templates
        config = render_config(task.config, own, where) if task.config_to_render else dict(task.config)
        action = self.actions.get(task.type or "")
        if action is python_action.run:
            # The built-in python action (a registry may hold another) reads only these parts of the
            # task's context: given them directly, once per item of an iterator, instead of a context
            # copied for it (about 7,600 instructions per item, docs/performance.md)
            result = python_action.run_code(config, task.config, merged, own, ctx.step, ctx.interrupts)
        else:
            result = action(ctx.for_task(task, config, merged, own))
        if task.assertions is not None:
            check_returns(task.assertions, result, where)
        return result

    def run_save(
        self,
        spec: SaveSpec,
        ctx: ActionContext,
        this: Any,
        *,
        index: int | None = None,
        item: Any = None,
        parent_event_id: int | None = None,
    ) -> int:
        return execute_save(
            spec,
            ctx,
            this,
            self.storages,
            self.breakers,
            index=index,
            item=item,
            parent_event_id=parent_event_id,
        )

    def breaker(self, target: str, spec: CircuitBreakerSpec) -> CircuitBreaker:
        return self.breakers.get(target, spec)

    def seal(self, name: str, value: Any) -> None:
        """Keep a value that events show masked, for the steps that need it (see runtime/scope.py)."""
        store: Any = self.sink.store
        store.seal(self.sink.execution_id, name, value)

    def unseal(self, name: str) -> Any:
        store: Any = self.sink.store
        return store.unseal(self.sink.execution_id, name)

    def reveal(self, real: Any, shown: Any) -> None:
        """A sealed value is in use here: mask its secret parts in every event this process writes."""
        self.sink.redactor.add_all(masked_values(real, shown))

    def completed_items(self, step: str, attempt: int = 1) -> dict[int, Any]:
        """Items of this run of `step` already done: those of the run a resume continues, or, on a later
        attempt, those an earlier attempt completed (read from the log, by the engine's rule)."""
        done = dict(self.resumed_items.get(step, {}))
        if attempt > 1:  # a first attempt has nothing of its own done yet: the log is not read
            store: Any = self.sink.store
            done.update(items_done(store.read(self.sink.execution_id), step))
        return done

    def attempt_items(self, step: str, iterator_event_id: int) -> list[Event]:
        store: Any = self.sink.store
        ends = (T.ITERATION_COMPLETED, T.ITERATION_FAILED)
        return [
            e
            for e in store.read(self.sink.execution_id)
            if e.node_name == step and e.parent_event_id == iterator_event_id and e.event_type in ends
        ]
