"""Turn raw YAML mappings into the frozen models, folding aliases and reporting every problem."""

from __future__ import annotations

import ast
import base64
import binascii
from dataclasses import replace
from typing import Any

from noetl.dsl import keys, parts
from noetl.dsl.auth import AuthProblem, canonical_auth
from noetl.dsl.checks import check_templates, suggest
from noetl.dsl.models import ACTION_TYPES, ROUTER_TYPES, RetryPolicy, SaveSpec, Step, Task, Transition
from noetl.dsl.render import check_syntax, is_template
from noetl.dsl.vocabulary import ACTIONS
from noetl.dsl.yaml_lines import line_of, located
from noetl.errors import Problem

_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Keys of a legacy `loop` step that stay on the step; the rest is the per-item action.
_STEP_ONLY_KEYS = frozenset(
    {"loop", "step", "name", "next", "desc", "description", "result", "assert", "pass", "max_runs"}
)
# Action types that read no `auth`: one written there would be silently ignored, so it is an error.
_AUTH_UNUSED = {
    "python": "; a python step reads no credential: use a `secrets` step and pass its value in `data`",
    "iterator": "; put `auth` on the iterator's `task` (or its `save`)",
    "playbook": "; the child playbook's steps name their own credentials",
    "workbook": "; put `auth` on the workbook entry",
    "secrets": "; name the credential or secret in `name`",
}
# What each action type cannot do without: (keys, any one of which is enough; what to add).
_REQUIRED: dict[str, tuple[tuple[str, ...], str]] = {t: a.needs for t, a in ACTIONS.items() if a.needs}


class Normalizer:
    """Collects problems instead of stopping at the first, so a user fixes them all in one pass."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        self.warnings: list[Problem] = []
        self.workbook_names: set[str] = set()

    def report(
        self, message: str, where: Any = None, key: str | None = None, *, step: str | None = None
    ) -> None:
        """Record a problem at the line of `key` in mapping `where` (or of `where` itself)."""
        self.problems.append(Problem(message, self.source, line_of(where, key), step))

    def warn(
        self, message: str, where: Any = None, key: str | None = None, *, step: str | None = None
    ) -> None:
        """A form that works but has a clearer spelling: `validate` shows it, `--strict` refuses it."""
        self.warnings.append(Problem(message, self.source, line_of(where, key), step))

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
        if is_template(name):
            self.report(
                f"step name {name!r} is a template; a step name is fixed text (templates are rendered "
                "when a step runs, long after names are resolved)",
                raw,
                "step",
            )
        body = self._legacy_loop(raw, name) if "loop" in raw else raw
        task = self.task(body, name, allowed=keys.STEP_COMMON_KEYS)
        check_templates(self, raw, name)
        return Step(
            name=name,
            task=task,
            next=self.transitions(raw.get("next"), raw, name) + self._on_failure(raw, name),
            desc=raw.get("desc") or raw.get("description"),
            result=raw.get("result"),
            assertions=parts.assertions(self, raw.get("assert"), raw, name),
            skip=self._pass(raw, name),
            max_runs=self._max_runs(raw, name),
            line=line_of(raw),
        )

    def timeout(self, raw: dict[str, Any], where: str | None) -> float | str | None:
        """`timeout: SECONDS` on a step, a nested task or the playbook: a number > 0, a numeric text,
        a template (rendered when the attempt starts), or absent."""
        value = raw.get("timeout")
        if value is None:
            return None
        if isinstance(value, str):
            if "{{" in value and where is not None:
                return value
            try:
                value = float(value)
            except ValueError:
                value = raw.get("timeout")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86_400 * 30:
            self.report(
                f"timeout must be a number of seconds above 0 (such as 30 or 2.5), got {value!r}",
                raw,
                "timeout",
                step=where,
            )
            return None
        return float(value)

    def _max_runs(self, raw: dict[str, Any], name: str) -> int:
        value = raw.get("max_runs", 1000)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.report(f"max_runs must be a whole number >= 1, got {value!r}", raw, "max_runs", step=name)
            return 1000
        return value

    def _pass(self, raw: dict[str, Any], name: str) -> bool:
        """`pass: true` skips the step (documented by NoETL 0.x, never built there)."""
        value = raw.get("pass")
        if value is None or isinstance(value, bool):
            return bool(value)
        self.report(f"`pass` must be true (skip this step) or false, got {value!r}", raw, "pass", step=name)
        return False

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

    def task(self, raw: dict[str, Any], where: str, *, allowed: frozenset[str], nested: bool = False) -> Task:
        """An action (step body, workbook entry or iterator task) as a Task.

        `nested`: a workbook entry or an iterator's task, whose `assert` belongs to the task itself.
        """
        kind = raw.get("type")
        if kind is not None and not isinstance(kind, str):
            self.report(
                f"`type` must be a name such as python or http, got {kind!r}", raw, "type", step=where
            )
            kind = None
        raw = self._fold_aliases(raw, kind, where)
        self._check_fixed_text(raw, kind, where)
        if raw.get("auth") is not None and kind in _AUTH_UNUSED:
            self.report(
                f"`auth` is not used by {_a(kind)} {kind} step{_AUTH_UNUSED[kind]}", raw, "auth", step=where
            )
        if not nested and (kind is None or kind == "end") and where == "end" and raw.get("save") is not None:
            return self._router_save(raw, where, allowed)
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
            for key in ("save", "retry", "auth", "timeout"):
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
        self._check_data(kind, raw, data, where)
        auth = self._auth(raw, kind, where)
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
            auth=auth,
            save=save,
            retry=self.retry(raw.get("retry"), raw, where),
            iterator=parts.iterator(self, raw, where) if kind == "iterator" else None,
            assertions=parts.assertions(self, raw.get("assert"), raw, where) if nested else None,
            line=line_of(raw),
            timeout=self.timeout(raw, where),
        )

    def _router_save(self, raw: dict[str, Any], where: str, allowed: frozenset[str]) -> Task:
        """`save` on a router `end` step: NoETL 0.x made the step a save action, and so do we."""
        self._check_keys(raw, allowed, None, where)
        return Task(
            type="save",
            data=self.data(raw, where),
            save=self.save(raw["save"], raw, where),
            retry=self.retry(raw.get("retry"), raw, where),
            line=line_of(raw),
        )

    def _check_fixed_text(self, raw: dict[str, Any], kind: str | None, where: str) -> None:
        """Descriptions and labels are never rendered, so a template there would stay text: refuse it."""
        labels = ["desc", "description"]
        if kind not in ("workbook", "secrets"):
            labels.append("name")  # a label here; for those two it names what the action uses
        if kind == "playbook":
            labels.append("task")
        for key in labels:
            if is_template(raw.get(key)):
                self.report(
                    f"`{key}` is a label, never rendered; write it without {{{{ }}}} (templates belong in "
                    "`data`, settings, saves and `next`)",
                    raw,
                    key,
                    step=where,
                )

    def _fold_aliases(self, raw: dict[str, Any], kind: str | None, where: str) -> dict[str, Any]:
        """NoETL 0.x spellings with one meaning here: `command_b64`, `commands_b64`, `secret_name`."""
        folded: dict[str, Any] = {}
        conflict = False  # both forms given: reported once here, the alias then dropped (not "unknown")
        if kind in keys.SQL_TYPES:
            for encoded, plain in keys.B64_KEYS.items():
                if encoded not in raw:
                    continue
                if plain in raw:
                    self.report(
                        f"both `{plain}` and `{encoded}` are given; keep one", raw, encoded, step=where
                    )
                    conflict = True
                    continue
                folded[plain] = self._decode_b64(raw, encoded, where)
        if kind == "secrets" and "secret_name" in raw:
            if "name" in raw and raw["name"] != raw["secret_name"]:
                self.report(
                    "both `name` and `secret_name` are given (one is an alias of the other); keep one",
                    raw,
                    "secret_name",
                    step=where,
                )
            folded["name"] = raw["secret_name"]
        if not folded and not conflict:
            return raw
        dropped = set(keys.B64_KEYS) | {"secret_name"}
        out = located({k: v for k, v in raw.items() if k not in dropped}, raw)
        out.key_lines = dict(out.key_lines)
        for key in folded:  # the folded key is reported at the line where its alias was written
            source = next((e for e, p in keys.B64_KEYS.items() if p == key and e in raw), "secret_name")
            line = line_of(raw, source)
            if line is not None:
                out.key_lines[key] = line
        out.update(folded)
        return out

    def _decode_b64(self, raw: dict[str, Any], key: str, where: str) -> Any:
        value = raw[key]
        texts = value if isinstance(value, list) else [value]
        decoded: list[str] = []
        for text in texts:
            try:
                sql = base64.b64decode(str(text), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                self.report(
                    f"`{key}` is not valid base64 of UTF-8 text; encode the SQL with `base64 -w0`",
                    raw,
                    key,
                    step=where,
                )
                return value  # already reported; not also "needs `command`"
            error = check_syntax(sql) if is_template(sql) else None
            if error:
                self.report(f"in the decoded `{key}`: {error}", raw, key, step=where)
            decoded.append(sql)
        return decoded if isinstance(value, list) else decoded[0]

    def _check_data(self, kind: str | None, raw: dict[str, Any], data: Any, where: str) -> None:
        """SQL written among the inputs was never read by NoETL 0.x: say where it goes."""
        if kind not in keys.SQL_TYPES or not isinstance(data, dict):
            return
        given = next((k for k in keys.DATA_ALIASES if k in raw and isinstance(raw[k], dict)), "data")
        for key in ("command", "commands", *keys.B64_KEYS):
            if key in data:
                self.report(
                    f"`{key}` is written under `{given}:`, where it is an input, not the SQL to run; "
                    f"move it up beside `type: {kind}`",
                    data,
                    key,
                    step=where,
                )
        if kind == "postgres" and raw.get("auth") is None and "db_host" in data:
            self.warn(
                "the connection comes from db_host/db_user/db_password inputs; store it as a "
                "credential (`noetl credential add NAME --type postgres`) and write `auth: NAME`",
                data,
                "db_host",
                step=where,
            )

    def _auth(self, raw: dict[str, Any], kind: str | None, where: str) -> Any:
        value = raw.get("auth")
        if value is None:
            return None
        try:
            return canonical_auth(value, single=kind in keys.SINGLE_CREDENTIAL_TYPES)
        except AuthProblem as exc:
            self.report(str(exc), raw, "auth", step=where)
            return value

    def _check_keys(self, raw: dict[str, Any], valid: frozenset[str], kind: str | None, where: str) -> None:
        for key in raw:
            if key not in valid:
                hint = (
                    _misplaced_hint(key, kind)
                    or suggest(key, valid)
                    or f"; valid keys here: {', '.join(sorted(valid))}"
                )
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
        for key in ("desc", "description"):
            if is_template(item.get(key)):
                self.report(
                    f"`{key}` of a `next` item is never rendered; remove the template", item, key, step=step
                )
        when_key = "when"
        if "condition" in item:  # NoETL 0.x stored `condition` and never evaluated it: here it is `when`
            if "when" in item:
                self.report(
                    "both `when` and `condition` are given (one is an alias of the other); keep `when`",
                    item,
                    "condition",
                    step=step,
                )
            else:
                when_key = "condition"
                self.warn("`condition` is an alias of `when`; write `when:`", item, "condition", step=step)
        when = item.get(when_key)
        if when is not None and not isinstance(when, (str, bool)):
            self.report(
                f'`{when_key}` must be a template string such as "{{{{ result.ok }}}}"',
                item,
                when_key,
                step=step,
            )
        when_line = line_of(item, when_key)
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

    def _on_failure(self, raw: dict[str, Any], step: str) -> tuple[Transition, ...]:
        """`on_failure:` (the same items as `next`): where the workflow goes when the step fails for good,
        instead of failing the execution; `error` (the message) is a name in their `when` and `data`."""
        routes = self.transitions(raw.get("on_failure"), raw, step, "on_failure")
        for t in routes:
            if t.kind == "else":
                self.report("`else` has no meaning in `on_failure`; use `when`", raw, "on_failure", step=step)
        return tuple(replace(t, kind="failure", when=t.when if t.kind == "when" else None) for t in routes)

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


def _misplaced_hint(key: str, kind: str | None) -> str:
    if kind in keys.SQL_TYPES and key in keys.MISPLACED_HINTS:
        return keys.MISPLACED_HINTS[key]
    if kind == "http" and key in ("query", "params", "body", "json"):
        return "; the request's inputs go under `data:` (`data: {query: ..., body: ...}` to be explicit)"
    return ""


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
    if isinstance(node, (ast.ImportFrom, ast.Import)):
        return any((a.asname or a.name) == "main" for a in node.names)
    return False
