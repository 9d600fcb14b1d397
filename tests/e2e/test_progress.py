"""`noetl run` draws a live progress line for an iterator on a terminal, and none when piped."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli, cli_on_terminal

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: progress}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(30) | list }}"
    element: x
    on_error: continue
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        import time
        def main(x):
            time.sleep(0.02)
            if x % 10 == 9:
                raise ValueError("every tenth item fails")
            return x
    next: [{step: end}]
  - step: end
"""


def test_progress_line_on_a_terminal(tmp_path: Path) -> None:
    playbook = tmp_path / "progress.yaml"
    playbook.write_text(PLAYBOOK)
    code, screen = cli_on_terminal("run", str(playbook), "--db", str(tmp_path / "db"))
    assert code == 0, screen
    assert "\r" in screen, "the line is redrawn in place"
    drawn = [line for line in screen.split("\r") if "/30" in line]
    assert len(drawn) >= 2, "drawn more than once while running"
    final = drawn[-1]
    assert "30/30" in final and "done=27" in final and "failed=3" in final
    assert "items/s" in final and "ETA" in final


def test_no_progress_when_not_a_terminal(tmp_path: Path) -> None:
    playbook = tmp_path / "progress.yaml"
    playbook.write_text(PLAYBOOK)
    done = cli("run", str(playbook), "--db", str(tmp_path / "db"))
    assert done.returncode == 0
    assert "items/s" not in done.stderr and "\r" not in done.stderr
