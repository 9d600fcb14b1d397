"""COMPAT.md, sections "Document level" and "Steps and transitions": one fixture playbook per row, in
tests/fixtures/compat/ (doc_*.yaml, step_*.yaml), validated and run for real; each test checks what
the row means here, not only that the playbook loads."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pytest_httpserver import HTTPServer

from noetl.dsl import load_playbook
from noetl.engine.events import Event
from noetl.errors import PlaybookError
from tests.helpers import cli, one, run_file, run_text, types_of

COMPAT = Path(__file__).resolve().parent.parent / "fixtures" / "compat"
ROUTER = ["step_started", "step_completed"]
ACTION = ["step_started", "action_started", "action_completed", "step_completed"]


def fixture(name: str) -> Path:
    return COMPAT / name


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of a fixture with one piece of text replaced (which must be there exactly once)."""
    text = fixture(name).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {name} exactly once"
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` that starts with `text`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def events_json(events: list[Event]) -> str:
    """Every stored event, every field, as one JSON text (to search for what must not be there)."""
    return json.dumps([asdict(e) for e in events], default=str)


def step_result(events: list[Event], node: str) -> Any:
    return one(events, "step_completed", node).result


# ---- Document level ---------------------------------------------------------------------------------


def test_top_level_path_and_description_are_read_with_the_documented_precedence(
    store: Any, tmp_path: Path
) -> None:
    path = fixture("doc_top_level_identity.yaml")
    pb = load_playbook(path)
    assert (pb.name, pb.path) == ("compat_metadata_name", "compat/top_level_path")
    assert pb.description is not None and pb.description.startswith("A playbook placed in the catalog")
    outcome, events = run_file(store, path)
    assert outcome.status == "COMPLETED", outcome.error
    assert events[0].node_id == "compat/top_level_path"
    [record] = [r for r in store.executions() if r.execution_id == outcome.execution_id]
    assert record.playbook_path == "compat/top_level_path"

    # without a path anywhere, metadata.name; without metadata, the top-level name
    no_path = variant(tmp_path, "doc_top_level_identity.yaml", "path: compat/top_level_path\n", "")
    assert load_playbook(no_path).path == "compat_metadata_name"
    top_name = variant(
        tmp_path, "doc_top_level_identity.yaml", "metadata:\n  name: compat_metadata_name\n", "name: top\n"
    )
    assert (load_playbook(top_name).name, load_playbook(top_name).path) == ("top", "compat/top_level_path")
    only_top_name = tmp_path / "only_name.yaml"
    only_top_name.write_text(top_name.read_text().replace("path: compat/top_level_path\n", ""))
    assert load_playbook(only_top_name).path == "top"
    # metadata.path beats the top-level name (and the same path in both places is no conflict)
    meta_path = variant(
        tmp_path,
        "doc_top_level_identity.yaml",
        "  name: compat_metadata_name\n",
        "  name: compat_metadata_name\n  path: compat/top_level_path\n",
    )
    assert load_playbook(meta_path).path == "compat/top_level_path"


def test_validate_warns_prefer_metadata_and_strict_refuses_it() -> None:
    path = fixture("doc_top_level_identity.yaml")
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "valid (2 steps, 2 warning(s))" in done.stdout
    warned = warnings_of(done.stderr)
    assert warned == [
        f"warning: {path}:{line_of(path, 'path: compat/')}: top-level `path`: prefer `metadata: {{path: ...}}`",
        f"warning: {path}:{line_of(path, 'description:')}: top-level `description`: "
        "prefer `metadata: {description: ...}`",
    ]
    strict = cli("validate", "--strict", str(path))
    assert strict.returncode == 2
    assert "prefer `metadata: {path: ...}`" in strict.stderr.split("error:", 1)[1]


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("kind: Playbook\n", "kind: Playbook\nname: another_name\n", "name"),
        ("  name: compat_metadata_name\n", "  name: compat_metadata_name\n  path: other/path\n", "path"),
    ],
)
def test_a_key_given_twice_with_two_values_is_an_error(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = variant(tmp_path, "doc_top_level_identity.yaml", old, new)
    done = cli("validate", str(path))
    assert done.returncode == 2
    assert f"`{key}` is given twice" in done.stderr and "keep the one under `metadata`" in done.stderr
    with pytest.raises(PlaybookError):
        load_playbook(path)


def test_workload_templates_are_rendered_once_at_start(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPAT_WL_PGHOST", raising=False)
    outcome, events = run_file(store, fixture("doc_workload_templates.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    eid = outcome.execution_id
    shown = step_result(events, "show")
    assert shown == {
        "run_id": eid,
        "pg_host": "localhost",
        "table": "sales.orders",
        "label": "orders of sales on localhost",
        "note": "plain text",
        "run_id_is_execution_id": True,
    }
    start = events[0]
    assert start.event_type == "execution_start"
    assert start.context is not None
    assert start.context["workload"] == {
        "run_id": eid,
        "pg_host": "localhost",
        "schema": "sales",
        "table": "sales.orders",
        "label": "orders of sales on localhost",
        "note": "plain text",
    }
    assert "{{" not in events_json(events)

    # the environment of the run counts; a payload value is data, even with `{{` in it
    monkeypatch.setenv("COMPAT_WL_PGHOST", "db.internal")
    outcome, events = run_file(
        store,
        fixture("doc_workload_templates.yaml"),
        {"note": "{{ not_rendered }}", "schema": "{{ nor_this }}"},
    )
    assert outcome.status == "COMPLETED", outcome.error
    shown = step_result(events, "show")
    assert shown["pg_host"] == "db.internal" and shown["label"] == "orders of {{ nor_this }} on db.internal"
    assert shown["note"] == "{{ not_rendered }}" and shown["table"] == "{{ nor_this }}.orders"
    assert events[0].context is not None and events[0].context["workload"]["note"] == "{{ not_rendered }}"


def test_an_undefined_name_in_the_workload_fails_the_run_before_anything_runs(tmp_path: Path) -> None:
    path = variant(tmp_path, "doc_workload_templates.yaml", "'{{ schema }}.orders'", "'{{ shema }}.orders'")
    db = tmp_path / "store.db"
    done = cli("run", str(path), "--db", str(db))
    assert done.returncode == 2, done.stderr
    message = done.stderr
    assert "workload key 'table'" in message and "'shema' is undefined" in message
    assert "available names: env, execution_id, job, note, schema, work, workload" in message
    listed = cli("executions", "--db", str(db))
    assert "no executions yet in" in listed.stdout, "no execution was started"
    # a workload key that is itself a template is not a plain value the others may read
    templated = variant(tmp_path, "doc_workload_templates.yaml", "'{{ schema }}.orders'", "'{{ pg_host }}'")
    done = cli("run", str(templated), "--db", str(db))
    assert done.returncode == 2 and "workload key 'table'" in done.stderr and "'pg_host'" in done.stderr
    # a template syntax error in the workload is found at load time, at its line
    broken = variant(tmp_path, "doc_workload_templates.yaml", "'{{ schema }}.orders'", "'{{ schema }.orders'")
    done = cli("validate", str(broken))
    assert done.returncode == 2
    assert f"{broken}:{line_of(broken, '  table:')}: template syntax error" in done.stderr


def test_job_uuid_and_job_id_are_the_execution_id_in_every_step(store: Any) -> None:
    outcome, events = run_file(store, fixture("doc_job_uuid.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    eid = outcome.execution_id
    assert step_result(events, "first") == {"uuid": eid, "id": eid}
    assert step_result(events, "second") == {"uuid": eid, "id": eid, "same_as_first": True}
    assert outcome.result["label"] == f"run {eid}"
    # a second execution has its own id
    again, _ = run_file(store, fixture("doc_job_uuid.yaml"))
    assert again.result["first"]["uuid"] == again.execution_id != eid


def test_validate_notes_that_execution_id_is_the_clearer_name() -> None:
    path = fixture("doc_job_uuid.yaml")
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    warned = warnings_of(done.stderr)
    assert len(warned) == 5
    first = line_of(path, '    data: {uuid: "{{ job.uuid }}", id:')
    assert warned[0].startswith(f"warning: {path}:{first}: `job.uuid` is the execution's id here")
    assert all("`execution_id` is the clearer name" in w for w in warned)
    assert sum("`job.id`" in w for w in warned) == 2
    assert cli("validate", "--strict", str(path)).returncode == 2


ENV_TOKEN_NAME = "COMPAT_ENV_API_TOKEN"


def env_for(route: str, token: str) -> dict[str, str]:
    return {"COMPAT_ENV_ROUTE": route, "COMPAT_ENV_GREETING": "hej", ENV_TOKEN_NAME: token}


def test_env_is_readable_in_every_template_and_secret_values_never_reach_events(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    for name, value in env_for("secure", token).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NOETL_TEMPLATE_ENV", raising=False)
    outcome, events = run_file(store, fixture("doc_env_names.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {
        "secure": {
            "route": "secure",
            "greeting": "hej",
            "token_length": len(token),
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
            "header_has_token": True,
        },
        "plain": None,
        "greeted": "hej, world",
    }
    assert types_of(events, "plain") == [], "the `when` reading env chose the secure branch only"
    assert token not in events_json(events)
    started = one(events, "action_started", "secure")
    assert started.context == {"inputs": {"greeting": "hej", "token": "***", "header": "Bearer ***"}}
    assert events[0].context is not None and events[0].context["workload"] == {"auth_header": "Bearer ***"}

    monkeypatch.setenv("COMPAT_ENV_ROUTE", "plain")
    outcome, events = run_file(store, fixture("doc_env_names.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "secure") == [] and step_result(events, "plain")["route"] == "plain"


def test_noetl_template_env_limits_what_env_exposes(tmp_path: Path) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    db = str(tmp_path / "store.db")
    path = str(fixture("doc_env_names.yaml"))
    allowed = cli(
        "run",
        path,
        "--db",
        db,
        "--json",
        env={**env_for("secure", token), "NOETL_TEMPLATE_ENV": "COMPAT_ENV_*"},
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["result"]["secure"]["token_length"] == len(token)
    assert token not in allowed.stdout + allowed.stderr
    narrowed = {**env_for("secure", token), "NOETL_TEMPLATE_ENV": "COMPAT_ENV_ROUTE, COMPAT_ENV_GR*"}
    hidden = cli("run", path, "--db", db, "--json", env=narrowed)
    assert hidden.returncode == 1
    error = json.loads(hidden.stdout)["error"]
    assert "COMPAT_ENV_API_TOKEN" in error and "undefined" in error
    assert token not in hidden.stdout + hidden.stderr
    # the variables the patterns match still work (route and greeting), others are not there at all
    listed = re.search(r"the fields there are: ([^;)]*)", error)
    assert listed is not None and set(listed.group(1).split(", ")) == {
        "COMPAT_ENV_GREETING",
        "COMPAT_ENV_ROUTE",
    }


# ---- Steps and transitions --------------------------------------------------------------------------


def test_a_steps_own_name_in_its_next_is_its_result(store: Any) -> None:
    outcome, events = run_file(store, fixture("step_own_name_in_next.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert step_result(events, "report") == {"branch": "report", "count": 3, "doubled": 6}
    assert one(events, "action_started", "report").context == {"inputs": {"count": 3, "doubled": 6}}
    assert types_of(events, "skipped_branch") == []
    assert one(events, "step_completed", "start").meta["next"] == [
        {"step": "report", "data": {"count": 3, "doubled": 6}}
    ]
    # the other `when`, also reading the step's own name, takes the other branch
    outcome, events = run_file(store, fixture("step_own_name_in_next.yaml"), {"executed": False})
    assert outcome.status == "COMPLETED", outcome.error
    assert (
        types_of(events, "report") == []
        and step_result(events, "skipped_branch")["branch"] == "skipped_branch"
    )


def test_inputs_and_edge_payload_are_bare_names_in_sql_endpoint_save_and_code(
    store: Any, server: HTTPServer, tmp_path: Path
) -> None:
    server.expect_request("/repos/noetl", method="GET").respond_with_json({"stars": 42})
    database = tmp_path / "repos.duckdb"
    payload = {"base_url": server.url_for("").rstrip("/"), "db": str(database)}
    outcome, events = run_file(store, fixture("step_inputs_as_names.yaml"), payload)
    assert outcome.status == "COMPLETED", outcome.error
    # SQL: the edge payload (repo_name, stars) and the step's own input (owner, over the step `owner`)
    lookup = step_result(events, "lookup")
    assert lookup["command_1"]["rows"] == [{"repo": "noetl", "stars": 42, "owner": "the-owner-input"}]
    # endpoint: built from an input (base_url) and the edge payload (repo_name)
    [(request, _)] = server.log
    assert request.path == "/repos/noetl"
    # save: the edge payload's repo_name; `owner` is the step there (no input has that name)
    assert one(events, "save_completed", "fetch").meta["rows"] == 1
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT repo, stars, owner FROM repos").fetchall() == [
            ("noetl", 42, "the-owner-step")
        ]
    # code inputs: the payload's key rendered into another input, and passed on itself
    assert step_result(events, "summary") == {"label": "noetl has 42 stars", "repo_name": "noetl"}


def test_an_input_never_hides_the_engines_own_names(store: Any) -> None:
    """Inputs become names, but `execution_id`, `workload`, ... stay the engine's, in a step and in the
    workbook entry it calls."""
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: compat_reserved_names}
        workload: {x: 1}
        workbook:
          - name: show
            type: python
            data: {eid: "{{ execution_id }}", x: "{{ workload.x }}", label: "{{ label }}"}
            code: |
              def main(eid, x, label, **rest):
                  return {"eid": eid, "x": x, "label": label}
        workflow:
          - step: start
            next: [{step: call, data: {label: from-edge}}]
          - step: call
            type: workbook
            name: show
            data: {execution_id: not-the-id, workload: {x: 2}}
        """,
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert step_result(events, "call") == {"eid": outcome.execution_id, "x": 1, "label": "from-edge"}


def test_an_input_named_like_a_step_is_warned_about() -> None:
    path = fixture("step_inputs_as_names.yaml")
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    warned = warnings_of(done.stderr)
    assert [w for w in warned if "has the name of a step" in w] == [
        f"warning: {path}:{line_of(path, '    data: {owner: the-owner-input}')}: step 'lookup': input 'owner' "
        "has the name of "
        "a step: in this step's templates 'owner' is the input, not step 'owner''s result; rename the input "
        "to say which"
    ]
    # the fixture's SQL pastes '{{ repo_name }}' and '{{ owner }}' into string literals: each is warned about
    pasted = [w for w in warned if "a template inside a SQL string literal" in w]
    assert len(pasted) == 2 and len(warned) == 3, warned
    assert "write `:owner` in place of `'{{ owner }}'`" in pasted[1]


def test_an_edge_payload_goes_into_the_explicit_query_or_body_of_an_http_step(
    store: Any, server: HTTPServer
) -> None:
    server.expect_request("/search/Oslo", method="GET").respond_with_json({"city": "Oslo", "temp": 4})
    server.expect_request("/reports", method="POST").respond_with_json({"id": 7}, status=201)
    server.expect_request("/reports/7", method="DELETE").respond_with_json({"archived": True})
    payload = {"base_url": server.url_for("").rstrip("/")}
    outcome, events = run_file(store, fixture("step_http_explicit_query_body.yaml"), payload)
    assert outcome.status == "COMPLETED", outcome.error
    [(get, _), (post, _), (delete, _)] = server.log
    assert get.method == "GET" and get.args.to_dict(flat=False) == {"units": ["metric"], "city": ["Oslo"]}
    assert get.get_data() == b""
    assert post.method == "POST" and post.args.to_dict(flat=False) == {"dry_run": ["no"]}
    assert json.loads(post.get_data()) == {"kind": "forecast", "city": "Oslo"}
    # a workbook entry in the explicit form: the workbook step's inputs go into its query (DELETE)
    assert delete.method == "DELETE" and delete.path == "/reports/7"
    assert delete.args.to_dict(flat=False) == {"hard": ["no"], "report_id": ["7"]}
    # the inputs keep the explicit form, with the payload inside the part it went to
    assert one(events, "action_started", "search").context["inputs"] == {
        "query": {"units": "metric", "city": "Oslo"}
    }
    assert one(events, "action_started", "create").context["inputs"] == {
        "query": {"dry_run": "no"},
        "body": {"kind": "forecast", "city": "Oslo"},
    }


def test_condition_is_evaluated_like_when(store: Any) -> None:
    outcome, events = run_file(store, fixture("step_condition_alias.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "big") == ACTION and types_of(events, "small") == []
    assert one(events, "step_completed", "start").meta["next"] == [{"step": "big", "data": None}]
    outcome, events = run_file(store, fixture("step_condition_alias.yaml"), {"count": 2})
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "big") == [] and types_of(events, "small") == ACTION


def test_validate_warns_to_write_when_and_refuses_both(tmp_path: Path) -> None:
    path = fixture("step_condition_alias.yaml")
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    warned = "step 'start': `condition` is an alias of `when`; write `when:`"
    lines = [line_of(path, '      - condition: "{{ result'), line_of(path, '      - condition: "{{ start')]
    assert warnings_of(done.stderr) == [f"warning: {path}:{line}: {warned}" for line in lines]
    both = variant(
        tmp_path,
        "step_condition_alias.yaml",
        '      - condition: "{{ result.count > 3 }}"\n',
        '      - condition: "{{ result.count > 3 }}"\n        when: "{{ true }}"\n',
    )
    done = cli("validate", str(both))
    assert done.returncode == 2
    assert "both `when` and `condition` are given" in done.stderr
    # like a `when`, a condition is checked at load time for the names it reads
    unknown = variant(
        tmp_path, "step_condition_alias.yaml", "{{ start.count <= 3 }}", "{{ strat.count <= 3 }}"
    )
    with pytest.raises(PlaybookError, match="undefined name"):
        load_playbook(unknown)


def test_pass_true_skips_the_step_and_follows_its_next(store: Any, tmp_path: Path) -> None:
    outcome, events = run_file(store, fixture("step_pass_true.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "broken") == ROUTER, "no action_started: the code did not run"
    skipped = one(events, "step_completed", "broken")
    assert skipped.status == "SKIPPED" and skipped.result is None
    assert skipped.meta["next"] == [{"step": "after", "data": {"city": "Oslo", "note": "skipped before me"}}]
    assert step_result(events, "after") == {"city": "Oslo", "note": "skipped before me"}
    # `pass` is true or false; "yes" is not read as true
    wrong = variant(tmp_path, "step_pass_true.yaml", "    pass: true\n", '    pass: "yes"\n')
    done = cli("validate", str(wrong))
    assert done.returncode == 2
    assert f"{wrong}:{line_of(wrong, '    pass:')}: step 'broken': `pass` must be true" in done.stderr
    # pass: false runs the step (whose code fails)
    runs = variant(tmp_path, "step_pass_true.yaml", "    pass: true\n", "    pass: false\n")
    outcome, events = run_file(store, runs)
    assert outcome.status == "FAILED" and "a skipped step must not run" in (outcome.error or "")


def test_name_on_a_step_and_task_on_a_playbook_step_are_labels(store: Any) -> None:
    outcome, events = run_file(store, fixture("step_labels.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"total": 6}
    assert [e.node_name for e in events if e.event_type == "step_started"] == [
        "start",
        "prepare",
        "call_child",
        "end",
    ]
    assert types_of(events, "prepare") == ACTION and types_of(events, "call_child") == ACTION
    [child] = [r for r in store.executions() if r.parent_execution_id == outcome.execution_id]
    child_events = store.read(child.execution_id)
    assert [e.node_name for e in child_events if e.event_type == "step_started"] == ["start", "sum", "end"]
    assert one(child_events, "step_completed", "sum").result == {"total": 6}


def test_save_on_a_router_end_step_is_its_action(store: Any, tmp_path: Path) -> None:
    database = tmp_path / "readings.duckdb"
    outcome, events = run_file(store, fixture("step_save_on_router_end.yaml"), {"db": str(database)})
    assert outcome.status == "COMPLETED", outcome.error
    assert types_of(events, "end") == [
        "step_started",
        "action_started",
        "save_started",
        "save_completed",
        "action_completed",
        "step_completed",
    ]
    assert one(events, "save_completed", "end").meta["rows"] == 1
    assert one(events, "step_started", "end").node_type == "save"
    with duckdb.connect(str(database)) as con:
        rows = con.execute("SELECT execution_id, city, temp FROM readings").fetchall()
    assert rows == [(outcome.execution_id, "Oslo", 4)]
    # a save the target refuses fails the end step and the execution
    refused = variant(
        tmp_path, "step_save_on_router_end.yaml", "      table: readings\n", "      table: nowhere\n"
    )
    outcome, events = run_file(store, refused, {"db": str(database)})
    assert outcome.status == "FAILED"
    assert "save_failed" in types_of(events, "end") and types_of(events, "end")[-1] == "step_failed"


class AssertRun:
    """Runs step_assert_nested.yaml against the loopback server, counting the python code's calls."""

    def __init__(self, store: Any, server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.store, self.server = store, server
        self.calls = tmp_path / "calls.log"
        monkeypatch.setenv("COMPAT_ASSERT_CALLS", str(self.calls))

    def __call__(self, status: dict[str, Any] | None = None, **payload: Any) -> tuple[Any, list[Event]]:
        self.server.clear()
        self.server.expect_request("/status").respond_with_json(status or {"ok": True})
        self.calls.write_text("")
        base = {"base_url": self.server.url_for("").rstrip("/")}
        return run_file(self.store, fixture("step_assert_nested.yaml"), {**base, **payload})

    def counted(self) -> list[str]:
        return self.calls.read_text().split()


def test_assert_on_workbook_entries_iterator_tasks_and_http_steps_is_enforced(
    store: Any, server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = AssertRun(store, server, tmp_path, monkeypatch)
    outcome, _ = run()
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"report": "Oslo", "greetings": ["hello Bergen", "hello Tromso"], "ok": True}
    assert run.counted() == ["make_report", "greet", "greet"]


def test_a_workbook_entrys_assert_fails_the_step_without_retry(
    store: Any, server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = AssertRun(store, server, tmp_path, monkeypatch)
    outcome, events = run(report_input={"city": "Nowhere"})
    assert outcome.status == "FAILED"
    error = outcome.error or ""
    assert "assert.returns" in error and "'report.city'" in error and "its fields are summary" in error
    assert run.counted() == ["make_report"], "a missed assert is not retried"
    assert types_of(events, "report")[-2:] == ["action_error", "step_failed"]
    assert types_of(events, "report").count("action_started") == 1
    assert types_of(events, "greet_all") == []

    outcome, events = run(report_input={"town": "Oslo"})
    assert outcome.status == "FAILED"
    error = outcome.error or ""
    assert "assert.expects" in error and "city missing" in error and "the inputs have town" in error
    assert run.counted() == [], "the entry's code did not run"


def test_an_iterator_tasks_assert_fails_that_item(
    store: Any, server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = AssertRun(store, server, tmp_path, monkeypatch)
    outcome, events = run(cities=[{"city": "Bergen"}, {"city": "Nowhere"}])
    assert outcome.status == "FAILED"
    assert run.counted() == ["make_report", "greet", "greet"], "no item was retried"
    assert one(events, "iteration_completed", "greet_all").current_index == 0
    failed = one(events, "iteration_failed", "greet_all")
    assert failed.current_index == 1 and "attempts" not in (failed.meta or {})
    assert "assert.returns" in (failed.error or "") and "'greeting'" in (failed.error or "")
    assert "its fields are shrug" in (failed.error or "")
    assert types_of(events, "check_status") == []

    outcome, events = run(cities=[{"town": "Bergen"}])
    assert outcome.status == "FAILED"
    failed = one(events, "iteration_failed", "greet_all")
    assert "assert.expects" in (failed.error or "") and "city missing" in (failed.error or "")
    assert "the inputs have town" in (failed.error or "")
    assert run.counted() == ["make_report"]


def test_an_http_steps_assert_fails_the_step_without_retry(
    store: Any, server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = AssertRun(store, server, tmp_path, monkeypatch)
    outcome, events = run(status={"fine": 1})
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "check_status").error or ""
    assert "assert.returns" in error and "'data.ok'" in error and "`data` has no 'ok'" in error
    assert "its fields are fine" in error
    assert len(server.log) == 1, "the request was sent once despite retry: 3"
    assert types_of(events, "check_status").count("action_started") == 1


def test_an_envelope_result_is_read_through_its_data_and_stored_as_returned(store: Any) -> None:
    outcome, events = run_file(store, fixture("step_result_envelope.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert step_result(events, "fetch_orders") == {
        "status": "success",
        "data": {"count": 2, "fields": ["id"], "orders": [{"id": 1}, {"id": 2}]},
    }
    assert step_result(events, "summarize") == {
        "count": 2,
        "first_id": 1,
        "fields": ["id"],
        "same_count": 2,
        "status": "success",
    }
    assert types_of(events, "summarize") == ACTION, "the `when` read `fetch_orders.count` too"
    assert outcome.result == {"line": "2 orders, status success"}


def test_a_missing_field_of_an_envelope_names_the_fields_on_both_levels(store: Any, tmp_path: Path) -> None:
    path = variant(
        tmp_path, "step_result_envelope.yaml", "{{ fetch_orders.orders[0].id }}", "{{ fetch_orders.order }}"
    )
    outcome, _ = run_file(store, path)
    assert outcome.status == "FAILED"
    assert "the fields there are: count, data, fields, orders, status" in (outcome.error or "")
    # a result that is not an envelope (no `status`) is not unwrapped
    plain = variant(
        tmp_path, "step_result_envelope.yaml", '{"status": "success", "data"', '{"state": "success", "data"'
    )
    outcome, _ = run_file(store, plain)
    assert outcome.status == "FAILED" and "'count'" in (outcome.error or "")


def test_then_and_else_are_unchanged(store: Any) -> None:
    outcome, events = run_file(store, fixture("step_then_else.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"verdict": "31 is hot"} and types_of(events, "cold") == []
    outcome, events = run_file(store, fixture("step_then_else.yaml"), {"temperature": 12})
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"verdict": "12 is not hot"} and types_of(events, "hot") == []
