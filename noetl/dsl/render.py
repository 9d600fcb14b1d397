"""Jinja2 sandboxed templating: native values for single expressions, strict about undefined names."""

from __future__ import annotations

import base64
import json
import re
import uuid as uuid_module
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from noetl.errors import TemplateError

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "off", "0", "none", "null", ""})


class StepView:
    """A finished step's result as templates see it: `s.x`, `s.result.x` and `s.data.x` all reach `x`.

    A plain class (not a dict) so that Jinja's attribute lookup falls through to `__getitem__` and a
    field named `items` or `keys` is the field, not a dict method.
    """

    # The underscore keeps the slot out of templates' reach (the sandbox refuses `_` attributes), so a
    # result field called `value` is the field, not this wrapper's own attribute.
    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __getitem__(self, name: Any) -> Any:
        value = self._value
        if isinstance(value, Mapping) and name in value:
            return value[name]
        if name in ("result", "data"):
            return value
        if isinstance(value, (list, tuple)) and isinstance(name, int):
            return value[name]
        inner = _envelope_data(value)
        if inner is not None and name in inner:  # `{status, data: {...}}`: NoETL 0.x unwrapped one level
            return inner[name]
        raise KeyError(name)

    def __iter__(self) -> Any:
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"StepView({self._value!r})"


def view_fields(view: StepView) -> list[str]:
    """The names a lookup on a step's result can reach, for error messages. A function, not a method:
    a method would shadow a result field of the same name (`{{ s.fields }}`)."""
    value = view._value
    found = [str(k) for k in value] if isinstance(value, Mapping) else []
    inner = _envelope_data(value)
    return found + [str(k) for k in inner if k not in found] if inner is not None else found


def _envelope_data(value: Any) -> Mapping[str, Any] | None:
    """The `data` of a result envelope (`status` plus a mapping `data`), else None."""
    if isinstance(value, Mapping) and "status" in value and isinstance(value.get("data"), Mapping):
        return value["data"]
    return None


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose message names the fields the value does have (`this.url`, not `this.data.url`)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        message = super()._undefined_message
        owner = self._undefined_obj
        if isinstance(owner, StepView):
            fields = view_fields(owner)
        elif isinstance(owner, Mapping):
            fields = [str(k) for k in owner]
        else:
            return message
        shown = ", ".join(sorted(fields)[:30]) or "none"
        return f"{message}; the fields there are: {shown}"


def unwrap(view: StepView) -> Any:
    """The result inside a StepView (a function, not an attribute, so no result field is shadowed)."""
    return view._value


# Values plain() returns as they are, tested by exact type first: an item's `{{ x }}` is mostly one of
# these, and four isinstance tests cost 0.3 us a call.
_PLAIN_SCALARS = frozenset({int, str, float, bool, type(None)})


def plain(value: Any) -> Any:
    """Strip StepView wrappers so that results and events hold only plain data.

    An Undefined nested in a native value (`{{ xs | map(attribute='missing') | list }}`) raises here:
    it must not travel on into results and events.
    """
    if type(value) in _PLAIN_SCALARS:
        return value
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, StepView):
        return plain(unwrap(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, StepView):
        return unwrap(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=_json_default, indent=indent)


def _b64encode(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode()
    return base64.b64encode(raw).decode()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _uuid() -> str:
    return str(uuid_module.uuid4())


MAX_RENDERED_CHARS = 10_000_000  # what one template may produce: a 30-byte template must not fill memory
_MAX_POWER_BITS = 100_000


class _Environment(SandboxedEnvironment):
    """Jinja's sandbox, except that `x.items` on a mapping with an `items` key is that key, and that
    `*` and `**` cannot build values that would exhaust memory (`{{ 'x' * 10**9 }}`).

    Plain Jinja prefers the attribute (the dict method), so `{{ workload.items }}` would be a bound
    method: a classic surprise in playbooks, where workloads are mappings.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(times, int)
                    and not isinstance(times, bool)
                ) and len(seq) * times > MAX_RENDERED_CHARS:
                    raise SecurityError(
                        f"`*` would build {len(seq) * times:,} items, more than the "
                        f"{MAX_RENDERED_CHARS:,} a template may produce"
                    )
        elif operator == "**" and _huge_power(left, right):
            raise SecurityError(f"`{left} ** {right}` is too large a number for a template")
        return super().call_binop(context, operator, left, right)


def _huge_power(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0 or abs(base) <= 1:
        return False
    return exponent * abs(base).bit_length() > _MAX_POWER_BITS


def _make_env() -> SandboxedEnvironment:
    env = _Environment(undefined=_Undefined, autoescape=False)
    env.filters["tojson"] = to_json
    env.filters["b64encode"] = _b64encode
    env.globals["now"] = _now
    env.globals["uuid"] = _uuid
    return env


ENV = _make_env()
BUILTIN_NAMES = frozenset(ENV.globals)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


_DOTTED_PATH = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*$")
_MISSING = object()


class _PathLookup:
    """`{{ city.name }}` without building a Jinja context: the most common template, rendered per item.

    Lookups go through the sandboxed environment's getattr, so the rules are Jinja's own; a name or
    field that is missing falls back to the full Jinja path, which raises the usual error.
    """

    __slots__ = ("fallback", "name", "parts")

    def __init__(self, name: str, parts: list[str], fallback: Any) -> None:
        self.name, self.parts, self.fallback = name, parts, fallback

    def __call__(self, **context: Any) -> Any:
        value = self.lookup(context)
        return self.fallback(**context) if value is _MISSING else value

    def lookup(self, context: Mapping[str, Any]) -> Any:
        """The value, or _MISSING when a name or field is missing (the fallback then explains)."""
        value = context.get(self.name, _MISSING)
        for part in self.parts:
            if value is _MISSING:
                break
            value = ENV.getattr(value, part)
            if isinstance(value, jinja2.Undefined):
                value = _MISSING
        return value


@lru_cache(maxsize=4096)
def _compiled(source: str) -> tuple[bool, Any]:
    """(is_native, compiled). Cached: iterators render the same templates for every item."""
    match = _SINGLE_EXPRESSION.match(source)
    if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
        expression = ENV.compile_expression(match.group("expr"), undefined_to_none=False)
        path = _DOTTED_PATH.match(match.group("expr"))
        if path and path.group(1) not in BUILTIN_NAMES:
            parts = [p for p in path.group(2).split(".") if p]
            return True, _PathLookup(path.group(1), parts, expression)
        return True, expression
    return False, ENV.from_string(source)


def check_syntax(source: str) -> str | None:
    """The syntax error of a template, or None. Used at load time, before anything runs."""
    try:
        _compiled(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message} in {source!r}"
    return None


def root_names(source: str) -> set[str]:
    """The names a template reads from its context (for the load-time check of `when`)."""
    match = _SINGLE_EXPRESSION.match(source)
    text = source if not match else "{{" + match.group("expr") + "}}"
    return set(meta.find_undeclared_variables(ENV.parse(text)))


def render(value: Any, context: Mapping[str, Any], *, where: str = "") -> Any:
    """Render every template inside `value` (strings, dicts, lists) against `context`."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        return _render_string(value, context, where)
    if isinstance(value, dict):
        return {k: render(v, context, where=where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, context, where=where) for v in value]
    return value


Renderer = Callable[[Mapping[str, Any], str], Any]


def compile_render(value: Any) -> Renderer:
    """`render(value, context, where=where)` as a function worked out once, for a value rendered again
    and again (an iterator's task `data`, per item): each template is looked up in the cache once, not
    per render, and texts without a template are kept as they are. The same results and the same
    errors as render(); like render(), every call returns new dicts and lists."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return lambda context, where: value
        try:
            compiled = _compiled(value)[1]
        except jinja2.TemplateError:
            compiled = None  # rendering reports it
        if type(compiled) is _PathLookup and compiled.name != WATCH:
            lookup, name = compiled.lookup, compiled.name
            if compiled.parts:

                def path(context: Mapping[str, Any], where: str) -> Any:
                    found = lookup(context)
                    return plain(found) if found is not _MISSING else _render_source(value, context, where)

                return path

            def named(context: Mapping[str, Any], where: str) -> Any:  # `{{ x }}`: one dict lookup
                found = context.get(name, _MISSING)
                if type(found) in _PLAIN_SCALARS:
                    return found
                return plain(found) if found is not _MISSING else _render_source(value, context, where)

            return named
        return lambda context, where: _render_string(value, context, where)
    if isinstance(value, dict):
        parts = [(k, compile_render(v)) for k, v in value.items()]
        return lambda context, where: {k: part(context, where) for k, part in parts}
    if isinstance(value, (list, tuple)):
        items = [compile_render(v) for v in value]
        return lambda context, where: [item(context, where) for item in items]
    return lambda context, where: value


# A scope entry, never a name templates see, told of each template rendered with that scope:
# `watch.rendered(source, context, value)`. The runtime uses it to learn the values a template derives
# from a secret (`{{ token[4:] }}`), which the event log must mask as it masks the secret.
WATCH = "_noetl_watch"


def _render_string(source: str, context: Mapping[str, Any], where: str) -> Any:
    try:
        compiled = _compiled(source)[1]
    except jinja2.TemplateError:
        compiled = None  # _render_source reports it
    if type(compiled) is _PathLookup and compiled.name != WATCH:
        # `{{ x }}`, `{{ a.b }}`: the per-item case, looked up without spreading the scope into
        # keywords (about 1.5 us of the 2 us a render of `{x: "{{ x }}"}` cost). It derives nothing
        # from a secret (it returns a value in scope), so the watch is not told.
        value = compiled.lookup(context)
        if value is not _MISSING:
            return plain(value)
        return _render_source(source, context, where)  # the full path raises the usual error
    watch = context.get(WATCH)
    if watch is None:  # no secret in scope: nothing to learn from this template
        return _render_source(source, context, where)
    context = {k: v for k, v in context.items() if k != WATCH}
    value = _render_source(source, context, where)
    rendered = getattr(watch, "rendered", None)
    if rendered is not None:
        rendered(source, context, value)
    return value


def _render_source(source: str, context: Mapping[str, Any], where: str) -> Any:
    try:
        native, compiled = _compiled(source)
        if native:
            value = compiled(**context)
            if isinstance(value, jinja2.Undefined):  # a native expression returns Undefined, not raises
                value._fail_with_undefined_error()
            return plain(value)
        text = compiled.render(**context)
        if len(text) > MAX_RENDERED_CHARS:
            raise TemplateError(
                f"{where + ': ' if where else ''}template {source[:80]!r} rendered {len(text):,} characters, "
                f"more than the {MAX_RENDERED_CHARS:,} a template may produce; build large values in a step "
                "(python, SQL) instead"
            )
        return text
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{where + ': ' if where else ''}template {source!r} uses an undefined name ({exc.message}); "
            f"available names: {', '.join(sorted(k for k in context if not k.startswith('_')))}"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{where + ': ' if where else ''}template {source!r} failed: {exc}") from None
    except Exception as exc:  # a filter or an expression raised: still the user's template
        raise TemplateError(
            f"{where + ': ' if where else ''}template {source!r} failed: {type(exc).__name__}: {exc}"
        ) from None


def truthy(value: Any) -> bool:
    """PLAYBOOK.md truthiness: words like 'no'/'off'/'null' are false; other non-empty strings true."""
    if isinstance(value, str):
        word = value.strip().lower()
        return word not in FALSE_WORDS
    return bool(value)


__all__ = [
    "BUILTIN_NAMES",
    "WATCH",
    "StepView",
    "check_syntax",
    "is_template",
    "plain",
    "render",
    "root_names",
    "to_json",
    "truthy",
    "unwrap",
]
