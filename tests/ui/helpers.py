"""Helpers for the browser tests: screenshots, and executions run locally into a store the server reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.processes import REPO, SECRET_KEY


@cache
def _session_shots() -> Path:
    # One folder per test session, created on the first screenshot only.
    return Path(tempfile.mkdtemp(prefix="noetl-ui-shots-"))


def screenshot_dir() -> Path:
    """NOETL_UI_SCREENSHOTS when set (created if missing), else a temp folder for this session."""
    given = os.environ.get("NOETL_UI_SCREENSHOTS")
    if not given:
        return _session_shots()
    folder = Path(given)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page: Page, name: str) -> Path:
    """A full-page PNG of `page` saved as `name`.png in screenshot_dir(); its path."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def run_local(playbook: str | Path, db: str, payload: dict[str, Any] | None = None) -> str:
    """`noetl run PLAYBOOK --db DB --json` in a subprocess; the execution id (a failed run counts too)."""
    args = [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", db, "--json", "--quiet"]
    if payload is not None:
        args += ["--payload", json.dumps(payload)]
    env = {**os.environ, "NOETL_SECRET_KEY": SECRET_KEY}  # the key the test servers use
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    # --json prints one object; a playbook that fails still prints it (with a non-zero exit code).
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            execution_id = json.loads(line).get("execution_id")
            if execution_id:
                return str(execution_id)
    raise AssertionError(
        f"noetl run {playbook} printed no execution id (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
