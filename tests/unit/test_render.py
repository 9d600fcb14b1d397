"""Templating: native values, filters and globals, step views, truthiness, strictness, the sandbox."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

import pytest

from noetl.dsl.models import SaveSpec, Task
from noetl.dsl.render import StepView, check_syntax, compile_render, plain, render, root_names, truthy
from noetl.errors import TemplateError

CONTEXT = {
    "workload": {"cities": [{"name": "London", "lat": 51.5}], "limit": 10, "conf": {"a": 1}},
    "fetch": StepView({"x": 1, "items": [1, 2], "nested": {"y": "deep"}}),
    "http_call": StepView({"status_code": 200, "data": {"x": 42}}),
    "listing": StepView([10, 20, 30]),
}


# ---- native values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ workload.cities }}", [{"name": "London", "lat": 51.5}]),
        ("{{ workload.conf }}", {"a": 1}),
        ("{{ workload.limit }}", 10),
        ("{{ workload.limit * 2 + 1 }}", 21),
        ("  {{ workload.cities[0].lat }}  ", 51.5),
        ("{{ workload.limit > 5 }}", True),
        ("{{ none }}", None),
    ],
)
def test_a_single_expression_renders_to_the_native_value(template: str, expected: object) -> None:
    value = render(template, CONTEXT)
    assert value == expected
    assert type(value) is type(expected)


def test_mixed_text_renders_a_string() -> None:
    assert render("limit={{ workload.limit }}", CONTEXT) == "limit=10"
    assert render("{{ workload.limit }}{{ workload.limit }}", CONTEXT) == "1010"


def test_render_walks_dicts_and_lists_and_leaves_plain_values() -> None:
    value = render({"a": ["{{ workload.limit }}", "x"], "b": 3, "c": None}, CONTEXT)
    assert value == {"a": [10, "x"], "b": 3, "c": None}


def test_a_step_result_renders_as_plain_data_not_a_view() -> None:
    value = render("{{ fetch }}", CONTEXT)
    assert value == {"x": 1, "items": [1, 2], "nested": {"y": "deep"}}
    assert not isinstance(value, StepView)
    assert plain({"k": [StepView({"a": 1})]}) == {"k": [{"a": 1}]}


# ---- filters and globals ------------------------------------------------------------------------------


def test_tojson_serializes_step_views_and_nested_values() -> None:
    assert json.loads(render("{{ fetch | tojson }}", CONTEXT)) == {
        "x": 1,
        "items": [1, 2],
        "nested": {"y": "deep"},
    }
    assert render("{{ workload.conf | tojson }}", CONTEXT) == '{"a": 1}'


def test_b64encode() -> None:
    assert render("{{ 'user:pass' | b64encode }}", CONTEXT) == base64.b64encode(b"user:pass").decode()


def test_now_is_an_aware_iso_timestamp() -> None:
    stamp = render("{{ now() }}", CONTEXT)
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None


def test_uuid_is_a_fresh_uuid_each_time() -> None:
    first, second = render("{{ uuid() }}", CONTEXT), render("{{ uuid() }}", CONTEXT)
    assert str(uuid.UUID(first)) == first
    assert first != second


# ---- step views ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["{{ fetch.x }}", "{{ fetch.result.x }}", "{{ fetch.data.x }}"])
def test_three_ways_to_reach_a_field(template: str) -> None:
    assert render(template, CONTEXT) == 1


def test_a_field_named_like_a_dict_method_is_the_field() -> None:
    assert render("{{ fetch.items }}", CONTEXT) == [1, 2]


def test_data_of_a_result_with_a_data_field_is_that_field() -> None:
    assert render("{{ http_call.data.x }}", CONTEXT) == 42
    assert render("{{ http_call.result.data.x }}", CONTEXT) == 42
    assert render("{{ http_call.status_code }}", CONTEXT) == 200


def test_list_results_index_and_iterate() -> None:
    assert render("{{ listing[1] }}", CONTEXT) == 20
    assert render("{{ listing | length }}", CONTEXT) == 3
    assert render("{% for v in listing %}{{ v }},{% endfor %}", CONTEXT) == "10,20,30,"


def test_a_missing_field_of_a_step_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ fetch.nope }}", CONTEXT)


# ---- truthiness -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "yes", "y", "on", "1", "TRUE", " Yes ", "anything", "hot"])
def test_true_words(word: str) -> None:
    assert truthy(word) is True


@pytest.mark.parametrize("word", ["false", "no", "n", "off", "0", "none", "null", "", "  ", "False", "NULL"])
def test_false_words(word: str) -> None:
    assert truthy(word) is False


@pytest.mark.parametrize(
    ("value", "expected"), [(0, False), (1, True), ([], False), ([0], True), (None, False)]
)
def test_non_strings_use_python_truthiness(value: object, expected: bool) -> None:
    assert truthy(value) is expected


def test_a_rendered_when_goes_through_the_words() -> None:
    assert truthy(render("{{ 'off' }}", CONTEXT)) is False
    assert truthy(render("value: {{ workload.limit }}", CONTEXT)) is True


# ---- strictness ------------------------------------------------------------------------------------------


def test_an_undefined_name_raises_and_names_the_variable() -> None:
    with pytest.raises(TemplateError) as info:
        render("{{ wrkload.limit }}", CONTEXT, where="step 'a' data")
    message = str(info.value)
    assert "'wrkload' is undefined" in message
    assert message.startswith("step 'a' data:")
    assert "workload" in message  # the available names are listed


def test_an_undefined_name_in_mixed_text_also_raises() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render("hello {{ missing }}", CONTEXT)


def test_a_filter_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ workload.limit / 0 }}", CONTEXT)


def test_check_syntax_and_root_names() -> None:
    assert check_syntax("{{ a.b }}") is None
    error = check_syntax("{{ a.b }")
    assert error is not None and "template syntax error" in error
    assert root_names("{{ result.x > workload.limit and fetch.ok }}") == {"result", "workload", "fetch"}
    assert root_names("{% for c in cities %}{{ c }}{% endfor %}") == {"cities"}


# ---- sandbox -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "x {{ workload.__class__ }}",
        "{{ fetch.__init__.__globals__ }}",
        "{{ now.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_dunder_access(template: str) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 500000000 }}", "would build 500,000,000 items"),
        ("{{ range(10) | list * 2000000 }}", "would build 20,000,000 items"),
        ("{{ 10 ** 100000 }}", "too large a number"),
        ("{% for i in range(100000) %}{{ 'y' * 200 }}{% endfor %}", "rendered 20,000,000 characters"),
    ],
)
def test_a_template_cannot_build_a_value_that_would_fill_memory(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render(template, {})
    assert message in str(raised.value)


def test_ordinary_repetition_and_powers_still_work() -> None:
    assert render("{{ 'ab' * 3 }}", {}) == "ababab"
    assert render("{{ 2 ** 10 }}", {}) == 1024
    assert render("{{ [0] * 3 }}", {}) == [0, 0, 0]


# ---- a render worked out once (an iterator's task data, per item) -----------------------------------


COMPILED_CASES = [
    {"x": "{{ workload.limit }}", "y": "plain text", "n": 3, "none": None},
    {"city": "{{ workload.cities[0].name }}", "view": "{{ fetch }}", "field": "{{ fetch.nested.y }}"},
    ["{{ listing }}", "a {{ workload.limit }} b", {"deep": ["{{ http_call.data.x }}", 1.5]}],
    ("{{ workload.conf }}", "{{ workload.limit * 2 }}"),
    "{{ fetch.items }}",
    "{% if workload.limit > 5 %}big{% endif %}",
    7,
    None,
]


@pytest.mark.parametrize("value", COMPILED_CASES)
def test_a_compiled_render_gives_what_render_gives(value: object) -> None:
    compiled = compile_render(value)
    for limit in (10, 2):  # the same renderer in another scope: nothing of the first is kept
        context = {**CONTEXT, "workload": {**CONTEXT["workload"], "limit": limit}}
        expected = render(value, context, where="step 'x'")
        got = compiled(context, "step 'x'")
        assert got == expected
        assert type(got) is type(expected)
        assert "StepView" not in repr(got)  # views are made plain, as render makes them


def test_a_compiled_render_returns_new_containers_every_time() -> None:
    compiled = compile_render({"a": {"b": "{{ workload.limit }}"}, "c": [1]})
    first = compiled(CONTEXT, "")
    first["a"]["b"] = "changed"
    first["c"].append(2)
    assert compiled(CONTEXT, "") == {"a": {"b": 10}, "c": [1]}


@pytest.mark.parametrize(
    "template", ["{{ nothing_here }}", "{{ fetch.missing }}", "{{ workload.limit | nope }}"]
)
def test_a_compiled_render_raises_the_error_render_raises(template: str) -> None:
    with pytest.raises(TemplateError) as by_render:
        render({"k": template}, CONTEXT, where="step 'loop' item 3")
    with pytest.raises(TemplateError) as by_compiled:
        compile_render({"k": template})(CONTEXT, "step 'loop' item 3")
    assert str(by_compiled.value) == str(by_render.value)
    assert "step 'loop' item 3" in str(by_compiled.value)


def test_a_task_works_out_its_data_renderer_once() -> None:
    task = Task(type="python", data={"x": "{{ workload.limit }}"})
    assert task.render_data is task.render_data
    assert task.render_data(CONTEXT, "") == {"x": 10}


def test_a_save_works_out_its_renderers_once_and_they_render_as_render_does() -> None:
    spec = SaveSpec(
        storage="postgres",
        table="t_{{ workload.limit }}",
        args={"id": "{{ workload.limit }}", "fixed": "as written"},
        auth="{{ workload.conf.a }}",
        statement="UPDATE x SET v = :v -- {{ workload.limit }}",
        options={"database": "{{ workload.conf.a }}.db", "code": "{{ not rendered }}", "batch": 5},
    )
    parts = spec.renderers
    assert spec.renderers is parts
    for renderer, value in (
        (parts.args, spec.args),
        (parts.table, spec.table),
        (parts.auth, spec.auth),
        (parts.statement, spec.statement),
    ):
        assert renderer(CONTEXT, "here") == render(value, CONTEXT, where="here")
    assert parts.options is not None
    assert parts.options(CONTEXT, "") == {"database": render("{{ workload.conf.a }}.db", CONTEXT, where="")}
    assert SaveSpec(storage="event").renderers.options is None
