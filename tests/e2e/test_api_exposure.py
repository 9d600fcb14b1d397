"""What the API tells a caller without the token, and how it reads the token: /health says only ok or
degraded to an anonymous caller of a guarded server; the bearer scheme is case-insensitive."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.processes import running_server

TOKEN = "exposure-token-20261201"


def test_health_tells_an_anonymous_caller_only_the_status(pg_dsn: str, tmp_path: Path) -> None:
    with running_server(pg_dsn, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as server:
        anonymous = httpx.get(f"{server.url}/health", timeout=10)
        wrong = httpx.get(f"{server.url}/health", headers={"Authorization": "Bearer nope"}, timeout=10)
        known = httpx.get(f"{server.url}/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert wrong.json() == {"status": "ok"}
    details = known.json()
    assert details["status"] == "ok" and details["database"] == "ok"
    assert details["store"].startswith("postgresql://") and details["runner"] == "broker"


def test_the_bearer_scheme_is_case_insensitive(pg_dsn: str, tmp_path: Path) -> None:
    with running_server(pg_dsn, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as server:
        answers = {
            scheme: httpx.get(
                f"{server.url}/api/executions", headers={"Authorization": f"{scheme} {TOKEN}"}, timeout=10
            ).status_code
            for scheme in ("Bearer", "bearer", "BEARER")
        }
        refused = httpx.get(
            f"{server.url}/api/executions", headers={"Authorization": f"Basic {TOKEN}"}, timeout=10
        )
    assert answers == {"Bearer": 200, "bearer": 200, "BEARER": 200}
    assert refused.status_code == 401
