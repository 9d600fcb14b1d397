"""One contract for every store: each test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.errors import CredentialError, InputError, StoreError
from noetl.store import open_store
from noetl.store.ports import Store
from noetl.store.sqlfiles import migrations
from tests.contract.backends import Backend
from tests.contract.threads import in_threads


def new_id() -> str:
    return str(uuid.uuid4())


def ev(
    execution_id: str, event_id: int, event_type: str = T.STEP_STARTED, second: int = 0, **fields: Any
) -> Event:
    fields.setdefault("node_name", "step")
    return Event(
        execution_id=execution_id,
        event_type=event_type,
        event_id=event_id,
        created_at=f"2024-05-01T10:00:{second:02d}.000001+00:00",
        **fields,
    )


# ---- events ----------------------------------------------------------------------------------------


def test_read_returns_events_in_commit_order_and_after_is_by_seq(store: Store) -> None:
    x, other = new_id(), new_id()
    store.append([ev(x, 30), ev(x, 10)])  # ids from two writers' blocks: identities, not an order
    store.append([ev(other, 1), ev(x, 20)])
    store.flush()
    assert [(e.seq, e.event_id) for e in store.read(x)] == [(1, 30), (2, 10), (3, 20)]
    assert [e.event_id for e in store.read(x, after=1)] == [10, 20]
    assert store.read(x, after=3) == []
    assert store.read(new_id()) == []
    assert [(e.execution_id, e.seq) for e in store.read(other)] == [(other, 1)]


def test_read_workflow_is_read_restricted_to_the_types_fold_uses(store: Store) -> None:
    from noetl.engine.events import ALL_TYPES
    from noetl.engine.state import WORKFLOW_TYPES, fold

    x = new_id()
    ends = [T.EXECUTION_COMPLETE]  # last: nothing is stored after an execution's end
    types = sorted(ALL_TYPES - {T.EXECUTION_COMPLETE, T.EXECUTION_FAILED}) + ends
    store.append([ev(x, i + 1, t) for i, t in enumerate(types)])
    everything = store.read(x)
    workflow = store.read_workflow(x)
    assert workflow == [e for e in everything if e.event_type in WORKFLOW_TYPES]
    assert {e.event_type for e in workflow} == WORKFLOW_TYPES - {T.EXECUTION_FAILED}
    assert vars(fold(workflow)) == {**vars(fold(everything)), "last_event_id": fold(workflow).last_event_id}
    y = new_id()
    store.append([ev(y, 1, T.ITERATION_COMPLETED), ev(y, 2, T.EXECUTION_FAILED)])
    assert [e.event_type for e in store.read_workflow(y)] == [T.EXECUTION_FAILED]


def test_read_sees_appended_events_without_an_explicit_flush(store: Store) -> None:
    x = new_id()
    store.append([ev(x, 1)])
    assert [e.event_id for e in store.read(x)] == [1]


LARGE = [{"row": i, "text": "é" * 50, "values": list(range(20))} for i in range(5000)]  # ~600 kB of JSON


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="defaults-and-nones"),
        pytest.param(
            dict(
                event_type=T.ITERATION_COMPLETED,
                node_name="fetch ☃",
                node_id="fetch/1",
                node_type="iterator",
                parent_execution_id="parent-1",
                parent_event_id=7,
                duration=0.125,
                current_index=41,
                current_item={"city": "Zürich", "tags": ["a", "b"], "n": None},
                attempt=3,
                context={"workload": {"nested": {"deep": [1, 2.5, True, False, None]}}, "path": "a/b"},
                result={"rows": [{"id": 1}], "emoji": "🚀🧪", "cjk": "漢字", "rtl": "שלום"},
                error=None,
                meta={"worker": "w-1", "lease": 2},
            ),
            id="every-field",
        ),
        pytest.param(
            dict(
                event_type=T.ACTION_ERROR,
                error="boom\n\ttab \\ back 'q' \"dq\" 🙂",
                result="a plain string",
                current_item="just a string",
                context=0,
                meta={},
            ),
            id="escapes-and-scalar-json",
        ),
        pytest.param(
            dict(
                event_type=T.ACTION_COMPLETED, result=[1, -2, 3.5, 2**62, "x"], current_item=False, context=[]
            ),
            id="json-scalars-and-lists",
        ),
        pytest.param(dict(event_type=T.ACTION_COMPLETED, result={"rows": LARGE}), id="large-result"),
    ],
)
def test_every_event_field_round_trips(store: Store, fields: dict[str, Any]) -> None:
    x = new_id()
    written = ev(x, 1, **fields)
    store.append([written])
    store.flush()
    [read] = store.read(x)
    assert read == replace(written, seq=1)
    assert read.to_dict() == {**written.to_dict(), "seq": 1}


def test_last_event_id(store: Store) -> None:
    x = new_id()
    assert store.last_event_id(x) == 0
    store.append([ev(x, 1), ev(x, 5), ev(x, 3)])
    assert store.last_event_id(x) == 5
    assert store.last_event_id(new_id()) == 0


# ---- executions ------------------------------------------------------------------------------------


def start(x: str, second: int, path: str = "demo/hello", parent: str | None = None) -> Event:
    return ev(
        x,
        1,
        T.EXECUTION_START,
        second,
        node_name="hello",
        node_type="playbook",
        parent_execution_id=parent,
        context={"workload": {}, "path": path},
    )


def test_executions_are_derived_from_events(store: Store) -> None:
    done, failed, parent = new_id(), new_id(), new_id()
    store.append([start(done, 1, parent=parent), start(failed, 2, path="demo/fails")])
    store.flush()
    running = store.execution(done)
    assert running is not None
    assert (running.status, running.playbook_path, running.parent_execution_id) == (
        "RUNNING",
        "demo/hello",
        parent,
    )
    assert (running.created_at, running.finished_at, running.result, running.error) == (
        "2024-05-01T10:00:01.000001+00:00",
        None,
        None,
        None,
    )

    store.append([ev(done, 2, T.EXECUTION_COMPLETE, 5, result={"answer": 42, "who": "wörld"})])
    store.append([ev(failed, 2, T.EXECUTION_FAILED, 6, error="step 'x' failed: boom")])
    completed, failure = store.execution(done), store.execution(failed)
    assert completed is not None and failure is not None
    assert (completed.status, completed.result, completed.error) == (
        "COMPLETED",
        {"answer": 42, "who": "wörld"},
        None,
    )
    assert completed.finished_at == "2024-05-01T10:00:05.000001+00:00"
    assert (failure.status, failure.error, failure.playbook_path) == (
        "FAILED",
        "step 'x' failed: boom",
        "demo/fails",
    )
    assert failure.parent_execution_id is None


def test_start_and_finish_in_one_batch(store: Store) -> None:
    x = new_id()
    store.append([start(x, 1), ev(x, 2, T.EXECUTION_COMPLETE, 2, result="done")])
    record = store.execution(x)
    assert record is not None
    assert (record.status, record.result) == ("COMPLETED", "done")


def test_executions_list_newest_first_with_a_limit(store: Store) -> None:
    ids = [new_id() for _ in range(5)]
    for second, x in enumerate(ids):
        store.append([start(x, second)])
    assert [r.execution_id for r in store.executions()] == ids[::-1]
    assert [r.execution_id for r in store.executions(limit=2)] == ids[:-3:-1]


def test_unknown_execution_is_none(store: Store) -> None:
    assert store.execution(new_id()) is None
    assert store.executions() == []


# ---- event ids -------------------------------------------------------------------------------------


def test_allocate_event_id_increases_and_steps_over_written_ids(store: Store) -> None:
    x, y = new_id(), new_id()
    assert [store.allocate_event_id(x) for _ in range(3)] == [1, 2, 3]
    assert store.allocate_event_id(y) == 1
    # A local-style writer numbered its own events (a resumed run); allocation continues above them.
    z = new_id()
    store.append([ev(z, 1), ev(z, 2), ev(z, 7)])
    store.flush()
    assert store.allocate_event_id(z) == 8
    store.append([ev(x, 10)])
    store.flush()
    assert store.allocate_event_id(x) == 11
    assert store.allocate_event_id(x) == 12


def test_allocate_event_id_is_unique_across_threads_and_store_objects(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    x = new_id()

    def allocate(i: int) -> list[int]:
        return [stores[i % 2].allocate_event_id(x) for _ in range(25)]

    per_thread = in_threads(8, allocate)
    every = [i for ids in per_thread for i in ids]
    assert sorted(every) == list(range(1, 201))
    assert all(ids == sorted(ids) for ids in per_thread)


def test_reserved_blocks_are_disjoint_across_threads_and_store_objects(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    x = new_id()

    def reserve(i: int) -> list[int]:
        blocks = []
        for size in (1, 8, 16):
            last = stores[i % 2].reserve_event_ids(x, size)
            blocks += range(last - size + 1, last + 1)
        return blocks

    every = [i for ids in in_threads(6, reserve) for i in ids]
    assert sorted(every) == list(range(1, 6 * 25 + 1))


def test_a_poller_following_seq_sees_every_event_of_concurrent_writers_once(backend: Backend) -> None:
    """Two writers (two store objects: two processes' worth of batch writers) share one execution with
    ids from reserved blocks; a third store polls with after=<last seq> while they write. It must see
    every event exactly once, and seq must be 1..N with no gap: what `GET .../events?after=` promises."""
    writers, reader = [backend.open(), backend.open()], backend.open()
    x = new_id()
    per_writer = 300
    done = threading.Event()
    seen: list[Event] = []

    def write(i: int) -> None:
        store = writers[i]
        for n in range(0, per_writer, 10):
            last = store.reserve_event_ids(x, 10)
            store.append([ev(x, last - 9 + k, meta={"w": i, "n": n + k}) for k in range(10)])
            if n % 50 == 0:
                store.flush()
        store.flush()

    def poll() -> None:
        after = 0
        while True:
            finished = done.is_set()
            for event in reader.read(x, after=after):
                seen.append(event)
                after = event.seq or after
            if finished:
                return
            time.sleep(0.001)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        in_threads(2, write)
    finally:
        done.set()
        poller.join()
    assert [e.seq for e in seen] == list(range(1, 2 * per_writer + 1))
    assert sorted(e.event_id for e in seen) == list(range(1, 2 * per_writer + 1))
    for w in (0, 1):  # each writer's events keep its own order
        assert [e.meta["n"] for e in seen if e.meta["w"] == w] == list(range(per_writer))


def test_nothing_is_stored_after_the_terminal_event(backend: Backend) -> None:
    """A cancelled execution: the control plane stores execution_failed while a worker still writes."""
    control, worker = backend.open(), backend.open()
    x, other = new_id(), new_id()
    worker.append([start(x, 1), ev(x, 2), start(other, 1)])
    worker.flush()
    control.append([ev(x, 3, T.EXECUTION_FAILED, 2, error="cancelled: by request")])
    control.flush()
    assert not worker.closed(x)
    worker.append([ev(x, 4), ev(x, 5), ev(other, 2)])  # the worker had not heard
    worker.flush()
    assert [e.event_type for e in worker.read(x)] == [T.EXECUTION_START, T.STEP_STARTED, T.EXECUTION_FAILED]
    assert worker.closed(x) and not worker.closed(other)
    assert [e.event_id for e in worker.read(other)] == [1, 2]
    record = worker.execution(x)
    assert record is not None and record.status == "FAILED"
    # In one batch too: what follows the end in the batch is refused, what precedes it is kept.
    y = new_id()
    worker.append([start(y, 1), ev(y, 2, T.EXECUTION_COMPLETE, 2), ev(y, 3)])
    worker.flush()
    assert [e.event_id for e in worker.read(y)] == [1, 2] and worker.closed(y)


# ---- credentials -----------------------------------------------------------------------------------


def test_credentials_round_trip_update_and_list(store: Store) -> None:
    assert store.get_credential("pg") is None
    store.put_credential("pg", "postgres", {"db_password": "s3cret-Ω", "db_port": 5432})
    store.put_credential("api", "http", {"token": "t"})
    got = store.get_credential("pg")
    assert got is not None
    assert (got.name, got.type, got.data) == ("pg", "postgres", {"db_password": "s3cret-Ω", "db_port": 5432})

    store.put_credential("pg", "postgresql", {"db_password": "changed"})
    got = store.get_credential("pg")
    assert got is not None
    assert (got.type, got.data) == ("postgresql", {"db_password": "changed"})
    assert store.list_credentials() == [("api", "http"), ("pg", "postgresql")]
    assert store.delete_credential("api") is True
    assert store.delete_credential("api") is False
    assert store.get_credential("api") is None
    assert store.list_credentials() == [("pg", "postgresql")]


def test_credentials_are_encrypted_at_rest(backend: Backend, store: Store) -> None:
    plaintext = "plaintext-password-4711"
    store.put_credential("pg", "postgres", {"db_password": plaintext})
    raw = backend.raw_credential_bytes("pg")
    assert plaintext.encode() not in raw
    assert b"db_password" not in raw


def test_sealed_values_round_trip_per_execution_encrypted_beside_the_log(
    backend: Backend, store: Store
) -> None:
    first, second = new_id(), new_id()
    assert store.unseal(first, "workload") is None
    store.seal(first, "workload", {"pg_password": "sealed-secret-5150", "n": [1, 2]})
    store.seal(second, "workload", {"other": True})
    store.seal(first, "step:fetch:1", "token-value")
    assert store.unseal(first, "workload") == {"pg_password": "sealed-secret-5150", "n": [1, 2]}
    assert store.unseal(second, "workload") == {"other": True}
    assert store.unseal(first, "step:fetch:1") == "token-value"
    store.seal(first, "step:fetch:1", "replaced")
    assert store.unseal(first, "step:fetch:1") == "replaced"
    assert store.unseal(first, "step:fetch:2") is None
    assert all("sealed-secret-5150" not in repr(e) for e in store.read(first))


# ---- catalog ---------------------------------------------------------------------------------------


def test_catalog_versions_per_path(store: Store) -> None:
    assert [store.register("a/flow", f"flow v{i}", f"content {i}") for i in (1, 2, 3)] == [1, 2, 3]
    assert store.register("b/other", "other", "other content") == 1

    latest = store.get_playbook("a/flow")
    assert latest is not None
    assert (latest.path, latest.version, latest.name, latest.content) == ("a/flow", 3, "flow v3", "content 3")
    assert latest.created_at
    second = store.get_playbook("a/flow", 2)
    assert second is not None
    assert (second.version, second.name, second.content) == (2, "flow v2", "content 2")
    assert store.get_playbook("a/flow", 9) is None
    assert store.get_playbook("missing") is None

    listed = store.list_playbooks()
    assert [(e.path, e.version, e.name) for e in listed] == [
        ("a/flow", 3, "flow v3"),
        ("b/other", 1, "other"),
    ]


def test_concurrent_registers_of_one_path_get_distinct_versions(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    versions = in_threads(8, lambda i: stores[i % 2].register("race/path", f"n{i}", "content"))
    assert sorted(versions) == list(range(1, 9))


# ---- failures and durability -----------------------------------------------------------------------


def test_a_failed_write_is_raised_on_flush(store: Store) -> None:
    x = new_id()
    store.append([ev(x, 1)])
    store.flush()
    store.append([ev(x, 1, T.STEP_COMPLETED)])  # the same (execution_id, event_id) again
    with pytest.raises(StoreError, match="writing events to the store failed"):
        store.flush()
    with pytest.raises(StoreError):
        store.append([ev(x, 2)])


def test_close_then_reopen_keeps_everything(backend: Backend) -> None:
    first = backend.open()
    x = new_id()
    first.append([start(x, 1), ev(x, 2, T.EXECUTION_COMPLETE, 2, result=[1, 2])])
    first.put_credential("c", "http", {"token": "t"})
    first.register("p", "p", "content")
    first.close()

    again = backend.open()
    assert [e.event_id for e in again.read(x)] == [1, 2]
    record = again.execution(x)
    assert record is not None and record.status == "COMPLETED" and record.result == [1, 2]
    credential = again.get_credential("c")
    assert credential is not None and credential.data == {"token": "t"}
    entry = again.get_playbook("p")
    assert entry is not None and entry.version == 1
    assert again.allocate_event_id(x) == 3


def test_url_names_the_backend(backend: Backend, store: Store) -> None:
    assert store.url.startswith({"sqlite": "sqlite:///", "postgres": "postgresql://"}[backend.name])


# ---- PostgreSQL only -------------------------------------------------------------------------------


@pytest.mark.postgres
class TestPostgresOnly:
    def test_migrate_twice_is_harmless(self, pg_dsn: str) -> None:
        from noetl.store.postgres import PostgresStore

        store = PostgresStore(pg_dsn, migrate=False)
        try:
            assert "001_core.sql" in store.migrate()
            assert store.migrate() == []
            store.register("p", "p", "c")
            assert store.migrate() == []
            assert store.register("p", "p", "c") == 2
        finally:
            store.close()

    def test_servers_starting_at_once_migrate_once(self, pg_dsn: str) -> None:
        from noetl.store.postgres import PostgresStore

        stores = [PostgresStore(pg_dsn, migrate=False) for _ in range(4)]
        try:
            applied = in_threads(4, lambda i: stores[i].migrate())
            every = [name for names in applied for name in names]
            # Each file applied once, by exactly one of the servers.
            assert sorted(every) == [name for name, _ in migrations("postgres")]
        finally:
            for s in stores:
                s.close()

    def test_open_store_picks_postgres(self, pg_dsn: str) -> None:
        from noetl.store.postgres import PostgresStore

        store = open_store(pg_dsn)
        try:
            assert isinstance(store, PostgresStore)
            assert store.url == pg_dsn
        finally:
            store.close()

    def test_credentials_need_the_shared_key(self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)
        store = open_store(pg_dsn)
        try:
            with pytest.raises(CredentialError, match="NOETL_SECRET_KEY"):
                store.put_credential("c", "http", {"token": "t"})
            with pytest.raises(CredentialError, match="NOETL_SECRET_KEY"):
                store.get_credential("c")
        finally:
            store.close()

    def test_a_password_never_reaches_an_error_message(self, pg_dsn: str) -> None:
        from urllib.parse import urlsplit

        host = urlsplit(pg_dsn).hostname
        closed_port = 1  # nothing listens there
        url = f"postgresql://someone:Hunter2-secret@{host}:{closed_port}/somedb"
        with pytest.raises(StoreError) as caught:
            open_store(url)
        message = str(caught.value)
        assert "Hunter2-secret" not in message and "someone" not in message
        assert f"{host}:{closed_port}/somedb" in message
        with pytest.raises(InputError) as unknown:
            open_store("mysql://someone:Hunter2-secret@host/db")
        assert "Hunter2-secret" not in str(unknown.value)

    def test_values_jsonb_refuses_are_stored_not_fatal(self, pg_dsn: str) -> None:
        store = open_store(pg_dsn)
        try:
            x = new_id()
            store.append(
                [
                    ev(
                        x,
                        1,
                        T.ACTION_COMPLETED,
                        result={"nan": float("nan"), "inf": float("-inf"), "nul": "a\x00b"},
                        error="e\x00",
                    )
                ]
            )
            [read] = store.read(x)
            assert read.result == {"nan": "NaN", "inf": "-Infinity", "nul": "a\ufffdb"}
            assert read.error == "e\ufffd"
        finally:
            store.close()

    def test_pooled_connections_come_back_clean(self, pg_dsn: str) -> None:
        from noetl.store.postgres import PostgresStore

        store = PostgresStore(pg_dsn, pool_size=1)
        try:
            with store.connection() as conn:
                conn.execute("BEGIN")
                conn.execute("CREATE TABLE left_open (id int)")
            with store.connection() as conn:  # the same single connection, its transaction rolled back
                assert conn.execute("SELECT to_regclass('left_open')").fetchone() == (None,)
                with conn.transaction():
                    conn.execute("CREATE TABLE committed (id int)")
            with store.connection() as conn:
                assert conn.execute("SELECT to_regclass('committed')::text").fetchone() == ("committed",)
        finally:
            store.close()

    def test_a_flush_never_waits_for_the_connections_its_caller_holds(self, pg_dsn: str) -> None:
        from noetl.store.postgres import PostgresStore

        store = PostgresStore(pg_dsn, pool_size=1)
        try:
            x = new_id()
            with store.connection() as conn, conn.transaction():  # the broker's shape: hold, emit, flush
                conn.execute("SELECT 1")
                store.append([ev(x, 1)])
                store.flush()
            assert store.last_event_id(x) == 1
        finally:
            store.close()

    def test_an_exhausted_pool_says_so(self, pg_dsn: str) -> None:
        from noetl.store.pg_pool import ConnectionPool

        pool = ConnectionPool(pg_dsn, max_size=1, timeout=0.2)
        try:
            with pool.connection(), pytest.raises(StoreError, match="no free connection"):
                in_threads(1, lambda i: pool.connection().__enter__())
            with pool.connection() as conn:  # the held one came back
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            pool.close()


def test_a_new_sqlite_store_and_its_key_file_are_readable_by_their_owner_only(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)  # the key file is made only without it
    store = open_store(str(tmp_path / "private" / "noetl.db"))
    try:
        store.put_credential("c", "http", {"token": "t"})  # creates the key file beside the store
        store.append([ev(new_id(), 1, T.EXECUTION_START)])
        store.flush()
    finally:
        store.close()
    for name in ("noetl.db", "secret.key"):
        mode = stat.S_IMODE((tmp_path / "private" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
