"""Run one attempt of one step and write its events; every outcome, good or bad, becomes an event."""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration.item import preview
from noetl.actions.retrying import not_retryable
from noetl.dsl.models import Playbook, Step
from noetl.dsl.render import render
from noetl.engine import policy, transitions
from noetl.engine.events import EventType as T
from noetl.engine.planner import RunStep
from noetl.errors import ActionError, NoetlError
from noetl.runtime.scope import merge_inputs
from noetl.runtime.services import render_config


@dataclass(frozen=True)
class StepSnapshot:
    """What the runner knew when it dispatched the step: taken under its lock, then read freely."""

    scope: dict[str, Any]
    edge_data: list[Any]
    started_at: str = ""  # step_started's created_at, for retries
    step_event_id: int | None = None


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
            result = self._attempt(step, cmd, snap, prepared, action_started.event_id)
            sink.new(
                T.ACTION_COMPLETED,
                attempt=cmd.attempt,
                duration=_since(t0),
                result=result,
                parent_event_id=action_started.event_id,
                **base,
            )
            scope = {**snap.scope, "result": result}
            final = render(step.result, scope, where=f"step '{step.name}' result") if step.result else result
            chosen = transitions.choose(step, scope)
            sink.new(
                T.STEP_COMPLETED,
                attempt=cmd.attempt,
                duration=seconds_since(started_at),
                result=final,
                parent_event_id=step_event_id,
                meta={"next": chosen},
                **base,
            )
        except Exception as exc:
            self._fail(step, cmd, exc, t0, started_at, step_event_id, action_started.event_id, base)

    def _prepare(
        self, step: Step, snap: StepSnapshot
    ) -> tuple[tuple[Any, dict[str, Any]] | None, Exception | None]:
        """The step's rendered inputs and config, or the error that rendering them raised."""
        where = f"step '{step.name}'"
        try:
            inputs = merge_inputs(render(step.task.data, snap.scope, where=where), snap.edge_data)
            self._check_expects(step, inputs)
            config = render_config(step.task.config, snap.scope, where)
        except Exception as exc:
            return None, exc
        return (inputs, config), None

    def _attempt(
        self,
        step: Step,
        cmd: RunStep,
        snap: StepSnapshot,
        prepared: tuple[Any, dict[str, Any]],
        action_event_id: int,
    ) -> Any:
        inputs, config = prepared
        ctx = ActionContext(
            execution_id=self.services.sink.execution_id,
            step=step.name,
            task=step.task,
            config=config,
            inputs=inputs,
            scope=snap.scope,
            services=self.services,
            attempt=cmd.attempt,
            parent_event_id=action_event_id,
            node_id=step.name,
        )
        result = self.actions.get(step.task.type)(ctx)
        self._check_returns(step, result)
        if step.task.result_save is not None:
            self.services.run_save(step.task.result_save, ctx, result, parent_event_id=action_event_id)
        return result

    def _run_router(
        self, step: Step, snap: StepSnapshot, base: dict[str, Any], started_at: str, step_event_id: int | None
    ) -> None:
        sink = self.services.sink
        try:
            inputs = merge_inputs(render(step.task.data, snap.scope), snap.edge_data)
            scope = {**snap.scope, "result": inputs}
            result = render(step.result, scope, where=f"step '{step.name}' result") if step.result else None
            chosen = transitions.choose(
                step, {**snap.scope, "result": result if result is not None else inputs}
            )
        except NoetlError as exc:
            sink.new(
                T.STEP_FAILED,
                error=str(exc),
                duration=seconds_since(started_at),
                parent_event_id=step_event_id,
                meta={"error_type": type(exc).__name__},
                **base,
            )
            return
        sink.new(
            T.STEP_COMPLETED,
            duration=seconds_since(started_at),
            result=result,
            parent_event_id=step_event_id,
            meta={"next": chosen},
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
    ) -> None:
        sink = self.services.sink
        message = str(exc) or type(exc).__name__
        meta: dict[str, Any] = {"error_type": getattr(exc, "error_type", type(exc).__name__)}
        status_code = getattr(exc, "status_code", None)
        if status_code is not None:
            meta["status_code"] = status_code
        if not isinstance(exc, NoetlError):  # not a failure we explained: keep the traceback for the user
            meta["traceback"] = traceback.format_exc(limit=8)
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
        sink.new(
            T.STEP_FAILED,
            attempt=cmd.attempt,
            duration=seconds_since(started_at),
            error=message,
            parent_event_id=step_event_id,
            meta={**meta, "reason": decision.reason},
            **base,
        )

    def _check_expects(self, step: Step, inputs: Any) -> None:
        if step.assertions is None or not step.assertions.expects:
            return
        present = inputs if isinstance(inputs, dict) else {}
        missing = [name for name in step.assertions.expects if name not in present]
        if missing:
            raise ActionError(
                f"assert.expects: input(s) {', '.join(missing)} missing; pass them in `data`",
                non_retryable=True,
            )

    def _check_returns(self, step: Step, result: Any) -> None:
        if step.assertions is None:
            return
        for path in step.assertions.returns:
            value = result
            for part in path.split("."):
                if isinstance(value, dict) and part in value:
                    value = value[part]
                else:
                    raise ActionError(
                        f"assert.returns: the result has no {path!r}", result=result, non_retryable=True
                    )


def _shown(prepared: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    """What `action_started.context` records: the rendered inputs and settings, large values truncated
    (the sink masks credential values); never the step's code, which is in the playbook."""
    inputs, config = prepared
    shown = {k: preview(v) for k, v in config.items() if k not in ("code", "task")}
    return {"inputs": preview(inputs), **({"config": shown} if shown else {})}


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 6)


def seconds_since(started_at: str) -> float | None:
    """Seconds from an event's ISO `created_at` until now (None when there is no start)."""
    if not started_at:
        return None
    start = datetime.fromisoformat(started_at)
    return round((datetime.now(start.tzinfo) - start).total_seconds(), 6)
