"""COMPAT.md rows "Actions", "What stays an error" and "Results that differ on purpose": one fixture
playbook per row (tests/fixtures/compat/action_*.yaml and result_*.yaml), each run here for real, and
checked for what it means: rows in the databases, headers the server got, values masked in events.

Rows that are load-time errors are fixtures in tests/fixtures/malformed/ (51 and up), which
tests/e2e/test_malformed_playbooks.py runs with `noetl validate` and `noetl run`.
"""

from __future__ import annotations

import base64
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from noetl.dsl import load_playbook
from noetl.engine.events import Event
from tests.conftest import pg_fields
from tests.helpers import REPO, cli, one, run_file, run_text, types_of

COMPAT = REPO / "tests" / "fixtures" / "compat"
MALFORMED = REPO / "tests" / "fixtures" / "malformed"
MINE = sorted([*COMPAT.glob("action_*.yaml"), *COMPAT.glob("result_*.yaml")])
INJECTION = "x'); DROP TABLE t; --"


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default DuckDB files (one per execution, under the temp folder) go to this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _text(name: str, *replacements: tuple[str, str]) -> str:
    """A fixture's text, with each (old, new) replaced; an `old` that is not there fails the test."""
    text = (COMPAT / name).read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def _stored(events: list[Event]) -> str:
    """Every stored event as JSON text, to look for values that must never be there."""
    assert events
    return "\n".join(json.dumps(e.to_dict(), default=str, ensure_ascii=False) for e in events)


def _duck_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _pg_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _of(events: list[Event], event_type: str, node: str) -> list[Event]:
    return [e for e in events if e.event_type == event_type and e.node_name == node]


# ---- every fixture is a valid playbook -------------------------------------------------------------


def test_the_fixtures_are_there() -> None:
    assert len(MINE) >= 18, [p.name for p in MINE]


@pytest.mark.parametrize("path", MINE, ids=[p.stem for p in MINE])
def test_every_fixture_validates(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# COMPAT "), f"{path.name} must begin with a comment naming its COMPAT row"
    proc = cli("validate", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# ---- command_b64 / commands_b64 ---------------------------------------------------------------------


def test_command_b64_and_commands_b64_are_decoded_at_load_and_run_on_duckdb(store: Any) -> None:
    playbook = load_playbook(COMPAT / "action_command_b64_duckdb.yaml")
    load, query = playbook.steps["load"].task.config, playbook.steps["query"].task.config
    assert set(load) == {"command"} and load["command"].startswith("CREATE TABLE t (city VARCHAR")
    assert query == {
        "commands": ["SELECT city, temp FROM t ORDER BY temp DESC", "SELECT count(*) AS n FROM t"]
    }

    outcome, events = run_file(store, COMPAT / "action_command_b64_duckdb.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "load").result["command_1"]["row_count"] == 2
    result = one(events, "action_completed", "query").result
    # Lisbon: the decoded SQL was rendered like any command ({{ workload.city }}).
    assert result["command_0"]["rows"] == [{"city": "Lisbon", "temp": 21}, {"city": "Oslo", "temp": 4}]
    assert result["command_1"]["rows"] == [{"n": 2}]


def test_commands_b64_runs_on_postgres(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    outcome, events = run_file(store, COMPAT / "action_command_b64_postgres.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    assert _pg_rows(pg_dsn, "SELECT city, temp FROM t ORDER BY temp DESC") == [("Lisbon", 21), ("Oslo", 4)]
    rows = one(events, "action_completed", "query").result["command_0"]["rows"]
    assert rows == [{"city": "Lisbon", "temp": 21}, {"city": "Oslo", "temp": 4}]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("54_command_and_command_b64.yaml", ":14: step 'count': both `command` and `command_b64` are given"),
        ("58_command_b64_invalid.yaml", ":13: step 'count': `command_b64` is not valid base64"),
    ],
)
def test_both_sql_forms_or_bad_base64_is_one_problem_at_its_line(fixture: str, message: str) -> None:
    """The fixture runs with the malformed suite too; here: that problem alone, no "unknown key
    `command_b64`" or "needs `command`" beside it."""
    proc = cli("validate", str(MALFORMED / fixture))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "(1 problem(s))" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


def test_commands_b64_list_with_one_bad_entry_is_an_error(tmp_path: Path) -> None:
    good = base64.b64encode(b"SELECT 1 AS one").decode()
    path = tmp_path / "bad_list.yaml"
    path.write_text(
        _text(
            "action_command_b64_duckdb.yaml",
            ("      - U0VMRUNUIGNvdW50KCopIEFTIG4gRlJPTSB0\n", f"      - '{good}'\n      - not*base64\n"),
        )
    )
    proc = cli("validate", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "step 'query': `commands_b64` is not valid base64" in proc.stderr, proc.stderr


# ---- python globals ---------------------------------------------------------------------------------


def test_python_code_reads_context_and_unimported_modules_and_cannot_change_what_others_see(
    store: Any,
) -> None:
    outcome, events = run_file(store, COMPAT / "action_python_globals.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    used = one(events, "action_completed", "use_globals").result
    assert used == {
        "region": "eu-west",
        "cities": ["Lisbon", "Oslo"],
        "label_in_context": "from eu-west",
        "assigned": "TypeError",
        "execution_id": outcome.execution_id,
        "json": '{"k": [1, 2]}',
        "year_ok": True,
        "uuid_len": 36,
        "os_sep": "/",
        "env_path_set": True,
    }
    after = one(events, "action_completed", "after").result
    assert after == {"produce": {"count": 2, "tags": ["a"]}, "region": "eu-west"}
    assert one(events, "step_completed", "produce").result == {"count": 2, "tags": ["a"]}
    # Six items at once, each sleeping between two reads of `context`: each sees its own element.
    assert one(events, "step_completed", "each").result == [{"first": n, "later": n} for n in range(1, 7)]


# ---- postgres from db_* inputs ----------------------------------------------------------------------

PG_PASSWORD = "compat-pw-123"
LITERAL_PASSWORD = "compat-pw-literal-456"


@pytest.fixture
def pg_role(pg_dsn: str) -> Any:
    """A login role with a password (the test server trusts every login: what matters is masking)."""
    role = f"compat_user_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PG_PASSWORD}' SUPERUSER")
    yield role
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_postgres_connects_from_db_inputs_and_never_shows_the_password(
    store: Any, pg_dsn: str, pg_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPAT_PG_PASSWORD", PG_PASSWORD)
    fields = pg_fields(pg_dsn)
    payload = {
        "pg_host": fields["db_host"],
        "pg_port": fields["db_port"],
        "pg_user": pg_role,
        "pg_db": fields["db_name"],
    }
    outcome, events = run_file(store, COMPAT / "action_postgres_db_inputs.yaml", payload)
    assert outcome.status == "COMPLETED", outcome.error
    created = one(events, "action_completed", "create").result
    assert created["command_2"]["rows"] == [{"who": pg_role, "db": fields["db_name"]}]
    assert one(events, "action_completed", "literal").result["command_0"]["rows"] == [{"n": 1}]
    assert _pg_rows(pg_dsn, "SELECT who FROM visits") == [(pg_role,)]
    for step in ("create", "literal"):
        assert one(events, "action_started", step).context["inputs"]["db_password"] == "***"
    stored = _stored(events)
    assert PG_PASSWORD not in stored and LITERAL_PASSWORD not in stored


def test_a_wrong_db_host_input_fails_and_the_error_hides_the_password(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPAT_PG_PASSWORD", PG_PASSWORD)
    payload = {"pg_host": "127.0.0.1", "pg_port": 1, "pg_user": "nobody", "pg_db": "none"}
    outcome, events = run_file(store, COMPAT / "action_postgres_db_inputs.yaml", payload)
    assert outcome.status == "FAILED"
    assert "127.0.0.1" in (one(events, "step_failed", "create").error or "")
    assert PG_PASSWORD not in _stored(events)


def test_db_inputs_validate_warns_to_use_a_credential() -> None:
    proc = cli("validate", str(COMPAT / "action_postgres_db_inputs.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3, proc.stderr
    for step, warning in zip(("create", "literal"), warnings[:2], strict=True):
        assert f"step '{step}'" in warning and "store it as a credential" in warning
        assert "`auth: NAME`" in warning
    # `'{{ db_user }}'` in the SQL: the template pastes the value; a :name bind would send it apart
    assert "step 'literal': a template inside a SQL string literal" in warnings[2]
    assert "write `:db_user` in place of `'{{ db_user }}'`" in warnings[2]
    strict = cli("validate", "--strict", str(COMPAT / "action_postgres_db_inputs.yaml"))
    assert strict.returncode == 2, strict.stdout + strict.stderr


# ---- auth shorthands and one-alias maps -------------------------------------------------------------

TOKEN = "compat-token-Zq81"
INLINE_PASSWORD = "inline-pw-789"


def test_auth_shorthands_credential_env_and_inline_each_work(
    store: Any, pg_dsn: str, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = load_playbook(COMPAT / "action_auth_shorthands.yaml")
    assert playbook.steps["who"].task.auth == {"type": "postgres", "source": "credential", "key": "pg_compat"}
    assert playbook.steps["bearer"].task.auth == {
        "type": "bearer",
        "source": "env",
        "name": "COMPAT_API_TOKEN",
    }

    store.put_credential("pg_compat", "postgres", pg_fields(pg_dsn))
    monkeypatch.setenv("COMPAT_API_TOKEN", TOKEN)
    server.expect_request("/bearer").respond_with_json({"ok": "bearer"})
    server.expect_request("/basic").respond_with_json({"ok": "basic"})
    base_url = server.url_for("").rstrip("/")
    outcome, events = run_file(store, COMPAT / "action_auth_shorthands.yaml", {"base_url": base_url})
    assert outcome.status == "COMPLETED", outcome.error
    assert one(events, "action_completed", "who").result["command_0"]["rows"] == [
        {"db": pg_fields(pg_dsn)["db_name"]}
    ]
    got = {request.path: request.headers.get("Authorization") for request, _ in server.log}
    basic = base64.b64encode(f"compat:{INLINE_PASSWORD}".encode()).decode()
    assert got == {"/bearer": f"Bearer {TOKEN}", "/basic": f"Basic {basic}"}
    stored = _stored(events)
    assert TOKEN not in stored and INLINE_PASSWORD not in stored


def test_a_one_alias_map_is_the_credential_of_a_postgres_step_and_a_postgres_save(
    store: Any, pg_dsn: str
) -> None:
    playbook = load_playbook(COMPAT / "action_auth_one_alias.yaml")
    assert playbook.steps["create"].task.auth == {"type": "postgres", "key": "pg_local"}
    save = playbook.steps["produce"].task.save
    assert save is not None and save.auth == {"type": "postgres", "key": "pg_local"}

    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    outcome, events = run_file(store, COMPAT / "action_auth_one_alias.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    assert _pg_rows(pg_dsn, "SELECT step, db FROM marks") == [("produce", "aliased")]
    assert one(events, "save_completed", "produce").meta["rows"] == 1


def test_duckdb_cloud_aliases_load_as_one_secret_per_alias() -> None:
    """Run against an S3-compatible server in tests/integration/test_duckdb_cloud.py."""
    auth = load_playbook(COMPAT / "action_duckdb_cloud_aliases.yaml").steps["export"].task.auth
    assert list(auth) == ["gcs_secret", "hmac_secret", "gcs_plain", "lake", "pg_db"]
    assert auth["hmac_secret"] == {"type": "hmac", "source": "credential", "key": "other_hmac"}
    assert auth["lake"]["endpoint"] == "{{ workload.endpoint }}" and auth["lake"]["url_style"] == "path"


def test_google_and_snowflake_fixtures_load_with_secret_name_as_name() -> None:
    """Their runs (with and without the extras) are in tests/integration/test_extras.py."""
    google = load_playbook(COMPAT / "action_secrets_google.yaml").steps["get_key"].task.config
    assert google == {"name": "api_key", "provider": "google", "project_id": "my-gcp-project"}
    snowflake = load_playbook(COMPAT / "action_snowflake.yaml").steps["load"].task
    assert snowflake.type == "snowflake" and snowflake.auth == "sf"


# ---- Jinja in save statements and the duckdb save script ------------------------------------------


def test_jinja_in_a_per_item_save_statement_is_rendered_and_binds_stay_parameters(
    store: Any, pg_dsn: str, tmp_path: Path
) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    duck = tmp_path / "weather.duckdb"
    outcome, events = run_file(store, COMPAT / "action_save_statement_jinja.yaml", {"duck_db": str(duck)})
    assert outcome.status == "COMPLETED", outcome.error
    expected = [("Lisbon", 21), (INJECTION, 7), ("O'Hare", 4)]
    assert _pg_rows(pg_dsn, "SELECT city, temp FROM weather ORDER BY temp DESC") == expected
    assert _duck_rows(duck, "SELECT city, temp FROM weather ORDER BY temp DESC") == expected
    assert _pg_rows(pg_dsn, "SELECT count(*) FROM t") == [(0,)]  # still there: the value was only a value
    assert _duck_rows(duck, "SELECT count(*) FROM t") == [(0,)]
    for step in ("to_pg", "to_duck"):
        saved = _of(events, "save_completed", step)
        assert sorted(e.current_index or 0 for e in saved) == [0, 1, 2]
        assert all(e.meta["rows"] == 1 for e in saved)
        assert not _of(events, "save_error", step) and not _of(events, "save_failed", step)


def test_an_undefined_name_in_a_save_statement_fails_the_save_the_item_and_the_run(
    store: Any, tmp_path: Path
) -> None:
    duck = tmp_path / "weather.duckdb"
    outcome, events = run_file(store, COMPAT / "action_save_statement_undefined.yaml", {"duck_db": str(duck)})
    assert outcome.status == "FAILED"
    errors = _of(events, "save_error", "to_duck")
    assert len(errors) == 1 and errors[0].current_index == 0
    error = errors[0].error or ""
    assert "has no attribute 'tabel'" in error and "the fields there are: cities, duck_db, table" in error
    assert "available names:" in error and "workload" in error.split("available names:")[1]
    assert not _of(events, "save_completed", "to_duck")
    assert "iteration_failed" in types_of(events, "to_duck")
    assert "item 0" in (one(events, "step_failed", "to_duck").error or "")
    assert "step_completed" not in types_of(events, "to_duck")
    assert _duck_rows(duck, "SELECT count(*) FROM weather") == [(0,)]


def test_duckdb_save_script_runs_once_templated_with_the_data_in_scope(store: Any, tmp_path: Path) -> None:
    spec = load_playbook(COMPAT / "action_duckdb_save_script.yaml").steps["measure"].task.save
    assert spec is not None and (spec.storage, spec.mode) == ("duckdb", "script")

    duck = tmp_path / "readings.duckdb"
    outcome, events = run_file(store, COMPAT / "action_duckdb_save_script.yaml", {"duck_db": str(duck)})
    assert outcome.status == "COMPLETED", outcome.error
    # {{ data.table }} and {{ label }} rendered; :city and :temp bound (the quote in O'Hare is data).
    rows = _duck_rows(duck, "SELECT city, temp, label FROM readings")
    assert rows == [("O'Hare", 4, f"run {outcome.execution_id}")]
    completed = one(events, "save_completed", "measure")
    assert completed.meta["storage"] == "duckdb"


def test_an_undefined_name_in_a_save_script_fails_the_save_naming_it(store: Any, tmp_path: Path) -> None:
    text = _text("action_duckdb_save_script.yaml", ("'{{ label }}'", "'{{ lable }}'"))
    duck = tmp_path / "readings.duckdb"
    outcome, events = run_text(store, text, {"duck_db": str(duck)})
    assert outcome.status == "FAILED"
    error = one(events, "save_error", "measure").error or ""
    assert "'lable' is undefined" in error
    assert "label" in {n.strip() for n in error.split("available names:")[1].split(",")}
    assert "save_completed" not in types_of(events, "measure")
    assert "step_completed" not in types_of(events, "measure")
    assert not duck.exists() or _duck_rows(duck, "SELECT count(*) FROM duckdb_tables()") == [(0,)]


# ---- secret_name in a workbook entry ----------------------------------------------------------------

WB_VALUE = "wb-secret-välue-314"


def test_secret_name_in_a_workbook_entry_reaches_the_next_step_masked_in_events(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = load_playbook(COMPAT / "action_secret_name_workbook.yaml").workbook["read_value"]
    assert entry.config == {"name": "COMPAT_WB_VALUE", "provider": "env"}

    monkeypatch.setenv("COMPAT_WB_VALUE", WB_VALUE)
    outcome, events = run_file(store, COMPAT / "action_secret_name_workbook.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    used = one(events, "action_completed", "use").result
    assert used == {"length": len(WB_VALUE), "tail": "314", "echo": "value is ***"}
    assert WB_VALUE not in _stored(events)


# ---- what stays an error, at run time ---------------------------------------------------------------


def test_an_undefined_field_in_a_template_fails_naming_it_and_the_fields_there(store: Any) -> None:
    outcome, events = run_file(store, COMPAT / "result_undefined_name.yaml")
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "greet").error or ""
    assert "'hello {{ workload.cty }}'" in error and "has no attribute 'cty'" in error
    assert "the fields there are: city, region" in error
    assert not _of(events, "action_completed", "greet"), "the step's code must not run"
    assert '"hello "' not in _stored(events), "the template must not be rendered as 'hello '"


def test_an_undefined_name_in_a_template_fails_naming_it_and_the_names_available(store: Any) -> None:
    text = _text("result_undefined_name.yaml", ("{{ workload.cty }}", "{{ regoin }}"))
    outcome, events = run_text(store, text)
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "greet").error or ""
    assert "'regoin' is undefined" in error
    available = error.split("available names:")[1]
    assert {"workload", "execution_id", "env", "start"} <= {n.strip() for n in available.split(",")}
    assert not _of(events, "action_completed", "greet")


PG_SAVE = (
    '        storage: duckdb\n        database: "{{ workload.duck_db }}"\n',
    "        storage: postgres\n        auth: pg_local\n",
)


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_a_save_the_target_refuses_fails_the_item_and_the_execution(
    target: str, store: Any, pg_dsn: str, tmp_path: Path
) -> None:
    duck = tmp_path / "weather.duckdb"
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE weather (city text NOT NULL, temp int NOT NULL)")
    text = _text("result_save_refused.yaml", *([PG_SAVE] if target == "postgres" else []))
    outcome, events = run_text(store, text, {"duck_db": str(duck)})
    assert outcome.status == "FAILED"
    failed = _of(events, "save_failed", "to_table")
    assert [e.current_index for e in failed] == [1]
    assert failed[0].meta["reason"] == "target_error"
    error = (failed[0].error or "").lower()
    assert "temp" in error and ("not null" in error or "null value" in error), error
    assert [e.current_index for e in _of(events, "save_completed", "to_table")] == [0]
    assert [e.current_index for e in _of(events, "iteration_failed", "to_table")] == [1]
    assert "item 1" in (one(events, "step_failed", "to_table").error or "")
    assert "step_completed" not in types_of(events, "to_table")
    rows = (
        _pg_rows(pg_dsn, "SELECT city, temp FROM weather")
        if target == "postgres"
        else _duck_rows(duck, "SELECT city, temp FROM weather")
    )
    assert rows == [("Lisbon", 21)]


def test_a_save_the_target_refuses_fails_the_step_and_the_next_step_never_runs(
    store: Any, tmp_path: Path
) -> None:
    duck = tmp_path / "weather.duckdb"
    outcome, events = run_file(store, COMPAT / "result_save_refused_step.yaml", {"duck_db": str(duck)})
    assert outcome.status == "FAILED"
    failed = one(events, "save_failed", "measure")
    assert failed.meta["reason"] == "target_error" and "NOT NULL" in (failed.error or "")
    assert "save_completed" not in types_of(events, "measure")
    assert "step_completed" not in types_of(events, "measure")
    assert "NOT NULL" in (one(events, "step_failed", "measure").error or "")
    assert not types_of(events, "report"), "the step after a failed save must not run"
    assert _duck_rows(duck, "SELECT count(*) FROM weather") == [(0,)]


def test_save_data_beside_a_storage_mapping_is_written_with_the_inside_winning(
    store: Any, tmp_path: Path
) -> None:
    spec = load_playbook(COMPAT / "result_save_data_beside_storage.yaml").steps["measure"].task.save
    assert spec is not None and (spec.storage, spec.table) == ("duckdb", "weather")

    duck = tmp_path / "weather.duckdb"
    outcome, events = run_file(store, COMPAT / "result_save_data_beside_storage.yaml", {"duck_db": str(duck)})
    assert outcome.status == "COMPLETED", outcome.error
    assert _duck_rows(duck, "SELECT city, temp FROM weather") == [("Lisbon", 21)]
    assert one(events, "save_completed", "measure").meta["rows"] == 1


# ---- results that differ on purpose -----------------------------------------------------------------


def _weather(request: Request) -> Response:
    city = request.args.get("city", "")
    temps = {"Lisbon": 21, "Oslo": 4}
    return Response(json.dumps({"city": city, "temp": temps.get(city)}), content_type="application/json")


def test_an_http_result_is_the_response_and_this_url_is_its_url_in_a_per_item_save(
    store: Any, server: HTTPServer
) -> None:
    server.expect_request("/weather").respond_with_handler(_weather)
    base_url = server.url_for("").rstrip("/")
    outcome, events = run_file(store, COMPAT / "result_http_shape.yaml", {"base_url": base_url})
    assert outcome.status == "COMPLETED", outcome.error
    shape = one(events, "action_completed", "shape").result
    assert shape == {
        "keys": ["data", "elapsed", "headers", "status_code", "url"],
        "status_code": 200,
        "url": f"{base_url}/weather?city=Lisbon",
        "temp": 21,
    }
    fetched = one(events, "action_completed", "fetch").result
    assert fetched["data"] == {"city": "Lisbon", "temp": 21}
    saved = sorted(_of(events, "save_completed", "each_city"), key=lambda e: e.current_index or 0)
    assert [e.result for e in saved] == [
        [{"url": f"{base_url}/weather?city=Lisbon", "status": 200, "temp": 21}],
        [{"url": f"{base_url}/weather?city=Oslo", "status": 200, "temp": 4}],
    ]


def test_this_data_url_in_a_per_item_save_fails_naming_the_field_and_the_fields_there(
    store: Any, server: HTTPServer
) -> None:
    server.expect_request("/weather").respond_with_handler(_weather)
    base_url = server.url_for("").rstrip("/")
    outcome, events = run_file(store, COMPAT / "result_http_this_data_url.yaml", {"base_url": base_url})
    assert outcome.status == "FAILED"
    error = one(events, "save_error", "each_city").error or ""
    assert "{{ this.data.url }}" in error and "has no attribute 'url'" in error
    assert "the fields there are: city, temp" in error
    assert not _of(events, "save_completed", "each_city")
    assert "item 0" in (one(events, "step_failed", "each_city").error or "")
