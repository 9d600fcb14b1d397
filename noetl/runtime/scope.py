"""The names templates see: workload, execution_id, env, job, every finished step's result by name, and
inside a step, its own inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from noetl.dsl.keys import RESERVED_NAMES
from noetl.dsl.models import Task
from noetl.dsl.render import WATCH, StepView, render
from noetl.engine.state import ExecutionState, SealedPayload
from noetl.runtime.redact import MASK, DerivedSecrets
from noetl.runtime.template_env import job_view, secret_values, template_env


def sealed_result_name(step: str, run: int) -> str:
    """The name a step's real result is sealed under (one per run of a step in a cycle)."""
    return f"step:{step}:{run}"


def sealed_edge_name(step_event_id: int | None, position: int) -> str:
    """The name the real payload of a step run's `position`-th taken transition is sealed under (the
    run's `step_started` id is unique in its execution)."""
    return f"edge:{step_event_id}:{position}"


def real_payloads(
    edge_data: list[Any],
    unseal: Callable[[str], Any] | None,
    reveal: Callable[[Any, Any], None] | None,
) -> list[Any]:
    """The edge payloads a step receives, with each sealed one (it held a secret, so the log shows it
    masked) replaced by its real value; `reveal(real, shown)` is told, as for a sealed result."""
    if not any(isinstance(p, SealedPayload) for p in edge_data):
        return edge_data
    real_ones = []
    for payload in edge_data:
        if isinstance(payload, SealedPayload):
            real = unseal(payload.name) if unseal is not None else None
            if real is None:  # not sealed in this store (an old log): the masked value is all there is
                real = payload.shown
            elif reveal is not None:
                reveal(real, payload.shown)
            payload = real
        real_ones.append(payload)
    return real_ones


def build_scope(
    state: ExecutionState,
    workload: dict[str, Any] | None = None,
    unseal: Callable[[str], Any] | None = None,
    reveal: Callable[[Any, Any], None] | None = None,
) -> dict[str, Any]:
    """`workload`: the real workload when the logged one has masked values (see runtime/workload.py).
    `unseal`: reads a step's real result when the log holds it masked (a secret), so that a later step,
    a resumed run and a worker all use the value the step returned. `reveal(real, shown)` is told of
    each: the process that now holds the secret masks it in what it writes, as the one that read it did
    (a value built from it later, `"value is " + secret`, is masked in both modes). It is also told
    `reveal(derived, "***")` of each value a template of this scope derives from a secret."""
    from noetl.runtime.workload import masked_values  # not at the top: workload.py imports this module

    scope: dict[str, Any] = {}
    secrets: list[str] = []  # the values of this scope that the log shows masked
    for name, value in state.results().items():
        step = state.steps[name]
        if step.sealed and unseal is not None:
            real = unseal(sealed_result_name(name, step.runs))
            if real is not None:
                if reveal is not None:
                    reveal(real, value)
                secrets += masked_values(real, value)
            value = value if real is None else real
        scope[name] = StepView(value)
    shown = state.workload if workload is None else workload
    env = template_env()
    scope.update(
        {
            "workload": shown,
            "work": shown,
            "execution_id": state.execution_id,
            "env": env,
            "job": job_view(state.execution_id),
        }
    )
    if workload is not None:
        secrets += masked_values(workload, state.workload)
    secrets += secret_values(env)
    if secrets and reveal is not None:
        # What a template computes from these is masked too (`{{ token[4:] }}`): see DerivedSecrets.
        learn = reveal
        scope[WATCH] = DerivedSecrets(secrets, lambda derived: learn(derived, MASK))
    return scope


def with_inputs(scope: Mapping[str, Any], inputs: Any) -> Mapping[str, Any]:
    """A step's scope with its rendered inputs (edge payload included) as top-level names.

    NoETL 0.x put the keys of the job context at the top, so playbooks write `{{ repo_name }}` in SQL.
    An input wins over a step of the same name (`validate` warns about that); it never hides the
    engine's own names (workload, execution_id, result, ...).
    """
    if not isinstance(inputs, dict) or not inputs:
        return scope
    keys = tuple(inputs)
    every_key_is_a_name = _KEYS_ARE_NAMES.get(keys)
    if every_key_is_a_name is None:
        every_key_is_a_name = all(isinstance(k, str) and k not in _NOT_INPUT_NAMES for k in keys)
        if len(_KEYS_ARE_NAMES) >= 1024:  # bounded: the inputs of a playbook have few shapes
            _KEYS_ARE_NAMES.clear()
        _KEYS_ARE_NAMES[keys] = every_key_is_a_name
    if every_key_is_a_name:  # the common case, once per item: no test per key
        return {**scope, **inputs}
    names = {k: v for k, v in inputs.items() if isinstance(k, str) and k not in _NOT_INPUT_NAMES}
    return {**scope, **names} if names else scope


_NOT_INPUT_NAMES = RESERVED_NAMES | {WATCH}
# The key tuples of inputs seen, and whether each of their keys becomes a name (with_inputs).
_KEYS_ARE_NAMES: dict[tuple[Any, ...], bool] = {}


def payload_names(edge_data: list[Any]) -> dict[str, Any]:
    """The keys of the edge payloads a step received, merged in the order the edges were taken."""
    merged: dict[str, Any] = {}
    for payload in edge_data:
        if isinstance(payload, dict):
            merged.update(payload)
    return merged


_QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})


def explicit_part(task: Task, rendered: Any, scope: Mapping[str, Any]) -> str | None:
    """For an http task written with `data: {query, body}`: the part a payload goes into."""
    if task.type != "http" or not isinstance(rendered, dict) or not rendered:
        return None
    if not set(rendered) <= {"query", "body"}:
        return None
    method = str(render(task.config.get("method") or "GET", scope)).upper()
    return "query" if method in _QUERY_METHODS else "body"


def merge_inputs(rendered: Any, edge_data: list[Any], into: str | None = None) -> Any:
    """Edge payloads are merged over the target's own inputs, in the order the edges were taken.

    `into`: an http step whose inputs use the explicit `{query, body}` form gets the payload inside
    that part (`query` for GET/DELETE, `body` otherwise); the explicit form is never rewritten.
    """
    payloads = [d for d in edge_data if isinstance(d, dict)]
    if not payloads:
        return rendered
    merged: dict[str, Any] = dict(rendered) if isinstance(rendered, dict) else {}
    if into is not None:
        part = merged.get(into)
        target: dict[str, Any] = dict(part) if isinstance(part, dict) else {}
        for payload in payloads:
            target.update(payload)
        merged[into] = target
        return merged
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
