"""Benchmark: how long the `noetl` command takes to start, as a user runs it (a new process each time).

Times the wall clock of `noetl --help`, `noetl validate` of the hello example and `noetl run` of it (a
python-only playbook) on a temporary SQLite store, each as the median of --repeat runs after one warm-up
run (which writes the .pyc files and, for `run`, creates the store), next to its target: 150 ms for
`--help` and `validate` (issue 10), none for `run`. `python -c pass` is the floor: the interpreter and
site-packages alone. stdout and stderr go to /dev/null, so `run` draws no progress line.

    .venv/bin/python bench/startup.py [--repeat 7]

Where the time goes: `.venv/bin/python -X importtime -m noetl.cli --help 2>&1 >/dev/null | sort -t'|' -k2 -n`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/hello/hello_world.yaml"
TARGET_MS = 150.0


def noetl() -> list[str]:
    """The console script next to this interpreter, as a user runs it; `-m noetl.cli` without one."""
    script = Path(sys.executable).parent / "noetl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "noetl.cli"]


def timings(argv: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    """Seconds of each of `repeat` runs of argv, after one warm-up run; every run must exit 0."""
    runs = []
    for n in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(
            argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        if n:
            runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each command (default 7)")
    args = parser.parse_args()
    # Without PYTHONDONTWRITEBYTECODE, which some shells set (this machine's does): the warm-up run
    # writes the .pyc files a user's install has, where with it every run compiled noetl's modules
    # from source again (about 40 ms of `validate`, cProfile: 23 calls of compile()).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("NOETL_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "noetl.db")
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("noetl --help", [*noetl(), "--help"], TARGET_MS),
            (f"noetl validate {EXAMPLE}", [*noetl(), "validate", EXAMPLE], TARGET_MS),
            (f"noetl run {EXAMPLE}", [*noetl(), "run", EXAMPLE, "--db", store, "--quiet"], None),
        ]
        print(
            f"start-up, median (min) of {args.repeat} runs, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
        )
        for label, argv, target in cases:
            runs = timings(argv, args.repeat, env)
            median, fastest = statistics.median(runs) * 1000, min(runs) * 1000
            verdict = ""
            if target is not None:
                verdict = f"target <= {target:.0f} ms: {'ok' if median <= target else 'MISSED'}"
            print(f"{label:<48} {median:6.1f} ms ({fastest:6.1f})  {verdict}".rstrip())


if __name__ == "__main__":
    main()
