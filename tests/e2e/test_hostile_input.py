"""Hostile or unlucky input gets exit 2 and a message, never a traceback or an exhausted machine; user
code that tries to end the process fails its step instead (issue: hostile input and faults)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, cli

LAUGHS = """apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: laughs}
workload:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
workflow:
  - step: start
"""


def peak_child_rss_mb(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run `noetl ARGS`; (the process, its peak RSS in MB, seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "noetl.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: it moved only if this one was the largest.
    return done, (after / 1024 if after > before else 0.0), time.monotonic() - t0


@pytest.mark.parametrize("command", ["validate", "run"])
def test_nested_aliases_are_refused_quickly_in_bounded_memory(tmp_path: Path, command: str) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS, encoding="utf-8")
    args = [command, str(path)] + (["--db", str(tmp_path / "x.db")] if command == "run" else [])
    done, rss_mb, seconds = peak_child_rss_mb(args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "expands to more than 1,000,000 values" in done.stderr
    assert "Traceback" not in done.stderr
    assert seconds < 20 and rss_mb < 500, (seconds, rss_mb)


def test_a_playbook_nested_20000_deep_is_refused_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: deep}\nworkload:\n  x: "
        + "[" * 20000
        + "]" * 20000
        + "\nworkflow:\n  - step: start\n",
        encoding="utf-8",
    )
    done = cli("validate", str(path))
    assert done.returncode == 2, done.stderr
    assert "nested too deeply" in done.stderr or "nests more than 100 levels" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_input_file_that_is_not_utf8_or_too_deep_is_refused_with_exit_2(tmp_path: Path) -> None:
    playbook = REPO / "examples/hello/hello_world.yaml"
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"name": "Jos\xe9"}')
    done = cli("run", str(playbook), "--input", str(latin), "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2 and "is not UTF-8" in done.stderr, done.stderr
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}", encoding="utf-8")
    done = cli("run", str(playbook), "--input", str(deep), "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2 and "nested too deeply" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("import sys\n          sys.exit(3)", "SystemExit(3)"),
        ("raise SystemExit", "SystemExit"),
        ("raise KeyboardInterrupt('stop')", "KeyboardInterrupt(stop)"),
        ("raise BaseException('odd')", "BaseException(odd)"),
    ],
)
def test_user_code_that_would_end_the_process_fails_its_step(tmp_path: Path, body: str, shown: str) -> None:
    path = tmp_path / "exit.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: exits}\nworkflow:\n"
        "  - step: start\n    type: python\n    retry: 3\n    code: |\n      def main():\n"
        f"          {body}\n    next: [{{step: end}}]\n  - step: end\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "x.db")
    done = cli("run", str(path), "--db", db, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "FAILED" and shown in answer["error"], answer
    events = cli("events", answer["execution_id"], "--db", db, "--json")
    types = [json.loads(line)["event_type"] for line in events.stdout.splitlines()]
    assert types[-1] == "execution_failed" and "action_retry" not in types  # one attempt: not retried
