"""`noetl run` draws a live progress line for an iterator on a terminal, and none when piped: one line per
running iterator, fitted to the terminal's width."""

from __future__ import annotations

import re
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


TWO_AT_ONCE = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: two_at_once}
workflow:
  - step: start
    next: [{step: alpha}, {step: beta}]
  - step: alpha
    type: iterator
    collection: "{{ range(20) | list }}"
    element: x
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        import time
        def main(x):
            time.sleep(0.04)
            return x
    next: [{step: end}]
  - step: beta
    type: iterator
    collection: "{{ range(30) | list }}"
    element: x
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        import time
        def main(x):
            time.sleep(0.02)
            return x
    next: [{step: end}]
  - step: end
"""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def frames(screen: str) -> list[list[str]]:
    """Each redraw of the display (it starts with a carriage return) as its visible lines."""
    text = _ANSI.sub("", screen.replace("\r\n", "\n"))
    return [[line for line in frame.split("\n") if line.strip()] for frame in text.split("\r")]


def test_two_iterators_at_once_each_have_their_own_line(tmp_path: Path) -> None:
    playbook = tmp_path / "two.yaml"
    playbook.write_text(TWO_AT_ONCE)
    code, screen = cli_on_terminal("run", str(playbook), "--db", str(tmp_path / "db"), columns=100)
    assert code == 0, screen
    both = [f for f in frames(screen) if [line.split()[0] for line in f] == ["alpha", "beta"]]
    assert both, "the two iterators were never drawn together"
    running = [f for f in both if "20/20" not in f[0] and "30/30" not in f[1]]
    assert running, "never drawn together while both ran"
    alpha, beta = both[-1]
    assert "20/20" in alpha and "done=20 failed=0" in alpha
    assert "30/30" in beta and "done=30 failed=0" in beta
    for line in (alpha, beta):  # the rate, the time elapsed and the time left
        assert re.search(r"[\d.]+ items/s \d+:\d\d:\d\d ETA \d\d:\d\d", line), line


def test_the_line_fits_the_terminal(tmp_path: Path) -> None:
    playbook = tmp_path / "progress.yaml"
    playbook.write_text(PLAYBOOK)
    code, screen = cli_on_terminal("run", str(playbook), "--db", str(tmp_path / "db"), columns=60)
    assert code == 0, screen
    drawn = [line for frame in frames(screen) for line in frame if "/30" in line]
    assert len(drawn) >= 2 and all(len(line.rstrip()) <= 60 for line in drawn), drawn
    assert "30/30" in drawn[-1] and "done=27 failed=3" in drawn[-1]


LONG_STEP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: long_step}
workflow:
  - step: start
    next: [{step: crunch}]
  - step: crunch
    type: python
    code: |
      import time
      def main():
          time.sleep(2.5)
          return "done"
    next: [{step: quick}]
  - step: quick
    type: python
    code: |
      def main():
          return 1
    next: [{step: end}]
  - step: end
"""


def test_a_long_step_gets_a_spinner_line_with_its_name_and_time(tmp_path: Path) -> None:
    """Issue 12 item 7: a step that is not an iterator and runs longer than a second shows that it runs;
    a quick one draws nothing."""
    playbook = tmp_path / "long.yaml"
    playbook.write_text(LONG_STEP)
    code, screen = cli_on_terminal("run", str(playbook), "--db", str(tmp_path / "db"))
    assert code == 0, screen
    drawn = [line for line in screen.split("\r") if "crunch" in line]
    assert len(drawn) >= 2, screen  # redrawn while it runs
    assert re.search(r"crunch .*0:00:0[1-3]", drawn[-1]), drawn[-1]  # its name and the time it has run
    assert not [line for line in screen.split("\r") if "quick" in line and "0:00" in line]
    assert "items/s" not in screen and "ETA" not in screen  # no iterator figures on a step's line
