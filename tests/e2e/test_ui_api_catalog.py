"""The API behind the UI's catalog, graph and credentials pages: a real server on a SQLite store, real HTTP."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import cli
from tests.processes import SECRET_KEY, running_server

REPO = Path(__file__).resolve().parents[2]
BRANCH = REPO / "examples" / "branching" / "weather_branch.yaml"
BRANCH_STEPS = ["start", "eval_flag", "hot_path", "notify_ops", "log_alert", "cold_path", "end"]
HOT_RUN = ["start", "eval_flag", "hot_path", "notify_ops", "log_alert", "end"]  # the default workload is hot

TINY = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: tiny
  path: tests/tiny
workload:
  n: 3
workflow:
  - step: start
    next:
      - step: square
  - step: square
    type: python
    data:
      n: "{{ workload.n }}"
    code: |
      def main(n):
          return {"squared": n * n}
    next:
      - step: end
  - step: end
"""

SECRET = "pw-Never-Shown-7731"
# Every way a playbook names a credential, beside things that only look like one.
USES = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: uses
  path: tests/uses
workload:
  pg_auth: pg_main
  nested: {http: api_token}
workbook:
  - name: lookup
    type: postgres
    auth: {type: postgres, credential: wb_pg}
    command: SELECT 1
workflow:
  - step: start
    next:
      - step: by_template
  - step: by_template
    type: postgres
    auth: "{{ workload.pg_auth }}"
    command: SELECT 1
    next:
      - step: by_alias
  - step: by_alias
    type: duckdb
    auth:
      db: {type: postgres, credential: alias_pg}
      other: {source: credential, key: "{{ workload.nested.http }}"}
      from_env: {type: secret, env: SOME_VAR}
    command: SELECT 1
    next:
      - step: by_secret
  - step: by_secret
    type: secrets
    name: the_secret
    next:
      - step: loop
  - step: loop
    type: iterator
    collection: [1, 2]
    element: n
    task:
      type: http
      endpoint: http://127.0.0.1:1/x
      auth: in_loop
      save:
        storage: postgres
        table: t
        args: {n: "{{ n }}"}
        auth: in_save
    next:
      - step: data_only
  - step: data_only
    type: python
    data:
      auth: only_data
    code: |
      def main(auth):
          return {"auth": auth}
    next:
      - step: end
  - step: end
"""
NAMED = ["pg_main", "wb_pg", "alias_pg", "api_token", "the_secret", "in_loop", "in_save"]


def register(api: httpx.Client, content: str) -> dict[str, Any]:
    answer = api.post("/api/catalog/register", json={"content": content})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def local_run(playbook: Path, db: str) -> str:
    done = cli("run", str(playbook), "--db", db, "--json", "--quiet", env={"NOETL_SECRET_KEY": SECRET_KEY})
    assert done.returncode == 0, done.stdout + done.stderr
    execution_id = yaml.safe_load(done.stdout.strip().splitlines()[-1])["execution_id"]
    return str(execution_id)


def wait_done(api: httpx.Client, execution_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while api.get(f"/api/executions/{execution_id}").json()["status"] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, f"execution {execution_id} did not finish"
        time.sleep(0.1)


def edge(graph: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    found = [e for e in graph["edges"] if e["from"] == source and e["to"] == target]
    assert len(found) == 1, f"edges {source} -> {target}: {found}; all: {graph['edges']}"
    return found[0]


def test_the_graph_of_a_catalog_playbook_has_every_step_and_the_conditions(tmp_path: Path) -> None:
    with running_server(str(tmp_path / "s.db"), tmp_path) as server, server.client() as api:
        registered = register(api, BRANCH.read_text())
        graph = api.get("/api/graph", params={"path": registered["path"]}).json()
        assert [n["name"] for n in graph["nodes"]] == BRANCH_STEPS
        assert (graph["source"], graph["version"], graph["derived"]) == ("catalog", 1, False)
        types = {n["name"]: n["type"] for n in graph["nodes"]}
        assert types == {
            **dict.fromkeys(BRANCH_STEPS, "python"),
            "start": "start",
            "eval_flag": "workbook",
            "end": "end",
        }
        hot = edge(graph, "eval_flag", "hot_path")
        assert (hot["kind"], hot["when"]) == ("when", "{{ result.is_hot }}")
        cold = edge(graph, "eval_flag", "cold_path")
        assert (cold["kind"], cold["when"]) == ("always", None)
        assert {(e["from"], e["to"]) for e in graph["edges"]} >= {
            ("hot_path", "notify_ops"),
            ("log_alert", "end"),
        }
        assert next(n for n in graph["nodes"] if n["name"] == "end")["desc"].startswith("Joins the branches")

        missing = api.get("/api/graph", params={"path": "no/such"})
        assert missing.status_code == 404
        assert "'no/such'" in missing.json()["error"] and "GET /api/catalog" in missing.json()["error"]
        assert api.get("/api/graph", params={"path": registered["path"], "version": 9}).status_code == 404
        assert api.get("/api/graph").status_code == 400  # path is required


def test_an_execution_graph_comes_from_its_file_and_from_its_events_once_the_file_is_gone(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "s.db")
    playbook = tmp_path / "weather_branch.yaml"
    shutil.copy(BRANCH, playbook)
    execution_id = local_run(playbook, db)
    with running_server(db, tmp_path) as server, server.client() as api:
        graph = api.get(f"/api/executions/{execution_id}/graph").json()
        assert (graph["source"], graph["file"], graph["derived"]) == ("file", str(playbook), False)
        assert [n["name"] for n in graph["nodes"]] == BRANCH_STEPS
        assert edge(graph, "eval_flag", "hot_path")["when"] == "{{ result.is_hot }}"
        assert graph["statuses"] == dict.fromkeys(HOT_RUN, "COMPLETED")
        assert graph["runs"] == dict.fromkeys(HOT_RUN, 1)  # the join runs `end` once
        assert graph["status"] == "COMPLETED" and graph["path"] == "examples/weather_branch"

        playbook.unlink()
        derived = api.get(f"/api/executions/{execution_id}/graph").json()
        assert (derived["source"], derived["file"], derived["derived"]) == ("events", None, True)
        assert {n["name"] for n in derived["nodes"]} == set(HOT_RUN)  # cold_path never ran
        taken = {(e["from"], e["to"]) for e in derived["edges"]}
        assert taken == {
            ("start", "eval_flag"),
            ("eval_flag", "hot_path"),
            ("hot_path", "notify_ops"),
            ("hot_path", "log_alert"),
            ("notify_ops", "end"),
            ("log_alert", "end"),
        }
        assert all(e["when"] is None for e in derived["edges"])
        assert derived["statuses"] == graph["statuses"]

        missing = api.get("/api/executions/no-such-id/graph")
        assert missing.status_code == 404 and "GET /api/executions" in missing.json()["error"]


def test_a_file_edited_since_the_run_is_not_taken_for_its_playbook(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    playbook = tmp_path / "weather_branch.yaml"
    shutil.copy(BRANCH, playbook)
    execution_id = local_run(playbook, db)
    playbook.write_text(BRANCH.read_text().replace("notify_ops", "page_someone"))
    with running_server(db, tmp_path) as server, server.client() as api:
        graph = api.get(f"/api/executions/{execution_id}/graph").json()
        assert graph["source"] == "events" and "notify_ops" in {n["name"] for n in graph["nodes"]}


def test_an_execution_of_a_catalog_playbook_draws_the_version_it_ran(tmp_path: Path) -> None:
    with running_server(str(tmp_path / "s.db"), tmp_path) as server, server.client() as api:
        register(api, BRANCH.read_text())
        started = api.post(
            "/api/executions/run",
            json={"path": "examples/weather_branch", "parameters": {"temperature_c": 3}},
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        wait_done(api, execution_id)
        register(api, BRANCH.read_text().replace("cold_path", "chilly_path"))  # version 2 differs
        graph = api.get(f"/api/executions/{execution_id}/graph").json()
        assert (graph["source"], graph["version"]) == ("catalog", 1)
        assert [n["name"] for n in graph["nodes"]] == BRANCH_STEPS
        assert graph["statuses"] == dict.fromkeys(["start", "eval_flag", "cold_path", "end"], "COMPLETED")


def test_catalog_versions_and_the_diff_between_two(tmp_path: Path) -> None:
    with running_server(str(tmp_path / "s.db"), tmp_path) as server, server.client() as api:
        register(api, TINY)
        register(api, TINY.replace("  n: 3", "  n: 4").replace("n * n", "n * n * n"))
        versions = api.get("/api/catalog-versions", params={"path": "tests/tiny"}).json()
        assert versions["path"] == "tests/tiny"
        assert [(v["version"], v["name"]) for v in versions["versions"]] == [(2, "tiny"), (1, "tiny")]
        assert all(v["created_at"] for v in versions["versions"])

        diff = api.get("/api/catalog-diff", params={"path": "tests/tiny", "a": 1, "b": 2}).json()
        assert (diff["a"], diff["b"], diff["added"], diff["removed"]) == (1, 2, 2, 2)
        lines = diff["lines"]
        assert lines[0]["op"] == "hunk" and lines[0]["text"].startswith("@@ -")
        old = TINY.splitlines().index("  n: 3") + 1
        assert {"op": "del", "text": "  n: 3", "a_line": old, "b_line": None} in lines
        assert {"op": "add", "text": "  n: 4", "a_line": None, "b_line": old} in lines
        assert any(x["op"] == "ctx" and x["a_line"] == x["b_line"] for x in lines)
        assert {x["op"] for x in lines} == {"hunk", "ctx", "add", "del"}

        same = api.get("/api/catalog-diff", params={"path": "tests/tiny", "a": 2, "b": 2}).json()
        assert same["lines"] == [] and same["added"] == same["removed"] == 0
        absent = api.get("/api/catalog-diff", params={"path": "tests/tiny", "a": 1, "b": 7})
        assert absent.status_code == 404 and "version 7" in absent.json()["error"]
        assert api.get("/api/catalog-versions", params={"path": "nope"}).status_code == 404
        # The playbook route still answers beside them.
        assert api.get("/api/catalog/tests/tiny", params={"version": 1}).json()["content"] == TINY


def test_credentials_list_who_uses_them_and_never_their_values(tmp_path: Path) -> None:
    with running_server(str(tmp_path / "s.db"), tmp_path) as server, server.client() as api:
        for name in [*NAMED, "only_data", "unused", "dropped"]:
            data = {"db_password": f"{SECRET}-{name}", "token": SECRET}
            assert (
                api.post(
                    "/api/credentials", json={"name": name, "type": "postgres", "data": data}
                ).status_code
                == 201
            )
        register(api, USES)
        # Version 1 of another playbook names `dropped`; its latest version no longer does.
        register(api, TINY + "    type: postgres\n    auth: dropped\n    command: SELECT 1\n")
        register(api, TINY)
        answer = api.get("/api/credentials", params={"used_by": "true"})
        assert answer.status_code == 200
        assert SECRET not in answer.text and "db_password" not in answer.text
        used = {c["name"]: c["used_by"] for c in answer.json()}
        for name in NAMED:
            assert used[name] == [{"path": "tests/uses", "version": 1}], name
        assert used["only_data"] == [] and used["unused"] == [] and used["dropped"] == []
        assert {c["name"]: c["type"] for c in answer.json()}["unused"] == "postgres"
        # Without the flag the list is what it was: names and types only.
        plain = api.get("/api/credentials").json()
        assert {"name": "unused", "type": "postgres"} in plain and all(
            set(c) == {"name", "type"} for c in plain
        )
