"""Turn raw YAML mappings into the frozen models, folding aliases and reporting every problem."""

from __future__ import annotations

import ast
from typing import Any

from noetl.dsl import keys
from noetl.dsl.checks import check_templates, suggest
from noetl.dsl.models import (
    ACTION_TYPES,
    ROUTER_TYPES,
    SAVE_MODES,
    STORAGES,
    AssertSpec,
    CircuitBreakerSpec,
    IteratorSpec,
    RetryPolicy,
    SaveSpec,
    Step,
    Task,
    Transition,
)
from noetl.dsl.sql_names import is_identifier, is_table_name
from noetl.dsl.yaml_lines import LineDict, line_of
from noetl.errors import Problem

_NO_LIMIT = object()


class Normalizer:
    """Collects problems instead of stopping at the first, so a user fixes them all in one pass."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems

    def report(self, message: str, where: Any = None, key: str | None = None, *, step: str | None = None) -> None:
        self.problems.append(Problem(message, self.source, line_of(where, key), step))

    # ---- steps -------------------------------------------------------------------------------------

    def step(self, raw: Any, document: Any) -> Step | None:
        if not isinstance(raw, dict):
            self.report("each workflow entry must be a mapping with a `step` name", document, "workflow")
            return None
        name = raw.get("step")
        if not isinstance(name, str) or not name.strip():
            self.report("a workflow entry has no `step` name; add `step: <name>`", raw)
            return None
        body = raw
        if "loop" in raw:
            body = self._legacy_loop(raw, name)
        task = self.task(body, name, allowed=keys.STEP_COMMON_KEYS)
        check_templates(self, raw, name)
        return Step(
            name=name,
            task=task,
            next=self.transitions(raw.get("next"), raw, name),
            desc=raw.get("desc") or raw.get("description"),
            result=raw.get("result"),
            assertions=self._assert(raw.get("assert"), raw, name),
            line=line_of(raw),
        )

    def _legacy_loop(self, raw: dict[str, Any], name: str) -> LineDict:
        """`loop: {in, iterator, task, save}` is an iterator; without `task` the step's own action is it."""
        loop = raw["loop"]
        if not isinstance(loop, dict) or "in" not in loop:
            self.report("`loop` needs `in` (the collection) and `iterator` (the element name)", raw, "loop", step=name)
            loop = {}
        body = LineDict({k: v for k, v in raw.items() if k not in ("loop",)})
        body.line, body.key_lines = line_of(raw), getattr(raw, "key_lines", {})
        task = loop.get("task")
        if task is None and raw.get("type") not in (None, "iterator"):
            own = {k: v for k, v in raw.items() if k not in ("loop", "step", "next", "desc", "description")}
            task = LineDict(own)
            task.line, task.key_lines = line_of(raw), getattr(raw, "key_lines", {})
            for key in own:
                body.pop(key, None)
        body.update({"type": "iterator", "collection": loop.get("in"), "element": loop.get("iterator", "item")})
        if task is not None:
            body["task"] = task
        for key in ("mode", "concurrency", "where", "order_by", "limit", "chunk", "on_error"):
            if key in loop:
                body[key] = loop[key]
        if "save" in loop:
            body["save"] = loop["save"]
        return body

    def task(self, raw: dict[str, Any], where: str, *, allowed: frozenset[str]) -> Task:
        kind = raw.get("type")
        if kind is not None and not isinstance(kind, str):
            self.report("`type` must be a string", raw, "type", step=where)
            kind = None
        if kind is not None and kind not in ACTION_TYPES and kind not in ROUTER_TYPES:
            known = sorted(ACTION_TYPES | ROUTER_TYPES)
            self.report(
                f"unknown type {kind!r}{suggest(kind, known)}; known types: {', '.join(known)}",
                raw, "type", step=where,
            )
        action_keys = keys.ACTION_KEYS.get(kind or "", frozenset())
        for key in raw:
            if key not in allowed and key not in action_keys:
                hint = suggest(key, allowed | action_keys)
                self.report(f"unknown key {key!r} for a step of type {kind or 'router'}{hint}", raw, key, step=where)
        is_router = kind is None or kind in ROUTER_TYPES
        config = {k: raw[k] for k in action_keys if k in raw}
        self._check_action(kind, raw, config, where)
        data = self.data(raw, where)
        save = self.save(raw["save"], raw, where) if raw.get("save") is not None else None
        if kind == "save":  # the save block is written on the step itself; the inputs are the rows
            inline = LineDict({**config, "args": data, "auth": raw.get("auth")})
            inline.line, inline.key_lines = line_of(raw), getattr(raw, "key_lines", {})
            save = self.save(inline, raw, where)
            config = {}
        return Task(
            type=None if is_router else kind,
            data=data,
            config=config,
            auth=raw.get("auth"),
            save=save,
            retry=self.retry(raw.get("retry"), raw, where),
            iterator=self.iterator(raw, where) if kind == "iterator" else None,
            line=line_of(raw),
        )

    def data(self, raw: dict[str, Any], where: str) -> Any:
        given = [k for k in keys.DATA_ALIASES if k in raw and raw[k] is not None]
        if not given:
            return None
        if len(given) == 1:
            return raw[given[0]]
        merged: dict[str, Any] = {}
        for key in given:
            if not isinstance(raw[key], dict):
                self.report(f"`{key}` must be a mapping when several input keys are given", raw, key, step=where)
                continue
            merged.update(raw[key])
        return merged

    def _check_action(self, kind: str | None, raw: dict[str, Any], config: dict[str, Any], where: str) -> None:
        def need(key_options: tuple[str, ...], what: str) -> None:
            if not any(config.get(k) for k in key_options):
                self.report(f"a {kind} step needs {what}", raw, step=where)

        if kind == "python":
            need(("code",), "`code` defining `def main(...)`")
            if isinstance(config.get("code"), str):
                self._check_python(config["code"], raw, where)
        elif kind == "http":
            need(("endpoint", "url"), "`endpoint` (or `url`)")
            method = str(config.get("method", "GET")).upper()
            if method not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
                self.report(f"unknown HTTP method {method!r}", raw, "method", step=where)
        elif kind in ("postgres", "duckdb"):
            need(("command", "commands"), "`command` (one or more SQL statements)")
        elif kind == "playbook":
            need(("path",), "`path` of a registered playbook or a file")
        elif kind == "workbook":
            need(("name", "task"), "`name` of a workbook entry")
        elif kind == "secrets":
            need(("name",), "`name` of the credential or secret")

    def _check_python(self, code: str, raw: dict[str, Any], where: str) -> None:
        base = line_of(raw, "code") or 0
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            line = base + (exc.lineno or 0)
            self.problems.append(Problem(f"python syntax error in `code`: {exc.msg}", self.source, line, where))
            return
        if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            self.report("`code` must define `def main(...)`; its return value is the step's result", raw, "code",
                        step=where)

    # ---- transitions -------------------------------------------------------------------------------

    def transitions(self, raw: Any, step_raw: dict[str, Any], step: str) -> tuple[Transition, ...]:
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        out: list[Transition] = []
        for item in items:
            out.extend(self._transition(item, step_raw, step))
        return tuple(out)

    def _transition(self, item: Any, step_raw: dict[str, Any], step: str) -> list[Transition]:
        if isinstance(item, str):
            return [Transition(step=item, line=line_of(step_raw, "next"))]
        if not isinstance(item, dict):
            self.report("each `next` item is a step name or a mapping with `step`", step_raw, "next", step=step)
            return []
        for key in item:
            if key not in keys.TRANSITION_KEYS:
                self.report(f"unknown key {key!r} in `next`{suggest(key, keys.TRANSITION_KEYS)}", item, key, step=step)
        when = item.get("when")
        if when is not None and not isinstance(when, str | bool):
            self.report("`when` must be a template string such as \"{{ result.ok }}\"", item, "when", step=step)
        data = self.data(item, step)
        if "then" in item or "else" in item:
            out: list[Transition] = []
            for key, kind in (("then", "when"), ("else", "else")):
                if key in item:
                    for sub in self.transitions(item[key], item, step):
                        out.append(Transition(sub.step, kind if kind == "else" or when else "always",
                                              when if kind == "when" else None, sub.data, line_of(item, key)))
            return out
        target = item.get("step")
        if not isinstance(target, str):
            self.report("a `next` item needs `step: <name>` (or `then`/`else` lists)", item, step=step)
            return []
        if when is None:
            return [Transition(target, "always", None, data, line_of(item))]
        return [Transition(target, "when", str(when), data, line_of(item, "when"))]

    # ---- pieces ------------------------------------------------------------------------------------

    def retry(self, raw: Any, where_raw: Any, step: str) -> RetryPolicy | None:
        if raw is None or raw is False:
            return None
        if raw is True:
            return RetryPolicy()
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw < 1:
                self.report(f"retry count {raw} must be 1 or more", where_raw, "retry", step=step)
                return None
            return RetryPolicy(max_attempts=raw)
        if not isinstance(raw, dict):
            self.report("retry must be true, a number of attempts, or a mapping (max_attempts, "
                        "initial_delay, ...)", where_raw, "retry", step=step)
            return None
        for key in raw:
            if key not in keys.RETRY_KEYS:
                self.report(f"unknown retry key {key!r}{suggest(key, keys.RETRY_KEYS)}", raw, key, step=step)
        values: dict[str, Any] = {}
        for key, kind, low in (("max_attempts", int, 1), ("initial_delay", float, 0), ("backoff_multiplier", float, 1),
                               ("max_delay", float, 0)):
            if key in raw:
                value = raw[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                    self.report(f"retry.{key} must be a number >= {low}, got {value!r}", raw, key, step=step)
                    continue
                values[key] = kind(value)
        if "jitter" in raw:
            values["jitter"] = bool(raw["jitter"])
        for key in ("retry_when", "stop_when"):
            if key in raw:
                values[key] = str(raw[key])
        return RetryPolicy(**values)

    def save(self, raw: Any, where_raw: Any, step: str) -> SaveSpec | None:
        if not isinstance(raw, dict):
            self.report("save must be a mapping with `storage` (postgres, duckdb, http, python, event)",
                        where_raw, "save", step=step)
            return None
        merged = LineDict({k: v for k, v in raw.items() if k != "storage"})
        merged.line, merged.key_lines = line_of(raw), getattr(raw, "key_lines", {})
        storage = raw.get("storage")
        if isinstance(storage, dict):  # `storage: {type: postgres, table: ...}`: inside wins
            merged.update({k: v for k, v in storage.items() if k != "type"})
            storage = storage.get("type")
        kind = raw.get("type")
        if storage is not None and kind is not None and storage != kind:
            self.report(f"save has storage {storage!r} and type {kind!r}; keep one", raw, "type", step=step)
        storage = storage or kind
        for key in merged:
            if key not in keys.SAVE_KEYS:
                self.report(f"unknown save key {key!r}{suggest(key, keys.SAVE_KEYS)}", raw, key, step=step)
        if storage is None:
            if merged.get("table") or merged.get("statement"):
                self.report("save names a table but no storage; add `storage: postgres` (or duckdb)", raw, step=step)
            storage = "event"
        if storage not in STORAGES:
            self.report(f"unknown save storage {storage!r}{suggest(str(storage), STORAGES)}; "
                        f"use one of {', '.join(sorted(STORAGES))}", raw, "storage", step=step)
        mode = merged.get("mode", "statement" if merged.get("statement") and not merged.get("table") else "insert")
        self._check_save_mode(str(storage), mode, merged, raw, step)
        key = merged.get("key") or ()
        key_cols = tuple([key] if isinstance(key, str) else key) if isinstance(key, str | list) else ()
        cb = merged.get("circuit_breaker")
        return SaveSpec(
            storage=str(storage),
            mode=str(mode),
            table=merged.get("table"),
            key=tuple(str(k) for k in key_cols),
            args=merged.get("args", merged.get("data")),
            auth=merged.get("auth"),
            statement=merged.get("statement"),
            retry=self.retry(merged.get("retry"), raw, step),
            circuit_breaker=self._breaker(cb, raw, step) if cb else None,
            options={k: merged[k] for k in keys.SAVE_OPTION_KEYS if k in merged},
            line=line_of(raw),
        )

    def _check_save_mode(self, storage: str, mode: Any, merged: dict[str, Any], raw: Any, step: str) -> None:
        if mode not in SAVE_MODES:
            self.report(f"unknown save mode {mode!r}; use insert, upsert (with key) or statement", raw, "mode",
                        step=step)
            return
        if storage not in ("postgres", "duckdb"):
            return
        table = merged.get("table")
        if mode == "statement":
            if not merged.get("statement"):
                self.report("save mode statement needs `statement: INSERT ... VALUES (:name)`", raw, step=step)
            return
        if not table:
            self.report(f"a {storage} save needs `table` (or mode statement)", raw, step=step)
        elif isinstance(table, str) and "{{" not in table and not is_table_name(table):
            self.report(f"table {table!r} is not a valid name; use letters, digits and _ (schema.table)",
                        raw, "table", step=step)
        key = merged.get("key")
        if mode == "upsert" and not key:
            self.report("save mode upsert needs `key` (a column or a list of columns)", raw, "mode", step=step)
        for col in [key] if isinstance(key, str) else key or []:
            if not isinstance(col, str) or not is_identifier(col):
                self.report(f"key column {col!r} is not a valid name", raw, "key", step=step)
        args = merged.get("args", merged.get("data"))
        if isinstance(args, dict):
            for col in args:
                if not is_identifier(str(col)):
                    self.report(f"column {col!r} is not a valid name", raw, step=step)
        elif args is not None and not (isinstance(args, str) and "{{" in args):
            self.report("save `args` must map column names to values", raw, step=step)

    def _breaker(self, raw: Any, where: Any, step: str) -> CircuitBreakerSpec | None:
        if not isinstance(raw, dict):
            self.report("circuit_breaker must be a mapping {failure_threshold, reset_timeout}", where, step=step)
            return None
        threshold, reset = raw.get("failure_threshold", 5), raw.get("reset_timeout", 30.0)
        if not isinstance(threshold, int) or threshold < 1 or not isinstance(reset, int | float) or reset < 0:
            self.report("circuit_breaker needs failure_threshold >= 1 and reset_timeout >= 0", where, step=step)
            return None
        return CircuitBreakerSpec(threshold, float(reset))

    def iterator(self, raw: dict[str, Any], step: str) -> IteratorSpec | None:
        task_raw = raw.get("task")
        if "collection" not in raw:
            self.report("an iterator needs `collection` (a list or a template)", raw, step=step)
        if not isinstance(task_raw, dict):
            self.report("an iterator needs `task`: the nested action run for every item", raw, step=step)
            return None
        task = self.task(task_raw, step, allowed=keys.TASK_COMMON_KEYS)
        if task.is_router:
            self.report("the iterator's `task` needs a `type` (python, http, postgres, ...)", task_raw, step=step)
        mode = raw.get("mode", "sequential")
        if mode == "parallel":
            mode = "async"
        if mode not in ("sequential", "async"):
            self.report(f"iterator mode {mode!r} is unknown; use sequential or async", raw, "mode", step=step)
        on_error = raw.get("on_error", "fail")
        if on_error not in ("fail", "continue"):
            self.report(f"on_error {on_error!r} is unknown; use fail or continue", raw, "on_error", step=step)
        element = raw.get("element", "item")
        if not isinstance(element, str) or not is_identifier(element):
            self.report(f"element {element!r} must be a plain name such as `city`", raw, "element", step=step)
        numbers = {k: self._positive(raw, k, step) for k in ("concurrency", "limit", "chunk", "max_failures")}
        ratio = raw.get("max_failure_ratio")
        if ratio is not None and (not isinstance(ratio, int | float) or not 0 <= ratio <= 1):
            self.report("max_failure_ratio must be a number between 0 and 1", raw, "max_failure_ratio", step=step)
            ratio = None
        return IteratorSpec(
            collection=raw.get("collection"),
            task=task,
            element=str(element),
            mode=str(mode),
            concurrency=numbers["concurrency"] or 8,
            where=raw.get("where"),
            order_by=raw.get("order_by"),
            limit=numbers["limit"],
            chunk=numbers["chunk"],
            on_error=str(on_error),
            max_failures=numbers["max_failures"],
            max_failure_ratio=ratio,
        )

    def _positive(self, raw: dict[str, Any], key: str, step: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        low = 0 if key == "max_failures" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.report(f"{key} must be a whole number >= {low}, got {value!r}", raw, key, step=step)
            return None
        return value

    def _assert(self, raw: Any, where: Any, step: str) -> AssertSpec | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or set(raw) - {"expects", "returns"}:
            self.report("assert takes `expects: [names]` and `returns: [paths]`", where, "assert", step=step)
            return None

        def names(key: str) -> tuple[str, ...]:
            value = raw.get(key) or []
            return tuple(str(v) for v in (value if isinstance(value, list) else [value]))

        return AssertSpec(expects=names("expects"), returns=names("returns"))
