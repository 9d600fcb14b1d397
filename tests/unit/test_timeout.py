"""A test that hangs is stopped by the per-test timeout (pytest-timeout) and reported as a failure."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_suite_has_a_default_timeout() -> None:
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 60 <= int(options["timeout"]) <= 900


def test_a_hanging_test_is_stopped_and_reported_as_a_timeout(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text("import time\n\n\ndef test_hangs():\n    time.sleep(120)\n")
    # The project's own configuration, with only the limit shortened: the plugin is installed and on.
    config = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *config, "-o", "timeout=1", str(tmp_path / "test_hangs.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout (>1.0s) from pytest-timeout" in done.stdout
    assert "1 failed" in done.stdout
