"""The workbook action: run a named entry of the playbook's `workbook` as its own type."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.retrying import Attempts, call_with_retry
from noetl.errors import ActionError


def run(ctx: ActionContext) -> Any:
    # `task` (an alias of `name`) is one of the keys the step runner leaves to the action: render it here.
    name = ctx.render(ctx.config.get("name") or ctx.config.get("task"))
    entries = ctx.services.playbook.workbook  # type: ignore[attr-defined]
    entry = entries.get(name)
    if entry is None:
        raise ActionError(
            f"workbook entry {name!r} does not exist; define it under `workbook:`", non_retryable=True
        )
    # The caller's inputs are the entry's inputs, over the entry's own `data`; they are also names in scope.
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    # ctx.scope already has the inputs as names, as in any step, without letting one hide the engine's
    # own names (workload, execution_id, ...); spreading `inputs` over it again would.
    scope = ctx.scope
    result = call_with_retry(
        entry.retry, lambda: ctx.services.run_action(entry, scope, ctx, inputs), Attempts()
    )
    if entry.result_save is not None:
        ctx.services.run_save(entry.result_save, ctx, result, parent_event_id=ctx.parent_event_id)
    return result
