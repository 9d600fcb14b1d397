"""Choose a finished step's transitions: every truthy `when`; if none, the unconditional ones and `else`.
A step that failed for good takes its `on: failure` transitions whose `when` (if any) holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.dsl.models import Step
from noetl.dsl.render import render, truthy


def choose(step: Step, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`scope` must bind `result` to this step's result. Returns [{step, data}] in declaration order."""
    where = f"step '{step.name}' next"
    taken = [
        t
        for t in step.next
        if t.kind == "when" and truthy(render(t.when, scope, where=f"{where} to '{t.step}' when"))
    ]
    return _targets(step, taken, scope) if taken else fallback(step, scope)


def fallback(step: Step, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The unconditional transitions and `else`: taken when no `when` is, and by a step that has no
    result to test (`pass: true`)."""
    return _targets(step, [t for t in step.next if t.kind in ("always", "else")], scope)


def _targets(step: Step, taken: list[Any], scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    where = f"step '{step.name}' next"
    return [{"step": t.step, "data": _payload(t.data, scope, f"{where} to '{t.step}' data")} for t in taken]


def _payload(data: Any, scope: Mapping[str, Any], where: str) -> Any:
    """The edge payload, each key rendered on its own so that an error names the key."""
    if not isinstance(data, dict):
        return render(data, scope, where=where)
    return {key: render(value, scope, where=f"{where}.{key}") for key, value in data.items()}


def on_failure(step: Step, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `on: failure` transitions a failed step takes; `scope` binds `error` (and `result`, if any)."""
    where = f"step '{step.name}' next on failure"
    taken = [
        t
        for t in step.next
        if t.kind == "failure"
        and (t.when is None or truthy(render(t.when, scope, where=f"{where} to '{t.step}' when")))
    ]
    return _targets(step, taken, scope)
