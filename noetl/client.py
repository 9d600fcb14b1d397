"""A small HTTP client for the NoETL server's API, used by the CLI's `--host` commands.

Errors come back as NoetlError subclasses so the CLI maps them to exit codes like any other:
a 4xx answer is bad input (InputError, or PlaybookError with the server's problems), anything else
(refused connection, timeout, 5xx) is a NoetlError.
"""

from __future__ import annotations

from typing import Any

import httpx

from noetl.engine.events import Event
from noetl.errors import InputError, NoetlError, PlaybookError, Problem


class ServerUnavailable(NoetlError):
    """The NoETL server cannot be reached; start it with `noetl server start` or check --host/--port."""


class ServerError(NoetlError):
    """The NoETL server failed to answer the request; see the server's log."""


class ApiClient:
    """Calls the `/api` endpoints of one server; every method returns decoded JSON."""

    def __init__(self, host: str, port: int, token: str | None = None, timeout: float = 30.0) -> None:
        self.address = f"{host}:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"http://{self.address}", headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- catalog -----------------------------------------------------------------------------------

    def register(self, content: str, *, if_changed: bool = False) -> dict[str, Any]:
        """A new version of the playbook's path; with `if_changed`, the latest version when it holds the
        same content (`unchanged` says which)."""
        return self._call(
            "POST",
            "/api/catalog/register",
            content=content.encode(),
            headers={"Content-Type": "application/x-yaml"},
            params={"if_changed": "true"} if if_changed else None,
        )

    def catalog(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/catalog"))

    # ---- executions --------------------------------------------------------------------------------

    def execute(
        self, path: str, parameters: dict[str, Any], *, merge: bool = False, version: int | None = None
    ) -> dict[str, Any]:
        body = {"path": path, "version": version, "parameters": parameters, "merge": merge}
        return self._call("POST", "/api/executions/run", json=body)

    def retry(self, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/api/executions/{execution_id}/retry", json=body)

    def summary(self, execution_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/events/summary/{execution_id}")

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/executions/{execution_id}")

    def events(self, execution_id: str, after: int = 0, filters: Any = None) -> list[Event]:
        """Every event with `seq` above `after` (narrowed by an EventFilter), following the server's
        pages until the last one."""
        found: list[Event] = []
        narrow: dict[str, Any] = {}
        if filters is not None:
            narrow = {"type": list(filters.types), "step": filters.node_name, "index": filters.index}
            narrow = {k: v for k, v in narrow.items() if v not in (None, [])}
        while True:
            params = {"after": after, **narrow}
            page = self._call("GET", f"/api/executions/{execution_id}/events", params=params)
            found += [Event.from_dict(e) for e in page["events"]]
            if not page.get("more"):
                return found
            after = page["last_seq"]

    def iterator_ends(self, execution_id: str) -> list[Event]:
        """The execution's iterator_completed and iterator_failed events (each iterator's figures)."""
        found: list[Event] = []
        after = 0
        while True:
            params = {"after": after, "type": ["iterator_completed", "iterator_failed"]}
            page = self._call("GET", f"/api/executions/{execution_id}/events", params=params)
            found += [Event.from_dict(e) for e in page["events"]]
            if not page.get("more"):
                return found
            after = page["last_seq"]

    def cancel(self, execution_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/executions/{execution_id}/cancel")

    def executions_page(self, **params: Any) -> dict[str, Any]:
        """GET /api/views/executions: a page of executions with children counts (status, playbook,
        parent, roots, limit, offset); None values are left out."""
        given = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", "/api/views/executions", params=given)

    def health(self) -> dict[str, Any]:
        """GET /health: the store, the runner, live workers and queue depth (a 503 answers too)."""
        try:
            response = self._http.get("/health")
        except httpx.HTTPError:
            raise ServerUnavailable(f"cannot connect to the NoETL server at {self.address}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    # ---- plumbing ----------------------------------------------------------------------------------

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        try:
            response = self._http.request(method, url, **kw)
        except httpx.ConnectError:
            raise ServerUnavailable(
                f"cannot connect to the NoETL server at {self.address}; start it with `noetl server start "
                "--port PORT` or check --host and --port"
            ) from None
        except httpx.TimeoutException:
            raise ServerUnavailable(f"the NoETL server at {self.address} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot talk to the NoETL server at {self.address}: {exc}") from None
        if response.is_success:
            return response.json()
        raise _error(response, self.address)


def _error(response: httpx.Response, address: str) -> NoetlError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    message = message or f"HTTP {response.status_code}"
    if response.status_code == 401:
        return InputError(f"{message} (server {address}); set NOETL_API_TOKEN or pass --token")
    if response.status_code == 422 and body.get("problems"):
        return PlaybookError([_problem(p) for p in body["problems"]])
    if response.status_code == 404:  # an unknown id or path: say where it was looked for
        return InputError(f"{message} (server {address})")
    if 400 <= response.status_code < 500:
        return InputError(message)
    return ServerError(f"the server at {address} answered {response.status_code}: {message}")


def _problem(data: Any) -> Problem:
    if not isinstance(data, dict):
        return Problem(str(data))
    return Problem(
        str(data.get("message", "")),
        str(data.get("file") or "<playbook>"),
        data.get("line"),
        data.get("step"),
    )
