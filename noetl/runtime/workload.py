"""The workload of a new execution: the payload merged in, then the playbook's templates rendered once.

Rendering happens exactly once, when the execution starts, in the process that starts it (the CLI, or the
server for `noetl execute`); steps and workers see the rendered values and never render them again.
Only templates written in the playbook are rendered: a payload value is data, even if it holds `{{`.

The rendered workload is recorded in `execution_start`. When it holds a value that the redactor masks (a
secret environment variable rendered into it, a value under a key such as `pg_password`), the event shows
the masked form, and the real form is sealed in the store beside the log (encrypted with the key that
encrypts credentials at rest), so that every process that reads the log, locally or on a worker, runs
with the same values. The event only says `workload_sealed: true`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from noetl.dsl.render import WATCH, is_template, render
from noetl.engine.state import ExecutionState
from noetl.errors import InputError, TemplateError
from noetl.runtime.redact import DerivedSecrets, Redactor
from noetl.runtime.scope import deep_merge
from noetl.runtime.template_env import job_view, looks_secret_key, secret_values, template_env


def start_workload(
    defaults: dict[str, Any],
    payload: dict[str, Any],
    *,
    merge: bool,
    execution_id: str,
    env: dict[str, str],
    learn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The execution's workload; raises InputError naming the key when a template cannot render.

    `learn` is told of each value a workload template derives from a secret (`{{ env.API_TOKEN[4:] }}`),
    so that the execution's events mask it like the secret itself (see redact.DerivedSecrets)."""
    combine = deep_merge if merge else _shallow
    merged = combine(defaults, payload)
    plain = {k: v for k, v in merged.items() if not _has_template(v) or k in payload}
    scope = {
        **plain,
        "workload": plain,
        "work": plain,
        "env": env,
        "job": job_view(execution_id),
        "execution_id": execution_id,
    }
    secrets = [*secret_values(env), *_under_secret_keys(plain)]
    if learn is not None and secrets:
        scope[WATCH] = DerivedSecrets(secrets, learn)
    rendered: dict[str, Any] = {}
    for key, value in defaults.items():
        if key in payload and not merge:
            continue  # replaced by the payload: its template is not this execution's
        try:
            rendered[key] = render(value, scope, where=f"workload key '{key}'")
        except TemplateError as exc:
            raise InputError(
                f"{exc}; the workload is rendered once when the execution starts, with env, job, "
                "execution_id and the workload's plain (untemplated) values"
            ) from None
    return combine(rendered, payload)


WORKLOAD = "workload"  # the sealed value's name


@dataclass(frozen=True)
class Opening:
    """How an execution begins, in both modes: the real workload its steps run with, and its
    `execution_start` context (the workload as shown; the real one sealed when masking changed it)."""

    workload: dict[str, Any]
    context: dict[str, Any]


def open_execution(
    declared: Any,
    parameters: dict[str, Any],
    *,
    merge: bool,
    execution_id: str,
    redactor: Redactor,
    seal: Callable[[str, Any], None],
    base: dict[str, Any],
) -> Opening:
    """`declared`: the playbook's `workload`; `parameters`: the payload it is started with; `base`: the
    context's other keys (path, source, the catalog version...). The secrets found are taught to
    `redactor`, so that no event of the execution shows them."""
    workload = start_workload(
        declared, parameters, merge=merge, execution_id=execution_id, env=template_env(), learn=redactor.add
    )
    protect(redactor, workload)
    return Opening(workload, start_context(workload, redactor, seal, base))


def start_context(
    workload: dict[str, Any], redactor: Redactor, seal: Any, base: dict[str, Any]
) -> dict[str, Any]:
    """execution_start's context: the workload as shown; its real form is sealed if masking changed it.

    `seal(name, value)` keeps the value beside the log; it is called before the event is written.
    """
    context = {**base, "workload": workload}
    if redactor.value(workload) != workload:
        seal(WORKLOAD, workload)
        context["workload_sealed"] = True
    return context


def _shallow(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    return {**base, **over}


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return is_template(value)


def real_workload(state: ExecutionState, store: Any) -> dict[str, Any]:
    """The workload steps run with: the sealed real form when the logged one is masked."""
    if state.workload_sealed:
        sealed = store.unseal(state.execution_id, WORKLOAD)
        if sealed is not None:
            return dict(sealed)
    return state.workload


def protect(redactor: Redactor, workload: dict[str, Any], shown: dict[str, Any] | None = None) -> None:
    """Mask in every event what must never be shown: the values of secret-looking environment
    variables, workload values under secret-looking keys (`pg_password`, `api_token`, ...), and, given
    the workload as the log shows it, every real value that was masked there (a worker need not have
    the environment variable that the starting process rendered into the workload)."""
    redactor.add_all(secret_values(template_env()))
    redactor.add_all(list(_under_secret_keys(workload)))
    if shown is not None and shown != workload:
        redactor.add_all(list(_masked(workload, shown)))


def masked_values(real: Any, shown: Any) -> list[str]:
    """The strings of `real` that `shown` (the logged form) has masked: the secrets a value holds."""
    return list(_masked(real, shown))


def _masked(real: Any, shown: Any) -> Any:
    if isinstance(real, dict) and isinstance(shown, dict):
        for key, value in real.items():
            yield from _masked(value, shown.get(key))
    elif isinstance(real, list) and isinstance(shown, list) and len(real) == len(shown):
        for value, seen in zip(real, shown, strict=True):
            yield from _masked(value, seen)
    elif isinstance(real, str) and real != shown:
        yield real


def _under_secret_keys(value: Any, secret: bool = False) -> Any:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _under_secret_keys(inner, secret or looks_secret_key(str(key)))
    elif isinstance(value, list):
        for inner in value:
            yield from _under_secret_keys(inner, secret)
    elif secret and isinstance(value, str) and value:
        yield value
