"""`noetl run --json` prints exactly one JSON object on stdout, whatever the steps print."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli

PRINTER = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: printer}
workflow:
  - step: start
    type: python
    code: |
      def main():
          print("chatty step output")
          return {"ok": True}
"""


def test_step_prints_go_to_stderr_with_json(tmp_path: Path) -> None:
    playbook = tmp_path / "printer.yaml"
    playbook.write_text(PRINTER)
    done = cli("run", str(playbook), "--db", str(tmp_path / "db"), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "COMPLETED" and answer["result"] == {"ok": True}
    assert "chatty step output" in done.stderr


def test_resume_refuses_a_new_payload(tmp_path: Path) -> None:
    playbook = tmp_path / "printer.yaml"
    playbook.write_text(PRINTER)
    done = cli("run", str(playbook), "--db", str(tmp_path / "db"), "--resume", "x", "--payload", '{"a": 1}')
    assert done.returncode == 2 and "--resume" in done.stderr and "Traceback" not in done.stderr
