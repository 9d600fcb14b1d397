"""The playbook action: run a child playbook as its own execution, wait, and return its result."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext


def run(ctx: ActionContext) -> Any:
    path = str(ctx.config["path"])
    return ctx.services.run_playbook(path, ctx.inputs, ctx.config.get("return_step"), ctx)
