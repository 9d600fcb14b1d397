"""Issue 9 item 9: the embedded store under contention. A writer that holds the database lock is waited
for (bounded, with backoff); past the bound the run fails with the command that resumes it; `--resume`
refuses to start while another live process runs the execution; a killed run leaves nothing held."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from noetl.store import open_store
from tests.helpers import REPO, cli

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: contention}
workload: {n: 30, pause: 0.1}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: x
    task:
      type: python
      data: {x: "{{ x }}", pause: "{{ workload.pause }}"}
      code: |
        import time
        def main(x, pause):
            time.sleep(pause)
            return x * 10
    next: [{step: end}]
  - step: end
"""


def _playbook(tmp_path: Path) -> Path:
    path = tmp_path / "contention.yaml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    return path


def _hold_the_lock(db: Path, after: float, seconds: float) -> threading.Thread:
    """Another writer: takes the database's write lock `after` seconds from now, for `seconds`."""

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        time.sleep(after)
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def _item_ends(db: Path, execution_id: str) -> list[int]:
    store = open_store(str(db))
    try:
        return sorted(
            e.current_index for e in store.read(execution_id) if e.event_type == "iteration_completed"
        )
    finally:
        store.close()


def _only_execution(db: Path) -> str:
    store = open_store(str(db))
    try:
        [record] = store.executions()
        return record.execution_id
    finally:
        store.close()


def test_a_lock_held_longer_than_sqlites_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    pb, db = _playbook(tmp_path), tmp_path / "s.db"
    open_store(str(db)).close()
    holder = _hold_the_lock(db, after=1.0, seconds=11.0)  # SQLite alone gives up after 10 s
    done = cli("run", str(pb), "--db", str(db), "--quiet", timeout=120)
    holder.join()
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout
    assert _item_ends(db, _only_execution(db)) == list(range(30))


def test_past_the_lock_timeout_the_run_fails_with_the_command_that_resumes_it(tmp_path: Path) -> None:
    pb, db = _playbook(tmp_path), tmp_path / "s.db"
    open_store(str(db)).close()
    holder = _hold_the_lock(db, after=1.0, seconds=6.0)
    done = cli("run", str(pb), "--db", str(db), "--quiet", env={"NOETL_STORE_LOCK_TIMEOUT": "2"}, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    execution_id = _only_execution(db)
    assert "stayed locked by another process for more than 2 s" in done.stderr
    resume = f"noetl run {pb} --db {db} --resume {execution_id}"
    assert resume in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    holder.join()
    again = cli("run", str(pb), "--db", str(db), "--resume", execution_id, "--quiet", timeout=60)
    assert again.returncode == 0, again.stderr
    assert _item_ends(db, execution_id) == list(range(30))  # each item completed once, none lost


def test_resume_refuses_while_another_process_runs_the_execution(tmp_path: Path) -> None:
    pb, db = _playbook(tmp_path), tmp_path / "s.db"
    first = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(pb), "--db", str(db), "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _started(db):
            time.sleep(0.1)
        execution_id = _only_execution(db)
        refused = cli("run", str(pb), "--db", str(db), "--resume", execution_id, timeout=60)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (
            f"execution {execution_id} is still running in another process (pid {first.pid})"
            in refused.stderr
        )
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert _item_ends(db, execution_id) == list(range(30))  # nothing ran twice


def test_a_killed_run_leaves_its_execution_free_to_resume(tmp_path: Path) -> None:
    pb, db = _playbook(tmp_path), tmp_path / "s.db"
    first = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(pb), "--db", str(db), "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_ends_so_far(db)) < 5:
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    execution_id = _only_execution(db)
    resumed = cli("run", str(pb), "--db", str(db), "--resume", execution_id, "--quiet", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert _item_ends(db, execution_id) == list(range(30))


def _started(db: Path) -> bool:
    return len(_ends_so_far(db)) >= 2


def _ends_so_far(db: Path) -> list[int]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute(
                "SELECT current_index FROM events WHERE event_type = 'iteration_completed'"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [r[0] for r in rows]


def test_a_lock_timeout_that_is_not_a_number_is_bad_input(tmp_path: Path) -> None:
    pb = _playbook(tmp_path)
    done = cli("run", str(pb), "--db", str(tmp_path / "s.db"), env={"NOETL_STORE_LOCK_TIMEOUT": "soon"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "NOETL_STORE_LOCK_TIMEOUT='soon' is not a number of seconds" in done.stderr
    assert "Traceback" not in done.stderr
