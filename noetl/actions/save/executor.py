"""Carry out a save with its events: save_started, then save_completed, save_failed or save_error.

A save that fails is never reported as success: the caller gets SaveFailed (the target refused) or
SaveError (the save could not be carried out as written), after the event that says so is written.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.registry import Registry
from noetl.actions.save.breaker import Breakers
from noetl.actions.save.request import SaveRequest
from noetl.actions.tracebacks import user_traceback
from noetl.dsl.models import SaveSpec
from noetl.engine.events import EventType as T
from noetl.engine.policy import delay_for
from noetl.errors import CredentialError, NoetlError, SaveError, SaveFailed, TemplateError


def _describe(spec: SaveSpec, ctx: ActionContext, this: Any) -> dict[str, Any]:
    """The save config worth showing in events: never credential values, only the credential's name.

    Table and credential name are shown rendered (a template in an event would be text the engine
    never used); one that does not render is left out here and explained by save_error.
    """
    shown: dict[str, Any] = {"storage": spec.storage, "mode": spec.mode}
    for key, value in (("table", spec.table), ("auth", spec.auth if isinstance(spec.auth, str) else None)):
        if not value:
            continue
        with contextlib.suppress(NoetlError):
            shown[key] = ctx.render(value, {"this": this, "result": this})
    if spec.key:
        shown["key"] = list(spec.key)
    return shown


def execute_save(
    spec: SaveSpec,
    ctx: ActionContext,
    this: Any,
    storages: Registry,
    breakers: Breakers,
    *,
    index: int | None = None,
    item: Any = None,
    parent_event_id: int | None = None,
) -> int:
    sink = ctx.sink
    base = {
        "node_name": ctx.step,
        "node_id": f"{ctx.step}:save_iter_{index}" if index is not None else f"{ctx.step}:save",
        "node_type": "save",
        "current_index": index,
        "parent_event_id": parent_event_id,
    }
    started = sink.new(T.SAVE_STARTED, context=_describe(spec, ctx, this), **base)
    base["parent_event_id"] = started.event_id
    t0 = time.monotonic()
    try:
        request = _prepare(spec, ctx, this)
        writer = storages.get(spec.storage)
    except (TemplateError, CredentialError, KeyError) as exc:
        message = f"save of step '{ctx.step}' could not be carried out: {exc}"
        sink.new(
            T.SAVE_ERROR, error=message, duration=_since(t0), meta={"error_type": type(exc).__name__}, **base
        )
        raise SaveError(message, non_retryable=True) from None
    breaker = None
    if spec.circuit_breaker is not None:
        breaker = breakers.get(_target(spec, request), spec.circuit_breaker)
    attempts = spec.retry.max_attempts if spec.retry else 1
    for attempt in range(1, attempts + 1):
        will_retry = attempt < attempts
        if breaker is not None and not breaker.allow():
            message = (
                f"save of step '{ctx.step}' to {_target(spec, request)} skipped: the circuit breaker is open"
            )
            sink.new(
                T.SAVE_FAILED,
                error=message,
                duration=_since(t0),
                meta={"reason": "circuit_open", "attempt": attempt, "will_retry": False},
                **base,
            )
            raise SaveFailed(message, reason="circuit_open")
        try:
            rows = int(writer(request, ctx) or 0)
        except SaveFailed as exc:
            if breaker is not None:
                breaker.failure()
            sink.new(
                T.SAVE_FAILED,
                error=str(exc),
                duration=_since(t0),
                meta={
                    "reason": exc.reason,
                    "attempt": attempt,
                    "will_retry": will_retry,
                    "error_type": exc.error_type,
                },
                **base,
            )
            if not will_retry:
                raise
            time.sleep(delay_for(spec.retry, attempt, 0.5) if spec.retry else 0)
            continue
        except Exception as exc:
            message = f"save of step '{ctx.step}' could not be carried out: {exc}"
            meta = {"error_type": type(exc).__name__, "attempt": attempt}
            if not isinstance(exc, SaveError):
                meta["traceback"] = user_traceback(exc)
            sink.new(T.SAVE_ERROR, error=message, duration=_since(t0), meta=meta, **base)
            raise SaveError(message, non_retryable=True) from None
        if breaker is not None:
            breaker.success()
        shown = request.rows() if spec.storage == "event" else None
        sink.new(
            T.SAVE_COMPLETED,
            duration=_since(t0),
            result=shown,
            meta={"rows": rows, "attempt": attempt, "storage": spec.storage},
            **base,
        )
        return rows
    raise AssertionError("unreachable: the last attempt either returns or raises")


# Options rendered at another moment: `code` is Python (never a template), `commands` a script
# rendered below with the save's data in scope.
_OWN_RENDER = frozenset({"code", "commands"})


def _prepare(spec: SaveSpec, ctx: ActionContext, this: Any) -> SaveRequest:
    extra = {"this": this, "result": this}
    options = {k: v for k, v in spec.options.items() if k not in _OWN_RENDER}
    credential = None
    if spec.auth is not None:
        auth = ctx.render(spec.auth, extra)
        credential = ctx.services.credentials.resolve(auth, f"save of step '{ctx.step}'")
    args = ctx.render(spec.args, extra)
    rendered = ctx.render(options, extra)
    if "code" in spec.options:
        rendered["code"] = spec.options["code"]
    if "commands" in spec.options:
        # The script form: the save's data is in scope as `data` and, when a mapping, by its keys.
        names = {**(args if isinstance(args, dict) else {}), **extra, "data": args}
        rendered["commands"] = ctx.render(spec.options["commands"], names)
    return SaveRequest(
        spec=spec,
        args=args,
        table=ctx.render(spec.table, extra),
        # Jinja in a statement is rendered here, once; its `:name` binds stay parameters (rows below).
        statement=ctx.render(spec.statement, extra),
        options=rendered,
        credential=credential,
        this=this,
    )


def _target(spec: SaveSpec, request: SaveRequest) -> str:
    where = request.credential.name if request.credential else request.options.get("endpoint", "")
    return f"{spec.storage}:{where}:{request.table or ''}"


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 6)
