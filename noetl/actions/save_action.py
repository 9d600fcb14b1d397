"""`type: save`: a save block as the step's action; the step's inputs are the row(s)."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.dsl.models import SaveSpec


def run(ctx: ActionContext) -> Any:
    spec: SaveSpec = ctx.task.save or SaveSpec()
    rows = ctx.services.run_save(spec, ctx, ctx.inputs, parent_event_id=ctx.parent_event_id)
    return {"rows": rows, "storage": spec.storage}
