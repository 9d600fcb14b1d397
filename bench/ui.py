"""The web UI on a large execution: time until the execution page is complete in a browser, and bytes sent.

Runs a loop of N trivial items with `noetl run` into a fresh SQLite store (or reuses --db), starts
`noetl server start` on it, and opens the execution page in Debian's chromium (Playwright) several times.
"Complete" means the iterator's panel shows every item done and the event table's first page is drawn.
The first open is cold (the server has not summed the execution up yet); later opens are warm.

    .venv/bin/python bench/ui.py                 # 100,000 items
    .venv/bin/python bench/ui.py --items 10000 --opens 5

Targets (issue 11): under 1.5 s and under 1 MB for 100,000 items.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.processes import ServerProcess  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: ui_bench, path: bench/ui_bench}}
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: "{{{{ range(0, {items}) | list }}}}"
    element: n
    task:
      type: python
      data: {{n: "{{{{ n }}}}"}}
      code: |
        def main(n):
            return {{"n": n}}
    next: [{{step: end}}]
  - step: end
"""


def make_execution(folder: Path, items: int) -> tuple[str, str]:
    db = folder / "noetl.db"
    playbook = folder / "ui_bench.yaml"
    playbook.write_text(PLAYBOOK.format(items=items))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", str(db), "--quiet"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=folder,
    )
    print(f"ran {items:,} items with noetl run in {time.perf_counter() - t0:.1f} s")
    return str(db), latest(str(db))


def latest(db: str) -> str:
    from noetl.store import open_store

    store = open_store(db)
    try:
        return store.executions(1)[0].execution_id
    finally:
        store.close()


def open_page(browser: object, url: str, items: int) -> tuple[float, int, int]:
    """(seconds until complete, bytes of all responses, bytes of API responses)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    sizes: list[tuple[str, int]] = []

    def measure(response: object) -> None:
        # a stream (the live view) or a redirect has no body to count
        with contextlib.suppress(Exception):
            sizes.append((response.url, len(response.body())))  # type: ignore[attr-defined]

    page.on("response", measure)
    t0 = time.perf_counter()
    page.goto(url)
    page.locator(".iterator [data-count=done] .n").filter(has_text=f"{items:,}").wait_for()
    page.locator("#events tr.event").first.wait_for()
    elapsed = time.perf_counter() - t0
    page.wait_for_load_state("networkidle")
    page.close()
    total = sum(n for _, n in sizes)
    api = sum(n for u, n in sizes if "/api/" in u)
    return elapsed, total, api


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--opens", type=int, default=5, help="page opens after the cold one")
    parser.add_argument("--db", help="reuse this store and its latest execution instead of running one")
    parser.add_argument("--chromium", default=os.environ.get("NOETL_TEST_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="noetl-bench-ui-"))
    if args.db:
        db, execution_id = args.db, latest(args.db)
    else:
        db, execution_id = make_execution(folder, args.items)
    server = ServerProcess(db, folder).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            url = f"{server.url}/#/executions/{execution_id}"
            cold, total, api = open_page(browser, url, args.items)
            warm = [open_page(browser, url, args.items) for _ in range(args.opens)]
            browser.close()
    finally:
        server.stop()
    warm_times = [w[0] for w in warm]
    print(f"execution page of {args.items:,} items (target: complete under 1.5 s, under 1 MB sent)")
    print(f"  cold (first open after the server started): {cold:.2f} s")
    print(
        f"  warm: median {statistics.median(warm_times):.2f} s, max {max(warm_times):.2f} s ({args.opens} opens)"
    )
    print(f"  sent: {total / 1024:.0f} KB in all, of which {api / 1024:.0f} KB from the API (cold open)")
    print(f"  warm open sent: {warm[-1][1] / 1024:.0f} KB ({warm[-1][2] / 1024:.0f} KB API)")


if __name__ == "__main__":
    main()
