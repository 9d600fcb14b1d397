"""`:name` binds in postgres and duckdb steps against the real databases: a hostile execution parameter is
stored as data and the table survives; SQL that names no input keeps its meaning; the template form
still pastes its value into the SQL text, as before (and `validate` warns about it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import psycopg

from noetl.dsl import parse_playbook
from tests.conftest import pg_fields
from tests.helpers import one, run_text, types_of

HOSTILE = "x'); DROP TABLE t; --"
ACTION = ["step_started", "action_started", "action_completed", "step_completed"]
FAILED = ["step_started", "action_started", "action_error", "step_failed"]


def _pg_tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _pg_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _duck_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def _playbook(kind: str, setting: str, command: str, data: str = '{name: "{{ workload.name }}"}') -> str:
    """Two steps: `create` makes table t, `load` runs `command` with `data` as its inputs."""
    return f"""
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: binds_{kind}}}
workload: {{name: plain}}
workflow:
  - step: start
    next: [{{step: create}}]
  - step: create
    type: {kind}
    {setting}
    command: CREATE TABLE t (id integer, name text)
    next: [{{step: load}}]
  - step: load
    type: {kind}
    {setting}
    data: {data}
    command: |
{command}
"""


BOUND = """\
      INSERT INTO t (id, name) VALUES (1, :name);
      SELECT name, length(name) AS n, name = :name AS same FROM t WHERE name = :name
"""
PASTED = """\
      INSERT INTO t (id, name) VALUES (1, '{{ workload.name }}')
"""


# ---- PostgreSQL -------------------------------------------------------------------------------------


def test_postgres_binds_a_hostile_parameter_as_data_and_the_table_survives(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    text = _playbook("postgres", "auth: pg_local", BOUND)
    outcome, events = run_text(store, text, {"name": HOSTILE})  # as an execution parameter (API, --payload)
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "load") == ACTION
    result = one(events, "action_completed", "load").result
    assert result["command_0"]["row_count"] == 1
    assert result["command_1"]["rows"] == [{"name": HOSTILE, "n": len(HOSTILE), "same": True}]
    assert _pg_tables(pg_dsn) == {"t"}
    assert _pg_rows(pg_dsn, "SELECT id, name FROM t") == [(1, HOSTILE)]


def test_postgres_template_form_still_pastes_the_value_into_the_sql_as_before(
    store: Any, pg_dsn: str
) -> None:
    """Existing playbooks keep working: a plain value runs as it always did. A hostile one is SQL text
    there (the table is dropped): this is what `validate` now warns about."""
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    text = _playbook("postgres", "auth: pg_local", PASTED, data="{}")
    assert any("`:name` in place of `'{{ workload.name }}'`" in str(w) for w in parse_playbook(text).warnings)

    outcome, events = run_text(store, text, {"name": "Oslo"})
    assert outcome.status == "COMPLETED", outcome.error
    assert _pg_rows(pg_dsn, "SELECT id, name FROM t") == [(1, "Oslo")]

    _pg_rows_exec(pg_dsn, "DROP TABLE t")
    outcome, events = run_text(store, text, {"name": HOSTILE})
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "load") == ACTION
    assert sorted(one(events, "action_completed", "load").result) == ["command_0", "command_1"]  # + DROP
    assert _pg_tables(pg_dsn) == set()


def _pg_rows_exec(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


def test_postgres_sql_that_names_no_input_keeps_its_meaning(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    command = """\
      WITH v(n) AS (SELECT 5)
      SELECT '12:30'::time::text AS clock, ':n' AS quoted, $$:n$$ AS body, $q$ it's :n $q$ AS tagged,
             E'it\\'s :n' AS escaped, "n" AS column_n, (ARRAY[1,2,3,4,5,6])[1:n] AS upto,
             '7'::int AS cast, '100%' AS pct, :n AS bound -- :n in a comment
        FROM v
"""
    data = '{n: 2, int: "not a type", name: "{{ workload.name }}"}'
    outcome, events = run_text(store, _playbook("postgres", "auth: pg_local", command, data))
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "load").result["command_0"]["rows"] == [
        {
            "clock": "12:30:00",
            "quoted": ":n",
            "body": ":n",
            "tagged": " it's :n ",
            "escaped": "it's :n",
            "column_n": 5,
            "upto": [1, 2, 3, 4, 5],
            "cast": 7,
            "pct": "100%",
            "bound": 2,
        }
    ]


def test_postgres_binds_none_numbers_booleans_and_lists_and_dicts_as_jsonb(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    command = """\
      INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');
      SELECT :none::text IS NULL AS is_null, :flag AS flag, :i + 1 AS i, :f * 2 AS f,
             jsonb_typeof(:ids) AS kind, :obj->>'who' AS who,
             (SELECT array_agg(name ORDER BY id) FROM t WHERE id IN (SELECT jsonb_array_elements_text(:ids)::int))
               AS picked
"""
    data = '{none: null, flag: true, i: 41, f: 1.25, ids: [1, 3], obj: {who: "{{ workload.name }}"}}'
    outcome, events = run_text(
        store, _playbook("postgres", "auth: pg_local", command, data), {"name": HOSTILE}
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "load").result["command_1"]["rows"] == [
        {
            "is_null": True,
            "flag": True,
            "i": 42,
            "f": 2.5,
            "kind": "array",
            "who": HOSTILE,
            "picked": ["a", "c"],
        }
    ]


def test_postgres_a_name_that_is_no_input_fails_saying_it_is_not_bound(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    outcome, events = run_text(store, _playbook("postgres", "auth: pg_local", "      SELECT :nmae\n"))
    assert outcome.status == "FAILED"
    assert types_of(events, "load") == FAILED
    error = one(events, "step_failed", "load").error or ""
    assert "SQLSTATE 42601" in error
    assert (
        "(:nmae is not bound: a :name binds the step's input of that name; add it to the step's `data`)"
        in error
    )


# ---- DuckDB ------------------------------------------------------------------------------------------


def test_duckdb_binds_a_hostile_parameter_as_data_and_the_table_survives(store: Any, tmp_path: Path) -> None:
    database = tmp_path / "binds.duckdb"
    outcome, events = run_text(store, _playbook("duckdb", f"database: {database}", BOUND), {"name": HOSTILE})
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "load") == ACTION
    result = one(events, "action_completed", "load").result
    assert result["command_0"]["row_count"] == 1
    assert result["command_1"]["rows"] == [{"name": HOSTILE, "n": len(HOSTILE), "same": True}]
    assert _duck_rows(database, "SELECT id, name FROM t") == [(1, HOSTILE)]


def test_duckdb_template_form_still_pastes_the_value_into_the_sql_as_before(
    store: Any, tmp_path: Path
) -> None:
    database = tmp_path / "pasted.duckdb"
    text = _playbook("duckdb", f"database: {database}", PASTED, data="{}")
    assert any("`:name` in place of `'{{ workload.name }}'`" in str(w) for w in parse_playbook(text).warnings)
    outcome, _ = run_text(store, text, {"name": "Oslo"})
    assert outcome.status == "COMPLETED", outcome.error
    assert _duck_rows(database, "SELECT id, name FROM t") == [(1, "Oslo")]

    _duck_rows(database, "DROP TABLE t")
    outcome, events = run_text(store, text, {"name": HOSTILE})
    assert outcome.status == "COMPLETED", outcome.error
    assert sorted(one(events, "action_completed", "load").result) == ["command_0", "command_1"]  # + DROP
    assert _duck_rows(database, "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'") == [
        (0,)
    ]


def test_duckdb_sql_that_names_no_input_keeps_its_meaning(store: Any, tmp_path: Path) -> None:
    command = """\
      SELECT {'k':v} AS struct, '12:30'::TIME::VARCHAR AS clock, ':v' AS quoted, $$:v$$ AS body,
             [1, 2, 3, 4][2:3] AS slice, '7'::INTEGER AS cast, :v AS bound -- :v in a comment
        FROM (SELECT 1 AS v)
"""
    data = "{v: 99, INTEGER: no}"
    outcome, events = run_text(
        store, _playbook("duckdb", f"database: {tmp_path / 'm.duckdb'}", command, data)
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "load").result["command_0"]["rows"] == [
        {
            "struct": {"k": 1},
            "clock": "12:30:00",
            "quoted": ":v",
            "body": ":v",
            "slice": [2, 3],
            "cast": 7,
            "bound": 99,
        }
    ]


def test_duckdb_binds_lists_and_dicts_as_json_text(store: Any, tmp_path: Path) -> None:
    command = """\
      INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
      SELECT :none IS NULL AS is_null, :flag AS flag, :i + 1 AS i, :obj::JSON->>'who' AS who,
             (SELECT list(name ORDER BY id) FROM t WHERE list_contains(:ids::JSON::INTEGER[], id)) AS picked
"""
    data = '{none: null, flag: true, i: 41, ids: [1, 3], obj: {who: "{{ workload.name }}"}}'
    text = _playbook("duckdb", f"database: {tmp_path / 'v.duckdb'}", command, data)
    outcome, events = run_text(store, text, {"name": HOSTILE})
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "load").result["command_1"]["rows"] == [
        {"is_null": True, "flag": True, "i": 42, "who": HOSTILE, "picked": ["a", "c"]}
    ]


def test_duckdb_refuses_two_inputs_whose_names_differ_only_in_case(store: Any, tmp_path: Path) -> None:
    setting = f"database: {tmp_path / 'c.duckdb'}\n    retry: {{max_attempts: 3, initial_delay: 0}}"
    text = _playbook("duckdb", setting, "      SELECT :Name, :name\n", "{Name: 1, name: 2}")
    outcome, events = run_text(store, text)
    assert outcome.status == "FAILED"
    assert types_of(events, "load") == FAILED  # not retried: renaming an input is the fix
    failed = one(events, "step_failed", "load")
    assert "binds both :Name and :name, and DuckDB's parameter names ignore case" in (failed.error or "")
    assert failed.meta["reason"] == "the error is not retryable"


def test_duckdb_a_name_that_is_no_input_fails_saying_it_is_not_bound(store: Any, tmp_path: Path) -> None:
    text = _playbook("duckdb", f"database: {tmp_path / 'u.duckdb'}", "      SELECT :nmae\n")
    outcome, events = run_text(store, text)
    assert outcome.status == "FAILED"
    assert types_of(events, "load") == FAILED
    assert "(:nmae is not bound: a :name binds the step's input of that name" in (
        one(events, "step_failed", "load").error or ""
    )
