"""The names templates see: workload, execution_id, and every finished step's result by name."""

from __future__ import annotations

from typing import Any

from noetl.dsl.render import StepView
from noetl.engine.state import ExecutionState


def build_scope(state: ExecutionState, overlay: dict[str, Any] | None = None) -> dict[str, Any]:
    scope: dict[str, Any] = {name: StepView(value) for name, value in state.results().items()}
    if overlay:
        scope.update({name: StepView(value) for name, value in overlay.items()})
    scope.update({"workload": state.workload, "work": state.workload, "execution_id": state.execution_id})
    return scope


def merge_inputs(rendered: Any, edge_data: list[Any]) -> Any:
    """Edge payloads are merged over the target's own inputs, in the order the edges were taken."""
    payloads = [d for d in edge_data if isinstance(d, dict)]
    if not payloads:
        return rendered
    merged: dict[str, Any] = dict(rendered) if isinstance(rendered, dict) else {}
    for payload in payloads:
        merged.update(payload)
    return merged


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
