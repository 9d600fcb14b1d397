"""`noetl execute playbook FILE` registers the file only when it changed: the same content runs the
latest catalog version again (`version 1 (unchanged)`), a change registers a new one; `noetl register`
always adds a version. The API: `POST /api/catalog/register?if_changed=true`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_server_api import TINY
from tests.helpers import cli
from tests.processes import running_server


def test_an_unchanged_file_runs_the_version_it_has(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY)
    with running_server(str(tmp_path / "server.db"), tmp_path) as server:
        port = ["--port", str(server.port)]

        first = cli("execute", "playbook", str(tiny), *port, "--wait")
        assert first.returncode == 0, first.stderr
        assert first.stderr.splitlines()[0] == "registered tests/tiny version 1 (tiny)"
        again = cli("execute", "playbook", str(tiny), *port, "--wait")
        assert again.returncode == 0, again.stderr
        assert again.stderr.splitlines()[0] == "tests/tiny version 1 (unchanged)"
        assert again.stdout.splitlines()[-1].endswith(": COMPLETED")

        tiny.write_text(TINY.replace("n: 3", "n: 4"))
        changed = cli("execute", "playbook", str(tiny), *port, "--json")
        assert changed.returncode == 0 and changed.stderr == ""  # --json: stdout is the JSON, alone
        started = json.loads(changed.stdout)
        quiet = cli("execute", "playbook", str(tiny), *port, "--wait", "--quiet")
        assert quiet.returncode == 0 and "unchanged" not in quiet.stderr + quiet.stdout

        with server.client() as api:
            record = api.get(f"/api/executions/{started['execution_id']}").json()
            versions = api.get("/api/catalog-versions", params={"path": "tests/tiny"}).json()["versions"]
            assert [v["version"] for v in versions] == [2, 1]  # four executes, two versions
            assert api.get("/api/catalog/tests/tiny").json()["content"] == tiny.read_text()
            same = api.post(
                "/api/catalog/register",
                params={"if_changed": "true"},
                content=tiny.read_text(),
                headers={"Content-Type": "application/x-yaml"},
            )
            assert same.status_code == 200
            assert same.json() == {"path": "tests/tiny", "name": "tiny", "version": 2, "unchanged": True}
        assert record["status"] in ("RUNNING", "COMPLETED")

        registered = cli("register", str(tiny), *port)  # an explicit register always adds a version
        assert registered.stdout.strip() == "registered tests/tiny version 3 (tiny)"
