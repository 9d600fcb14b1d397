"""An iterator's python task runs its code without a context built for it (runtime.services gives the
built-in python action its parts: python_action.run_code). What the code sees must be what it saw
through the action's context: its inputs, the `context` global with the item's names, its errors; and
a registry that holds another python action still gets an ActionContext per item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noetl.actions import python_action
from noetl.actions.base import ActionContext
from noetl.actions.registry import Registry, default_actions
from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from noetl.store import open_store

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: direct}
workload: {tag: w}
workflow:
  - step: start
    type: iterator
    collection: [1, 2, 3]
    element: x
    task:
      type: python
      data: {x: "{{ x }}", tag: "{{ workload.tag }}"}
      code: |
        def main(x, tag):
            if x == 3:
                return {"status": "error", "message": "three is refused"}
            return {"x": x, "tag": tag, "seen": context["x"]}
    next: [{step: end}]
  - step: end
"""


def _run(tmp_path: Path, actions: Any = None) -> tuple[Any, list[Any]]:
    store = open_store(str(tmp_path / f"n{id(actions)}.db"))
    outcome = LocalRunner(store, actions=actions).run(parse_playbook(PLAYBOOK), {})
    events = store.read(outcome.execution_id)
    store.close()
    return outcome, events


def test_the_code_sees_its_inputs_and_the_items_names_and_its_error_fails_the_item(tmp_path: Path) -> None:
    outcome, events = _run(tmp_path)
    done = {e.current_index: e.result for e in events if e.event_type == "iteration_completed"}
    assert done == {0: {"x": 1, "tag": "w", "seen": 1}, 1: {"x": 2, "tag": "w", "seen": 2}}
    failed = [e for e in events if e.event_type == "iteration_failed"]
    assert [e.current_index for e in failed] == [2] and "three is refused" in (failed[0].error or "")
    assert outcome.status == "FAILED"  # (the default policy: a failed item fails the step)


def test_another_python_action_in_the_registry_gets_a_context_per_item(tmp_path: Path) -> None:
    seen: list[tuple[str, Any, Any]] = []

    def recording(ctx: ActionContext) -> Any:
        seen.append((ctx.step, ctx.index, ctx.inputs))
        return python_action.run(ctx)

    base, actions = default_actions(), Registry()
    for name in base.names():  # (as a wrapping registry holds them: tests/leak_guard.py)
        actions.register(name, recording if name == "python" else base.get(name))
    direct, _ = _run(tmp_path)
    wrapped, _ = _run(tmp_path, actions)
    assert wrapped.status == direct.status == "FAILED"
    assert seen == [("start", i, {"x": i + 1, "tag": "w"}) for i in range(3)]
