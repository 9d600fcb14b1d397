"""Where a `type: playbook` step's `path` is found: next to the parent, in the working directory, in the
catalog (`noetl run`), and in the catalog next to the parent's catalog path (a server with a worker)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.store import open_store
from tests.helpers import REPO, cli
from tests.processes import ServerProcess, Workers, free_port, running_server


def child_yaml(by: str, catalog_path: str | None = None, factor: int = 1) -> str:
    """A child that squares `workload.value` (times `factor`) and says who it is."""
    path = f"\n          path: {catalog_path}" if catalog_path else ""  # indented like the template
    return textwrap.dedent(
        f"""\
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata:
          name: {by}{path}
        workload: {{value: 2}}
        workflow:
          - step: start
            type: python
            data: {{value: "{{{{ workload.value }}}}"}}
            code: |
              def main(value):
                  return {{"squared": value * value * {factor}}}
            next: [{{step: end}}]
          - step: end
            result: {{squared: "{{{{ start.squared }}}}", by: {by}}}
        """
    )


def parent_yaml(
    child_path: str, catalog_path: str | None = None, name: str = "parent", key: str = "child_said"
) -> str:
    """A parent that passes value 7 to the child and returns the child's `squared` (as `key`) and `by`."""
    path = f"\n          path: {catalog_path}" if catalog_path else ""  # indented like the template
    return textwrap.dedent(
        f"""\
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata:
          name: {name}{path}
        workflow:
          - step: start
            type: playbook
            path: {child_path}
            data: {{value: 7}}
            next: [{{step: end}}]
          - step: end
            result: {{{key}: "{{{{ start.squared }}}}", by: "{{{{ start.by }}}}"}}
        """
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the parent's folder."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def run_json(parent: Path, db: Path, cwd: Path) -> dict[str, Any]:
    done = cli("run", str(parent), "--db", str(db), "--json", cwd=cwd)
    assert done.stdout, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if answer["status"] == "COMPLETED" else 1)
    return answer


@pytest.mark.parametrize(
    ("reference", "file"),
    [
        ("child", "child.yaml"),
        ("child.yaml", "child.yaml"),
        ("child", "child.yml"),
        ("./child", "child.yaml"),
    ],
)
def test_a_child_next_to_the_parent_is_found_from_another_working_directory(
    project: Path, elsewhere: Path, tmp_path: Path, reference: str, file: str
) -> None:
    (project / file).write_text(child_yaml("beside"))
    (project / "parent.yaml").write_text(parent_yaml(reference))
    (elsewhere / "child.yaml").write_text(child_yaml("in_cwd", factor=100))  # the parent's folder wins
    answer = run_json(project / "parent.yaml", tmp_path / "noetl.db", elsewhere)
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == {"child_said": 49, "by": "beside"}


def test_a_child_only_in_the_working_directory_is_found(
    project: Path, elsewhere: Path, tmp_path: Path
) -> None:
    (project / "parent.yaml").write_text(parent_yaml("child"))  # no suffix: child.yaml in the cwd
    (elsewhere / "child.yaml").write_text(child_yaml("in_cwd"))
    answer = run_json(project / "parent.yaml", tmp_path / "noetl.db", elsewhere)
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == {"child_said": 49, "by": "in_cwd"}


@pytest.mark.parametrize(
    ("parent_catalog_path", "reference", "registered"),
    [
        ("lib/parent", "child.yaml", "lib/child"),  # next to the parent's own catalog path
        (None, "shared/child", "shared/child"),  # the catalog path as written
        (None, "shared/child.yaml", "shared/child"),  # as written, without its suffix
    ],
)
def test_a_child_only_in_the_catalog_is_found(
    project: Path,
    elsewhere: Path,
    tmp_path: Path,
    parent_catalog_path: str | None,
    reference: str,
    registered: str,
) -> None:
    db = tmp_path / "noetl.db"
    store = open_store(str(db))
    try:
        store.register(registered, "catalogued", child_yaml("catalogued", registered))
    finally:
        store.close()
    (project / "parent.yaml").write_text(parent_yaml(reference, parent_catalog_path))
    answer = run_json(project / "parent.yaml", db, elsewhere)
    assert answer["status"] == "COMPLETED", answer["error"]
    assert answer["result"] == {"child_said": 49, "by": "catalogued"}


def test_a_missing_child_fails_with_every_place_tried(project: Path, elsewhere: Path, tmp_path: Path) -> None:
    (project / "parent.yaml").write_text(parent_yaml("missing", "lib/parent"))
    answer = run_json(project / "parent.yaml", tmp_path / "noetl.db", elsewhere)
    assert answer["status"] == "FAILED"
    error = answer["error"]
    files = [
        folder / name
        for folder in (project, elsewhere)
        for name in ("missing", "missing.yaml", "missing.yml")
    ]
    for place in [*map(str, files), "lib/missing", " missing"]:
        assert place in error, (place, error)
    assert error.index(str(project)) < error.index(str(elsewhere)) < error.index("lib/missing")
    assert "put the file next to the calling playbook" in error and "register it in the catalog" in error


def test_register_refuses_a_child_a_worker_would_not_find(project: Path, elsewhere: Path) -> None:
    (project / "child.yaml").write_text(child_yaml("beside", "somewhere/else/child"))
    (project / "parent.yaml").write_text(parent_yaml("child.yaml", "proj/parent"))
    # Checked before the server is asked: no server listens on this port.
    done = cli("register", str(project / "parent.yaml"), "--port", str(free_port()), cwd=elsewhere)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "registered as 'somewhere/else/child'" in done.stderr
    assert "proj/child.yaml, proj/child" in done.stderr
    assert "`metadata.path: proj/child`" in done.stderr
    assert "`metadata.path: somewhere/else/parent`" in done.stderr


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with one worker on a PostgreSQL store."""
    with running_server(pg_dsn, tmp_path) as started:
        workers = Workers(pg_dsn, tmp_path)
        workers.start("w1")
        try:
            yield started
        finally:
            workers.stop_all()


def execute(server: ServerProcess, playbook: str, cwd: Path = REPO) -> dict[str, Any]:
    done = cli("execute", "playbook", playbook, "--port", str(server.port), "--wait", "--json", cwd=cwd)
    assert done.stdout, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_the_example_runs_through_a_server_as_with_noetl_run(server: ServerProcess, tmp_path: Path) -> None:
    local = run_json(REPO / "examples/subplaybook/parent.yaml", tmp_path / "local.db", REPO)
    assert local["status"] == "COMPLETED" and local["result"] == {"child_said": 49, "parent_made": 50}

    remote = execute(server, "examples/subplaybook/parent.yaml")
    assert remote["status"] == "COMPLETED", remote["error"]
    assert remote["result"] == local["result"]
    with server.client() as api:
        catalog = {e["path"] for e in api.get("/api/catalog").json()}
        executions = api.get("/api/executions", params={"limit": 10}).json()
    assert catalog == {"examples/subplaybook/parent_uses_child", "examples/subplaybook/child"}
    children = [r for r in executions if r["parent_execution_id"] == remote["execution_id"]]
    assert [c["playbook_path"] for c in children] == ["examples/subplaybook/child"], executions


def test_nested_children_resolve_against_their_callers_catalog_folders(
    server: ServerProcess, project: Path, elsewhere: Path
) -> None:
    (project / "lib").mkdir()
    (project / "parent.yaml").write_text(parent_yaml("lib/middle", "proj/parent"))
    # middle calls `leaf`, next to itself, and passes its result on.
    (project / "lib/middle.yaml").write_text(parent_yaml("leaf", "proj/lib/middle", "middle", "squared"))
    (project / "lib/leaf.yaml").write_text(child_yaml("leaf", "proj/lib/leaf"))
    (elsewhere / "leaf.yaml").write_text(child_yaml("wrong_leaf", "leaf"))  # the cwd is not the folder

    remote = execute(server, str(project / "parent.yaml"), cwd=elsewhere)
    assert remote["status"] == "COMPLETED", remote["error"]
    assert remote["result"] == {"child_said": 49, "by": "leaf"}
    with server.client() as api:
        catalog = {e["path"] for e in api.get("/api/catalog").json()}
    assert catalog == {"proj/parent", "proj/lib/middle", "proj/lib/leaf"}
