"""The pure parts behind the UI's graph, diff and credentials pages: flow graphs, text diffs, credential names."""

from __future__ import annotations

import difflib
import random

import pytest

from noetl.dsl.models import IteratorSpec, Playbook, Step, Task, Transition
from noetl.dsl.references import credential_names
from noetl.engine.events import Event
from noetl.server.flow import derived_graph, flow_graph, step_progress
from noetl.server.textdiff import diff_lines


def test_a_flow_graph_keeps_workflow_order_and_draws_a_target_that_does_not_exist() -> None:
    loop = Task("iterator", iterator=IteratorSpec(collection=[1], task=Task("http")))
    playbook = Playbook(
        name="p",
        path="p",
        steps={
            "start": Step("start", Task(None), (Transition("each", line=3),)),
            "each": Step(
                "each", loop, (Transition("gone", "when", "{{ result }}"), Transition("end", "else"))
            ),
            "end": Step("end", Task(None), desc="the end"),
        },
    )
    graph = flow_graph(playbook)
    assert [(n["name"], n["type"], n["iterator"]) for n in graph["nodes"]] == [
        ("start", "start", False),
        ("each", "iterator", True),
        ("end", "end", False),
        ("gone", "missing", False),
    ]
    assert graph["nodes"][1]["body"] == "http"
    assert graph["edges"][1:] == [
        {"from": "each", "to": "gone", "kind": "when", "when": "{{ result }}"},
        {"from": "each", "to": "end", "kind": "else", "when": None},
    ]


def _event(kind: str, step: str, **fields: object) -> Event:
    return Event(execution_id="x", event_type=kind, node_name=step, **fields)  # type: ignore[arg-type]


def test_statuses_runs_and_a_graph_from_events_alone() -> None:
    events = [
        _event("execution_start", "pb"),
        _event("step_started", "start", node_type="step"),
        _event("step_completed", "start", meta={"next": [{"step": "work"}]}),
        _event("step_started", "work", node_type="python"),
        _event("action_retry", "work"),
        _event("step_failed", "work"),
        _event("step_started", "work", node_type="python"),
        _event("action_retry", "work", current_index=3),  # an item's retry says nothing about the step
        _event("step_completed", "work", meta={"next": [{"step": "later"}, {"step": "later"}, "odd", {}]}),
        _event("step_completed", "skip", status="SKIPPED", meta={"next": None}),
    ]
    statuses, runs = step_progress(events)
    assert statuses == {"start": "COMPLETED", "work": "COMPLETED", "skip": "SKIPPED"}
    assert runs == {"start": 1, "work": 2}
    assert step_progress(events[:5])[0]["work"] == "RETRYING"
    graph = derived_graph(events)
    assert [(n["name"], n["type"]) for n in graph["nodes"]] == [
        ("start", "start"),
        ("work", "python"),
        ("skip", "router"),
        ("later", "unknown"),
    ]
    assert [(e["from"], e["to"], e["kind"]) for e in graph["edges"]] == [
        ("start", "work", "taken"),
        ("work", "later", "taken"),
    ]


def test_the_diff_is_difflibs_unified_diff_with_line_numbers() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 25))]
        b = list(a)
        for _ in range(rng.randint(0, 4)):
            where = rng.randint(0, len(b))
            b[where : where + rng.randint(0, 2)] = rng.choice(["", "x", "yz"])
        left, right = "\n".join(a), "\n".join(b)
        lines = diff_lines(left, right, 2)
        expected = list(difflib.unified_diff(left.splitlines(), right.splitlines(), lineterm="", n=2))[2:]
        sign = {"hunk": "", "ctx": " ", "del": "-", "add": "+"}
        assert [sign[x["op"]] + x["text"] for x in lines] == expected
        for x in lines:
            if x["op"] in ("ctx", "del"):
                assert a[x["a_line"] - 1] == x["text"]
            if x["op"] in ("ctx", "add"):
                assert b[x["b_line"] - 1] == x["text"]
    assert diff_lines("same\n", "same\n") == []


NAMES = """\
workload:
  pg: pg_main
  deep: {name: nested_cred}
  loop_a: "{{ workload.loop_b }}"
  loop_b: "{{ workload.loop_a }}"
workbook:
  - name: entry
    type: postgres
    auth: {type: postgres, credential: wb}
workflow:
  - step: a
    type: postgres
    auth: "{{ workload.pg }}"
  - step: b
    type: duckdb
    auth:
      one: {source: credential, key: "{{ work.deep.name }}"}
      two: {type: postgres, env: NOT_A_CREDENTIAL}
      three: {source: inline, fields: {password: x}}
      four: "{{ workload.loop_a }}"
      five: "{{ execution_id }}"
  - step: c
    type: secrets
    name: the_secret
  - step: d
    type: secrets
    provider: google
    name: from_google
  - step: e
    loop:
      in: "{{ [1] }}"
      iterator: n
      task: {type: http, auth: legacy_loop}
  - step: f
    type: python
    data: {auth: data_only}
    save: {storage: postgres, table: t, auth: saved}
  - step: g
    type: postgres
    auth: {type: postgres, credential: pg_main, env: X}
"""


def test_credential_names_follow_every_form_and_ignore_what_only_looks_like_one() -> None:
    assert credential_names(NAMES) == {"pg_main", "wb", "nested_cred", "the_secret", "legacy_loop", "saved"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a list\n",
        "just text",
        "a: [unclosed",
        "x: !!python/object:os.system {}\n",
        "[" * 5000,
        "auth: 3\n",
    ],
)
def test_an_odd_document_names_no_credential(text: str) -> None:
    assert credential_names(text) == frozenset()
