"""Benchmark: max RSS and items/s of an iterator over a streaming collection, every event persisted.

The collection is a query read through a cursor (`collection: {query: ..., type: duckdb}`, or postgres
with --dsn), `collect: false`, and a trivial python task per row. Each run is its own process (max RSS is
per process), on a fresh SQLite store. Target (issue 10): 5,000,000 rows within 200 MB of max RSS. For
comparison (DuckDB only), the max RSS of a bare process holding the same rows as a list of dicts, which
is what a collection that is not streamed needs before its first item.

    .venv/bin/python bench/streaming.py [--rows 5000000] [--mode sequential|async]
                                        [--dsn postgresql://user@host:port/db]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_MB = 200

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: bench_streaming}}
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: {collection}
    element: row
    mode: {mode}
    concurrency: 8
    collect: false
    task:
      type: python
      data: {{i: "{{{{ row.i }}}}"}}
      code: |
        def main(i):
            return i * 2
    next: [{{step: end}}]
  - step: end
"""

DUCKDB = '{{query: "SELECT range AS i FROM range({rows})", type: duckdb, database: ":memory:"}}'
POSTGRES = '{{query: "SELECT i FROM generate_series(0, {last}) i", type: postgres, auth: pg_bench}}'

CHILD = r"""
import json, resource, sys, time
from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from noetl.store import open_store

text, db, fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
store = open_store(db)
if fields:
    store.put_credential("pg_bench", "postgres", fields)
t0 = time.perf_counter()
outcome = LocalRunner(store).run(parse_playbook(text))
elapsed = time.perf_counter() - t0
assert outcome.status == "COMPLETED", outcome.error
events = store.last_seq(outcome.execution_id)
store.close()
print(json.dumps({"seconds": elapsed, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "events": events, "count": outcome.result["count"]}))
"""


# The comparison: the same rows held as a list of dicts, which is what a collection that is not streamed
# needs before its first item runs (here the bare rows, without the engine or any event).
LISTED = r"""
import duckdb, json, resource, sys
con = duckdb.connect(":memory:")
con.execute("SET enable_progress_bar = false")
cur = con.execute(f"SELECT range AS i FROM range({int(sys.argv[1])})")
names = [d[0] for d in cur.description]
rows = [dict(zip(names, row)) for row in cur.fetchall()]
print(json.dumps({"rows": len(rows), "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def listed(rows: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LISTED, str(rows)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pg_fields(dsn: str) -> dict[str, object]:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return {
        "db_host": info.get("host", "127.0.0.1"),
        "db_port": int(info.get("port", 5432)),
        "db_user": info.get("user", "postgres"),
        "db_password": info.get("password", ""),
        "db_name": info.get("dbname", "postgres"),
    }


def one_run(rows: int, mode: str, dsn: str | None, folder: Path) -> dict:
    collection = POSTGRES.format(last=rows - 1) if dsn else DUCKDB.format(rows=rows)
    text = PLAYBOOK.format(collection=collection, mode=mode)
    db = folder / f"{mode}-{rows}.db"
    fields = json.dumps(pg_fields(dsn) if dsn else {})
    out = subprocess.run(
        [sys.executable, "-c", CHILD, text, str(db), fields], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"the run over {rows} rows failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    db.unlink(missing_ok=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--mode", default="sequential", choices=("sequential", "async"))
    parser.add_argument(
        "--dsn", help="read the rows from this PostgreSQL (generate_series) instead of DuckDB"
    )
    args = parser.parse_args()
    source = "postgres" if args.dsn else "duckdb"
    print(f"streaming collection: {source} query, {args.mode}, collect: false, every event persisted")
    with tempfile.TemporaryDirectory() as tmp:
        small = one_run(1_000, args.mode, args.dsn, Path(tmp))
        large = one_run(args.rows, args.mode, args.dsn, Path(tmp))
    assert large["count"] == args.rows, large
    rss_mb = large["max_rss_kb"] / 1024
    per_item = large["seconds"] / args.rows * 1e6
    print(f"1,000 rows: max RSS {small['max_rss_kb'] / 1024:.0f} MB")
    print(
        f"{args.rows:,} rows: max RSS {rss_mb:.0f} MB (target <= {TARGET_MB} MB: "
        f"{'met' if rss_mb <= TARGET_MB else 'NOT met'}); {large['seconds']:.1f} s, "
        f"{args.rows / large['seconds']:,.0f} items/s ({per_item:.1f} us per item), "
        f"{large['events']:,} events"
    )
    if not args.dsn:
        held = listed(args.rows)
        print(
            f"the same rows held as a list of dicts (no engine, no events): max RSS "
            f"{held['max_rss_kb'] / 1024:.0f} MB"
        )


if __name__ == "__main__":
    main()
