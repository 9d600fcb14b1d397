"""Whole-playbook checks: templates parse, targets exist, `when` names are defined."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from noetl.dsl import keys, sql_warnings
from noetl.dsl.render import check_syntax, is_template, root_names
from noetl.dsl.yaml_lines import line_of
from noetl.errors import Problem

if TYPE_CHECKING:
    from noetl.dsl.models import Step, Task
    from noetl.dsl.normalize import Normalizer

# Values that are code, not templates: a `{{` in Python source is not ours to parse.
_NOT_TEMPLATED = frozenset({"code"})


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_templates(
    n: Normalizer, raw: Any, step: str | None, key: str | None = None, parent: Any = None
) -> None:
    """Report every template syntax error inside a step, at the line of the key that holds it."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            if is_template(k):  # keys are never rendered: the text would reach the action as written
                n.report(
                    f"the key {k!r} is a template; keys are fixed names (only values are rendered)",
                    raw,
                    k,
                    step=step,
                )
            if k not in _NOT_TEMPLATED:
                check_templates(n, v, step, k, raw)
        if step is not None and key in (None, "task"):  # a step, a workbook entry or an iterator's task
            sql_warnings.warn_sql_templates(n, raw, step)
    elif isinstance(raw, list):
        for v in raw:
            check_templates(n, v, step, key, parent)
    elif is_template(raw):
        error = check_syntax(raw)
        if error:
            n.report(error + "; close every {{ with }} and check the expression", parent, key, step=step)


def check_graph(steps: list[Step], workbook: dict[str, Task], n: Normalizer, line: int | None = None) -> None:
    """Check the whole workflow: a `start` step, every `next` target, the names each `when` reads.

    `line` is the line of the `workflow` key, where a missing `start` is reported.
    """
    names = {s.name for s in steps}
    if "start" not in names:
        n.problems.append(
            Problem(
                "the workflow has no step named 'start'; name the first step `step: start` "
                f"(steps: {', '.join(s.name for s in steps)})",
                n.source,
                line,
            )
        )
    allowed = keys.GLOBAL_NAMES | names | _element_names(steps, workbook)
    warn_endless_cycles(steps, n)
    received = _edge_keys(steps)
    for step in steps:
        own = _input_names(step.task.data) | received.get(step.name, set())
        for shadow in sorted(own & (names - {step.name})):
            n.warnings.append(
                Problem(
                    f"input {shadow!r} has the name of a step: in this step's templates {shadow!r} is the "
                    f"input, not step {shadow!r}'s result; rename the input to say which",
                    n.source,
                    line_of(step.task.data, shadow) or step.line,
                    step.name,
                )
            )
        for t in step.next:
            if t.step not in names:
                hint = suggest(t.step, names) or f"; the steps are {', '.join(sorted(names))}"
                n.problems.append(
                    Problem(
                        f"`{'on_failure' if t.kind == 'failure' else 'next'}` goes to {t.step!r}, which is "
                        f"not a step{hint}",
                        n.source,
                        t.line or step.line,
                        step.name,
                    )
                )
            if t.when and is_template(t.when) and check_syntax(t.when) is None:
                failure_names = {"error"} if t.kind == "failure" else set()  # on_failure: the message
                unknown = sorted(root_names(t.when) - allowed - own - failure_names)
                if unknown:
                    n.problems.append(
                        Problem(
                            f"`when` {t.when!r} uses undefined name(s) {', '.join(unknown)}"
                            f"{suggest(unknown[0], allowed)}; use `result` (this step's result), "
                            "`workload` or a step name",
                            n.source,
                            t.when_line or t.line or step.line,
                            step.name,
                        )
                    )


def warn_endless_cycles(steps: list[Step], n: Normalizer) -> None:
    """A cycle none of whose steps has a `when` can never be left: it runs until `max_runs` stops it."""
    graph = {s.name: [t.step for t in s.next] for s in steps}
    by_name = {s.name: s for s in steps}
    for cycle in _cycles(graph):
        if any(t.kind == "when" for name in cycle for t in by_name[name].next):
            continue
        first = min(cycle, key=lambda name: by_name[name].line or 0)
        path = " -> ".join([*sorted(cycle, key=lambda name: by_name[name].line or 0), first])
        n.warnings.append(
            Problem(
                f"the cycle {path} has no `when` that can leave it: it runs until max_runs stops the "
                "execution; add a `when` to one of its steps' `next`",
                n.source,
                by_name[first].line,
                first,
            )
        )


def _cycles(graph: dict[str, list[str]]) -> list[set[str]]:
    """The strongly connected components that hold a cycle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(component)
    return found


def _input_names(data: Any) -> set[str]:
    return {str(k) for k in data} if isinstance(data, dict) else set()


def _edge_keys(steps: list[Step]) -> dict[str, set[str]]:
    """For each step, the keys of the edge payloads that transitions may send it."""
    found: dict[str, set[str]] = {}
    for step in steps:
        for t in step.next:
            found.setdefault(t.step, set()).update(_input_names(t.data))
    return found


_JOB_ID = re.compile(r"\bjob\.(uuid|id)\b")


def template_strings(
    raw: Any, key: str | None = None, parent: Any = None
) -> Iterator[tuple[Any, str | None, str]]:
    """Every template string inside a parsed YAML value, with the mapping and key that hold it."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k not in _NOT_TEMPLATED:
                yield from template_strings(v, k, raw)
    elif isinstance(raw, list):
        for v in raw:
            yield from template_strings(v, key, parent)
    elif is_template(raw):
        yield parent, key, raw


def warn_job_names(n: Normalizer, document: Any) -> None:
    """`job.uuid`/`job.id` work (one id per execution), but `execution_id` says what they are."""
    for parent, key, text in template_strings(document):
        match = _JOB_ID.search(text)
        if match:
            n.warn(
                f"`{match.group(0)}` is the execution's id here (the same in every step); "
                "`execution_id` is the clearer name",
                parent,
                key,
            )


def _element_names(steps: list[Step], workbook: dict[str, Task]) -> set[str]:
    found = {"item"}
    for task in [s.task for s in steps] + list(workbook.values()):
        if task.iterator is not None:
            found.add(task.iterator.element)
    return found


__all__ = ["check_graph", "check_templates", "line_of", "suggest"]


def check_self_calls(steps: list[Step], own_path: str, source: str, n: Normalizer) -> None:
    """A step that runs this very playbook as its child, reached from `start` by transitions without a
    `when`, nests without end: every child runs the same step again. Refused before anything runs
    (the runtime also stops at 20 levels; this says why at once). A call behind a `when` or inside an
    iterator is left alone: it can stop."""
    import posixpath

    from noetl.dsl.call_rings import always_reached

    by_name = {s.name: s for s in steps}
    always = {s.name for s in always_reached(steps) if not s.skip}
    own = {posixpath.normpath(own_path), posixpath.splitext(posixpath.normpath(own_path))[0]}
    file = posixpath.normpath(source.replace("\\", "/"))
    folder = posixpath.dirname(file)
    for name in sorted(always):
        task = by_name[name].task
        path = task.config.get("path")
        if task.type != "playbook" or not isinstance(path, str) or "{{" in path or "{%" in path:
            continue
        written = posixpath.normpath(path)
        near = posixpath.normpath(posixpath.join(posixpath.dirname(own_path), path))
        as_file = posixpath.normpath(posixpath.join(folder, path))
        names = {written, near, posixpath.splitext(written)[0], posixpath.splitext(near)[0]}
        if names & own or as_file in (file, posixpath.splitext(file)[0]):
            n.problems.append(
                Problem(
                    f"step '{name}' runs this playbook ({path!r}) as its own child and every run reaches it "
                    "(no `when` on the way): it would nest without end; put a `when` on a transition to "
                    "it that can stop the calls",
                    n.source,
                    task.line or by_name[name].line,
                    name,
                )
            )
