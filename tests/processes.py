"""Processes the end-to-end tests start as a user would: `noetl server start` and `noetl worker start`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-credential-key"  # shared by the test, the server and the workers: one credential key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`noetl server start` on a free port, its stdout and stderr kept in a file the tests can read."""

    def __init__(self, db: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        inherited = {k: v for k, v in os.environ.items() if k != "NOETL_API_TOKEN"}
        self.env = {**inherited, "NOETL_SECRET_KEY": SECRET_KEY, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        args = [
            sys.executable,
            "-m",
            "noetl.cli",
            "server",
            "start",
            "--port",
            str(self.port),
            "--db",
            self.db,
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server did not answer /health in {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_server(db: str, workdir: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A started server, always stopped afterwards."""
    server = ServerProcess(db, workdir, env)
    try:
        yield server.start()
    finally:
        server.stop()


class Workers:
    """Worker processes started with the real CLI module; stopped (or killed) by the test."""

    def __init__(self, dsn: str, tmp: Path) -> None:
        self.dsn, self.tmp = dsn, tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Any] = []

    def start(
        self,
        name: str,
        concurrency: int = 2,
        lease: float = 30.0,
        grace: float | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: the worker's environment (default: this one, with the test's NOETL_SECRET_KEY)."""
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "noetl.cli_worker",
                "start",
                "--db",
                self.dsn,
                "--name",
                name,
                "--concurrency",
                str(concurrency),
                "--lease",
                str(lease),
                *(["--grace", str(grace)] if grace is not None else []),
            ],
            cwd=REPO,
            env=env if env is not None else {**os.environ, "NOETL_SECRET_KEY": SECRET_KEY},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"worker {name} did not stop on SIGTERM")
        for log in self.logs:
            log.close()


def wait_for_record(api: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll GET /api/executions/{id} until the execution has finished; its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/api/executions/{execution_id}").json()
        if record["status"] in ("COMPLETED", "FAILED"):
            return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")


def run_on_worker(
    pg_dsn: str, tmp_path: Path, playbook: str, path: str, parameters: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Register `playbook` on a fresh server, run catalog `path` with one worker process: (its record,
    its events through the API). The caller sets NOETL_SECRET_KEY (SECRET_KEY) in the environment."""
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1")
            registered = api.post("/api/catalog/register", json={"content": playbook})
            assert registered.status_code == 201, registered.text
            started = api.post("/api/executions/run", json={"path": path, "parameters": parameters or {}})
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            record = wait_for_record(api, execution_id)
            events = api.get(f"/api/executions/{execution_id}/events", params={"limit": 10000}).json()
        finally:
            workers.stop_all()
    return record, events["events"]


@contextmanager
def broker_loop(store: Any, interval: float = 0.5) -> Iterator[None]:
    """The server's broker loop (reaper, and the sweep every 5 ticks) on a thread of this process."""
    from noetl.runtime.broker import run_broker_loop

    stop = threading.Event()
    thread = threading.Thread(target=run_broker_loop, args=(store, stop, interval), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def finished_record(store: Any, execution_id: str, timeout: float = 90) -> Any:
    """Poll the store until the execution has finished; its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.execution(execution_id)
        if record is not None and record.status in ("COMPLETED", "FAILED"):
            return record
        time.sleep(0.05)
    pytest.fail(f"execution {execution_id} did not finish in {timeout} s")
