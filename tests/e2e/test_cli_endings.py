"""Honest endings: the last line of `noetl run`, `execute --wait` and `status` says how many items failed
and where; a result longer than a screenful is cut with the command that prints all of it; `--quiet`
prints only the last line; `--json` stays one complete object (with `failed_items`)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.cli_common import RESULT_LINES
from tests.helpers import REPO, cli
from tests.processes import ServerProcess, Workers, running_server

LOOP = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: many_items, path: tests/many_items}
workload: {n: 3000}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(0, workload.n) | list }}"
    element: n
    on_error: continue
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        def main(n):
            if n % 500 == 499:
                raise ValueError(f"item {n} is bad")
            return {"n": n}
    next: [{step: end}]
  - step: end
    result:
      rows: "{{ loop }}"
"""
FAILED = [499, 999, 1499, 1999, 2499, 2999]
LAST_LINE = re.compile(
    r"^execution (\S+): COMPLETED, 6 of 3,000 items failed in loop: 499, 999, 1499, 1999, 2499, 2999$"
)


@pytest.fixture
def loop_file(tmp_path: Path) -> Path:
    path = tmp_path / "many_items.yaml"
    path.write_text(LOOP)
    return path


def _more_command(stdout: str) -> list[str]:
    """The command named by the `... N more lines: COMMAND` line, as arguments of `noetl`."""
    cut = [line for line in stdout.splitlines() if line.startswith("... ") and " more lines: " in line]
    assert len(cut) == 1, stdout
    command = shlex.split(cut[0].split(" more lines: ", 1)[1])
    assert command[0] == "noetl"
    return command[1:]


def _result_of(stdout: str) -> object:
    """The JSON after `result: ` up to the last line (the status line)."""
    text = stdout.split("result: ", 1)[1]
    return json.loads(text.rsplit("\n", 2)[0])


def test_run_ends_with_the_failed_items_and_cuts_the_result_after_a_screenful(
    loop_file: Path, tmp_path: Path
) -> None:
    db = str(tmp_path / "noetl.db")
    done = cli("run", str(loop_file), "--db", db)
    assert done.returncode == 0, done.stderr  # on_error: continue: the execution completes
    lines = done.stdout.splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    execution_id = match.group(1)
    assert len(lines) == RESULT_LINES + 1, f"a screenful of result and the last line, got {len(lines)}"
    assert lines[0] == "result: {"
    assert re.match(r"^\.\.\. [\d,]+ more lines: noetl status \S+ --db \S+ --all$", lines[-2]), lines[-2]

    # The command named prints the whole result, which is the one --json gives.
    shown = cli(*_more_command(done.stdout))
    assert shown.returncode == 0, shown.stderr
    assert LAST_LINE.match(shown.stdout.splitlines()[-1])
    rows = _result_of(shown.stdout)["rows"]  # type: ignore[index]
    assert len(rows) == 3000 and [i for i, r in enumerate(rows) if r.get("failed")] == FAILED
    hidden = int(lines[-2].split()[1].replace(",", ""))
    result_lines = shown.stdout.split("result: ", 1)[1].splitlines()[:-1]  # without the last line
    assert hidden == len(result_lines) - (RESULT_LINES - 1)

    quiet = cli("run", str(loop_file), "--db", db, "--quiet")
    assert quiet.returncode == 0
    assert len(quiet.stdout.splitlines()) == 1 and LAST_LINE.match(quiet.stdout.strip()), quiet.stdout
    assert quiet.stderr == ""  # no `started` line, no progress

    as_json = cli("run", str(loop_file), "--db", db, "--json")
    answer = json.loads(as_json.stdout)
    assert set(answer) == {"execution_id", "status", "result", "error", "failed_items"}
    assert len(answer["result"]["rows"]) == 3000  # complete, never cut
    assert answer["failed_items"] == [
        {"step": "loop", "failed": 6, "skipped": 0, "count": 3000, "total": 3000, "failed_indexes": FAILED}
    ]

    # `noetl status` ends the same way, its result formatted and cut like run's.
    status = cli("status", execution_id, "--db", db)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[-1] == f"execution {execution_id}: COMPLETED, 6 of 3,000 items failed in loop: " + ", ".join(
        map(str, FAILED)
    )
    assert "  status:   COMPLETED" in lines and "result: {" in lines
    assert max(len(line) for line in lines) < 200, "no 18 KB line"
    assert len(lines) < RESULT_LINES + 10
    record = json.loads(cli("status", execution_id, "--db", db, "--json").stdout)
    assert len(record["result"]["rows"]) == 3000
    assert record["failed_items"][0]["failed_indexes"] == FAILED
    assert {"execution_id", "playbook_path", "status", "created_at", "finished_at", "result", "error"} <= set(
        record
    )


def test_many_failed_indexes_are_cut_and_a_failed_iterator_says_what_was_skipped(tmp_path: Path) -> None:
    playbook = tmp_path / "stops.yaml"
    playbook.write_text(
        LOOP.replace("on_error: continue", "on_error: continue\n    max_failures: 11")
        .replace("n % 500 == 499", "n % 20 == 3")
        .replace("{n: 3000}", "{n: 400}")
    )
    done = cli("run", str(playbook), "--db", str(tmp_path / "noetl.db"), "--quiet")
    assert done.returncode == 1
    line = done.stdout.strip()
    # 12 failures break max_failures 11; the items after them were not run.
    assert re.match(
        r"^execution \S+: FAILED, 12 of 400 items failed in loop: 3, 23, 43, 63, 83, 103, 123, 143, 163, 183, "
        r"\.\.\. \([\d,]+ skipped\)$",
        line,
    ), line
    assert "error: " in done.stderr and "max_failures" in done.stderr  # --quiet: the error on stderr


def test_a_short_result_is_printed_whole_and_the_status_line_comes_last(tmp_path: Path) -> None:
    done = cli("run", str(REPO / "examples/hello/hello_world.yaml"), "--db", str(tmp_path / "noetl.db"))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[:4] == ["result: {", '  "text": "Hello from NoETL, world!",', '  "length": 16', "}"]
    assert re.match(r"^execution \S+: COMPLETED$", lines[-1]) and len(lines) == 5


# ---- on a server ---------------------------------------------------------------------------------------


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(pg_dsn, tmp_path) as started:
        workers = Workers(pg_dsn, tmp_path)
        workers.start("w1", concurrency=2)
        try:
            yield started
        finally:
            workers.stop_all()


def test_execute_wait_and_status_on_a_server_end_with_the_failed_items(
    server: ServerProcess, loop_file: Path
) -> None:
    small = loop_file.with_name("small.yaml")
    small.write_text(LOOP.replace("{n: 3000}", "{n: 1000}"))
    port = ["--port", str(server.port)]
    done = cli("execute", "playbook", str(small), *port, "--wait")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    match = re.match(r"^execution (\S+): COMPLETED, 2 of 1,000 items failed in loop: 499, 999$", lines[-1])
    assert match, lines[-1]
    execution_id = match.group(1)
    assert len(lines) == RESULT_LINES + 1
    assert re.match(
        rf"^\.\.\. [\d,]+ more lines: noetl status {execution_id} --port {server.port} --all$", lines[-2]
    )
    assert "no worker" not in done.stderr

    shown = cli(*_more_command(done.stdout))
    assert shown.returncode == 0, shown.stderr
    assert len(_result_of(shown.stdout)["rows"]) == 1000  # type: ignore[index]
    assert shown.stdout.splitlines()[-1] == lines[-1]

    status = cli("status", execution_id, *port)
    assert status.stdout.splitlines()[-1] == lines[-1]
    assert re.search(r"^  workers:  1 live", status.stdout, re.M), status.stdout

    quiet = cli("execute", "playbook", "tests/many_items", *port, "--wait", "--quiet")
    assert quiet.returncode == 0
    assert len(quiet.stdout.splitlines()) == 1 and "2 of 1,000 items failed in loop" in quiet.stdout

    as_json = json.loads(cli("execute", "playbook", "tests/many_items", *port, "--wait", "--json").stdout)
    assert len(as_json["result"]["rows"]) == 1000
    assert as_json["failed_items"][0]["failed_indexes"] == [499, 999]
    assert (
        json.loads(cli("status", execution_id, *port, "--json").stdout)["failed_items"]
        == as_json["failed_items"]
    )


def test_the_worker_module_alone_is_the_same_command(tmp_path: Path) -> None:
    """tests/processes.py starts workers with `python -m noetl.cli_worker`: it must refuse a SQLite store
    with the same one line (no traceback) as `noetl worker start`."""
    done = subprocess.run(
        [sys.executable, "-m", "noetl.cli_worker", "start", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "error: workers share a PostgreSQL store: pass --db postgresql://... (or set NOETL_DB)"
    )
