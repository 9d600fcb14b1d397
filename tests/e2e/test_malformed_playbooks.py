"""Every malformed playbook is rejected by the real `noetl` command before anything runs."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "malformed"
FILES = sorted(FIXTURES.glob("*.yaml"))


@dataclass(frozen=True)
class Expectation:
    """What a fixture's header comments promise: a message substring, and a line and/or a step."""

    message: str
    line: int | None
    step: str | None


def expectation(path: Path) -> Expectation:
    header = {}
    for raw in path.read_text(encoding="utf-8").splitlines()[:3]:
        match = re.match(r"#\s*(expect|line|step):\s*(.+?)\s*$", raw)
        if match:
            header[match.group(1)] = match.group(2)
    assert "expect" in header, f"{path.name}: first line must be `# expect: <substring>`"
    assert "line" in header or "step" in header, f"{path.name}: needs `# line: N` or `# step: NAME`"
    line = int(header["line"]) if "line" in header else None
    return Expectation(header["expect"], line, header.get("step"))


def events_in(db: Path) -> int:
    """How many events and executions the store holds (0 if the database was never created)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return sum(
            conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
            for t in tables & {"events", "executions"}
        )


def test_there_are_enough_fixtures() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_playbook_is_rejected(path: Path, command: str, tmp_path: Path) -> None:
    expected = expectation(path)
    db = tmp_path / "x.db"
    args = ["validate", str(path)] if command == "validate" else ["run", str(path), "--db", str(db)]
    proc = cli(*args)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == 2, output
    assert "the playbook is not valid" in proc.stderr
    assert expected.message in proc.stderr, proc.stderr
    problem_lines = [ln for ln in proc.stderr.splitlines() if expected.message in ln]
    if expected.line is not None:
        assert any(f"{path}:{expected.line}:" in ln for ln in problem_lines), proc.stderr
    if expected.step is not None:
        assert any(f"step '{expected.step}'" in ln for ln in problem_lines), proc.stderr
    assert events_in(db) == 0, "a rejected playbook must not write to the store"


SEVERAL_MISTAKES = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: several}
workflow:
  - step: start
    next: [{step: fech}]
  - step: fetch
    type: htp
    endpoint: https://api.example.com
  - step: compute
    type: python
    code: |
      def main(:
          return 1
    retry: {max_attempts: 0}
    nxt: [{step: end}]
  - step: end
"""


def test_several_mistakes_are_all_listed_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "several.yaml"
    path.write_text(SEVERAL_MISTAKES, encoding="utf-8")
    db = tmp_path / "x.db"
    proc = cli("run", str(path), "--db", str(db))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "(5 problem(s))" in proc.stderr, proc.stderr
    expected = [
        (6, "'fech', which is not a step (did you mean 'fetch'?)"),
        (8, "unknown type 'htp' (did you mean 'http'?)"),
        (13, "python syntax error in `code`"),
        (15, "retry.max_attempts must be a whole number >= 1"),
        (16, "unknown key 'nxt' for a python step (did you mean 'next'?)"),
    ]
    problems = [ln.strip() for ln in proc.stderr.splitlines()[1:]]
    assert len(problems) == len(expected), proc.stderr
    for (line, message), problem in zip(expected, problems, strict=True):
        assert problem.startswith(f"{path}:{line}:"), problem
        assert message in problem, problem
    assert events_in(db) == 0
