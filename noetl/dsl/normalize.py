"""Turn raw YAML mappings into the frozen models, folding aliases and reporting every problem."""

from __future__ import annotations

import ast
from typing import Any

from noetl.dsl import keys, parts
from noetl.dsl.checks import check_templates, suggest
from noetl.dsl.models import ACTION_TYPES, ROUTER_TYPES, RetryPolicy, SaveSpec, Step, Task, Transition
from noetl.dsl.render import is_template
from noetl.dsl.yaml_lines import line_of, located
from noetl.errors import Problem

_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Keys of a legacy `loop` step that stay on the step; the rest is the per-item action.
_STEP_ONLY_KEYS = frozenset({"loop", "step", "next", "desc", "description", "result", "assert"})
# What each action type cannot do without: (keys, any one of which is enough; what to add).
_REQUIRED: dict[str, tuple[tuple[str, ...], str]] = {
    "python": (("code",), "`code` defining `def main(...)`"),
    "http": (("endpoint", "url"), "`endpoint` (or `url`): the URL to call"),
    "postgres": (("command", "commands"), "`command`: one or more SQL statements"),
    "duckdb": (("command", "commands"), "`command`: one or more SQL statements"),
    "playbook": (("path",), "`path` of a registered playbook or a file"),
    "workbook": (("name", "task"), "`name` of a `workbook` entry"),
    "secrets": (("name",), "`name` of the credential or secret"),
}


class Normalizer:
    """Collects problems instead of stopping at the first, so a user fixes them all in one pass."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        self.workbook_names: set[str] = set()

    def report(
        self, message: str, where: Any = None, key: str | None = None, *, step: str | None = None
    ) -> None:
        """Record a problem at the line of `key` in mapping `where` (or of `where` itself)."""
        self.problems.append(Problem(message, self.source, line_of(where, key), step))

    # ---- steps -------------------------------------------------------------------------------------

    def step(self, raw: Any, document: Any, list_key: str = "workflow") -> Step | None:
        """One workflow entry as a Step, or None (reported) when it has no usable name."""
        if not isinstance(raw, dict):
            self.report(
                f"each `{list_key}` entry must be a mapping such as `- step: name`, got {raw!r}",
                document,
                list_key,
            )
            return None
        name = raw.get("step")
        if not isinstance(name, str) or not name.strip():
            self._report_nameless(raw, name)
            return None
        body = self._legacy_loop(raw, name) if "loop" in raw else raw
        task = self.task(body, name, allowed=keys.STEP_COMMON_KEYS)
        check_templates(self, raw, name)
        return Step(
            name=name,
            task=task,
            next=self.transitions(raw.get("next"), raw, name),
            desc=raw.get("desc") or raw.get("description"),
            result=raw.get("result"),
            assertions=parts.assertions(self, raw.get("assert"), raw, name),
            line=line_of(raw),
        )

    def _report_nameless(self, raw: dict[str, Any], name: Any) -> None:
        if name is not None and not isinstance(name, str):
            self.report(f"the step name must be text, got {name!r}; write `step: <name>`", raw, "step")
        elif isinstance(raw.get("name"), str):
            self.report(
                f"a workflow entry has no `step` name; write `step: {raw['name']}` instead of `name:`",
                raw,
                "name",
            )
        else:
            self.report("a workflow entry has no `step` name; add `step: <name>`", raw)

    def _legacy_loop(self, raw: dict[str, Any], name: str) -> dict[str, Any]:
        """`loop: {in, iterator, task, save}` is an iterator; without `task` the step's own action is it."""
        loop = raw["loop"]
        if not isinstance(loop, dict) or "in" not in loop:
            self.report(
                "`loop` needs `in` (the collection) and `iterator` (the element name)", raw, "loop", step=name
            )
            # reported once here, not again as a missing `collection`
            loop = {**loop, "in": []} if isinstance(loop, dict) else {"in": []}
        body = located({k: v for k, v in raw.items() if k != "loop"}, raw)
        task = loop.get("task")
        if task is None and raw.get("type") not in (None, "iterator"):
            own = {k: v for k, v in raw.items() if k not in _STEP_ONLY_KEYS}
            task = located(own, raw)
            for key in own:
                body.pop(key, None)
        body.update(
            {"type": "iterator", "collection": loop.get("in"), "element": loop.get("iterator", "item")}
        )
        if task is not None:
            body["task"] = task
        # Every iterator setting may sit inside the legacy `loop` too (`in`/`iterator` name two of them).
        carried = (*sorted(keys.ACTION_KEYS["iterator"] - {"collection", "element", "task"}), "save")
        for key in carried:
            if key in loop:
                body[key] = loop[key]
        for key in set(loop) - set(carried) - {"in", "iterator", "task"}:
            self.report(
                f"unknown key {key!r} in `loop`{suggest(str(key), (*carried, 'in', 'iterator', 'task'))}",
                loop,
                key,
                step=name,
            )
        return body

    def task(self, raw: dict[str, Any], where: str, *, allowed: frozenset[str]) -> Task:
        """An action (step body, workbook entry or iterator task) as a Task."""
        kind = raw.get("type")
        if kind is not None and not isinstance(kind, str):
            self.report(
                f"`type` must be a name such as python or http, got {kind!r}", raw, "type", step=where
            )
            kind = None
        known_kind = kind is None or kind in ACTION_TYPES or kind in ROUTER_TYPES
        if not known_kind:
            known = sorted(ACTION_TYPES | ROUTER_TYPES)
            self.report(
                f"unknown type {kind!r}{suggest(str(kind), known)}; known types: {', '.join(known)}",
                raw,
                "type",
                step=where,
            )
        action_keys = keys.ACTION_KEYS.get(kind or "", frozenset())
        if known_kind:  # with an unknown type we cannot tell which keys belong; the type is the error
            self._check_keys(raw, allowed | action_keys, kind, where)
        if kind is None or kind in ROUTER_TYPES:
            for key in ("save", "retry", "auth"):
                if raw.get(key) is not None:  # a router runs no action: these would be silently ignored
                    self.report(
                        f"`{key}` needs an action; a router step (no type) has none. Give the step "
                        "a type or remove the key",
                        raw,
                        key,
                        step=where,
                    )
        config = {k: raw[k] for k in action_keys if k in raw}
        self._check_action(kind, raw, config, where)
        data = self.data(raw, where)
        save = self.save(raw["save"], raw, where) if raw.get("save") is not None else None
        if kind == "save":  # the save block is written on the step itself; the inputs are the rows
            if raw.get("save") is not None:
                self.report(
                    "a `type: save` step is itself the save: put storage, table, ... on the step "
                    "and remove the `save:` block",
                    raw,
                    "save",
                    step=where,
                )
            save = self.save(located({**config, "args": data, "auth": raw.get("auth")}, raw), raw, where)
            config = {}
        return Task(
            type=None if kind is None or kind in ROUTER_TYPES else kind,
            data=data,
            config=config,
            auth=raw.get("auth"),
            save=save,
            retry=self.retry(raw.get("retry"), raw, where),
            iterator=parts.iterator(self, raw, where) if kind == "iterator" else None,
            line=line_of(raw),
        )

    def _check_keys(self, raw: dict[str, Any], valid: frozenset[str], kind: str | None, where: str) -> None:
        for key in raw:
            if key not in valid:
                hint = suggest(key, valid) or f"; valid keys here: {', '.join(sorted(valid))}"
                what = f"{_a(kind)} {kind} step" if kind else "a router step (no `type`)"
                self.report(f"unknown key {key!r} for {what}{hint}", raw, key, step=where)

    def data(self, raw: dict[str, Any], where: str) -> Any:
        """The inputs: `data` and its aliases, merged with `data` winning."""
        given = [k for k in keys.DATA_ALIASES if k in raw and raw[k] is not None]
        if not given:
            return None
        if len(given) == 1:
            return raw[given[0]]
        merged: dict[str, Any] = {}
        for key in given:
            if not isinstance(raw[key], dict):
                self.report(
                    f"`{key}` must be a mapping when several input keys ({', '.join(given)}) are given; "
                    "merge them under `data`",
                    raw,
                    key,
                    step=where,
                )
                continue
            merged.update(raw[key])
        return merged

    def _check_action(
        self, kind: str | None, raw: dict[str, Any], config: dict[str, Any], where: str
    ) -> None:
        required = _REQUIRED.get(kind or "")
        if required and not any(config.get(k) for k in required[0]):
            self.report(f"{_a(kind)} {kind} step needs {required[1]}; add it to the step", raw, step=where)
        if kind == "python" and isinstance(config.get("code"), str):
            self._check_python(config["code"], raw, where)
        elif kind == "python" and config.get("code") is not None:
            self.report("`code` must be Python source text (use `code: |`)", raw, "code", step=where)
        elif kind == "http":
            method = str(config.get("method", "GET")).upper()
            if method not in _HTTP_METHODS and not is_template(method):
                self.report(
                    f"unknown HTTP method {method!r}{suggest(method, _HTTP_METHODS)}; use one of "
                    f"{', '.join(sorted(_HTTP_METHODS))}",
                    raw,
                    "method",
                    step=where,
                )
        elif kind == "workbook":
            self._check_workbook_ref(config, raw, where)

    def _check_workbook_ref(self, config: dict[str, Any], raw: dict[str, Any], where: str) -> None:
        key = "name" if config.get("name") else "task"
        ref = config.get(key)
        if isinstance(ref, str) and not is_template(ref) and ref not in self.workbook_names:
            known = (
                f"; defined entries: {', '.join(sorted(self.workbook_names))}" if self.workbook_names else ""
            )
            self.report(
                f"workbook entry {ref!r} does not exist{suggest(ref, self.workbook_names)}; "
                f"define it under `workbook:` or fix the name{known}",
                raw,
                key,
                step=where,
            )

    def _check_python(self, code: str, raw: dict[str, Any], where: str) -> None:
        first = raw.value_lines.get("code") if hasattr(raw, "value_lines") else None
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            line = first + (exc.lineno or 1) - 1 if first else line_of(raw, "code")
            text = (exc.text or "").strip()
            near = f" near {text!r}" if text else ""
            self.problems.append(
                Problem(
                    f"python syntax error in `code`: {exc.msg} (line {exc.lineno} of the code{near}); "
                    "fix the Python source",
                    self.source,
                    line,
                    where,
                )
            )
            return
        if not any(_defines_main(node) for node in tree.body):
            self.report(
                "`code` must define `def main(...)`; the step calls main() and its return value is the "
                "step's result",
                raw,
                "code",
                step=where,
            )

    # ---- transitions -------------------------------------------------------------------------------

    def transitions(
        self, raw: Any, step_raw: dict[str, Any], step: str, list_key: str = "next"
    ) -> tuple[Transition, ...]:
        """`next` as Transitions: a name, a list of names or mappings, or a single mapping."""
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        out: list[Transition] = []
        for item in items:
            out.extend(self._transition(item, step_raw, step, list_key))
        return tuple(out)

    def _transition(self, item: Any, step_raw: dict[str, Any], step: str, list_key: str) -> list[Transition]:
        if isinstance(item, str):
            return [Transition(step=item, line=line_of(step_raw, list_key))]
        if not isinstance(item, dict):
            self.report(
                f"each `{list_key}` item is a step name or a mapping with `step`, got {item!r}",
                step_raw,
                list_key,
                step=step,
            )
            return []
        for key in item:
            if key not in keys.TRANSITION_KEYS:
                hint = suggest(key, keys.TRANSITION_KEYS) or "; use step, when, then, else or data"
                self.report(f"unknown key {key!r} in a `next` item{hint}", item, key, step=step)
        when = item.get("when")
        if when is not None and not isinstance(when, str | bool):
            self.report('`when` must be a template string such as "{{ result.ok }}"', item, "when", step=step)
        when_line = line_of(item, "when")
        data = self.data(item, step)
        if "then" in item or "else" in item:
            return self._then_else(item, when, when_line, data, step)
        target = item.get("step")
        if not isinstance(target, str):
            self.report(
                "a `next` item needs `step: <name>` (the step to go to), or `then`/`else` lists",
                item,
                step=step,
            )
            return []
        line = line_of(item, "step")
        if when is None:
            return [Transition(target, "always", None, data, line)]
        return [Transition(target, "when", str(when), data, line, when_line)]

    def _then_else(
        self, item: dict[str, Any], when: Any, when_line: int | None, data: Any, step: str
    ) -> list[Transition]:
        """The `when/then/else` form; a payload beside `then`/`else` goes to each of their targets."""
        if "then" in item and when is None:
            self.report("`then` needs a `when` beside it; add the condition", item, "then", step=step)
        out: list[Transition] = []
        for key in ("then", "else"):
            if key not in item:
                continue
            for sub in self.transitions(item[key], item, step, key):
                kind = "else" if key == "else" else "when" if when is not None else "always"
                condition = str(when) if kind == "when" else None
                payload = _merge_payload(data, sub.data)
                out.append(Transition(sub.step, kind, condition, payload, sub.line, when_line))
        return out

    # ---- pieces ------------------------------------------------------------------------------------

    def retry(self, raw: Any, where_raw: Any, step: str) -> RetryPolicy | None:
        """A retry policy from `true`, a number of attempts or a mapping."""
        return parts.retry(self, raw, where_raw, step)

    def save(self, raw: Any, where_raw: Any, step: str) -> SaveSpec | None:
        """A save block as a SaveSpec (storage aliases folded)."""
        return parts.save(self, raw, where_raw, step)


def _a(word: str | None) -> str:
    return "an" if word in ("http", "iterator") else "a"


def _merge_payload(outer: Any, inner: Any) -> Any:
    if isinstance(outer, dict) and isinstance(inner, dict):
        return {**outer, **inner}
    return inner if inner is not None else outer


def _defines_main(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef):
        return node.name == "main"
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "main" for t in node.targets)
    if isinstance(node, ast.ImportFrom | ast.Import):
        return any((a.asname or a.name) == "main" for a in node.names)
    return False
