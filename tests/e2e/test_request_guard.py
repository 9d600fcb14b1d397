"""The API is safe by default against a browser on another site: Host (DNS rebinding), Origin (cross-site
writes), write content types, and no token-less server on a non-loopback address. A real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from noetl.server.guard import allowed_hosts, host_name
from tests.processes import REPO, SECRET_KEY, free_port, running_server

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: guarded, path: tests/guarded}
workflow:
  - step: start
    next: [{step: end}]
  - step: end
"""


def test_a_cross_site_text_plain_post_registers_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with running_server(db, tmp_path) as server, server.client() as api:
        # What a page on another site can send without asking first: a "simple" text/plain POST.
        forged = api.post(
            "/api/catalog/register",
            content=PLAYBOOK,
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert forged.status_code == 403 and "cross-site" in forged.json()["error"]
        plain = api.post("/api/catalog/register", content=PLAYBOOK, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415 and "application/x-yaml" in plain.json()["error"]
        run = api.post(
            "/api/executions/run",
            content='{"path": "tests/guarded"}',
            headers={"Content-Type": "text/plain"},
        )
        assert run.status_code == 415
        assert api.get("/api/catalog").json() == []  # nothing was registered
        # The same request from the server's own page, and from a client that is not a browser, work.
        own = api.post(
            "/api/catalog/register",
            content=PLAYBOOK,
            headers={"Content-Type": "application/x-yaml", "Origin": server.url},
        )
        assert own.status_code == 201, own.text
        assert api.post("/api/executions/run", json={"path": "tests/guarded"}).status_code == 202
        assert api.post("/api/session", json={"token": "x"}, headers={"Origin": "null"}).status_code == 403


def test_a_server_without_a_token_answers_only_for_its_own_names(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with running_server(db, tmp_path) as server, server.client() as api:
        assert api.get("/api/executions", headers={"Host": f"localhost:{server.port}"}).status_code == 200
        rebound = api.get("/api/executions", headers={"Host": f"attacker.example:{server.port}"})
        assert rebound.status_code == 421 and "NOETL_ALLOWED_HOSTS" in rebound.json()["error"]
        assert api.get("/", headers={"Host": "attacker.example"}).status_code == 421
    env = {"NOETL_ALLOWED_HOSTS": "noetl.internal"}
    with running_server(db, tmp_path, env) as server, server.client() as api:
        assert api.get("/api/executions", headers={"Host": "noetl.internal:80"}).status_code == 200
        assert api.get("/api/executions", headers={"Host": "attacker.example"}).status_code == 421


def test_with_a_token_any_host_is_served(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with (
        running_server(db, tmp_path, {"NOETL_API_TOKEN": "t0ken-t0ken"}) as server,
        server.client("t0ken-t0ken") as api,
    ):
        assert api.get("/api/executions", headers={"Host": "noetl.example.com"}).status_code == 200


def test_no_token_on_a_public_address_is_refused_unless_asked_for(tmp_path: Path) -> None:
    env = {"NOETL_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    args = [
        sys.executable,
        "-m",
        "noetl.cli",
        "server",
        "start",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
    ]
    refused = subprocess.run(
        [*args, "--db", str(tmp_path / "a.db")], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "a.db").exists()  # nothing half-done: the store was not even created
    port = free_port()
    allowed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "noetl.cli",
            "server",
            "start",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--allow-no-token",
            "--db",
            str(tmp_path / "b.db"),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
    finally:
        allowed.terminate()
        allowed.wait(timeout=15)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8083", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8083", "::1"),
        ("::1", "::1"),
        ("a.b:1", "a.b"),
    ],
)
def test_host_names_are_read_without_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_by_token_and_setting() -> None:
    assert allowed_hosts("127.0.0.1", None, "") == frozenset({"127.0.0.1", "localhost", "::1"})
    assert allowed_hosts("10.0.0.5", None, "") == frozenset({"127.0.0.1", "localhost", "::1", "10.0.0.5"})
    assert allowed_hosts("0.0.0.0", "token", "") is None
    assert allowed_hosts("0.0.0.0", "token", "noetl.internal") == frozenset(
        {"127.0.0.1", "localhost", "::1", "noetl.internal"}
    )
    assert allowed_hosts("127.0.0.1", None, "*") is None


def test_a_request_body_over_the_limit_is_413(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with (
        running_server(db, tmp_path, {"NOETL_MAX_REQUEST_BYTES": "100000"}) as server,
        server.client() as api,
    ):
        big = api.post("/api/executions/run", json={"path": "x", "parameters": {"blob": "z" * 200_000}})
        assert big.status_code == 413 and "NOETL_MAX_REQUEST_BYTES" in big.json()["error"]
        small = api.post("/api/executions/run", json={"path": "nope"})
        assert small.status_code == 404
