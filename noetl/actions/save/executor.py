"""Carry out a save with its events: save_started, then save_completed, save_failed or save_error.

A save that fails is never reported as success: the caller gets SaveFailed (the target refused) or
SaveError (the save could not be carried out as written), after the event that says so is written.

A save runs in two halves: `start_save` writes save_started and renders the request, `finish_save`
writes it (with `retry` and `circuit_breaker`) and writes its end event. `execute_save` is both at
once. An iterator whose per-item save has `batch: N` starts each item's save when the item's task is
done and writes up to N of them in one transaction with `write_batch`; each item still gets its own
save_completed (after the commit) or, when the batch is refused, is written again on its own, so that
exactly the items whose rows fail get save_failed.

What is resolved per save, not per row or per item, is resolved once per execution and target: the
credential (`_credential`, keyed by the execution's credential resolver and the rendered `auth`), the
connection string and the statement text (in the storages). Credential values live in memory only; events
show the credential's name.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.actions.base import ActionContext, Sink
from noetl.actions.registry import Registry
from noetl.actions.save.breaker import Breakers, CircuitBreaker
from noetl.actions.save.request import SaveRequest, batch_of
from noetl.actions.tracebacks import user_traceback
from noetl.dsl.keys import BATCH_STORAGES
from noetl.dsl.models import SaveSpec
from noetl.engine import policy
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.frozen import FrozenDict
from noetl.errors import CredentialError, NoetlError, SaveError, SaveFailed, TemplateError
from noetl.store.ports import CredentialRecord

__all__ = ["BATCH_STORAGES", "StartedSave", "execute_save", "finish_save", "start_save", "write_batch"]


@dataclass(slots=True)  # (not frozen: one per item, and a frozen dataclass takes 3x as long to build)
class StartedSave:
    """A save whose save_started is written and whose request is rendered: what is left is to write it."""

    spec: SaveSpec
    request: SaveRequest
    node: SaveNode  # where its events go
    t0: float  # when it started: its end event's duration counts from here
    target: str  # the circuit breaker's target
    batch_key: tuple[Hashable, ...]  # saves with the same key may share a transaction


@dataclass(slots=True)
class SaveNode:
    """The fields every event of one save shares; `parent_event_id` is its save_started once written."""

    step: str
    node_id: str
    index: int | None
    parent_event_id: int | None

    def event(
        self,
        sink: Sink,
        event_type: str,
        duration: float | None = None,
        *,
        result: Any = None,
        error: str | None = None,
        meta: dict[str, Any] | None = None,
        context: Any = None,
    ) -> Event:
        """Write one of the save's events (positionally: EventSink.node_event)."""
        return sink.node_event(
            event_type,
            self.step,
            self.node_id,
            self.index,
            None,
            self.parent_event_id,
            None,
            duration,
            result,
            error,
            meta,
            context,
        )


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
    started = start_save(spec, ctx, this, storages, index=index, parent_event_id=parent_event_id)
    return finish_save(started, ctx, storages, breakers)


def start_save(
    spec: SaveSpec,
    ctx: ActionContext,
    this: Any,
    storages: Registry,
    *,
    index: int | None = None,
    parent_event_id: int | None = None,
) -> StartedSave:
    """save_started, then the request rendered; a save that cannot be carried out as written gets its
    save_error here and raises SaveError."""
    sink = ctx.sink
    step = ctx.step
    node_id = f"{step}:save_iter_{index}" if index is not None else f"{step}:save"
    node = SaveNode(step, node_id, index, parent_event_id)
    scope = {**ctx.scope, "this": this, "result": this}  # built once: each render below reads it
    node.parent_event_id = node.event(sink, T.SAVE_STARTED, context=_describe(spec, ctx, scope)).event_id
    t0 = time.monotonic()
    try:
        request, auth_key = _prepare(spec, ctx, this, scope)
        storages.get(spec.storage)
    except (TemplateError, CredentialError, KeyError) as exc:
        message = f"save of step '{step}' could not be carried out: {exc}"
        node.event(sink, T.SAVE_ERROR, _since(t0), error=message, meta={"error_type": type(exc).__name__})
        raise SaveError(message, non_retryable=True) from None
    key = (spec.storage, auth_key, str(request.options.get("database")))
    return StartedSave(spec, request, node, t0, _target(spec, request), key)


def finish_save(
    started: StartedSave,
    ctx: ActionContext,
    storages: Registry,
    breakers: Breakers,
    *,
    extra_meta: Mapping[str, Any] | None = None,
) -> int:
    """Write the save, with its retries and its breaker; its end events. The rows written, or raises."""
    spec, request, node, t0, sink = started.spec, started.request, started.node, started.t0, ctx.sink
    writer = storages.get(spec.storage)
    breaker = _breaker(started, breakers)
    attempt = 0
    while True:
        attempt += 1
        if breaker is not None and not breaker.allow():
            message = f"save of step '{ctx.step}' to {started.target} skipped: the circuit breaker is open"
            meta = {"reason": "circuit_open", "attempt": attempt, "will_retry": False, **(extra_meta or {})}
            node.event(sink, T.SAVE_FAILED, _since(t0), error=message, meta=meta)
            raise SaveFailed(message, reason="circuit_open")
        try:
            rows = int(writer(request, ctx) or 0)
        except SaveFailed as exc:
            if breaker is not None:
                breaker.failure()
            # The same rule as a step's and a nested task's retry: retry_when, stop_when, jitter.
            outcome = policy.Outcome(
                False, None, str(exc), getattr(exc, "status_code", None), non_retryable=exc.non_retryable
            )
            decision = policy.decide(spec.retry, attempt, outcome, random.random())
            meta = {"reason": exc.reason, "attempt": attempt, "will_retry": decision.retry}
            if spec.retry is not None and not decision.retry:
                meta["retry_reason"] = decision.reason
            meta.update(error_type=exc.error_type, **(extra_meta or {}))
            node.event(sink, T.SAVE_FAILED, _since(t0), error=str(exc), meta=meta)
            if not decision.retry:
                raise
            time.sleep(decision.delay)
            continue
        except Exception as exc:
            message = f"save of step '{ctx.step}' could not be carried out: {exc}"
            meta = {"error_type": type(exc).__name__, "attempt": attempt, **(extra_meta or {})}
            if not isinstance(exc, SaveError):
                meta["traceback"] = user_traceback(exc)
            node.event(sink, T.SAVE_ERROR, _since(t0), error=message, meta=meta)
            raise SaveError(message, non_retryable=True) from None
        if breaker is not None:
            breaker.success()
        shown = request.rows() if spec.storage == "event" else None
        meta = {"rows": rows, "attempt": attempt, "storage": spec.storage, **(extra_meta or {})}
        node.event(sink, T.SAVE_COMPLETED, _since(t0), result=shown, meta=meta)
        return rows


# What a batched item's caller is told once its save has ended: (the save, rows written, None) after
# its save_completed, or (the save, 0, the SaveFailed / SaveError) after its save_failed or save_error.
Done = Callable[[StartedSave, int, NoetlError | None], None]


def write_batch(
    saves: list[StartedSave], ctx: ActionContext, storages: Registry, breakers: Breakers, done: Done
) -> None:
    """Write the saves (one target, one storage) in one transaction. After the commit each gets its
    save_completed and `done`, in order. If the batch is refused (or a breaker is open), nothing of it
    was written: each save is then written alone, with its own retries, so that exactly the failing
    ones fail, each with its own save_failed or save_error."""
    spec = saves[0].spec
    writer = storages.get(spec.storage)
    breakers_used = {id(b): b for b in (_breaker(s, breakers) for s in saves) if b is not None}
    t_write = time.monotonic()
    total: int | None = None
    if not any(b.is_open for b in breakers_used.values()):
        try:
            total = int(writer(batch_of([s.request for s in saves]), ctx) or 0)
        except Exception:  # which row was at fault is for the items written alone to tell
            total = None
    if total is None:
        _write_alone(saves, ctx, storages, breakers, done)
        return
    for breaker in breakers_used.values():
        breaker.success()
    write = _since(t_write)
    # The items of a batch that gave as many rows share one meta (most batches: one for all of them),
    # encoded once by the store (engine.frozen)
    metas: dict[int, FrozenDict] = {}
    for started in saves:
        # The server counts the rows of the whole transaction; an item's share is the rows it gave
        # (each ran its statement once per row), the server's own count when it is alone in its batch.
        rows = total if len(saves) == 1 else len(started.request.rows())
        meta = metas.get(rows)
        if meta is None:
            meta = metas[rows] = FrozenDict(
                rows=rows,
                attempt=1,
                storage=spec.storage,
                batch=len(saves),
                batch_rows=total,
                batch_write=write,
            )
        started.node.event(ctx.sink, T.SAVE_COMPLETED, _since(started.t0), meta=meta)
        done(started, rows, None)


def _write_alone(
    saves: list[StartedSave], ctx: ActionContext, storages: Registry, breakers: Breakers, done: Done
) -> None:
    for started in saves:
        try:
            rows = finish_save(started, ctx, storages, breakers, extra_meta={"batch": 1, "alone": True})
        except (SaveFailed, SaveError) as exc:
            done(started, 0, exc)
        else:
            done(started, rows, None)


# The descriptions that do not depend on the item (no template in table or auth), by save: one shared
# value per save, encoded once by the store, instead of a new dict per item. Bounded: a server runs many
# playbooks; the spec is kept beside its entry, so that a reused id() is never mistaken for it.
_CONSTANT_DESCRIPTIONS: dict[int, tuple[SaveSpec, FrozenDict]] = {}
_MAX_CONSTANT_DESCRIPTIONS = 256


def _describe(spec: SaveSpec, ctx: ActionContext, scope: Mapping[str, Any]) -> dict[str, Any]:
    """The save config worth showing in events: never credential values, only the credential's name.

    Table and credential name are shown rendered (a template in an event would be text the engine
    never used); one that does not render is left out here and explained by save_error.
    """
    known = _CONSTANT_DESCRIPTIONS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    shown = _description(spec, ctx, scope)
    if not any(isinstance(v, str) and "{" in v for v in (spec.table, spec.auth)):
        if len(_CONSTANT_DESCRIPTIONS) >= _MAX_CONSTANT_DESCRIPTIONS:
            _CONSTANT_DESCRIPTIONS.clear()
        shown = _CONSTANT_DESCRIPTIONS.setdefault(id(spec), (spec, FrozenDict(shown)))[1]
    return shown


def _description(spec: SaveSpec, ctx: ActionContext, scope: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"storage": spec.storage, "mode": spec.mode}
    renderers = spec.renderers
    where = None
    for key, value, renderer in (("table", spec.table, renderers.table), ("auth", spec.auth, renderers.auth)):
        if not value or not isinstance(value, str):
            continue
        if "{" not in value:  # as written: nothing to render
            shown[key] = value
            continue
        with contextlib.suppress(NoetlError):
            shown[key] = renderer(scope, where or (where := f"step '{ctx.step}'"))
    if spec.key:
        shown["key"] = list(spec.key)
    if spec.options.get("batch"):
        shown["batch"] = spec.options["batch"]
    return shown


def _prepare(
    spec: SaveSpec, ctx: ActionContext, this: Any, scope: Mapping[str, Any]
) -> tuple[SaveRequest, str | None]:
    """The rendered request, and the key of its credential (None without `auth`)."""
    where = f"step '{ctx.step}'"
    renderers = spec.renderers
    credential, auth_key = None, None
    if spec.auth is not None:
        credential, auth_key = _credential(ctx, renderers.auth(scope, where))
    args = renderers.args(scope, where)
    rendered = renderers.options(scope, where) if renderers.options is not None else {}
    if "code" in spec.options:
        rendered["code"] = spec.options["code"]
    if "commands" in spec.options:
        # The script form: the save's data is in scope as `data` and, when a mapping, by its keys.
        extra = {"this": this, "result": this}
        names = {**(args if isinstance(args, dict) else {}), **extra, "data": args}
        rendered["commands"] = ctx.render(spec.options["commands"], names)
    request = SaveRequest(
        spec=spec,
        args=args,
        table=renderers.table(scope, where),
        # Jinja in a statement is rendered here, once; its `:name` binds stay parameters (rows below).
        statement=renderers.statement(scope, where),
        options=rendered,
        credential=credential,
        this=this,
    )
    return request, auth_key


# Credentials already resolved, per credential resolver (one per execution, or per job on a worker) and
# rendered `auth`: an iterator's per-item save would otherwise look the credential up and decrypt it for
# every item. Held in memory only, and dropped with the resolver; a failed lookup is not kept.
_RESOLVED: weakref.WeakKeyDictionary[Any, dict[str, CredentialRecord]] = weakref.WeakKeyDictionary()
_RESOLVED_LOCK = threading.Lock()


def _credential(ctx: ActionContext, auth: Any) -> tuple[CredentialRecord, str]:
    source = ctx.services.credentials
    key = auth if isinstance(auth, str) else json.dumps(auth, sort_keys=True, default=str)
    try:
        known = _RESOLVED.get(source)
    except TypeError:  # a source that cannot be weakly referenced: resolve every time
        return source.resolve(auth, f"save of step '{ctx.step}'"), key
    record = known.get(key) if known is not None else None
    if record is None:
        record = source.resolve(auth, f"save of step '{ctx.step}'")
        with _RESOLVED_LOCK:
            _RESOLVED.setdefault(source, {})[key] = record
    return record, key


def _breaker(started: StartedSave, breakers: Breakers) -> CircuitBreaker | None:
    spec = started.spec.circuit_breaker
    return breakers.get(started.target, spec) if spec is not None else None


def _target(spec: SaveSpec, request: SaveRequest) -> str:
    where = request.credential.name if request.credential else request.options.get("endpoint", "")
    return f"{spec.storage}:{where}:{request.table or ''}"


def _since(t0: float) -> float:
    # round(seconds, 6) for a positive float, without its decimal conversion (once per item and event)
    return int((time.monotonic() - t0) * 1e6 + 0.5) / 1e6
