"""`:name` bind parameters of SQL steps (noetl/actions/sql_params.py), and the load-time warning about a
template inside a SQL string literal (noetl/dsl/checks.py)."""

from __future__ import annotations

import textwrap

import pytest

from noetl.actions.sql_params import bind, placeholders, sites, unbound, unbound_hint
from noetl.dsl import parse_playbook
from noetl.dsl.sql_warnings import pasted_templates

HOSTILE = "x'); DROP TABLE t; --"

# ---- what is a bind, and what is left as written ---------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT x::int, y :: text, z::n",  # casts, even to a type with an input's name
        "SELECT '12:30', ':n', 'it''s :n', E'it\\'s :n', e'\\\\' || ':n'",  # string literals
        "SELECT U&':n', B'101', X'1F'",
        'SELECT "col:n", "with "" quote :n"',  # quoted identifiers
        "SELECT $$ :n $$, $body$ :n; $$ still :n $body$",  # dollar-quoted bodies
        "SELECT 1 -- :n\n, /* :n /* nested :n */ :n */ 2",  # comments
        "SELECT a[1:2], a[1:n], a[i:n], sf_col:n",  # array slices, Snowflake's col:field
        "SELECT {'k':n}, \"t\":n",  # DuckDB's struct literal: the colon follows a closing quote
        "SELECT f(a := 1), 'x' || 'y'",
        "SELECT 'unterminated :n",  # the database reports it
    ],
)
def test_sql_that_binds_nothing_is_left_byte_for_byte(sql: str) -> None:
    assert [site.name for site in sites(sql)] == []
    assert placeholders(sql, {"n", "int", "text"}, "pyformat") == (sql, ())
    assert placeholders(sql, {"n"}, "dollar") == (sql, ())
    assert bind(sql, {"n": HOSTILE}, "pyformat").params is None


def test_names_in_code_become_psycopg_placeholders_and_percent_is_doubled() -> None:
    sql = "SELECT :a, :b::text, '%' || :a, (:a)::int FROM t WHERE x LIKE 'a%' AND y = 10 % :b"
    text, names = placeholders(sql, {"a", "b"}, "pyformat")
    assert text == (
        "SELECT %(a)s, %(b)s::text, '%%' || %(a)s, (%(a)s)::int FROM t WHERE x LIKE 'a%%' AND y = 10 %% %(b)s"
    )
    assert names == ("a", "b")


def test_names_become_duckdb_parameters_and_percent_stays() -> None:
    assert placeholders("SELECT :a + :b, '%'", {"a", "b"}, "dollar") == ("SELECT $a + $b, '%'", ("a", "b"))


def test_only_names_that_are_inputs_are_bound() -> None:
    sql = "INSERT INTO t VALUES (:name, :other, ':name', $$:name$$) -- :name"
    bound = bind(sql, {"name": HOSTILE, "unused": 1}, "pyformat")
    assert bound.text == "INSERT INTO t VALUES (%(name)s, :other, ':name', $$:name$$) -- :name"
    assert bound.params == {"name": HOSTILE}
    assert bound.names == ("name",)
    assert unbound(sql, {"name": 1}) == ["other"]


def test_a_bind_right_after_an_operator_or_bracket_is_a_bind() -> None:
    text, names = placeholders("SELECT a[:i], x=:n, (:n), -:n, :n||'s'", {"i", "n"}, "dollar")
    assert text == "SELECT a[$i], x=$n, ($n), -$n, $n||'s'"
    assert names == ("i", "n")


def test_values_are_adapted_and_never_pasted() -> None:
    bound = bind("SELECT :s, :n, :none, :flag, :items", _values(), "pyformat", adapt=repr)
    assert HOSTILE not in bound.text
    assert bound.params == {k: repr(v) for k, v in _values().items() if k != "unused"}


def _values() -> dict[str, object]:
    return {"s": HOSTILE, "n": 1.5, "none": None, "flag": True, "items": [1, {"a": 2}], "unused": 0}


def test_each_statement_binds_only_its_own_names() -> None:
    inputs = {"a": 1, "b": 2}
    assert bind("SELECT '100%'", inputs, "pyformat").text == "SELECT '100%'"
    assert bind("SELECT :b, '100%'", inputs, "pyformat").params == {"b": 2}


def test_duckdb_names_that_differ_only_in_case_are_refused() -> None:
    with pytest.raises(ValueError, match=r":Name and :name, and DuckDB's parameter names ignore case"):
        bind("SELECT :Name, :name", {"Name": 1, "name": 2}, "dollar")
    assert bind("SELECT :Name, :name", {"Name": 1, "name": 2}, "pyformat").params == {"Name": 1, "name": 2}


def test_the_hint_for_a_statement_that_does_not_parse_names_what_was_not_bound() -> None:
    assert unbound_hint("SELECT :nme", {"name": 1}) == (
        " (:nme is not bound: a :name binds the step's input of that name; add it to the step's `data`)"
    )
    assert unbound_hint("SELECT :name::int", {"name": 1}) == ""


# ---- the load-time warning ------------------------------------------------------------------------


def test_a_template_inside_a_string_literal_is_found() -> None:
    sql = "INSERT INTO t VALUES ('{{ workload.name }}', '%{{ q }}%', {{ n }}, 'fixed')"
    assert [(p.template, p.literal) for p in pasted_templates(sql)] == [
        ("{{ workload.name }}", "'{{ workload.name }}'"),
        ("{{ q }}", "'%{{ q }}%'"),
    ]


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT {{ n }}, "{{ column }}" FROM {{ workload.table }}',  # code and names, not literals
        "SELECT 1 -- '{{ x }}'\n/* '{{ y }}' */",  # comments
        "DO $$ BEGIN RAISE NOTICE '{{ x }}'; END $$",  # a body, which takes no parameters
        "COPY t TO '{{ workload.path }}' (FORMAT parquet)",  # statements that take no parameters
        "ATTACH '{{ workload.file }}' AS db",
        "SET search_path = '{{ workload.schema }}'",
        "CREATE TABLE t (a text DEFAULT '{{ workload.name }}')",
        "SELECT '{{ execution_id }}', '{{ job.uuid }}', '{{ workload.n | int }}'",  # no quote possible
        'SELECT {{ "\'" }}x{{ "\'" }}',  # quotes inside templates are not SQL
        "SELECT '{% if x %}a{% endif %}'",  # a tag pastes its own fixed text
    ],
)
def test_templates_that_are_not_values_in_string_literals_are_not_warned_about(sql: str) -> None:
    assert pasted_templates(sql) == []


def test_create_table_as_and_with_take_parameters_and_are_warned_about() -> None:
    sql = (
        "CREATE OR REPLACE TEMP TABLE x AS SELECT * FROM t WHERE a = '{{ workload.a }}';\n"
        "WITH y AS (SELECT 1) SELECT '{{ workload.b }}'"
    )
    assert [p.template for p in pasted_templates(sql)] == ["{{ workload.a }}", "{{ workload.b }}"]


def _warnings(yaml_text: str) -> list[str]:
    pb = parse_playbook(textwrap.dedent(yaml_text), source="p.yaml")
    return [str(w) for w in pb.warnings]


def test_validate_warns_at_the_line_inside_the_command_and_names_the_step_and_the_bind() -> None:
    warnings = _warnings(
        """\
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: w}
        workload: {name: bob}
        workflow:
          - step: start
            type: postgres
            auth: pg_local
            data: {owner: "{{ workload.owner }}"}
            command: |
              CREATE TABLE IF NOT EXISTS t (name text, owner text);
              INSERT INTO t VALUES ('{{ workload.name }}', '{{ owner }}');
              SELECT * FROM t WHERE name LIKE '{{ workload.prefix }}%'
        """
    )
    assert warnings == [
        "p.yaml:12: step 'start': a template inside a SQL string literal: `'{{ workload.name }}'` in "
        "`command` pastes the value into the statement (a quote in it ends the string, and the rest runs "
        'as SQL); bind it instead: add `name: "{{ workload.name }}"` to the step\'s `data` and write '
        "`:name` in place of `'{{ workload.name }}'`",
        "p.yaml:12: step 'start': a template inside a SQL string literal: `'{{ owner }}'` in `command` "
        "pastes the value into the statement (a quote in it ends the string, and the rest runs as SQL); "
        "bind it instead: write `:owner` in place of `'{{ owner }}'`",
        "p.yaml:13: step 'start': a template inside a SQL string literal: `'{{ workload.prefix }}%'` in "
        "`command` pastes the value into the statement (a quote in it ends the string, and the rest runs "
        'as SQL); bind it instead: add `prefix: "{{ workload.prefix }}"` to the step\'s `data` and write '
        "`:prefix || '%'` in place of `'{{ workload.prefix }}%'`",
    ]


def test_validate_warns_about_an_iterator_task_and_a_workbook_entry_but_not_a_save() -> None:
    warnings = _warnings(
        """\
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: w}
        workbook:
          - name: lookup
            type: duckdb
            command: "SELECT '{{ who }}'"
        workflow:
          - step: start
            type: iterator
            collection: [a]
            element: city
            task:
              type: duckdb
              command: "SELECT * FROM t WHERE city = '{{ city }}'"
            save:
              storage: duckdb
              commands: "INSERT INTO t VALUES ('{{ result }}')"
            next: [{step: call}]
          - step: call
            type: workbook
            name: lookup
        """
    )
    assert [w.split(": a template", 1)[0] for w in warnings] == [
        "p.yaml:7: step 'workbook:lookup'",
        "p.yaml:15: step 'start'",
    ]


def test_sql_with_binds_or_plain_templates_in_code_gives_no_warning() -> None:
    assert (
        _warnings(
            """\
            apiVersion: noetl.io/v1
            kind: Playbook
            metadata: {name: w}
            workflow:
              - step: start
                type: duckdb
                data: {name: "{{ workload.name }}"}
                command: |
                  INSERT INTO {{ workload.table }} VALUES (:name, '{{ execution_id }}');
                  COPY t TO '{{ workload.out }}/t.parquet' (FORMAT parquet)
            """
        )
        == []
    )
