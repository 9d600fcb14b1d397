"""ActionContext's copies: the item's and the nested task's are evolve() spelled out, field for field."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.dsl.models import Task


def _context() -> ActionContext:
    services: Any = object()
    return ActionContext(
        "e1",
        "loop",
        Task(type="iterator"),
        {"mode": "sequential"},
        None,
        {"workload": {}},
        services,
        attempt=2,
    )


def test_the_context_of_an_item_is_evolve_with_its_four_fields() -> None:
    ctx = _context()
    scope = {"x": 1}
    item = ctx.for_item(7, "loop:iter_7", 41, scope)
    assert item == ctx.evolve(index=7, node_id="loop:iter_7", parent_event_id=41, scope=scope)
    assert (item.index, item.node_id, item.parent_event_id, item.scope) == (7, "loop:iter_7", 41, scope)
    assert (ctx.index, ctx.node_id, ctx.parent_event_id) == (None, "", None)  # the original is unchanged
    assert item.attempt == 2 and item.services is ctx.services


def test_the_context_of_a_nested_task_is_evolve_with_its_four_fields() -> None:
    ctx = _context().for_item(3, "loop:iter_3", 9, {"x": 3})
    task = Task(type="python", config={"code": "def main(x): return x"})
    nested = ctx.for_task(task, {"code": "def main(x): return x"}, {"x": 3}, {"x": 3, "y": 4})
    assert nested == ctx.evolve(task=task, config=task.config, inputs={"x": 3}, scope={"x": 3, "y": 4})
    assert nested.index == 3 and nested.node_id == "loop:iter_3"  # the item's fields stay
    assert ctx.task.type == "iterator" and ctx.inputs is None
