"""The duckdb action and save with the real DuckDB: offline extensions, secrets for PostgreSQL, files."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from noetl.actions.duckdb_extensions import configure, extension_directory
from tests.conftest import pg_fields
from tests.helpers import run_text, types_of


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default DuckDB files (one per execution, under the temp folder) go to this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_the_postgres_extension_loads_from_the_installed_package_without_a_download() -> None:
    directory = extension_directory()
    assert directory is not None
    assert list(directory.glob(f"v{duckdb.__version__}/*/postgres_scanner.duckdb_extension"))
    with duckdb.connect(":memory:") as con:
        configure(con)
        # Any download would go to this port, where nothing listens: INSTALL and LOAD must not need it.
        con.execute("SET custom_extension_repository = 'http://127.0.0.1:9'")
        con.execute("INSTALL postgres")
        con.execute("LOAD postgres")
        loaded = con.execute(
            "SELECT loaded, install_path FROM duckdb_extensions() WHERE extension_name = 'postgres_scanner'"
        ).fetchall()
    assert loaded == [(True, str(next(directory.glob("*/*/postgres_scanner.duckdb_extension"))))]


AGGREGATE = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_agg}
workflow:
  - step: start
    next: [{step: crunch}]
  - step: crunch
    type: duckdb
    database: DATABASE
    data: {min_amount: 2, tags: [a, b]}
    command: |
      CREATE TABLE sales (region text, amount decimal(10,2), day date);
      INSERT INTO sales VALUES ('north', 1.50, '2024-01-01'), ('north', 3.25, '2024-01-02'),
                               ('south', 5.00, '2024-01-03'), ('south', 2.00, '2024-01-04');
      SELECT region, sum(amount) AS total, count(*) AS n, max(day) AS last_day
        FROM sales WHERE amount >= :min_amount GROUP BY region ORDER BY region;
      SELECT json_array_length(:tags::JSON) AS tag_count, '::text' AS not_a_bind;
    next: [{step: use}]
  - step: use
    type: python
    data: {rows: "{{ crunch.command_2.rows }}"}
    code: |
      def main(rows):
          return {"grand_total": sum(r["total"] for r in rows), "regions": [r["region"] for r in rows]}
    next: [{step: end}]
  - step: end
    result: {grand_total: "{{ use.grand_total }}", regions: "{{ use.regions }}"}
"""


def test_a_duckdb_step_creates_inserts_aggregates_and_a_later_step_uses_it(
    store: Any, tmp_path: Path
) -> None:
    database = tmp_path / "sales.duckdb"
    outcome, events = run_text(store, AGGREGATE.replace("DATABASE", str(database)))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"grand_total": 10.25, "regions": ["north", "south"]}
    result = next(e for e in events if e.event_type == "action_completed" and e.node_name == "crunch").result
    assert result["command_1"] == {"status": "ok", "rows": [], "row_count": 4, "columns": []}
    assert result["command_2"]["rows"][0] == {
        "region": "north",
        "total": 3.25,
        "n": 1,
        "last_day": "2024-01-02",
    }
    assert result["command_3"]["rows"] == [{"tag_count": 2, "not_a_bind": "::text"}]
    with duckdb.connect(str(database)) as con:  # the data is in the file the step named
        assert con.execute("SELECT count(*) FROM sales").fetchone() == (4,)


def test_without_database_each_execution_gets_its_own_file(store: Any, tmp_path: Path) -> None:
    playbook = AGGREGATE.replace("    database: DATABASE\n", "")
    first, _ = run_text(store, playbook)
    second, _ = run_text(store, playbook)  # CREATE TABLE sales would fail if the file were shared
    assert (first.status, second.status) == ("COMPLETED", "COMPLETED")
    from noetl.actions.duckdb_action import database_path

    assert database_path(None, first.execution_id) != database_path(None, second.execution_id)
    assert list((tmp_path / "noetl-duckdb").iterdir()) == []  # each removed when its execution ended


ATTACH = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_attach}
workload: {pg_auth: pg_local}
workflow:
  - step: start
    next: [{step: read_pg}]
  - step: read_pg
    type: duckdb
    auth:
      pg_db: "{{ workload.pg_auth }}"
    command: |
      ATTACH '' AS pg (TYPE postgres, SECRET pg_db, READ_ONLY);
      SELECT id, city, temperature FROM pg.public.readings ORDER BY id;
      SELECT round(avg(temperature), 1) AS avg_temperature FROM pg.public.readings;
    next: [{step: end}]
  - step: end
    result:
      rows: "{{ read_pg.command_1.rows }}"
      avg: "{{ read_pg.command_2.rows[0].avg_temperature }}"
"""


def test_a_duckdb_step_attaches_postgres_through_an_auth_alias(store: Any, pg_dsn: str) -> None:
    fields = {**pg_fields(pg_dsn), "db_password": "Duck-secret-pw-5521"}
    store.put_credential("pg_local", "postgres", fields)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE readings (id int PRIMARY KEY, city text, temperature double precision)")
        conn.execute("INSERT INTO readings VALUES (1, 'London', 11.5), (2, 'Paris', 15.0)")
    outcome, events = run_text(store, ATTACH)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {
        "rows": [
            {"id": 1, "city": "London", "temperature": 11.5},
            {"id": 2, "city": "Paris", "temperature": 15.0},
        ],
        "avg": 13.3,
    }
    for event in events:
        assert "Duck-secret-pw-5521" not in json.dumps(asdict(event), default=str)


def test_a_credential_that_is_not_postgres_is_refused_with_the_supported_types(store: Any) -> None:
    store.put_credential("api_token", "bearer", {"token": "abc-123-secret"})
    outcome, events = run_text(store, ATTACH.replace("pg_auth: pg_local", "pg_auth: api_token"))
    assert outcome.status == "FAILED"
    error = next(e for e in events if e.event_type == "step_failed").error or ""
    assert "type bearer" in error and "supports credentials of type postgres" in error
    assert "action_retry" not in types_of(events)


COPY = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_copy}
workload: {out: OUT}
workflow:
  - step: start
    next: [{step: export}]
  - step: export
    type: duckdb
    command: |
      CREATE TABLE numbers AS SELECT range AS n, range * range AS square FROM range(5);
      COPY (SELECT * FROM numbers ORDER BY n) TO '{{ workload.out }}' (FORMAT parquet);
    next: [{step: end}]
  - step: end
"""


def test_copy_to_a_parquet_file(store: Any, tmp_path: Path) -> None:
    out = tmp_path / "numbers.parquet"
    outcome, events = run_text(store, COPY.replace("OUT", str(out)))
    assert outcome.status == "COMPLETED", outcome.error
    result = next(e for e in events if e.event_type == "action_completed").result
    assert result["command_1"]["row_count"] == 5
    with duckdb.connect() as con:
        rows = con.execute("SELECT n, square FROM read_parquet(?) ORDER BY n", [str(out)]).fetchall()
    assert rows == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]


def test_a_bad_duckdb_statement_fails_the_step_and_names_it(store: Any) -> None:
    playbook = COPY.replace(
        "COPY (SELECT * FROM numbers ORDER BY n) TO '{{ workload.out }}' (FORMAT parquet);",
        "SELECT * FROM no_such_table;",
    )
    outcome, events = run_text(store, playbook)
    assert outcome.status == "FAILED"
    error = next(e for e in events if e.event_type == "step_failed").error or ""
    assert "command_1 (statement 2 of 2) failed: CatalogException" in error and "no_such_table" in error
    assert types_of(events)[-1] == "execution_failed"


SAVE = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_save}
workload: {db: DATABASE, value: first}
workflow:
  - step: start
    next: [{step: prepare}]
  - step: prepare
    type: duckdb
    database: "{{ workload.db }}"
    command: CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY, note text, meta json)
    next: [{step: produce}]
  - step: produce
    type: python
    data: {value: "{{ workload.value }}"}
    code: |
      def main(value):
          return {"id": 1, "note": value, "meta": {"length": len(value)}}
    save:
      storage: duckdb
      database: "{{ workload.db }}"
      table: main.notes
      mode: upsert
      key: id
      args: {id: "{{ this.id }}", note: "{{ this.note }}", meta: "{{ this.meta }}"}
    next: [{step: end}]
  - step: end
"""


def test_a_duckdb_upsert_save_run_twice_leaves_one_row(store: Any, tmp_path: Path) -> None:
    database = tmp_path / "notes.duckdb"
    playbook = SAVE.replace("DATABASE", str(database))
    first, _ = run_text(store, playbook)
    second, events = run_text(store, playbook, {"value": "x'); DROP TABLE notes; --"})
    assert (first.status, second.status) == ("COMPLETED", "COMPLETED"), second.error
    assert next(e for e in events if e.event_type == "save_completed").meta["rows"] == 1
    with duckdb.connect(str(database)) as con:
        rows = con.execute("SELECT id, note, meta->>'length' FROM notes").fetchall()
    assert rows == [(1, "x'); DROP TABLE notes; --", "25")]


def test_a_duckdb_save_that_breaks_a_constraint_is_save_failed(store: Any, tmp_path: Path) -> None:
    database = tmp_path / "notes.duckdb"
    playbook = SAVE.replace("DATABASE", str(database)).replace("mode: upsert", "mode: insert")
    assert run_text(store, playbook)[0].status == "COMPLETED"
    outcome, events = run_text(store, playbook)
    assert outcome.status == "FAILED"
    types = types_of(events, "produce")
    assert types[types.index("save_started") :] == [
        "save_started",
        "save_failed",
        "action_error",
        "step_failed",
    ]
    failed = next(e for e in events if e.event_type == "save_failed")
    assert failed.meta["reason"] == "target_error" and "ConstraintException" in (failed.error or "")
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (1,)


def test_a_duckdb_statement_save_binds_names_from_args(store: Any, tmp_path: Path) -> None:
    database = tmp_path / "notes.duckdb"
    playbook = SAVE.replace("DATABASE", str(database)).replace(
        "      table: main.notes\n      mode: upsert\n      key: id\n",
        "      mode: statement\n"
        "      statement: \"INSERT INTO notes (id, note) VALUES (:id, :note || ' (' || ':id' || ')')\"\n",
    )
    outcome, _ = run_text(store, playbook, {"value": "bound"})
    assert outcome.status == "COMPLETED", outcome.error
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT id, note FROM notes").fetchall() == [(1, "bound (:id)")]
