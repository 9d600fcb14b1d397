"""CPU instructions per item, counted by valgrind (cachegrind, no cache simulation), for the benches
whose times this machine moves by a third from one minute to the next (docs/performance.md, "Why
instructions"). Not a time: a cache miss costs more than an addition, and what runs in another
process (a database server) is not counted.

A bench runs itself under valgrind with a hidden `--one WHAT` option and calls `as_slow_as_valgrind()`
there; `per_item` counts a small and a large run and divides the difference by the difference in
items, so that start-up and the playbook's own steps cancel out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

VALGRIND_SLOWDOWN = 50  # about how much slower a Python program runs under cachegrind here


def per_item(argv: Callable[[int], list[str]], small: int, large: int) -> int:
    """(instructions of `argv(large)` - those of `argv(small)`) // (large - small); argv(n) is the
    command line of the run of n items, without the interpreter."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    return (_count(argv(large)) - _count(argv(small))) // (large - small)


def _count(argv: list[str]) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            *argv,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def as_slow_as_valgrind() -> None:
    """Under valgrind every step takes about 50 times as long, timers excepted: the event writer's
    flush of a quiet queue (after 50 ms) would cut batches 50 times as often as in a real run, and each
    batch costs a transaction. Its delay is stretched by the same factor, so the run counted writes
    the batches a real one writes."""
    from noetl.store import batching

    real_init = batching.BatchWriter.__init__
    defaults = real_init.__defaults__ or ()

    def stretched(self: Any, write_batch: Any, max_delay: float = 0.05, *rest: Any, **kw: Any) -> None:
        real_init(self, write_batch, max_delay * VALGRIND_SLOWDOWN, *rest, **kw)

    assert defaults and defaults[0] == 0.05, "BatchWriter's max_delay default moved: update the bench"
    batching.BatchWriter.__init__ = stretched  # type: ignore[method-assign]
