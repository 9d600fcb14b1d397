"""The rendering guarantee over every example and every fixture: each is run for real, and no template
text written in it reaches an action (a database, an HTTP server, a file), a save, or what an event says
was used or produced. Malformed fixtures are rejected at load time instead (tests/e2e/
test_malformed_playbooks.py), which is the other half of the guarantee."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from noetl.dsl import load_playbook
from noetl.errors import NoetlError
from noetl.runtime.local import LocalRunner
from tests.conftest import pg_fields
from tests.helpers import REPO
from tests.httpd import serve
from tests.integration.test_weather_pipeline import hmac_credential
from tests.leak_guard import LeakGuard, event_leaks, playbook_templates

EXAMPLES = sorted((REPO / "examples").glob("*/*.yaml"))
FIXTURES = sorted((REPO / "tests/fixtures/compat").glob("*.yaml"))
# Children are run by their parents; both payloads of the branching example are walked.
PAYLOADS: dict[str, list[dict[str, Any]]] = {
    "weather_branch": [{"temperature_c": 30}, {"temperature_c": 12}],
}


class EchoAPI(BaseHTTPRequestHandler):
    """httpbin-like: any path answers with what it received, plus a forecast field."""

    def _answer(self, body: Any) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        answer = {"args": query, "json": body, "url": self.path, "current": {"temperature_2m": 12.5}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self._answer(json.loads(raw) if raw else None)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_api() -> Iterator[str]:
    with serve(EchoAPI) as url:
        yield url


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def walk(store: Any, path: Path, payload: dict[str, Any]) -> tuple[str, list[str], int]:
    """Run one playbook under the guard: (status, leaks in actions, saves and events, values checked)."""
    guard = LeakGuard()
    playbook = load_playbook(path)
    runner = LocalRunner(store, actions=guard.actions(), storages=guard.storages())
    try:
        outcome = runner.run(playbook, payload, merge=True)
    except NoetlError as exc:  # e.g. a workload template that needs a payload this walk does not give
        return f"refused: {exc}", guard.leaks, guard.checked
    events = store.read(outcome.execution_id)
    return outcome.status, guard.leaks + event_leaks(events, playbook_templates(playbook)), guard.checked


@pytest.fixture
def world(
    store: Any, pg_dsn: str, echo_api: str, s3_server: str, s3_bucket: str, tmp_path: Path
) -> dict[str, Any]:
    """Credentials and a payload that let every example run offline."""
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    store.put_credential("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server))
    return {"base_url": echo_api, "gcs_bucket": s3_bucket, "output_dir": str(tmp_path / "out")}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_completes_with_nothing_unrendered(
    store: Any, world: dict[str, Any], path: Path
) -> None:
    for extra in PAYLOADS.get(path.stem, [{}]):
        status, leaks, checked = walk(store, path, {**world, **extra})
        assert not leaks, "\n".join(leaks)
        assert checked > 0, f"{path.name}: the guard saw no action"
        assert status == "COMPLETED", f"{path.name} with {extra}: {status}"


def test_every_compat_fixture_sends_nothing_unrendered(store: Any, world: dict[str, Any]) -> None:
    """Fixtures are written for their own tests (some need a payload this walk does not give, and fail):
    whatever they do get to send, none of it holds their template text."""
    assert len(FIXTURES) >= 20, [p.name for p in FIXTURES]
    found: list[str] = []
    ran = checked = 0
    for path in FIXTURES:
        status, leaks, seen = walk(store, path, world)
        ran += status in ("COMPLETED", "FAILED")
        checked += seen
        found += [f"{path.name}: {leak}" for leak in leaks]
    assert not found, "\n".join(found)
    assert ran >= len(FIXTURES) // 2, "most fixtures must really run in this walk"
    assert checked >= len(FIXTURES), f"the guard checked only {checked} values"


def test_the_guard_sees_a_template_that_would_leave_unrendered(store: Any) -> None:
    """The check itself can fail: an action handed the raw template text is caught."""
    guard = LeakGuard()
    playbook = load_playbook(REPO / "examples/hello/hello_world.yaml")
    templates = playbook_templates(playbook)
    assert templates
    some = next(iter(templates))
    guard.check("a fake action", {"sql": f"SELECT '{some}'"}, templates)
    assert guard.leaks and some in guard.leaks[0]
