"""Loading playbooks: aliases fold into one meaning, transitions, retry forms, workbook entries."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from noetl.dsl import Playbook, RetryPolicy, parse_playbook
from noetl.engine.transitions import choose
from noetl.errors import PlaybookError

HEADER = "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: t}\n"


def load(body: str, header: str = HEADER) -> Playbook:
    return parse_playbook(header + textwrap.dedent(body), source="t.yaml")


def problems(body: str, header: str = HEADER) -> list[str]:
    with pytest.raises(PlaybookError) as info:
        load(body, header)
    return [str(p) for p in info.value.problems]


# ---- inputs and their aliases -------------------------------------------------------------------------


def test_data_aliases_merge_with_data_winning() -> None:
    pb = load("""
        workflow:
          - step: start
            type: python
            code: "def main(**kw): return kw"
            payload: {k: payload, p: 1}
            input: {k: input, i: 1}
            params: {k: params, q: 1}
            with: {k: with, w: 1}
            args: {k: args, a: 1}
            data: {k: data, d: 1}
        """)
    assert pb.steps["start"].task.data == {"k": "data", "p": 1, "i": 1, "q": 1, "w": 1, "a": 1, "d": 1}


def test_args_wins_over_with_when_there_is_no_data() -> None:
    pb = load("""
        workflow:
          - step: start
            type: python
            code: "def main(k): return k"
            with: {k: with}
            args: {k: args}
        """)
    assert pb.steps["start"].task.data == {"k": "args"}


def test_a_single_alias_is_the_data_as_written() -> None:
    pb = load("""
        workflow:
          - step: start
            type: python
            code: "def main(input_data): return input_data"
            with: [1, 2]
        """)
    assert pb.steps["start"].task.data == [1, 2]


def test_steps_is_an_alias_of_workflow() -> None:
    with_workflow = load("workflow:\n  - step: start\n    next: [end]\n  - step: end\n")
    with_steps = load("steps:\n  - step: start\n    next: [end]\n  - step: end\n")
    assert list(with_workflow.steps) == list(with_steps.steps) == ["start", "end"]
    assert with_steps.successors("start") == ("end",)


def test_workflow_and_steps_together_are_rejected() -> None:
    found = problems("workflow:\n  - step: start\nsteps:\n  - step: start\n")
    assert any("t.yaml:6:" in p and "both `workflow` and `steps`" in p for p in found), found


# ---- save -------------------------------------------------------------------------------------------


SAVE_STEP = """
    workflow:
      - step: start
        type: python
        code: "def main(): return {{'id': 1}}"
        save:
{save}
    """


def save_of(save_yaml: str) -> Any:
    body = SAVE_STEP.format(save=textwrap.indent(textwrap.dedent(save_yaml), " " * 10))
    return load(body).steps["start"].task.save


def test_save_type_postgres_means_storage_postgres() -> None:
    spec = save_of("type: postgres\ntable: public.results\nargs: {id: '{{ this.id }}'}\n")
    assert spec.storage == "postgres"
    assert spec.table == "public.results"
    assert spec.args == {"id": "{{ this.id }}"}


def test_storage_dict_form_with_inside_winning() -> None:
    spec = save_of(
        "storage: {type: postgres, table: inner_t, mode: upsert, key: id}\n"
        "table: outer_t\nmode: insert\nargs: {id: 1}\n"
    )
    assert (spec.storage, spec.table, spec.mode, spec.key) == ("postgres", "inner_t", "upsert", ("id",))


def test_save_defaults_to_an_event_insert() -> None:
    spec = save_of("args: {id: 1}\n")
    assert (spec.storage, spec.mode, spec.table) == ("event", "insert", None)


def test_save_data_is_an_alias_of_args_and_key_list_is_kept() -> None:
    spec = save_of("storage: duckdb\ntable: t\nmode: upsert\nkey: [a, b]\ndata: {a: 1, b: 2}\n")
    assert spec.args == {"a": 1, "b": 2}
    assert spec.key == ("a", "b")


def test_save_with_conflicting_storage_and_type_is_rejected() -> None:
    with pytest.raises(PlaybookError, match="storage 'postgres' and type 'duckdb'"):
        save_of("storage: postgres\ntype: duckdb\ntable: t\nargs: {a: 1}\n")


# ---- iterators -----------------------------------------------------------------------------------------


def test_legacy_loop_is_read_as_an_iterator() -> None:
    pb = load("""
        workload: {cities: [London, Paris]}
        workflow:
          - step: start
            loop: {in: "{{ workload.cities }}", iterator: city, mode: parallel}
            type: python
            code: |
              def main(city):
                  return city
            data: {city: "{{ city }}"}
            next: [end]
          - step: end
        """)
    step = pb.steps["start"]
    assert step.task.type == "iterator"
    it = step.task.iterator
    assert it is not None
    assert (it.collection, it.element, it.mode) == ("{{ workload.cities }}", "city", "async")
    assert it.task.type == "python"
    assert it.task.data == {"city": "{{ city }}"}
    assert "def main(city)" in it.task.config["code"]
    assert pb.successors("start") == ("end",)


def test_legacy_loop_with_an_explicit_task() -> None:
    pb = load("""
        workflow:
          - step: start
            loop:
              in: [1, 2]
              iterator: n
              task: {type: python, code: "def main(n): return n"}
        """)
    it = pb.steps["start"].task.iterator
    assert it is not None and it.element == "n" and it.collection == [1, 2]
    assert it.task.type == "python"


@pytest.mark.parametrize(
    ("written", "read"), [("parallel", "async"), ("async", "async"), (None, "sequential")]
)
def test_iterator_mode(written: str | None, read: str) -> None:
    mode = f"    mode: {written}\n" if written else ""
    pb = load(
        "workflow:\n  - step: start\n    type: iterator\n    collection: [1]\n    element: n\n"
        + mode
        + "    task: {type: python, code: 'def main(n): return n'}\n"
    )
    it = pb.steps["start"].task.iterator
    assert it is not None
    assert it.mode == read
    assert it.concurrency == 8


# ---- transitions -------------------------------------------------------------------------------------------


TRANSITIONS = """
    workflow:
      - step: start
        type: python
        code: "def main(): return {'hot': True, 'count': 3}"
        next:
          - when: "{{ result.hot }}"
            step: hot
            data: {flag: "{{ result.count }}"}
          - when: "{{ result.count > 1 }}"
            step: many
          - step: cold
      - step: hot
        next: end
      - step: many
        next: [end]
      - step: cold
        next:
          - when: "{{ result.count > 10 }}"
            then: [{step: big}]
          - else: [{step: small, data: {why: small}}]
      - step: big
        next: [end]
      - step: small
        next: [end]
      - step: end
    """


def test_transition_kinds_and_payloads() -> None:
    pb = load(TRANSITIONS)
    start = pb.steps["start"].next
    assert [(t.step, t.kind, t.when) for t in start] == [
        ("hot", "when", "{{ result.hot }}"),
        ("many", "when", "{{ result.count > 1 }}"),
        ("cold", "always", None),
    ]
    assert start[0].data == {"flag": "{{ result.count }}"}
    cold = pb.steps["cold"].next
    assert [(t.step, t.kind, t.when) for t in cold] == [
        ("big", "when", "{{ result.count > 10 }}"),
        ("small", "else", None),
    ]
    assert cold[1].data == {"why": "small"}


def test_plain_strings_in_next() -> None:
    pb = load(TRANSITIONS)
    assert pb.successors("hot") == ("end",)
    assert pb.successors("many") == ("end",)
    assert pb.steps["hot"].next[0].kind == "always"


def test_every_truthy_when_is_taken_and_the_unconditional_ones_are_not() -> None:
    pb = load(TRANSITIONS)
    chosen = choose(pb.steps["start"], {"result": {"hot": True, "count": 3}})
    assert chosen == [{"step": "hot", "data": {"flag": 3}}, {"step": "many", "data": None}]


def test_unconditional_items_are_taken_when_no_when_is_true() -> None:
    pb = load(TRANSITIONS)
    assert choose(pb.steps["start"], {"result": {"hot": False, "count": 0}}) == [
        {"step": "cold", "data": None}
    ]


@pytest.mark.parametrize(("count", "target"), [(11, "big"), (2, "small")])
def test_when_then_else(count: int, target: str) -> None:
    pb = load(TRANSITIONS)
    assert [c["step"] for c in choose(pb.steps["cold"], {"result": {"count": count}})] == [target]


def test_transition_lines_point_at_the_target_and_the_condition() -> None:
    pb = load(TRANSITIONS)
    first = pb.steps["start"].next[0]
    # 3 header lines, a blank line, then `workflow:` at line 5: `when:` is line 10, its `step:` line 11
    assert first.when_line == 10
    assert first.line == 11


# ---- retry --------------------------------------------------------------------------------------------------


def retry_of(value: str) -> RetryPolicy | None:
    pb = load(f"workflow:\n  - step: start\n    type: http\n    endpoint: http://x\n    retry: {value}\n")
    return pb.steps["start"].task.retry


def test_retry_true_takes_the_defaults() -> None:
    assert retry_of("true") == RetryPolicy()


def test_retry_number_sets_max_attempts() -> None:
    policy = retry_of("5")
    assert policy == RetryPolicy(max_attempts=5)


def test_retry_false_means_no_retry() -> None:
    assert retry_of("false") is None


def test_retry_mapping() -> None:
    policy = retry_of(
        "{max_attempts: 4, initial_delay: 0.5, backoff_multiplier: 3, max_delay: 9, jitter: false, "
        "retry_when: '{{ status_code >= 500 }}', stop_when: '{{ status_code == 404 }}'}"
    )
    assert policy == RetryPolicy(
        4, 0.5, 3.0, 9.0, False, "{{ status_code >= 500 }}", "{{ status_code == 404 }}"
    )
    assert policy is not None and isinstance(policy.max_delay, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'often'", "retry must be true, a number of attempts, or a mapping"),
        ("-1", "retry count -1 must be 1 or more"),
        ("{max_attempts: 0}", "retry.max_attempts must be a whole number >= 1"),
        ("{max_attempts: 2.5}", "retry.max_attempts must be a whole number >= 1, got 2.5"),
        ("{retries: 3}", "unknown retry key 'retries'"),
    ],
)
def test_bad_retry_is_rejected_at_the_retry_line(value: str, message: str) -> None:
    with pytest.raises(PlaybookError) as info:
        retry_of(value)
    (problem,) = info.value.problems
    assert message in problem.message
    assert (problem.line, problem.step) == (8, "start")


# ---- workbook -----------------------------------------------------------------------------------------------


def test_workbook_entries_and_references() -> None:
    pb = load("""
        workbook:
          - name: compute_flag
            type: python
            data: {limit: 25}
            code: |
              def main(t, limit):
                  return {"hot": t > limit}
        workflow:
          - step: start
            type: workbook
            name: compute_flag
            data: {t: 30}
        """)
    entry = pb.workbook["compute_flag"]
    assert entry.type == "python"
    assert entry.data == {"limit": 25}
    assert "def main(t, limit)" in entry.config["code"]
    step = pb.steps["start"].task
    assert (step.type, step.config, step.data) == ("workbook", {"name": "compute_flag"}, {"t": 30})


def test_workbook_entry_is_validated_like_a_step() -> None:
    found = problems("""
        workbook:
          - name: broken
            type: python
            code: "def run(): pass"
        workflow:
          - step: start
        """)
    assert found == [
        "t.yaml:8: step 'workbook:broken': `code` must define `def main(...)`; the step calls main() and its "
        "return value is the step's result"
    ]


# ---- locations ----------------------------------------------------------------------------------------------


def test_python_syntax_error_in_inline_code_names_the_code_line() -> None:
    found = problems("workflow:\n  - step: start\n    type: python\n    code: 'def main(:'\n")
    assert len(found) == 1 and found[0].startswith("t.yaml:7: step 'start': python syntax error")


def test_python_syntax_error_in_block_code_names_the_line_inside_the_block() -> None:
    found = problems(
        "workflow:\n  - step: start\n    type: python\n    code: |\n      def main():\n\n"
        "          return 1 +\n"
    )
    assert len(found) == 1 and found[0].startswith("t.yaml:10: step 'start': python syntax error"), found


def test_problems_are_listed_in_file_order_without_repeats() -> None:
    found = problems("""
        workflow:
          - step: start
            next:
              - when: "{{ nope }}"
                then: [a, b]
          - step: a
            typ: python
        """)
    assert [p.split(":")[1] for p in found] == ["8", "9", "11"], found
    assert "undefined name(s) nope" in found[0]  # once, although two targets share the condition
    assert "'b', which is not a step" in found[1]
    assert "unknown key 'typ'" in found[2] and "did you mean 'type'" in found[2]


def test_a_valid_example_loads() -> None:
    from pathlib import Path

    from noetl.dsl import load_playbook

    pb = load_playbook(Path(__file__).resolve().parents[2] / "examples" / "hello" / "hello_world.yaml")
    assert list(pb.steps) == ["start", "greet", "end"]
    assert pb.steps["greet"].task.type == "python"
    assert pb.steps["start"].is_router and pb.steps["end"].is_router


# ---- YAML-level mistakes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
        ("\n# note\n- step: start\n", 3, "must be a YAML mapping"),
        (HEADER + "workflow:\n  - step: start\n    data: {x: {{ workload.x }}}\n", 6, "must be quoted"),
        (
            HEADER + "workflow:\n  - step: start\n    next: [{step: end}\n  - step: end\n",
            7,
            "opened at line 6",
        ),
        (HEADER + "workflow: []\n---\nkind: Playbook\n", 5, "several documents"),
        (HEADER + "workflow:\n  - step: st\x01art\n", 5, "control character"),
        (HEADER + "kind: Playbook\nworkflow: []\n", 4, "duplicate key 'kind' (first at line 2)"),
    ],
)
def test_yaml_mistakes_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, source="t.yaml")
    (problem,) = info.value.problems
    assert message in problem.message
    assert problem.line == line
