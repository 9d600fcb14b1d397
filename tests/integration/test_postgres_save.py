"""`storage: postgres` saves against a real PostgreSQL: upsert, insert, statement, and their failures."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from noetl.engine.events import Event
from tests.conftest import pg_fields
from tests.helpers import run_text, types_of

INJECTION = "x'); DROP TABLE t; --"


@pytest.fixture
def items_db(store: Any, pg_dsn: str) -> str:
    """The test database with the credential pg_local, a table `items` and a bystander table `t`."""
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL, payload jsonb)")
    return pg_dsn


def _rows(dsn: str, sql: str = "SELECT id, value, payload FROM items ORDER BY id") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _playbook(save: str, data: str = '{id: 1, value: "{{ workload.value }}"}') -> str:
    return f"""
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {{name: pg_save}}
    workload:
      pg_auth: pg_local
      value: first
    workflow:
      - step: start
        next: [{{step: produce}}]
      - step: produce
        type: python
        data: {data}
        code: |
          def main(input_data):
              return input_data
        save:
{save}
        next: [{{step: end}}]
      - step: end
    """


UPSERT = """
          storage: postgres
          table: public.items
          mode: upsert
          key: id
          auth: "{{ workload.pg_auth }}"
          args:
            id: "{{ this.id }}"
            value: "{{ this.value }}"
            payload: {source: upsert, value: "{{ this.value }}"}
"""


def test_upsert_twice_by_key_leaves_one_row_with_the_second_value(store: Any, items_db: str) -> None:
    first, _ = run_text(store, _playbook(UPSERT), {"value": "first"})
    second, events = run_text(store, _playbook(UPSERT), {"value": "second"})
    assert (first.status, second.status) == ("COMPLETED", "COMPLETED")
    assert _rows(items_db) == [(1, "second", {"source": "upsert", "value": "second"})]
    completed = next(e for e in events if e.event_type == "save_completed")
    assert completed.meta["rows"] == 1 and completed.meta["storage"] == "postgres"


def test_a_value_that_looks_like_sql_is_stored_verbatim(store: Any, items_db: str) -> None:
    outcome, _ = run_text(store, _playbook(UPSERT), {"value": INJECTION})
    assert outcome.status == "COMPLETED", outcome.error
    assert _rows(items_db, "SELECT value FROM items") == [(INJECTION,)]
    assert _rows(items_db, "SELECT to_regclass('public.t') IS NOT NULL") == [(True,)]


def test_upsert_with_every_column_in_the_key_does_nothing_on_conflict(store: Any, items_db: str) -> None:
    with psycopg.connect(items_db) as conn:
        conn.execute("CREATE TABLE tags (tag text PRIMARY KEY)")
    save = """
          storage: postgres
          table: tags
          mode: upsert
          key: [tag]
          auth: pg_local
          args: "{{ this.rows }}"
"""
    outcome, events = run_text(store, _playbook(save, "{rows: [{tag: a}, {tag: b}, {tag: a}]}"))
    assert outcome.status == "COMPLETED", outcome.error
    assert _rows(items_db, "SELECT tag FROM tags ORDER BY tag") == [("a",), ("b",)]
    assert next(e for e in events if e.event_type == "save_completed").meta["rows"] == 2


INSERT_LIST = """
          storage: postgres
          table: items
          mode: insert
          auth: pg_local
          args: "{{ this.rows }}"
"""
ROWS = """
          rows:
            - {id: 1, value: one, payload: {nested: {deep: true}}}
            - {id: 2, value: two, payload: [1, 2, 3]}
            - {id: 3, value: "{{ workload.value }}"}
"""


def test_insert_writes_every_row_with_json_for_dicts_and_lists(store: Any, items_db: str) -> None:
    outcome, events = run_text(store, _playbook(INSERT_LIST, ROWS), {"value": "three"})
    assert outcome.status == "COMPLETED", outcome.error
    assert _rows(items_db) == [
        (1, "one", {"nested": {"deep": True}}),
        (2, "two", [1, 2, 3]),
        (3, "three", None),
    ]
    assert next(e for e in events if e.event_type == "save_completed").meta["rows"] == 3


def test_statement_mode_binds_names_from_args(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          mode: statement
          auth: pg_local
          statement: "INSERT INTO items (id, value) VALUES (:id, :value || '%' || ':id')"
          args: {id: 7, value: "{{ this.value }}"}
"""
    outcome, _ = run_text(store, _playbook(save), {"value": INJECTION})
    assert outcome.status == "COMPLETED", outcome.error
    assert _rows(items_db, "SELECT id, value FROM items") == [(7, INJECTION + "%:id")]


def test_a_statement_that_binds_nothing_runs_once_per_row_as_written(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          mode: statement
          auth: pg_local
          statement: "INSERT INTO items (id, value) SELECT coalesce(max(id), 0) + 1, '100%' FROM items"
          args: "{{ this.rows }}"
"""
    outcome, events = run_text(store, _playbook(save, "{rows: [{a: 1}, {a: 2}]}"))
    assert outcome.status == "COMPLETED", outcome.error
    assert _rows(items_db, "SELECT id, value FROM items ORDER BY id") == [(1, "100%"), (2, "100%")]
    assert next(e for e in events if e.event_type == "save_completed").meta["rows"] == 2


def test_statement_mode_names_a_bind_missing_from_args(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          mode: statement
          auth: pg_local
          statement: "INSERT INTO items (id, value) VALUES (:id, :label)"
          args: {id: 7}
"""
    outcome, events = run_text(store, _playbook(save))
    assert outcome.status == "FAILED"
    error = next(e for e in events if e.event_type == "save_error").error or ""
    assert ":label" in error and "add them under `args`" in error
    assert _rows(items_db) == []


def test_a_save_without_credential_is_a_save_error_and_fails_the_step(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          table: items
          args: {id: 1, value: x}
"""
    outcome, events = run_text(store, _playbook(save))
    assert outcome.status == "FAILED"
    assert _save_and_after(events) == ["save_started", "save_error", "action_error", "step_failed"]
    error = next(e for e in events if e.event_type == "save_error").error or ""
    assert "step 'produce'" in error and "needs `auth`" in error
    assert types_of(events)[-1] == "execution_failed"
    assert _rows(items_db) == []


def test_a_constraint_violation_is_save_failed_and_nothing_is_written(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          table: items
          auth: pg_local
          args: "{{ this.rows }}"
"""
    outcome, events = run_text(
        store, _playbook(save, "{rows: [{id: 1, value: kept_out}, {id: 1, value: dup}]}")
    )
    assert outcome.status == "FAILED"
    assert _save_and_after(events) == ["save_started", "save_failed", "action_error", "step_failed"]
    assert types_of(events)[-1] == "execution_failed"
    failed = next(e for e in events if e.event_type == "save_failed")
    assert failed.meta["reason"] == "target_error" and failed.meta["error_type"] == "UniqueViolation"
    assert "SQLSTATE 23505" in (failed.error or "") and "table 'items'" in (failed.error or "")
    assert "SQLSTATE 23505" in (next(e for e in events if e.event_type == "step_failed").error or "")
    assert _rows(items_db) == []  # the first row went back with the second: one transaction per save


def test_an_unreachable_server_is_a_connection_error(store: Any, items_db: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store.put_credential("pg_down", "postgres", {**pg_fields(items_db), "db_port": port})
    save = """
          storage: postgres
          table: items
          auth: pg_down
          args: {id: 1, value: x}
"""
    outcome, events = run_text(store, _playbook(save))
    assert outcome.status == "FAILED"
    failed = next(e for e in events if e.event_type == "save_failed")
    assert failed.meta["reason"] == "connection_error"
    assert "cannot connect to PostgreSQL" in (failed.error or "")


def test_an_invalid_column_name_is_refused_before_anything_runs(store: Any, items_db: str) -> None:
    save = """
          storage: postgres
          table: items
          auth: pg_local
          args: "{{ this.row }}"
"""
    # A literal bad name is refused when the playbook loads; one made by a template is caught by the save.
    outcome, events = run_text(
        store, _playbook(save, '{row: {id: 1, "value) VALUES (1); DROP TABLE t; --": x}}')
    )
    assert outcome.status == "FAILED"
    assert "invalid column name" in (next(e for e in events if e.event_type == "save_error").error or "")
    assert _rows(items_db, "SELECT to_regclass('public.t') IS NOT NULL") == [(True,)]


def _save_and_after(events: list[Event]) -> list[str]:
    """The step's event types from save_started on."""
    types = types_of(events, "produce")
    return types[types.index("save_started") :]
