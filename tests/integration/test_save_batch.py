"""Batched per-item saves (`save: {batch: N}`) against a real PostgreSQL and DuckDB: one transaction per
batch, items reported only after their rows commit, a refused batch written again item by item so that
exactly the failing items fail; the validation of `batch`; the credential resolved once."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import psycopg.types.json
import pytest

from noetl.dsl import parse_playbook
from noetl.engine.events import Event
from noetl.errors import PlaybookError
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.local import LocalRunner
from tests.conftest import pg_fields
from tests.helpers import run_text

SECRET = "pw-7f3a-never-in-events"  # the throwaway server trusts every password: this one must not leak

LOOP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: batched_saves}
workload: {n: 10, bad: -1}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: i
    %(policy)s
    task:
      type: python
      data: {i: "{{ i }}", bad: "{{ workload.bad }}"}
      code: |
        def main(i, bad):
            return {"id": i, "value": None if i == bad else "v" + str(i)}
      save:
        storage: postgres
        auth: %(auth)s
        table: items
        mode: upsert
        key: id
        batch: %(batch)s
        args: {id: "{{ this.id }}", value: "{{ this.value }}"}
    next: [{step: end}]
  - step: end
"""


def loop(batch: int = 500, policy: str = "", auth: str = "pg_local") -> str:
    return LOOP % {"batch": batch, "policy": policy, "auth": auth}


@pytest.fixture
def pg(store: Any, pg_dsn: str) -> str:
    """The test database, a credential pg_local for it (with a password), and a table `items` whose
    `tx` column records the transaction that wrote each row."""
    store.put_credential("pg_local", "postgres", {**pg_fields(pg_dsn), "db_password": SECRET})
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL, tx bigint DEFAULT txid_current())"
        )
    return pg_dsn


def table(dsn: str, sql: str = "SELECT id, value FROM items ORDER BY id") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def of_item(events: list[Event], index: int) -> list[str]:
    return [e.event_type for e in events if e.current_index == index]


def by_type(events: list[Event], event_type: str) -> dict[int, Event]:
    return {e.current_index: e for e in events if e.event_type == event_type and e.current_index is not None}


ITEM = ["iteration_started", "save_started", "save_completed", "iteration_completed"]


def test_1200_items_in_batches_of_500_commit_three_transactions_before_their_items_complete(
    store: Any, pg: str
) -> None:
    committed: list[str] = []  # iteration_completed events whose row was not yet visible to others

    def watch(event: Event) -> None:
        # Observers run in the item's thread after the event is handed to the store: the row must be
        # committed by then, so another connection sees it.
        if event.event_type == "iteration_completed" and event.current_index in (0, 499, 500, 1199):
            with psycopg.connect(pg) as conn:
                seen = conn.execute("SELECT 1 FROM items WHERE id = %s", [event.current_index]).fetchone()
            if seen is None:
                committed.append(f"item {event.current_index}")

    outcome = LocalRunner(store, observers=[watch]).run(parse_playbook(loop(500)), {"n": 1200})
    events = store.read(outcome.execution_id)
    assert outcome.status == "COMPLETED", outcome.error
    assert committed == [], f"reported completed before its row was committed: {committed}"
    assert table(pg, "SELECT count(*), count(DISTINCT value) FROM items") == [(1200, 1200)]
    # One transaction per batch: items 0-499, 500-999, and the last 200 written by close().
    txs = table(pg, "SELECT tx, count(*), min(id), max(id) FROM items GROUP BY tx ORDER BY min(id)")
    assert [(n, lo, hi) for _, n, lo, hi in txs] == [(500, 0, 499), (500, 500, 999), (200, 1000, 1199)]
    for index in range(1200):
        assert of_item(events, index) == ITEM, index
    seq = {(e.event_type, e.current_index): e.seq for e in events}
    ends = [e for e in events if e.event_type == "iterator_completed"]
    # No item of a batch is reported before the batch's last item joined it (the batch is written then).
    for first, last in ((0, 499), (500, 999), (1000, 1199)):
        assert seq[("save_completed", first)] > seq[("save_started", last)]
        assert seq[("iteration_completed", last)] < ends[0].seq
    saves = by_type(events, "save_completed")
    assert {saves[i].meta["batch"] for i in range(1000)} == {500}
    assert {saves[i].meta["batch"] for i in range(1000, 1200)} == {200}
    assert {s.meta["rows"] for s in saves.values()} == {1} and saves[0].meta["batch_rows"] == 500
    started = by_type(events, "save_started")
    assert started[0].context["batch"] == 500
    summary = ends[0].meta
    assert summary["succeeded"] == 1200 and summary["rows_saved"] == 1200
    # Honest durations: an item waits for its batch, so the first of a batch waited at least until the
    # batch's last item had started. (Not "longer than the last": that one also waits for the events of
    # every item reported before it, which a busy machine can make the longer wait.)
    completed, begun = by_type(events, "iteration_completed"), by_type(events, "iteration_started")
    for first, last in ((0, 499), (500, 999), (1000, 1199)):
        filling = (
            datetime.fromisoformat(begun[last].created_at) - datetime.fromisoformat(begun[first].created_at)
        ).total_seconds()
        assert completed[first].duration >= filling - 0.001, (first, completed[first].duration, filling)  # type: ignore[operator]


def test_a_row_the_database_refuses_fails_exactly_its_item_and_the_rest_are_saved(
    store: Any, pg: str
) -> None:
    outcome, events = run_text(store, loop(10, "on_error: continue"), {"n": 30, "bad": 13})
    assert outcome.status == "COMPLETED", outcome.error  # on_error: continue
    assert table(pg) == [(i, f"v{i}") for i in range(30) if i != 13]
    assert of_item(events, 13) == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    failed = by_type(events, "save_failed")
    assert list(failed) == [13]
    assert "23502" in (failed[13].error or "") and failed[13].meta["reason"] == "target_error"
    assert failed[13].meta["alone"] is True
    item = by_type(events, "iteration_failed")[13]
    assert item.meta["failed_in"] == "save" and item.result == {"id": 13, "value": None}
    for index in (i for i in range(30) if i != 13):
        assert of_item(events, index) == ITEM, index
    saves = by_type(events, "save_completed")
    # The refused batch (items 10-19) was written again item by item; the other batches at once.
    assert {i for i, s in saves.items() if s.meta.get("alone")} == {10, 11, 12, 14, 15, 16, 17, 18, 19}
    assert {saves[i].meta["batch"] for i in (*range(10), *range(20, 30))} == {10}
    txs = table(pg, "SELECT count(DISTINCT tx) FROM items WHERE id BETWEEN 10 AND 19")
    assert txs == [(9,)]
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["failed_indexes"] == [13] and summary["succeeded"] == 29 and summary["rows_saved"] == 29


def test_on_error_fail_finishes_the_batch_in_flight_and_skips_the_items_not_started(
    store: Any, pg: str
) -> None:
    outcome, events = run_text(store, loop(10), {"n": 30, "bad": 13})
    assert outcome.status == "FAILED"
    # Items 10-19 had started (they were in the refused batch): each finishes, on its own.
    assert table(pg) == [(i, f"v{i}") for i in range(20) if i != 13]
    assert of_item(events, 13) == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    skipped = [
        e.current_index for e in events if e.event_type == "iteration_failed" and e.status == "SKIPPED"
    ]
    assert skipped == list(range(20, 30))
    ended = next(e for e in events if e.event_type == "iterator_failed")
    assert ended.meta["failed_indexes"] == [13] and ended.meta["succeeded"] == 19
    assert max(e.seq for e in events if e.node_type in ("iteration", "save")) < ended.seq


def test_async_items_of_several_threads_share_batches(store: Any, pg: str) -> None:
    policy = "mode: async\n    concurrency: 4\n    on_error: continue"
    outcome, events = run_text(store, loop(100, policy), {"n": 1200, "bad": 777})
    assert outcome.status == "COMPLETED", outcome.error
    assert table(pg, "SELECT count(*) FROM items") == [(1199,)]
    assert of_item(events, 777) == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    for index in (i for i in range(1200) if i != 777):
        assert of_item(events, index) == ITEM, index
    # Full batches of 100 from 4 threads, one transaction each; the refused one's items alone.
    sizes = table(pg, "SELECT count(*) FROM items GROUP BY tx")
    assert sorted(n for (n,) in sizes) == [1] * 99 + [100] * 11
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["succeeded"] == 1199 and summary["failed_indexes"] == [777]


def test_batches_are_kept_per_target_and_credentials_never_mix(store: Any, pg: str, pg_server: str) -> None:
    other = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    base, _, _ = pg_server.rpartition("/")
    try:
        with psycopg.connect(f"{base}/{other}") as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL)")
        store.put_credential("pg_other", "postgres", pg_fields(f"{base}/{other}"))
        auth = "\"{{ 'pg_local' if i % 2 == 0 else 'pg_other' }}\""
        outcome, events = run_text(store, loop(4, auth=auth), {"n": 20})
        assert outcome.status == "COMPLETED", outcome.error
        assert [i for (i, _) in table(pg)] == list(range(0, 20, 2))
        assert [i for (i, _) in table(f"{base}/{other}")] == list(range(1, 20, 2))
        saves = by_type(events, "save_completed")
        assert sorted(s.meta["batch"] for s in saves.values()) == [2] * 4 + [4] * 16
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


@pytest.fixture
def resolves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every credential lookup a save makes (the `where` it names)."""
    calls: list[str] = []
    real = CredentialResolver.resolve

    def counted(self: CredentialResolver, spec: Any, where: str) -> Any:
        calls.append(where)
        return real(self, spec, where)

    monkeypatch.setattr(CredentialResolver, "resolve", counted)
    yield calls


@pytest.mark.parametrize("batch", [None, 7])
def test_the_credential_is_resolved_once_per_execution_and_no_secret_reaches_an_event(
    store: Any, pg: str, resolves: list[str], batch: int | None
) -> None:
    text = loop(batch or 1, "on_error: continue")
    if batch is None:
        text = text.replace("        batch: 1\n", "")
    outcome, events = run_text(store, text, {"n": 40, "bad": 5})
    assert outcome.status == "COMPLETED", outcome.error
    assert len(table(pg)) == 39
    assert resolves == ["save of step 'loop'"], "looked up once, not once per item"
    # A second execution resolves it again (a credential changed between runs is seen).
    run_text(store, text, {"n": 3})
    assert len(resolves) == 2
    shown = json.dumps([e.to_dict() for e in events], default=str)
    assert SECRET not in shown
    assert "save_failed" in shown and "pg_local" in shown  # the failure is explained, by name


def test_an_unbatched_per_item_save_keeps_one_transaction_per_item(store: Any, pg: str) -> None:
    text = loop(1).replace("        batch: 1\n", "")
    outcome, events = run_text(store, text, {"n": 12, "bad": 4})
    assert outcome.status == "FAILED"
    assert table(pg, "SELECT count(DISTINCT tx), count(*) FROM items") == [(4, 4)]
    assert of_item(events, 4) == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    assert "batch" not in by_type(events, "save_started")[0].context


KINDS = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: batched_kinds}
workload: {n: 8}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        def main(i):
            # keys 0, 1, 2 again and again; a text column given ints and texts, a JSON column
            # dicts and lists, a numeric column ints and floats, and a NULL
            texts = [7, "007", "x", None]
            return {"id": i % 3, "t": texts[i % 4], "j": {"i": i} if i % 2 else [i, "a"],
                    "n": i if i % 2 else i + 0.5}
      save:
        storage: postgres
        auth: pg_local
        table: kinds
        mode: upsert
        key: id
        batch: 8
        args: {id: "{{ this.id }}", t: "{{ this.t }}", j: "{{ this.j }}", n: "{{ this.n }}"}
    next: [{step: end}]
  - step: end
"""


def test_a_batch_writes_each_row_as_row_by_row_would_in_one_transaction(store: Any, pg: str) -> None:
    """One batch of eight items whose keys repeat and whose columns get values of several kinds: the
    rows go as multi-row INSERTs, and the table ends as eight upserts one after another would leave
    it (the later row of a key wins, "007" stays a text, 7 becomes "7"), without writing any item
    alone."""
    with psycopg.connect(pg) as conn:
        conn.execute(
            "CREATE TABLE kinds (id int PRIMARY KEY, t text, j jsonb, n numeric, tx bigint DEFAULT txid_current())"
        )
    outcome, events = run_text(store, KINDS)
    assert outcome.status == "COMPLETED", outcome.error
    saves = by_type(events, "save_completed")
    assert sorted(saves) == list(range(8)) and not any(s.meta.get("alone") for s in saves.values())
    assert {s.meta["batch"] for s in saves.values()} == {8} and saves[0].meta["batch_rows"] == 8
    rows = table(pg, "SELECT id, t, j, n, tx FROM kinds ORDER BY id")
    # last writer per key: id 0 <- item 6, id 1 <- item 7, id 2 <- item 5
    assert [r[:4] for r in rows] == [
        (0, "x", [6, "a"], Decimal("6.5")),
        (1, None, {"i": 7}, Decimal("7")),
        (2, "007", {"i": 5}, Decimal("5")),
    ]
    assert len({r[4] for r in rows}) == 1
    with psycopg.connect(pg) as conn:  # and each kind as one upsert per row leaves it
        conn.execute("TRUNCATE kinds")
        for e in sorted(by_type(events, "iteration_completed").values(), key=lambda e: e.current_index or 0):
            r = e.result
            conn.execute(
                "INSERT INTO kinds (id, t, j, n) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                "SET t = EXCLUDED.t, j = EXCLUDED.j, n = EXCLUDED.n",
                [r["id"], r["t"], psycopg.types.json.Jsonb(r["j"]), r["n"]],
            )
    assert [r[:4] for r in table(pg, "SELECT id, t, j, n, tx FROM kinds ORDER BY id")] == [
        r[:4] for r in rows
    ]


DUCK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: batched_duckdb}
workload: {n: 10, bad: -1, db: x.duckdb}
workflow:
  - step: start
    next: [{step: make}]
  - step: make
    type: duckdb
    database: "{{ workload.db }}"
    command: CREATE TABLE items (id INTEGER PRIMARY KEY, value VARCHAR NOT NULL)
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: i
    on_error: continue
    task:
      type: python
      data: {i: "{{ i }}", bad: "{{ workload.bad }}"}
      code: |
        def main(i, bad):
            return {"id": i, "value": None if i == bad else "v" + str(i)}
      save:
        storage: duckdb
        database: "{{ workload.db }}"
        table: items
        mode: upsert
        key: id
        batch: 8
        args: {id: "{{ this.id }}", value: "{{ this.value }}"}
    next: [{step: end}]
  - step: end
"""


def test_duckdb_batches_and_a_refused_row_fails_only_its_item(store: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "batched.duckdb")
    outcome, events = run_text(store, DUCK, {"n": 20, "bad": 9, "db": db})
    assert outcome.status == "COMPLETED", outcome.error
    with duckdb.connect(db) as con:
        assert con.execute("SELECT id FROM items ORDER BY id").fetchall() == [
            (i,) for i in range(20) if i != 9
        ]
    assert of_item(events, 9) == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    saves = by_type(events, "save_completed")
    assert {saves[i].meta["batch"] for i in range(8)} == {8} and saves[19].meta["batch"] == 4
    assert {i for i, s in saves.items() if s.meta.get("alone")} == {8, 10, 11, 12, 13, 14, 15}


# ---- validation -----------------------------------------------------------------------------------


def problems(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(textwrap.dedent(text), source="b.yaml")
    return [p.message for p in info.value.problems]


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "true", "'500'", "[1]"])
def test_batch_must_be_a_whole_number_of_at_least_one(value: str) -> None:
    found = problems(loop().replace("batch: 500", f"batch: {value}"))
    assert len(found) == 1 and found[0].startswith("save batch must be a whole number >= 1"), found


def test_batch_is_refused_on_a_step_save_and_on_an_iterator_step_own_save() -> None:
    step_save = """
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {name: b}
    workflow:
      - step: start
        type: python
        code: |
          def main():
              return {"id": 1}
        save: {storage: postgres, auth: pg_local, table: items, batch: 10}
    """
    assert problems(step_save) == [
        "save batch is read only on the per-item save of an iterator, the `save` inside its `task`; "
        "remove `batch` here"
    ]
    own = loop().replace(
        "    next: [{step: end}]\n  - step: end",
        "    save: {storage: postgres, auth: pg_local, table: t, batch: 2}\n    next: [{step: end}]\n"
        "  - step: end",
    )
    assert [p for p in problems(own) if "batch" in p] == [
        "save batch is read only on the per-item save of an iterator, the `save` inside its `task`; "
        "remove `batch` here"
    ]


@pytest.mark.parametrize("storage", ["event", "http", "python"])
def test_batch_needs_a_storage_that_writes_a_batch_in_one_transaction(storage: str) -> None:
    save = {
        "event": "{storage: event, batch: 5}",
        "http": "{storage: http, endpoint: 'http://127.0.0.1:1/x', batch: 5}",
        "python": '{storage: python, code: "def main(data):\\n    return 1", batch: 5}',
    }[storage]
    text = f"""
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {{name: b}}
    workflow:
      - step: start
        type: iterator
        collection: [1, 2]
        task:
          type: python
          code: |
            def main():
                return 1
          save: {save}
    """
    assert problems(text) == [
        f"save batch needs storage postgres or duckdb (one transaction per batch); a {storage} save "
        "writes each item on its own, so remove `batch`"
    ]


def test_batch_on_a_legacy_loop_step_save_is_the_per_item_save() -> None:
    text = """
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {name: b}
    workflow:
      - step: start
        type: python
        loop: {in: [1, 2, 3], iterator: n}
        data: {n: "{{ n }}"}
        code: |
          def main(n):
              return {"id": n}
        save: {storage: postgres, auth: pg_local, table: items, batch: 2}
    """
    pb = parse_playbook(textwrap.dedent(text))
    task = pb.steps["start"].task.iterator.task  # type: ignore[union-attr]
    assert task.save is not None and task.save.options["batch"] == 2


# ---- on a worker --------------------------------------------------------------------------------------

ON_WORKER = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: batch_on_worker, path: tests/batch_on_worker}
workload: {fields: {}}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(200) | list }}"
    element: i
    mode: async
    concurrency: 4
    on_error: continue
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        def main(i):
            return {"id": i, "value": None if i == 77 else "v" + str(i)}
      save:
        storage: postgres
        auth: {source: inline, type: postgres, fields: "{{ workload.fields }}"}
        table: items
        mode: upsert
        key: id
        batch: 20
        args: {id: "{{ this.id }}", value: "{{ this.value }}"}
    next: [{step: end}]
  - step: end
"""


def test_chunk_jobs_on_a_worker_write_their_last_batch_before_the_join(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.processes import SECRET_KEY, run_on_worker

    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL, tx bigint DEFAULT txid_current())"
        )
    fields = {**pg_fields(pg_dsn), "db_password": SECRET}
    record, events = run_on_worker(pg_dsn, tmp_path, ON_WORKER, "tests/batch_on_worker", {"fields": fields})
    assert record["status"] == "COMPLETED", record
    assert table(pg_dsn, "SELECT count(*) FROM items") == [(199,)]
    items = [e for e in events if e["node_name"] == "loop" and e["current_index"] is not None]
    for index in range(200):
        kinds = [e["event_type"] for e in items if e["current_index"] == index]
        if index == 77:
            assert kinds == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
        else:
            assert kinds == ITEM, (index, kinds)
    # Chunks of 13 items (4 per slot of 4) never fill a batch of 20: each chunk job's close() wrote its
    # items in one transaction, and the join came after all of them.
    with psycopg.connect(pg_dsn) as conn:
        chunks = conn.execute(
            "SELECT count(*) FROM noetl_jobs WHERE step = 'loop' AND kind = 'chunk'"
        ).fetchone()
    sizes = sorted(n for (n,) in table(pg_dsn, "SELECT count(*) FROM items GROUP BY tx"))
    assert chunks is not None and chunks[0] > 1 and len(sizes) >= chunks[0] and max(sizes) <= 13
    assert SECRET not in json.dumps(events)
    summary = next(e for e in events if e["event_type"] == "iterator_completed")["meta"]
    assert summary["succeeded"] == 199 and summary["failed_indexes"] == [77]


def test_the_step_result_marks_an_item_whose_batch_refused_it(store: Any, pg: str) -> None:
    outcome, events = run_text(store, loop(10, "on_error: continue"), {"n": 12, "bad": 3})
    assert outcome.status == "COMPLETED", outcome.error
    result = next(e for e in events if e.event_type == "step_completed" and e.node_name == "loop").result
    assert result[3]["failed"] is True and "item 3: save failed" in result[3]["error"]
    assert result[4] == {"id": 4, "value": "v4"}


def test_a_save_whose_prepared_statement_vanished_is_written_unprepared(store: Any, pg: str) -> None:
    """A transaction-mode pooler (pgbouncer) or a DEALLOCATE loses the statements psycopg prepared: the
    save is written again unprepared, and that target is not prepared for any more."""
    from noetl.actions.pg_connections import connection, conninfo_for
    from noetl.store.ports import CredentialRecord

    text = loop(1).replace("        batch: 1\n", "")
    first, _ = run_text(store, text, {"n": 3})
    assert first.status == "COMPLETED", first.error
    record = CredentialRecord("pg_local", "postgres", {**pg_fields(pg), "db_password": SECRET})
    with connection(conninfo_for(record), autocommit=True) as conn:  # the idle one the saves used
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert prepared is not None and prepared[0] >= 1, "the saves' INSERT was prepared"
        conn.pgconn.exec_(b"DEALLOCATE ALL")  # behind psycopg's back, as a pooler would
    again, events = run_text(store, text.replace("range(workload.n)", "range(3, 3 + workload.n)"), {"n": 3})
    assert again.status == "COMPLETED", again.error
    assert [e for e in events if e.event_type == "save_failed"] == []
    assert table(pg) == [(i, f"v{i}") for i in range(6)]


def test_batch_is_refused_on_a_save_step_even_as_an_iterator_task() -> None:
    text = """
    apiVersion: noetl.io/v1
    kind: Playbook
    metadata: {name: b}
    workflow:
      - step: start
        type: iterator
        collection: [1, 2]
        task: {type: save, storage: postgres, auth: pg_local, table: items, batch: 5, data: {id: 1}}
    """
    assert problems(text) == [
        "save batch is read only on the per-item save of an iterator, the `save` inside its `task`; "
        "remove `batch` here"
    ]
