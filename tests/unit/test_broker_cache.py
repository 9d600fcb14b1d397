"""The broker's parsed-playbook and planner caches (runtime.broker)."""

from __future__ import annotations

from noetl.dsl import parse_playbook
from noetl.engine.planner import Planner
from noetl.runtime import broker

TEXT = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: {name}}}
workflow:
  - step: start
    next: [{{step: end}}]
  - step: end
"""


def test_a_planner_is_never_one_built_for_another_playbook_with_the_same_id() -> None:
    """Planners are kept by id(): once a file child's playbook is forgotten, a new playbook may get
    its id, and must not be planned with the old one's tables."""
    old, new = parse_playbook(TEXT.format(name="old")), parse_playbook(TEXT.format(name="new"))
    broker._planners[id(new)] = Planner(old)  # what a reused id looks like
    try:
        assert broker.planner_of(new).playbook is new
        assert broker.planner_of(new) is broker.planner_of(new), "built once, then kept"
    finally:
        broker._planners.pop(id(new), None)
