"""Streaming collections: an iterator over the rows of a SQL query (PostgreSQL, DuckDB) or of a file
(jsonl, csv, parquet), read lazily, with where/limit/chunk on the way and the count known at the end."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from noetl.dsl import parse_playbook
from noetl.engine.events import Event
from noetl.errors import PlaybookError
from tests.conftest import pg_fields
from tests.helpers import run_text, types_of

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: streams}
workflow:
  - step: start
    next: [{step: loop}]
"""

TAIL = """
    next: [{step: end}]
  - step: end
"""


def playbook(*parts: str) -> str:
    """A playbook whose step `loop` has these keys (each part dedented on its own)."""
    body = "\n".join(textwrap.dedent(part).strip("\n") for part in parts)
    return HEAD + "  - step: loop\n" + textwrap.indent(body, "    ") + TAIL


ECHO = """
task:
  type: python
  data: {row: "{{ row }}", i: "{{ _loop.index }}", n: "{{ _loop.count }}", last: "{{ _loop.last }}"}
  code: |
    def main(row, i, n, last):
        return {"row": row, "i": i, "n": n, "last": last}
"""


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default DuckDB files (one per execution, under the temp folder) go to this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def one(events: list[Event], event_type: str) -> Event:
    found = [e for e in events if e.event_type == event_type and e.node_name == "loop"]
    assert len(found) == 1, types_of(events, "loop")
    return found[0]


def item_types(events: list[Event]) -> list[str]:
    return [e.event_type for e in events if e.node_type == "iteration"]


# ---- DuckDB ---------------------------------------------------------------------------------------------


def test_a_duckdb_query_streams_its_rows_as_items_with_the_count_at_the_end(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i, 'r' || range AS name FROM range(4)", type: duckdb}
            element: row
            """,
            ECHO,
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [
        {"row": {"i": i, "name": f"r{i}"}, "i": i, "n": None, "last": i == 3} for i in range(4)
    ]
    assert types_of(events, "loop") == [
        "step_started",
        "action_started",
        "iterator_started",
        *["iteration_started", "iteration_completed"] * 4,
        "iterator_completed",
        "action_completed",
        "step_completed",
    ]
    started = one(events, "iterator_started")
    assert started.meta["count"] is None and started.meta["total"] is None
    assert started.meta["streaming"] is True
    assert "materialized" not in started.meta
    done = one(events, "iterator_completed")
    assert done.meta["count"] == 4 and done.meta["total"] == 4 and done.meta["succeeded"] == 4
    assert done.meta["streaming"] is True and done.meta["exhausted"] is True
    # the count guarantee, for a stream: completed + failed = the count of iterator_completed
    assert len(item_types(events)) == 2 * done.meta["count"]
    assert [e.current_item for e in events if e.event_type == "iteration_started"][1] == {
        "i": 1,
        "name": "r1",
    }


def test_a_duckdb_query_reads_the_executions_database_and_binds_the_steps_inputs(store: Any) -> None:
    text = (
        HEAD.replace("next: [{step: loop}]", "next: [{step: make}]")
        + """
  - step: make
    type: duckdb
    command: |
      CREATE TABLE sales AS SELECT * FROM (VALUES ('north', 1.5, DATE '2024-01-01'),
        ('south', 5.0, DATE '2024-01-03'), ('south', 2.25, DATE '2024-01-04')) t(region, amount, day)
    next: [{step: loop}]
  - step: loop
    type: iterator
    data: {region: south}
    collection:
      query: SELECT region, amount, day FROM sales WHERE region = :region ORDER BY day
      type: duckdb
      fetch_size: 1
    element: sale
    task:
      type: python
      data: {sale: "{{ sale }}"}
      code: |
        def main(sale):
            return sale
"""
        + TAIL
    )
    outcome, _ = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    # JSON values by the engine's rules: DECIMAL as a number, DATE as ISO text
    assert outcome.result == [
        {"region": "south", "amount": 5.0, "day": "2024-01-03"},
        {"region": "south", "amount": 2.25, "day": "2024-01-04"},
    ]


def test_a_limit_stops_reading_a_query_too_large_to_read(store: Any) -> None:
    """Ten billion rows: read in full (or listed first), this would never end; streamed, three are read."""
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i FROM range(10000000000)", type: duckdb}
            element: row
            limit: 3
            """,
            ECHO,
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert [r["row"]["i"] for r in outcome.result] == [0, 1, 2]
    assert [r["last"] for r in outcome.result] == [False, False, True]
    assert one(events, "iterator_completed").meta["count"] == 3


def test_where_limit_and_chunk_on_a_stream(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i FROM range(100)", type: duckdb, fetch_size: 7}
            element: row
            where: "{{ row.i % 3 == 0 }}"
            limit: 8
            chunk: 3
            task:
              type: python
              data: {b: "{{ batch }}", i: "{{ _loop.index }}", last: "{{ _loop.last }}"}
              code: |
                def main(b, i, last):
                    return {"batch": i, "ids": [r["i"] for r in b], "last": last}
            """
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [
        {"batch": 0, "ids": [0, 3, 6], "last": False},
        {"batch": 1, "ids": [9, 12, 15], "last": False},
        {"batch": 2, "ids": [18, 21], "last": True},
    ]
    done = one(events, "iterator_completed")
    assert done.meta["count"] == 3 and done.meta["exhausted"] is True


def test_order_by_reads_the_stream_into_memory_and_says_so(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i FROM range(6)", type: duckdb}
            element: row
            where: "{{ row.i > 0 }}"
            order_by: "{{ -row.i }}"
            limit: 4
            """,
            ECHO,
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    # read in full, so the count is known: _loop.count is the number again
    assert [(r["row"]["i"], r["n"], r["last"]) for r in outcome.result] == [
        (5, 4, False),
        (4, 4, False),
        (3, 4, False),
        (2, 4, True),
    ]
    started = one(events, "iterator_started")
    assert started.meta["materialized"] is True and started.meta["streaming"] is False
    assert started.meta["count"] == 4 and started.meta["total"] == 4


def test_a_stream_in_async_mode_keeps_collection_order(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i FROM range(50)", type: duckdb, fetch_size: 4}
            element: row
            mode: async
            concurrency: 4
            task:
              type: python
              data: {i: "{{ row.i }}"}
              code: |
                import time
                def main(i):
                    time.sleep(0.001 * (i % 3))
                    return i * 10
            """
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [i * 10 for i in range(50)]
    started = one(events, "iterator_started")
    assert started.meta["mode"] == "async" and started.meta["count"] is None
    assert one(events, "iterator_completed").meta["succeeded"] == 50


def test_collect_false_on_a_stream_gives_the_summary(store: Any) -> None:
    outcome, _ = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT range AS i FROM range(25)", type: duckdb}
            element: row
            collect: false
            task: {type: python, data: {i: "{{ row.i }}"}, code: "def main(i):\\n    return i\\n"}
            """
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result["count"] == 25 and outcome.result["succeeded"] == 25
    assert outcome.result["streaming"] is True and outcome.result["total"] == 25


FAILING_ITEMS = """
type: iterator
collection: {query: "SELECT range AS i FROM range(10)", type: duckdb}
element: row
%s
task:
  type: python
  data: {i: "{{ row.i }}", bad: %s}
  code: |
    def main(i, bad):
        if i in bad:
            raise ValueError(f"row {i} is bad")
        return i
"""


def test_on_error_fail_stops_reading_the_stream(store: Any) -> None:
    outcome, events = run_text(store, playbook(FAILING_ITEMS % ("", "[2]")))
    assert outcome.status == "FAILED"
    assert "iterator 'loop' failed (on_error is fail): 1 of 3 items failed, indexes [2]" in (
        outcome.error or ""
    )
    failed = one(events, "iterator_failed")
    # no row after the breach is read, so none is skipped: the count is the items that ran
    assert failed.meta["count"] == 3 and failed.meta["skipped"] == 0 and failed.meta["exhausted"] is False
    assert len(item_types(events)) == 2 * failed.meta["count"]


def test_max_failure_ratio_is_judged_on_the_final_count(store: Any) -> None:
    # the first three of ten fail: 3/10 is within 0.5, which a judge of the items seen so far would refuse
    outcome, events = run_text(
        store, playbook(FAILING_ITEMS % ("on_error: continue\nmax_failure_ratio: 0.5", "[0, 1, 2]"))
    )
    assert outcome.status == "COMPLETED", outcome.error
    done = one(events, "iterator_completed")
    assert done.meta["count"] == 10 and done.meta["failed"] == 3 and done.meta["failed_indexes"] == [0, 1, 2]
    assert outcome.result[:3] == [
        {"failed": True, "index": i, "error": f"item {i}: task failed: ValueError: row {i} is bad"}
        for i in range(3)
    ]

    outcome, events = run_text(
        store, playbook(FAILING_ITEMS % ("on_error: continue\nmax_failure_ratio: 0.5", "[0, 1, 2, 3, 4, 5]"))
    )
    assert outcome.status == "FAILED"
    failed = one(events, "iterator_failed")
    assert failed.meta["count"] == 10 and failed.meta["exhausted"] is True
    assert failed.meta["reason"] == "6 of 10 items failed, more than max_failure_ratio 0.5"


def test_a_retry_of_the_step_skips_the_items_done_by_index(store: Any, tmp_path: Path) -> None:
    text = playbook(
        """
        type: iterator
        collection: {query: "SELECT range AS i FROM range(5)", type: duckdb}
        element: row
        retry: {max_attempts: 2, initial_delay: 0, jitter: false}
        task:
          type: python
          data: {i: "{{ row.i }}", flag: "%s"}
          code: |
            import pathlib
            def main(i, flag):
                if i == 2 and not pathlib.Path(flag).exists():
                    pathlib.Path(flag).write_text("failed once")
                    raise RuntimeError("row 2 fails on its first try")
                return i * 10
        """
        % (tmp_path / "flag")
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [0, 10, 20, 30, 40]
    starts = [e for e in events if e.event_type == "iterator_started"]
    assert [s.meta["resumed"] for s in starts] == [0, 2]
    second = [e for e in events if e.event_type == "iteration_started" and e.attempt == 2]
    assert [e.current_index for e in second] == [2, 3, 4]
    ends = [e for e in events if e.event_type == "iterator_completed"]
    assert ends[0].meta["count"] == 3 and ends[0].meta["kept"] == 2 and ends[0].meta["succeeded_total"] == 5


def test_a_query_that_cannot_run_fails_the_step_before_any_item(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {query: "SELECT * FROM no_such_table", type: duckdb}
            element: row
            """,
            ECHO,
        ),
    )
    assert outcome.status == "FAILED"
    assert "step 'loop': reading the collection failed" in (outcome.error or "")
    assert "no_such_table" in (outcome.error or "")
    assert "iterator_started" not in types_of(events, "loop")


# ---- files ----------------------------------------------------------------------------------------------


def file_loop(path: Path | str, extra: str = "") -> str:
    return playbook(
        f"""
        type: iterator
        collection: {{file: "{path}"{extra}}}
        element: row
        task:
          type: python
          data: {{row: "{{{{ row }}}}"}}
          code: |
            def main(row):
                return row
        """
    )


def test_a_jsonl_file_is_read_line_by_line(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1, "tags": ["x"]}\n\n"text"\n[1, 2]\n{"a": null}\n', encoding="utf-8")
    outcome, events = run_text(store, file_loop(path))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [{"a": 1, "tags": ["x"]}, "text", [1, 2], {"a": None}]  # blank lines skipped
    assert one(events, "iterator_started").meta["streaming"] is True


def test_a_csv_file_is_read_through_duckdb_with_typed_columns(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,age,born\nada,36,1815-12-10\nalan,41,1912-06-23\n", encoding="utf-8")
    outcome, _ = run_text(store, file_loop(path))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [
        {"name": "ada", "age": 36, "born": "1815-12-10"},
        {"name": "alan", "age": 41, "born": "1912-06-23"},
    ]


def test_a_parquet_file_and_a_format_for_a_name_without_a_known_ending(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "numbers.parquet"
    with duckdb.connect(":memory:") as con:
        con.execute(f"COPY (SELECT range AS n, range * 1.5 AS x FROM range(3)) TO '{path}' (FORMAT PARQUET)")
    outcome, _ = run_text(store, file_loop(path))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [{"n": 0, "x": 0.0}, {"n": 1, "x": 1.5}, {"n": 2, "x": 3.0}]
    odd = tmp_path / "numbers.data"
    odd.write_bytes(path.read_bytes())
    outcome, _ = run_text(store, file_loop(odd, ", format: parquet"))
    assert outcome.status == "COMPLETED", outcome.error
    assert len(outcome.result) == 3


def test_a_file_path_may_be_a_template_rendered_once(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("1\n2\n", encoding="utf-8")
    text = file_loop("{{ workload.folder }}/x.jsonl").replace(
        "metadata: {name: streams}", "metadata: {name: streams}\nworkload: {folder: unset}"
    )
    outcome, _ = run_text(store, text, {"folder": str(tmp_path)})
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [1, 2]


def test_a_missing_file_and_a_bad_line(store: Any, tmp_path: Path) -> None:
    outcome, events = run_text(store, file_loop(tmp_path / "missing.jsonl"))
    assert outcome.status == "FAILED"
    assert f"step 'loop': cannot read collection file {tmp_path / 'missing.jsonl'}" in (outcome.error or "")
    assert "iterator_started" not in types_of(events, "loop")

    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n', encoding="utf-8")
    outcome, events = run_text(store, file_loop(path))
    assert outcome.status == "FAILED"
    assert f"collection file {path} line 3 is not JSON" in (outcome.error or "")
    failed = one(events, "iterator_failed")
    assert failed.meta["count"] == 2 and failed.meta["succeeded"] == 2


def test_a_jsonl_stream_is_read_lazily(store: Any, tmp_path: Path) -> None:
    """The collection is a FIFO: its writer sends the rest of the rows only once the first item has run.
    Reading the whole collection before the first item would wait for rows that never come."""
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    marker = tmp_path / "first-item-ran"
    seen: list[bool] = []

    def writer() -> None:
        with open(fifo, "w", encoding="utf-8") as out:
            out.write('{"i": 0}\n{"i": 1}\n')  # the reader runs one row ahead of the item it hands out
            out.flush()
            for _ in range(600):  # up to 30 s; a reader that is not lazy never lets item 0 run
                if marker.exists():
                    break
                threading.Event().wait(0.05)
            seen.append(marker.exists())
            out.write("".join(json.dumps({"i": i}) + "\n" for i in range(2, 1000)))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    text = playbook(
        f"""
        type: iterator
        collection: {{file: "{fifo}"}}
        element: row
        collect: false
        task:
          type: python
          data: {{i: "{{{{ row.i }}}}", marker: "{marker}"}}
          code: |
            import pathlib
            def main(i, marker):
                if i == 0:
                    pathlib.Path(marker).write_text("ran")
                return i
        """
    )
    outcome, events = run_text(store, text)
    thread.join(35)
    assert outcome.status == "COMPLETED", outcome.error
    assert seen == [True], "item 0 did not run before the rest of the collection was written"
    assert one(events, "iterator_completed").meta["count"] == 1000


# ---- PostgreSQL -----------------------------------------------------------------------------------------


@pytest.fixture
def pg_store(store: Any, pg_dsn: str) -> Any:
    # the throwaway cluster trusts local connections: the password is there to be kept out of messages
    store.put_credential("pg_local", "postgres", {**pg_fields(pg_dsn), "db_password": "s3cr3t-pw"})
    return store


def test_a_postgres_query_streams_through_a_cursor_with_binds(pg_store: Any, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "CREATE TABLE orders AS SELECT i AS id, (i * 1.25)::numeric(10,2) AS amount, "
            "date '2024-01-01' + i AS day, i % 2 = 0 AS even FROM generate_series(1, 10) i"
        )
    text = playbook(
        """
        type: iterator
        data: {min_id: 4}
        collection:
          query: SELECT id, amount, day, even FROM orders WHERE id >= :min_id ORDER BY id
          type: postgres
          auth: "{{ workload.pg_auth }}"
          fetch_size: 3
        element: order
        where: "{{ order.even }}"
        task:
          type: python
          data: {order: "{{ order }}", last: "{{ _loop.last }}"}
          code: |
            def main(order, last):
                return [order, last]
        """
    ).replace("metadata: {name: streams}", "metadata: {name: streams}\nworkload: {pg_auth: pg_local}")
    outcome, events = run_text(pg_store, text)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [
        [{"id": i, "amount": i * 1.25, "day": f"2024-01-{1 + i:02d}", "even": True}, i == 10]
        for i in (4, 6, 8, 10)
    ]
    started = one(events, "iterator_started")
    assert started.meta["streaming"] is True and started.meta["count"] is None
    assert one(events, "iterator_completed").meta["count"] == 4
    with psycopg.connect(pg_dsn) as conn:  # the cursor and its transaction are gone
        open_cursors = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        ).fetchone()
    assert open_cursors == (0,)


def test_a_postgres_stream_is_read_lazily(pg_store: Any, pg_dsn: str) -> None:
    """Each item writes a marker row; the query reports, per row, whether a marker existed when the row
    was produced (a VOLATILE function sees rows committed after the cursor opened). Rows produced
    before the first item ran say false; read lazily, the later rows say true."""
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE marker (i int)")
        conn.execute(
            "CREATE FUNCTION marked() RETURNS boolean LANGUAGE plpgsql VOLATILE AS "
            "$$ BEGIN RETURN EXISTS (SELECT 1 FROM marker); END $$"
        )
    text = playbook(
        """
        type: iterator
        collection:
          query: SELECT i, marked() AS marked FROM generate_series(0, 49) i
          type: postgres
          auth: pg_local
          fetch_size: 5
        element: row
        task:
          type: postgres
          auth: pg_local
          data: {i: "{{ row.i }}"}
          command: INSERT INTO marker VALUES (:i)
        """
    )
    outcome, events = run_text(pg_store, text)
    assert outcome.status == "COMPLETED", outcome.error
    marked = [e.current_item["marked"] for e in events if e.event_type == "iteration_started"]
    assert len(marked) == 50
    assert marked[0] is False  # produced before any item ran
    assert marked[-1] is True  # produced after the first items had run: the query was not read first


def test_a_query_that_fails_while_rows_are_read_fails_the_iterator_naming_the_step(pg_store: Any) -> None:
    outcome, events = run_text(
        pg_store,
        playbook(
            """
            type: iterator
            collection:
              query: SELECT i, 100 / (i - 12) AS q FROM generate_series(0, 30) i
              type: postgres
              auth: pg_local
              fetch_size: 5
            element: row
            collect: false
            task: {type: python, data: {i: "{{ row.i }}"}, code: "def main(i):\\n    return i\\n"}
            """
        ),
    )
    assert outcome.status == "FAILED"
    error = outcome.error or ""
    assert (
        "iterator 'loop' failed after 10 items: step 'loop': reading the collection query failed after "
        "10 rows: SQLSTATE 22012 DivisionByZero: division by zero"
    ) in error
    assert "s3cr3t-pw" not in error
    failed = one(events, "iterator_failed")
    assert failed.meta["reason"] == "the collection could not be read"
    assert failed.meta["exhausted"] is False and failed.meta["count"] == 10  # the rows fetched before
    assert len(item_types(events)) == 2 * failed.meta["count"]
    assert types_of(events, "loop")[-2:] == ["action_error", "step_failed"]


def test_a_failing_postgres_query_fails_the_step_naming_it_without_the_password(
    pg_store: Any, pg_dsn: str
) -> None:
    text = playbook(
        """
        type: iterator
        collection: {query: "SELECT * FROM no_such_table", type: postgres, auth: pg_local}
        element: row
        """,
        ECHO,
    )
    outcome, events = run_text(pg_store, text)
    assert outcome.status == "FAILED"
    error = outcome.error or ""
    assert "step 'loop': the collection query failed: SQLSTATE 42P01" in error
    assert 'relation "no_such_table" does not exist' in error
    assert "s3cr3t-pw" not in error
    assert "iterator_started" not in types_of(events, "loop")
    assert not any("s3cr3t-pw" in json.dumps(e.to_dict(), default=str) for e in events)


def test_a_postgres_collection_that_cannot_connect_names_the_server_not_the_password(store: Any) -> None:
    store.put_credential(
        "pg_nowhere",
        "postgres",
        {"db_host": "127.0.0.1", "db_port": 9, "db_user": "u", "db_password": "s3cr3t-pw", "db_name": "d"},
    )
    text = playbook(
        """
        type: iterator
        collection: {query: "SELECT 1 AS one", type: postgres, auth: pg_nowhere}
        element: row
        """,
        ECHO,
    )
    outcome, _ = run_text(store, text)
    assert outcome.status == "FAILED"
    error = outcome.error or ""
    assert "step 'loop': collection query: cannot connect to PostgreSQL u@127.0.0.1:9/d" in error
    assert "s3cr3t-pw" not in error


def test_an_unknown_credential_fails_the_step(store: Any) -> None:
    text = playbook(
        """
        type: iterator
        collection: {query: "SELECT 1 AS one", type: postgres, auth: nobody}
        element: row
        """,
        ECHO,
    )
    outcome, _ = run_text(store, text)
    assert outcome.status == "FAILED"
    assert "step 'loop' collection" in (outcome.error or "") and "nobody" in (outcome.error or "")


# ---- validation -----------------------------------------------------------------------------------------


def problems(loop: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(playbook(loop, ECHO), source="pb.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("collection", "expected"),
    [
        (
            '{query: "SELECT 1", tpye: duckdb}',
            "pb.yaml:10: step 'loop': unknown key 'tpye' in a streaming collection (did you mean 'type'?)",
        ),
        (
            '{query: "SELECT 1"}',
            "step 'loop': a query collection needs `type`: postgres (with `auth`) or duckdb",
        ),
        (
            '{query: "SELECT 1", type: sqlite}',
            "step 'loop': unknown collection type 'sqlite'; a query collection is postgres or duckdb",
        ),
        (
            '{query: "SELECT 1", type: postgres}',
            "step 'loop': a postgres query collection needs `auth` naming a postgres credential",
        ),
        ('{query: "SELECT 1", type: duckdb, auth: pg}', "a duckdb query collection takes no `auth`"),
        ('{query: "SELECT 1", type: postgres, auth: pg, database: x.duckdb}', "`database` is a duckdb file"),
        ('{query: "", type: duckdb}', "collection `query` must be the SQL text of one SELECT"),
        (
            '{query: "SELECT 1", type: duckdb, fetch_size: 0}',
            "collection.fetch_size must be a whole number >= 1",
        ),
        ('{file: a.jsonl, query: "SELECT 1"}', "reads either a `query` or a `file`, not both"),
        ("{file: data.txt}", "cannot tell the format of collection file 'data.txt' from its name"),
        ("{file: data.txt, format: xml}", "unknown collection format 'xml'; use csv, jsonl, parquet"),
        (
            "{file: a.csv, auth: pg}",
            "unknown key 'auth' in a streaming collection; it takes file, format, fetch_size",
        ),
    ],
)
def test_a_streaming_collection_is_checked_when_the_playbook_loads(collection: str, expected: str) -> None:
    found = problems(f"type: iterator\ncollection: {collection}\nelement: row\n")
    assert any(expected in p for p in found), found


def test_the_bad_key_message_says_how_to_loop_over_one_mapping() -> None:
    found = problems('type: iterator\ncollection: {query: "SELECT 1", type: duckdb, x: 1}\nelement: row\n')
    assert any("write it as a list: `collection: [{...}]`" in p for p in found), found


def test_other_mappings_keep_their_meaning_one_item(store: Any) -> None:
    outcome, events = run_text(
        store,
        playbook(
            """
            type: iterator
            collection: {name: q, type: duckdb}
            element: row
            """,
            ECHO,
        ),
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [{"row": {"name": "q", "type": "duckdb"}, "i": 0, "n": 1, "last": True}]
    assert "streaming" not in one(events, "iterator_started").meta
    # a template that renders to a mapping with `query` is data too: streams are written, not computed
    text = playbook(
        """
        type: iterator
        collection: "{{ workload.q }}"
        element: row
        """,
        ECHO,
    ).replace("metadata: {name: streams}", "metadata: {name: streams}\nworkload: {q: {query: SELECT 1}}")
    outcome, _ = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result[0]["row"] == {"query": "SELECT 1"}


# ---- on a worker ----------------------------------------------------------------------------------------

ON_WORKER = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stream_on_worker, path: tests/stream_on_worker}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: {query: "SELECT range AS i FROM range(30)", type: duckdb, database: ":memory:", fetch_size: 4}
    element: row
    mode: async
    concurrency: 4
    task:
      type: python
      data: {i: "{{ row.i }}"}
      code: |
        def main(i):
            return i * 2
    next: [{step: end}]
  - step: end
"""


def test_an_async_stream_on_a_worker_runs_in_its_job_without_chunk_jobs(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.processes import SECRET_KEY, run_on_worker

    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    record, events = run_on_worker(pg_dsn, tmp_path, ON_WORKER, "tests/stream_on_worker")
    assert record["status"] == "COMPLETED", record
    loop = [e for e in events if e["node_name"] == "loop"]
    assert next(e for e in loop if e["event_type"] == "step_completed")["result"] == [
        i * 2 for i in range(30)
    ]
    started = next(e for e in loop if e["event_type"] == "iterator_started")
    assert started["meta"]["streaming"] is True and started["meta"]["count"] is None
    assert next(e for e in loop if e["event_type"] == "iterator_completed")["meta"]["count"] == 30
    with psycopg.connect(pg_dsn) as conn:
        kinds = [
            k for (k,) in conn.execute("SELECT kind FROM noetl_jobs WHERE step = 'loop' ORDER BY job_id")
        ]
    assert kinds == ["step"]  # not fanned out: chunk jobs carry lists of items, a stream has none
