"""Run one attempt of one step and write its events; every outcome, good or bad, becomes an event."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from noetl.actions.base import ActionContext, Awaiting
from noetl.actions.deadlines import Interrupts, StepTimeout, attempt_timeout, run_with_timeout
from noetl.actions.iteration.item import preview
from noetl.actions.retrying import not_retryable
from noetl.actions.tracebacks import user_traceback
from noetl.dsl.models import Playbook, Step
from noetl.dsl.render import StepView, render
from noetl.engine import policy, transitions
from noetl.engine.events import EventType as T
from noetl.engine.planner import RunStep
from noetl.engine.state import ExecutionState
from noetl.engine.values import NUMBERS_AND_NONE, recorded
from noetl.errors import NoetlError
from noetl.runtime.assertions import check_expects, check_returns
from noetl.runtime.scope import (
    build_scope,
    explicit_part,
    merge_inputs,
    payload_names,
    real_payloads,
    sealed_edge_name,
    sealed_result_name,
    with_inputs,
)
from noetl.runtime.services import render_config

# Inputs whose values are connection passwords (a postgres step without `auth` reads db_* inputs).
_PASSWORD_INPUTS = ("db_password", "password")
_NOT_SHOWN = frozenset({"code", "task", "where", "order_by"})

Prepared = tuple[Any, dict[str, Any], Any]  # (inputs, config, the step's scope with its inputs)


@dataclass(frozen=True)
class StepSnapshot:
    """What the runner knew when it dispatched the step: taken under its lock, then read freely."""

    scope: dict[str, Any]
    edge_data: list[Any]
    started_at: str = ""  # step_started's created_at, for retries
    step_event_id: int | None = None


def take_snapshot(
    state: ExecutionState,
    cmd: RunStep,
    started: tuple[str, int | None],
    services: Any,
    workload: dict[str, Any] | None,
) -> StepSnapshot:
    """What a step's attempt starts from, in both modes: the scope of the results so far, and the edge
    payloads of its run (those waiting for it when the run starts, else the ones its run received: a
    later attempt, or a redelivered job whose run had started), sealed ones opened. `started`: the
    run's step_started (created_at, event id), or ("", None) before it."""
    step = state.step(cmd.step)
    first = cmd.attempt == 1 and step.runs < cmd.run
    edge_data = list(state.triggers.get(cmd.step, [])) if first else list(step.edge_data)
    scope = build_scope(state, workload, services.unseal, services.reveal)
    return StepSnapshot(scope, real_payloads(edge_data, services.unseal, services.reveal), *started)


def node_type(step: Step) -> str:
    return step.task.type or "step"


class StepRunner:
    def __init__(self, playbook: Playbook, services: Any, actions: Any) -> None:
        self.playbook = playbook
        self.services = services
        self.actions = actions

    def run(self, cmd: RunStep, snap: StepSnapshot) -> None:
        step = self.playbook.steps[cmd.step]
        sink = self.services.sink
        base = {"node_name": step.name, "node_id": step.name, "node_type": node_type(step)}
        started_at, step_event_id = snap.started_at, snap.step_event_id
        if cmd.attempt == 1:
            started = sink.new(T.STEP_STARTED, attempt=1, **base)
            started_at, step_event_id = started.created_at, started.event_id
        if step.skip:
            self._skip(step, snap, base, started_at, step_event_id)
            return
        if step.is_router:
            self._run_router(step, snap, base, started_at, step_event_id)
            return
        prepared, problem = self._prepare(step, snap)
        action_started = sink.new(
            T.ACTION_STARTED,
            attempt=cmd.attempt,
            parent_event_id=step_event_id,
            context=_shown(prepared) if prepared else None,
            **base,
        )
        t0 = time.monotonic()
        try:
            if problem is not None or prepared is None:
                raise problem or AssertionError("unreachable: no inputs and no problem")
            result = self._attempt(step, cmd, prepared, action_started.event_id)
        except Awaiting:
            # The work goes on in other jobs (chunks, a child execution); a join job finishes it, and
            # the attempt's timeout still holds: a deadline job fails it if it is not done by then.
            if prepared is not None:
                self._keep_deadline(step, cmd, prepared, t0)
            return
        except Exception as exc:
            scope = prepared[2] if prepared else snap.scope
            self._fail(step, cmd, exc, t0, started_at, step_event_id, action_started.event_id, base, scope)
            return
        self._complete(step, cmd, prepared, result, t0, started_at, step_event_id, action_started.event_id)

    def join(
        self,
        cmd: RunStep,
        snap: StepSnapshot,
        action_event_id: int,
        action_started_at: str,
        finish: Callable[[ActionContext], Any],
    ) -> None:
        """Finish an attempt whose action went on in other jobs (a fanned-out iterator, a sub-playbook's
        execution): `finish` gives
        its result, then everything after the action runs as in `run`, with the same events."""
        step = self.playbook.steps[cmd.step]
        base = {"node_name": step.name, "node_id": step.name, "node_type": node_type(step)}
        t0 = time.monotonic() - (seconds_since(action_started_at) or 0.0)
        prepared, problem = self._prepare(step, snap)
        try:
            if problem is not None or prepared is None:
                raise problem or AssertionError("unreachable: no inputs and no problem")
            result = self._attempt(step, cmd, prepared, action_event_id, finish)
        except Exception as exc:
            scope = prepared[2] if prepared else snap.scope
            self._fail(step, cmd, exc, t0, snap.started_at, snap.step_event_id, action_event_id, base, scope)
            return
        self._complete(step, cmd, prepared, result, t0, snap.started_at, snap.step_event_id, action_event_id)

    def _complete(
        self,
        step: Step,
        cmd: RunStep,
        prepared: Prepared,
        result: Any,
        t0: float,
        started_at: str,
        step_event_id: int | None,
        action_event_id: int,
    ) -> None:
        """action_completed, the step's `result`, its transitions, step_completed."""
        sink = self.services.sink
        base = {"node_name": step.name, "node_id": step.name, "node_type": node_type(step)}
        try:
            # A large result is stored once: in step_completed, when it is also the step's result.
            once = step.result is None and _larger_than(result, LARGE_RESULT_BYTES)
            sink.new(
                T.ACTION_COMPLETED,
                attempt=cmd.attempt,
                duration=_since(t0),
                result=None if once else result,
                parent_event_id=action_event_id,
                meta={"result_in": "step_completed"} if once else {},
                **base,
            )
            # In its own `next` (and `result`), a step's name is its result, like `result` (NoETL 0.x).
            scope = {**prepared[2], "result": result, step.name: StepView(result)}
            final = (
                recorded(render(step.result, scope, where=f"step '{step.name}' result"))
                if step.result
                else result
            )
            chosen = self._seal_edges(transitions.choose(step, scope), step_event_id)
            meta: dict[str, Any] = {"next": chosen}
            if self._seal_if_masked(step.name, cmd.run, final):
                meta["sealed"] = True
            sink.new(
                T.STEP_COMPLETED,
                attempt=cmd.attempt,
                duration=seconds_since(started_at),
                result=final,
                parent_event_id=step_event_id,
                meta=meta,
                **base,
            )
        except Exception as exc:
            self._fail(step, cmd, exc, t0, started_at, step_event_id, action_event_id, base, prepared[2])

    def _prepare(self, step: Step, snap: StepSnapshot) -> tuple[Prepared | None, Exception | None]:
        """The step's rendered inputs, config and scope, or the error that rendering them raised.

        The edge payload's keys are names while the inputs render; then the inputs (payload included)
        are names while the action's settings, its save and its `next` render.
        """
        where = f"step '{step.name}'"
        try:
            inputs, scope = self._inputs(step, snap, where)
            self._mask_passwords(inputs)
            check_expects(step.assertions, inputs, where)
            config = render_config(step.task.config, scope, where)
        except Exception as exc:
            return None, exc
        return (inputs, config, scope), None

    def _inputs(self, step: Step, snap: StepSnapshot, where: str) -> tuple[Any, Any]:
        received = with_inputs(snap.scope, payload_names(snap.edge_data))
        rendered = render(step.task.data, received, where=where)
        inputs = merge_inputs(rendered, snap.edge_data, explicit_part(step.task, rendered, snap.scope))
        # `received`, not snap.scope: the payload's keys stay names when they went into `query`/`body`.
        return inputs, with_inputs(received, inputs)

    def _seal_if_masked(self, step: str, run: int, result: Any) -> bool:
        """A result the log will show masked (it holds a secret) is sealed beside the log, before the
        event that records it, so that the steps after it use the real value in both modes."""
        redactor = self.services.sink.redactor
        if not redactor.active or redactor.value(result) == result:
            return False
        self.services.seal(sealed_result_name(step, run), result)
        return True

    def _keep_deadline(self, step: Step, cmd: RunStep, prepared: Prepared, t0: float) -> None:
        timeout = attempt_timeout(step.task, self.playbook.timeout, prepared[2], f"step '{step.name}'")
        if timeout is not None:
            started = time.time() - (time.monotonic() - t0)
            self.services.keep_deadline(step.name, cmd.run, cmd.attempt, started + timeout, timeout)

    def _seal_edges(self, chosen: list[dict[str, Any]], step_event_id: int | None) -> list[dict[str, Any]]:
        """An edge payload (`next: [{step, data}]`) the log will show masked is sealed beside the log,
        like a masked result, and its transition names the seal: the step it starts gets the real value
        in both modes (the engine's fold keeps the name; runtime.scope.real_payloads opens it)."""
        redactor = self.services.sink.redactor
        if not redactor.active:
            return chosen
        sealed = []
        for position, taken in enumerate(chosen):
            data = taken.get("data")
            if data is not None and redactor.value(data) != data:
                name = sealed_edge_name(step_event_id, position)
                self.services.seal(name, data)
                taken = {**taken, "sealed": name}
            sealed.append(taken)
        return sealed

    def _mask_passwords(self, inputs: Any) -> None:
        if isinstance(inputs, dict):
            for key in _PASSWORD_INPUTS:
                if inputs.get(key):
                    self.services.sink.redactor.add(inputs[key])

    def _attempt(
        self,
        step: Step,
        cmd: RunStep,
        prepared: Prepared,
        action_event_id: int,
        action: Callable[[ActionContext], Any] | None = None,
    ) -> Any:
        """Run the action (or `action`, which finishes one that went on elsewhere), then check and save.

        With a `timeout` (the step's, else the playbook's) the attempt, its save included, runs on a
        thread of its own and fails with reason `timeout` when it runs past it (noetl.actions.deadlines).
        A join (`action`) only reads what other jobs did: it is not timed."""
        inputs, config, scope = prepared
        timeout = attempt_timeout(step.task, self.playbook.timeout, scope, f"step '{step.name}'")
        run = action or self.actions.get(step.task.type)

        def attempt(services: Any, interrupts: Interrupts | None) -> Any:
            ctx = ActionContext(
                execution_id=self.services.sink.execution_id,
                step=step.name,
                task=step.task,
                config=config,
                inputs=inputs,
                scope=scope,
                services=services,
                attempt=cmd.attempt,
                parent_event_id=action_event_id,
                node_id=step.name,
                interrupts=interrupts,
            )
            # Recorded as JSON values now, by one set of rules, so that every later reader sees this value.
            result = recorded(run(ctx), f"step '{step.name}' result")
            check_returns(step.assertions, result, f"step '{step.name}'")
            if step.task.result_save is not None:
                services.run_save(step.task.result_save, ctx, result, parent_event_id=action_event_id)
            return result

        if timeout is None or action is not None:
            return attempt(self.services, None)
        return run_with_timeout(attempt, self.services, timeout, f"step '{step.name}'")

    def _run_router(
        self, step: Step, snap: StepSnapshot, base: dict[str, Any], started_at: str, step_event_id: int | None
    ) -> None:
        sink = self.services.sink
        try:
            inputs, own = self._inputs(step, snap, f"step '{step.name}'")
            scope = {**own, "result": inputs, step.name: StepView(inputs)}
            result = render(step.result, scope, where=f"step '{step.name}' result") if step.result else None
            shown = result if result is not None else inputs
            chosen = transitions.choose(step, {**own, "result": shown, step.name: StepView(shown)})
            chosen = self._seal_edges(chosen, step_event_id)
        except NoetlError as exc:
            self._fail_without_action(exc, base, started_at, step_event_id)
            return
        sink.new(
            T.STEP_COMPLETED,
            duration=seconds_since(started_at),
            result=result,
            parent_event_id=step_event_id,
            meta={"next": chosen},
            **base,
        )

    def _skip(
        self, step: Step, snap: StepSnapshot, base: dict[str, Any], started_at: str, step_event_id: int | None
    ) -> None:
        """`pass: true`: no action runs; the step is SKIPPED and, having no result to test, follows its
        unconditional transitions and `else`, their payloads rendered (the payload it received is names)."""
        try:
            chosen = transitions.fallback(step, with_inputs(snap.scope, payload_names(snap.edge_data)))
            chosen = self._seal_edges(chosen, step_event_id)
        except NoetlError as exc:
            self._fail_without_action(exc, base, started_at, step_event_id)
            return
        self.services.sink.new(
            T.STEP_COMPLETED,
            status="SKIPPED",
            duration=seconds_since(started_at),
            parent_event_id=step_event_id,
            meta={"next": chosen, "reason": "pass"},
            **base,
        )

    def _fail_without_action(
        self, exc: NoetlError, base: dict[str, Any], started_at: str, step_event_id: int | None
    ) -> None:
        """step_failed for a step that runs no action (a router, a skipped step): nothing to retry."""
        self.services.sink.new(
            T.STEP_FAILED,
            error=str(exc),
            duration=seconds_since(started_at),
            parent_event_id=step_event_id,
            meta={"error_type": type(exc).__name__},
            **base,
        )

    def _fail(
        self,
        step: Step,
        cmd: RunStep,
        exc: Exception,
        t0: float,
        started_at: str,
        step_event_id: int | None,
        action_event_id: int,
        base: dict[str, Any],
        scope: Mapping[str, Any] | None = None,
    ) -> None:
        sink = self.services.sink
        message = str(exc) or type(exc).__name__
        meta: dict[str, Any] = {"error_type": getattr(exc, "error_type", type(exc).__name__)}
        status_code = getattr(exc, "status_code", None)
        if status_code is not None:
            meta["status_code"] = status_code
        if isinstance(exc, StepTimeout):
            meta["reason"] = "timeout"
        if not isinstance(exc, NoetlError):  # not a failure we explained: keep the traceback for the user
            meta["traceback"] = user_traceback(exc)
            message = f"{type(exc).__name__}: {message}"
        sink.new(
            T.ACTION_ERROR,
            attempt=cmd.attempt,
            duration=_since(t0),
            error=message,
            result=getattr(exc, "result", None),
            parent_event_id=action_event_id,
            meta=meta,
            **base,
        )
        outcome = policy.Outcome(
            False, getattr(exc, "result", None), message, status_code, non_retryable=not_retryable(exc)
        )
        try:
            decision = policy.decide(step.task.retry, cmd.attempt, outcome, random.random())
        except NoetlError as policy_error:
            decision = policy.RetryDecision(False, reason=str(policy_error))
        if decision.retry:
            sink.new(
                T.ACTION_RETRY,
                attempt=cmd.attempt,
                parent_event_id=step_event_id,
                error=message,
                meta={
                    "delay": decision.delay,
                    "next_attempt": cmd.attempt + 1,
                    "retry_at": time.time() + decision.delay,
                },
                **base,
            )
            return
        # A timeout is the reason the step failed; why it was not tried again is beside it.
        failed_meta: dict[str, Any] = (
            {**meta, "reason": "timeout", "retry_reason": decision.reason}
            if isinstance(exc, StepTimeout)
            else {**meta, "reason": decision.reason}
        )
        failed_meta.update(
            self._failure_routes(step, scope, message, getattr(exc, "result", None), step_event_id)
        )
        sink.new(
            T.STEP_FAILED,
            attempt=cmd.attempt,
            duration=seconds_since(started_at),
            error=message,
            parent_event_id=step_event_id,
            meta=failed_meta,
            **base,
        )

    def _failure_routes(
        self,
        step: Step,
        scope: Mapping[str, Any] | None,
        message: str,
        result: Any,
        step_event_id: int | None,
    ) -> dict[str, Any]:
        """The `on: failure` transitions this failed step takes ({"handled", "next"}), or nothing: the
        execution then fails. `error` is the message in their `when` and `data`."""
        if not any(t.kind == "failure" for t in step.next):
            return {}
        try:
            chosen = transitions.on_failure(step, {**(scope or {}), "error": message, "result": result})
            chosen = self._seal_edges(chosen, step_event_id)
        except NoetlError as routing_error:  # the route itself is broken: fail, and say why
            return {"routing_error": str(routing_error)}
        return {"handled": True, "next": chosen} if chosen else {}


def _shown(prepared: Prepared) -> dict[str, Any]:
    """What `action_started.context` records: the rendered inputs and settings, large values truncated
    (the sink masks credential values); never the step's code, which is in the playbook."""
    inputs, config, _ = prepared
    # Not shown: the code, the nested task, and the iterator's per-item expressions (not yet rendered).
    shown = {k: preview(v) for k, v in config.items() if k not in _NOT_SHOWN}
    return {"inputs": preview(inputs), **({"config": shown} if shown else {})}


LARGE_RESULT_BYTES = 64 * 1024
_SEQUENCES = (list, tuple)  # (made once: `list | tuple` would build a union for every value walked)


def _larger_than(value: Any, limit: int) -> bool:
    """Whether `value` as JSON is roughly more than `limit` bytes; stops walking once it knows, so a
    million-element result costs a few thousand steps, not an encoding."""
    budget = limit
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in NUMBERS_AND_NONE:  # (first: an iterator's result is most often a list of these)
            budget -= 8
        elif isinstance(item, str):
            budget -= len(item) + 2
        elif isinstance(item, dict):
            budget -= 2 + 4 * len(item)
            for key, inner in item.items():
                budget -= len(str(key))
                stack.append(inner)
        elif isinstance(item, _SEQUENCES):
            budget -= 2 + len(item)
            stack.extend(item)
        else:
            budget -= 8
        if budget < 0:
            return True
    return False


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 6)


def seconds_since(started_at: str) -> float | None:
    """Seconds from an event's ISO `created_at` until now (None when there is no start)."""
    if not started_at:
        return None
    start = datetime.fromisoformat(started_at)
    return round((datetime.now(start.tzinfo) - start).total_seconds(), 6)
