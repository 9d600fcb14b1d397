"""Helpers for tests that run playbooks for real and read their events back from the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from noetl.dsl import load_playbook, parse_playbook
from noetl.engine.events import Event
from noetl.runtime.local import LocalRunner, Outcome

REPO = Path(__file__).resolve().parent.parent


def run_text(
    store: Any,
    yaml_text: str,
    payload: dict[str, Any] | None = None,
    *,
    merge: bool = False,
    source: str = "<test>",
) -> tuple[Outcome, list[Event]]:
    """Run a playbook given as YAML text; returns the outcome and every stored event."""
    pb = parse_playbook(textwrap.dedent(yaml_text), source=source)
    outcome = LocalRunner(store).run(pb, payload, merge=merge)
    return outcome, store.read(outcome.execution_id)


def run_file(
    store: Any, path: str | Path, payload: dict[str, Any] | None = None, *, merge: bool = False
) -> tuple[Outcome, list[Event]]:
    outcome = LocalRunner(store).run(load_playbook(path), payload, merge=merge)
    return outcome, store.read(outcome.execution_id)


def types_of(events: list[Event], node_name: str | None = None) -> list[str]:
    return [e.event_type for e in events if node_name is None or e.node_name == node_name]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `noetl` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "noetl.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


def one(events: list[Event], event_type: str, node: str) -> Event:
    """The single event of a type for a node; fails with the node's event types otherwise."""
    found = [e for e in events if e.event_type == event_type and e.node_name == node]
    assert len(found) == 1, f"expected one {event_type} of {node}, got {types_of(events, node)}"
    return found[0]


def cli_on_terminal(*args: str, timeout: float = 60, columns: int | None = None) -> tuple[int, str]:
    """Run `noetl ARGS` with its stderr on a pseudo-terminal, as a person at a shell sees it:
    (exit code, everything drawn on the terminal). `columns`: the terminal's width (else unset: 0)."""
    import fcntl
    import pty
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    # os.environ, not the process's own environment, which under pytest holds COLUMNS=80 set behind
    # os.environ's back: the width must come from the terminal, as at a shell.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", *args], stdout=subprocess.DEVNULL, stderr=slave, cwd=REPO, env=env
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not data:
            break
        chunks.append(data.decode(errors="replace"))
    code = proc.wait(timeout=timeout)
    os.close(master)
    return code, "".join(chunks)
