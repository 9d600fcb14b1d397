"""Flow graphs for the UI: a playbook's steps and transitions, or what an execution's events show of them.

Pure: playbooks and events in, plain dicts out (the JSON the graph page draws). Nodes come in workflow
order, so a page that lays them out has a stable order to start from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from noetl.dsl.models import Playbook, Step
from noetl.engine.events import Event, EventType, Status

_STEP_EVENTS = {
    EventType.STEP_STARTED: Status.RUNNING,
    EventType.STEP_COMPLETED: Status.COMPLETED,
    EventType.STEP_FAILED: Status.FAILED,
}


def flow_graph(playbook: Playbook) -> dict[str, Any]:
    """{nodes: [{name, type, iterator, line, desc}], edges: [{from, to, kind, when}]}."""
    nodes = [_node(step) for step in playbook.steps.values()]
    names = set(playbook.steps)
    edges = []
    for step in playbook.steps.values():
        for t in step.next:
            edges.append({"from": step.name, "to": t.step, "kind": t.kind, "when": t.when})
            if t.step not in names:
                # Validation refuses unknown targets; drawn anyway so an edge never points at nothing.
                names.add(t.step)
                nodes.append(_bare(t.step, "missing", line=t.line))
    return {"nodes": nodes, "edges": edges}


def _node(step: Step) -> dict[str, Any]:
    iterator = step.task.iterator
    node = _bare(step.name, _kind(step.name, step.task.type), line=step.line, desc=step.desc)
    node["iterator"] = iterator is not None
    if iterator is not None:
        node["body"] = iterator.task.type  # what each item runs: "iterator · http" says more than "iterator"
    return node


def _kind(name: str, task_type: str | None) -> str:
    """The task type; a router step without one is named for its role (start, end) or "router"."""
    if task_type and task_type != "step":  # events call a router step's node_type "step"
        return task_type
    return name if name in ("start", "end") else "router"


def _bare(name: str, kind: str, *, line: int | None = None, desc: str | None = None) -> dict[str, Any]:
    return {"name": name, "type": kind, "iterator": kind == "iterator", "line": line, "desc": desc}


def step_progress(events: Iterable[Event]) -> tuple[dict[str, str], dict[str, int]]:
    """({step: its latest status}, {step: how many times it started}) from an execution's events."""
    statuses: dict[str, str] = {}
    runs: dict[str, int] = {}
    for e in events:
        if not e.node_name:
            continue
        if e.event_type in _STEP_EVENTS:
            statuses[e.node_name] = e.status or _STEP_EVENTS[e.event_type]  # SKIPPED rides on completed
            if e.event_type == EventType.STEP_STARTED:
                runs[e.node_name] = runs.get(e.node_name, 0) + 1
        elif e.event_type == EventType.ACTION_RETRY and e.current_index is None and e.node_name in statuses:
            statuses[e.node_name] = Status.RETRYING  # waiting for its next attempt: not failed, not running
    return statuses, runs


def derived_graph(events: Iterable[Event]) -> dict[str, Any]:
    """The graph as far as the events show it: the steps seen, and the transitions taken (no conditions).

    For an execution whose playbook is gone; steps that never ran and edges never taken are missing.
    """
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    seen_edges: set[tuple[str, str]] = set()
    for e in events:
        if e.event_type not in _STEP_EVENTS or not e.node_name:
            continue
        if e.node_name not in nodes:
            nodes[e.node_name] = _bare(e.node_name, _kind(e.node_name, e.node_type))
        if e.event_type != EventType.STEP_COMPLETED:
            continue
        taken = e.meta.get("next") if isinstance(e.meta, dict) else None
        for t in taken if isinstance(taken, list) else []:
            target = t.get("step") if isinstance(t, dict) else None
            if not isinstance(target, str) or (e.node_name, target) in seen_edges:
                continue
            seen_edges.add((e.node_name, target))
            edges.append({"from": e.node_name, "to": target, "kind": "taken", "when": None})
    for edge in edges:  # a target that was chosen but has not started yet: its type is not known
        nodes.setdefault(edge["to"], _bare(edge["to"], "unknown"))
    return {"nodes": list(nodes.values()), "edges": edges}
