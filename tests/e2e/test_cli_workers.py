"""Say when nobody works: `execute --wait` warns once, on stderr, when no worker has taken a job of the
execution after a few seconds, naming the server's store and how to start a worker; `/health` and
`noetl status --host/--port` show the live workers and the queue depth (none on a SQLite server)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from noetl.cli_server import NO_WORKER_SECONDS
from tests.helpers import REPO, cli
from tests.processes import ServerProcess, Workers, running_server

SLOW = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: slow, path: tests/slow}
workload: {seconds: 0.1}
workflow:
  - step: start
    next: [{step: nap}]
  - step: nap
    type: python
    data: {seconds: "{{ workload.seconds }}"}
    code: |
      import time
      def main(seconds):
          time.sleep(float(seconds))
          return {"slept": seconds}
    next: [{step: end}]
  - step: end
    result: {slept: "{{ nap.slept }}"}
"""
EXECUTE = [sys.executable, "-m", "noetl.cli", "execute", "playbook"]


def _health(server: ServerProcess) -> dict:
    return dict(httpx.get(f"{server.url}/health", timeout=10).json())


def _until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s")


class Lines:
    """A process's stderr read line by line on a thread, so that the test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def join(self) -> str:
        self._thread.join(10)
        return "\n".join(self.lines)


def test_without_a_worker_execute_wait_warns_once_naming_the_store_then_goes_on(
    pg_dsn: str, tmp_path: Path
) -> None:
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW)
    with running_server(pg_dsn, tmp_path) as server:
        idle = _health(server)
        assert idle["runner"] == "broker" and idle["workers"] == {"live": 0, "busy": {}}
        assert idle["queue"] == {"queued": 0, "held": 0, "leased": 0}

        proc = subprocess.Popen(
            [*EXECUTE, str(playbook), "--port", str(server.port), "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=server.env,
        )
        stderr = Lines(proc)
        started = time.monotonic()
        warning = _until(
            lambda: next((line for line in stderr.lines if line.startswith("warning: ")), None),
            timeout=NO_WORKER_SECONDS + 20,
        )
        assert time.monotonic() - started >= NO_WORKER_SECONDS - 1
        store = idle["store"]
        assert store in warning and "no worker is connected" in warning
        assert "1 job(s) queued" in warning
        host_db = store.removeprefix("postgresql://")
        assert f"`noetl worker start --db postgresql://USER:PASSWORD@{host_db}`" in warning
        execution_id = re.search(r"execution (\S+) in", warning).group(1)  # type: ignore[union-attr]
        waiting = _health(server)
        assert waiting["workers"]["live"] == 0 and waiting["queue"]["queued"] == 1

        status = cli("status", execution_id, "--port", str(server.port))
        assert status.returncode == 0
        assert "  workers:  0 live; queue: 1 queued, 0 held, 0 leased" in status.stdout.splitlines()
        assert status.stdout.splitlines()[-1] == f"execution {execution_id}: RUNNING"

        workers = Workers(pg_dsn, tmp_path)
        workers.start("w1")
        try:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr.join()
            assert out.splitlines()[-1] == f"execution {execution_id}: COMPLETED"
            assert _until(lambda: _health(server)["workers"]["live"] == 1)
        finally:
            workers.stop_all()
        text = stderr.join()
        assert text.count("warning: ") == 1, text
        assert _until(lambda: _health(server)["workers"]["live"] == 0)  # a stopped worker is gone


def test_with_a_worker_busy_on_a_long_step_nothing_is_said_and_status_shows_it_busy(
    pg_dsn: str, tmp_path: Path
) -> None:
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW)
    with running_server(pg_dsn, tmp_path) as server:
        workers = Workers(pg_dsn, tmp_path)
        workers.start("w1", concurrency=3)
        try:
            _until(lambda: _health(server)["workers"]["live"] == 1)
            port = ["--port", str(server.port)]
            payload = json.dumps({"seconds": NO_WORKER_SECONDS + 2})
            proc = subprocess.Popen(
                [*EXECUTE, str(playbook), *port, "--payload", payload, "--wait"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env=server.env,
            )
            stderr = Lines(proc)
            execution_id = _until(
                lambda: next((ln.split()[1] for ln in stderr.lines if ln.endswith(" started")), None)
            )
            busy = _until(lambda: _health(server)["workers"]["busy"])
            assert busy == {"w1": 1}
            status = cli("status", execution_id, *port)
            assert "  workers:  1 live, busy: w1 (1 job); queue: 0 queued, 0 held, 1 leased" in status.stdout
            proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr.join()
            assert "warning" not in stderr.join()
        finally:
            workers.stop_all()


def test_a_sqlite_server_has_no_workers_and_says_so(tmp_path: Path) -> None:
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW)
    with running_server(str(tmp_path / "noetl.db"), tmp_path) as server:
        health = _health(server)
        assert health["runner"] == "in-process" and health["workers"] is None and health["queue"] is None
        payload = json.dumps({"seconds": NO_WORKER_SECONDS + 1})
        done = cli(
            "execute", "playbook", str(playbook), "--port", str(server.port), "--payload", payload, "--wait"
        )
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr  # the server runs it itself: nobody is missing
        execution_id = done.stdout.splitlines()[-1].split()[1].rstrip(":")
        status = cli("status", execution_id, "--port", str(server.port))
        assert "  workers:  none: the server runs executions itself (SQLite store, no queue)" in status.stdout
