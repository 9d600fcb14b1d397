"""Benchmark: max RSS of a trivial iterator over N items, sequential and async, every event persisted.

Each run is its own process (max RSS is per process), on a fresh SQLite store. The list is built by a
python step, as in issue 10. The figure that matters is the growth: max RSS at N items minus max RSS of the
same playbook at 1,000 items.

    .venv/bin/python bench/memory.py [--items 1000000] [--modes sequential,async] [--collect false]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: bench_memory}}
workload: {{n: 1000}}
workflow:
  - step: start
    next: [{{step: build}}]
  - step: build
    type: python
    data: {{n: "{{{{ workload.n }}}}"}}
    code: |
      def main(n):
          return list(range(n))
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: "{{{{ build }}}}"
    element: x
    mode: {mode}
    concurrency: 8
    {collect}
    task:
      type: python
      data: {{x: "{{{{ x }}}}"}}
      code: |
        def main(x):
            return x * 2
    next: [{{step: end}}]
  - step: end
"""

CHILD = r"""
import json, resource, sys, time
from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from noetl.store import open_store

text, n, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = open_store(db)
t0 = time.perf_counter()
outcome = LocalRunner(store).run(parse_playbook(text), {"n": n})
elapsed = time.perf_counter() - t0
assert outcome.status == "COMPLETED", outcome.error
events = store.last_seq(outcome.execution_id)
store.close()
print(json.dumps({"seconds": elapsed, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "events": events}))
"""


def one_run(mode: str, collect: str | None, n: int, folder: Path) -> dict:
    collect_line = f"collect: {collect}" if collect is not None else ""
    text = PLAYBOOK.format(mode=mode, collect=collect_line)
    db = folder / f"{mode}-{n}-{collect}.db"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, text, str(n), str(db)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"the {mode} run over {n} items failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--modes", default="sequential,async")
    parser.add_argument("--collect", default="false", help="true, false, or 'unset' to leave the key out")
    args = parser.parse_args()
    collect = None if args.collect == "unset" else args.collect
    print(f"collect: {args.collect}; growth = max RSS at {args.items:,} items - max RSS at 1,000 items")
    print("target (issue 10): growth <= 150 MB with collect: false")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            small = one_run(mode, collect, 1_000, Path(tmp))
            large = one_run(mode, collect, args.items, Path(tmp))
            growth = (large["max_rss_kb"] - small["max_rss_kb"]) / 1024
            per_item = large["seconds"] / args.items * 1e6
            print(
                f"{mode:>10}: 1,000 items {small['max_rss_kb'] / 1024:.0f} MB; "
                f"{args.items:,} items {large['max_rss_kb'] / 1024:.0f} MB in {large['seconds']:.1f} s "
                f"({per_item:.1f} us per item); growth {growth:.0f} MB "
                f"({growth * 1024 * 1024 / args.items:.0f} bytes per item)"
            )


if __name__ == "__main__":
    main()
