"""Choose a finished step's transitions: every truthy `when`; if none, the unconditional ones and `else`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.dsl.models import Step
from noetl.dsl.render import render, truthy


def choose(step: Step, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`scope` must bind `result` to this step's result. Returns [{step, data}] in declaration order."""
    where = f"step '{step.name}' next"
    taken = [t for t in step.next if t.kind == "when" and truthy(render(t.when, scope, where=where))]
    if not taken:
        taken = [t for t in step.next if t.kind in ("always", "else")]
    return [{"step": t.step, "data": render(t.data, scope, where=where)} for t in taken]
