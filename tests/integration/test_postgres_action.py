"""The postgres action against a real PostgreSQL: binds, one transaction per step, errors, secrecy."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import psycopg
import pytest

from noetl.engine.events import Event
from tests.conftest import pg_fields
from tests.helpers import run_text, types_of

PASSWORD = "Pw-never-in-events-7731"  # the test server trusts local users, so any password connects


def _add_credential(store: Any, dsn: str, **overrides: Any) -> None:
    store.put_credential("pg_local", "postgres", {**pg_fields(dsn), "db_password": PASSWORD, **overrides})


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _failed_step(events: list[Event], step: str) -> Event:
    return next(e for e in events if e.event_type == "step_failed" and e.node_name == step)


PIPELINE = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: pg_action}
workload:
  pg_auth: pg_local
  name: "o'brien'); DROP TABLE people; --"
workflow:
  - step: start
    next: [{step: load}]
  - step: load
    type: postgres
    auth: "{{ workload.pg_auth }}"
    data:
      name: "{{ workload.name }}"
      tags: {team: data, level: 3}
      n: 41
    command: |
      CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, tags jsonb, n int, price numeric(6,2));
      INSERT INTO people (name, tags, n, price) VALUES (:name, :tags, :n + 1, 9.5), ('plain', NULL, 1, 0.25);
      -- a comment with a ; in it, and a :name that is not a bind
      SELECT id, name, tags, n, price, tags->>'team' AS team, '2024-01-02'::date AS day
        FROM people ORDER BY id;
    next: [{step: use}]
  - step: use
    type: python
    data:
      rows: "{{ load.command_2.rows }}"
      inserted: "{{ load.command_1.row_count }}"
    code: |
      def main(rows, inserted):
          return {"first": rows[0]["name"], "team": rows[0]["team"], "n": rows[0]["n"], "inserted": inserted}
    next: [{step: end}]
  - step: end
    result:
      first: "{{ use.first }}"
      team: "{{ use.team }}"
      n: "{{ use.n }}"
      inserted: "{{ use.inserted }}"
"""


def test_statements_bind_inputs_and_a_later_step_uses_the_rows(store: Any, pg_dsn: str) -> None:
    _add_credential(store, pg_dsn)
    outcome, events = run_text(store, PIPELINE)
    assert outcome.status == "COMPLETED", outcome.error
    tricky = "o'brien'); DROP TABLE people; --"
    assert outcome.result == {"first": tricky, "team": "data", "n": 42, "inserted": 2}
    load = next(e for e in events if e.event_type == "action_completed" and e.node_name == "load")
    assert load.result["command_0"] == {"status": "ok", "rows": [], "row_count": 0, "columns": []}
    select = load.result["command_2"]
    assert select["columns"] == ["id", "name", "tags", "n", "price", "team", "day"]
    assert select["rows"][0] == {
        "id": 1,
        "name": tricky,
        "tags": {"team": "data", "level": 3},
        "n": 42,
        "price": 9.5,
        "team": "data",
        "day": "2024-01-02",
    }
    assert select["rows"][1]["price"] == 0.25
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT name, tags FROM people ORDER BY id").fetchall() == [
            (tricky, {"team": "data", "level": 3}),
            ("plain", None),
        ]


FAILING = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: pg_rollback}
workflow:
  - step: start
    next: [{step: build}]
  - step: build
    type: postgres
    auth: pg_local
    autocommit: AUTOCOMMIT
    command:
      - CREATE TABLE made_here (id int PRIMARY KEY); INSERT INTO made_here VALUES (1)
      - INSERT INTO no_such_table VALUES (1)
    next: [{step: end}]
  - step: end
"""


def test_a_failing_statement_rolls_back_the_whole_step(store: Any, pg_dsn: str) -> None:
    _add_credential(store, pg_dsn)
    outcome, events = run_text(store, FAILING.replace("AUTOCOMMIT", "false"))
    assert outcome.status == "FAILED"
    assert "made_here" not in _tables(pg_dsn)
    error = _failed_step(events, "build").error or ""
    assert "command_2 (statement 3 of 3) failed: SQLSTATE 42P01" in error
    assert "no_such_table" in error
    assert "rolled back" in error
    assert types_of(events)[-1] == "execution_failed"
    action_error = next(e for e in events if e.event_type == "action_error")
    assert action_error.meta["error_type"] == "UndefinedTable"
    assert action_error.result == {"statement": 2, "sqlstate": "42P01"}


def test_with_autocommit_earlier_statements_stay(store: Any, pg_dsn: str) -> None:
    _add_credential(store, pg_dsn)
    outcome, _ = run_text(store, FAILING.replace("AUTOCOMMIT", "true"))
    assert outcome.status == "FAILED"
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT id FROM made_here").fetchall() == [(1,)]


BAD_SQL = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: pg_bad}
workflow:
  - step: start
    next: [{step: broken}]
  - step: broken
    type: postgres
    auth: pg_local
    retry: {max_attempts: 3, initial_delay: 0.01}
    command: SELEC 1
    next: [{step: end}]
  - step: end
"""


def test_a_bad_statement_fails_the_step_with_its_sqlstate_and_is_not_retried(store: Any, pg_dsn: str) -> None:
    _add_credential(store, pg_dsn)
    outcome, events = run_text(store, BAD_SQL)
    assert outcome.status == "FAILED"
    error = _failed_step(events, "broken").error or ""
    assert "step 'broken': command_0 (statement 1 of 1) failed: SQLSTATE 42601" in error
    assert "SELEC 1" in error
    assert "action_retry" not in types_of(events)  # a syntax error cannot pass on a second try
    assert types_of(events)[-1] == "execution_failed"


def test_a_step_without_auth_fails_with_a_clear_message(store: Any) -> None:
    outcome, events = run_text(store, BAD_SQL.replace("    auth: pg_local\n", ""))
    assert outcome.status == "FAILED"
    error = _failed_step(events, "broken").error or ""
    assert "needs `auth`" in error and "noetl credential add" in error
    assert "action_retry" not in types_of(events)


def test_a_server_that_cannot_be_reached_fails_the_step_and_is_retryable(store: Any, pg_dsn: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    _add_credential(store, pg_dsn, db_port=closed_port)
    outcome, events = run_text(store, BAD_SQL.replace("max_attempts: 3", "max_attempts: 2"))
    assert outcome.status == "FAILED"
    assert types_of(events).count("action_retry") == 1
    error = _failed_step(events, "broken").error or ""
    assert f"cannot connect to PostgreSQL postgres@127.0.0.1:{closed_port}" in error
    _assert_password_absent(events)


def test_the_password_never_appears_in_any_event(store: Any, pg_dsn: str) -> None:
    _add_credential(store, pg_dsn)
    ok_events = run_text(store, PIPELINE)[1]
    failed_events = run_text(store, FAILING.replace("AUTOCOMMIT", "false"))[1]
    for events in (ok_events, failed_events):
        _assert_password_absent(events)


def _assert_password_absent(events: list[Event]) -> None:
    assert events
    for event in events:
        assert PASSWORD not in json.dumps(asdict(event), default=str), event.event_type


@pytest.mark.parametrize("value", ["a%b", "100%", "%(x)s"])
def test_percent_signs_in_sql_and_values_survive_binding(store: Any, pg_dsn: str, value: str) -> None:
    _add_credential(store, pg_dsn)
    playbook = f"""
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {{name: pg_percent}}
    workflow:
      - step: start
        next: [{{step: q}}]
      - step: q
        type: postgres
        auth: pg_local
        data: {{v: "{value}"}}
        command: SELECT :v AS v, '50%' AS literal, :v LIKE '%' AS matches
        next: [{{step: end}}]
      - step: end
        result: {{row: "{{{{ q.command_0.rows[0] }}}}"}}
    """
    outcome, _ = run_text(store, playbook)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"row": {"v": value, "literal": "50%", "matches": True}}
