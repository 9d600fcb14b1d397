"""The server store: events, executions, credentials and the catalog in one PostgreSQL shared by every host.

Event ids: a single local writer (`noetl run`) may number its own events, as with SQLite. Writers that
share an execution across processes or hosts (the broker, workers, the control plane) must take every id
from `allocate_event_id`, which is unique across all of them and never reuses an id already written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from noetl.engine.events import Event, EventType
from noetl.errors import StoreError
from noetl.store import crypto, views_sql
from noetl.store.batching import BatchWriter
from noetl.store.codec import COLUMNS, JSON_COLUMNS, dumps, loads, row_to_event
from noetl.store.event_stats import StatsRow, fold_sql, select_sql, stats_rows
from noetl.store.migrations import migrate
from noetl.store.pg_codec import (
    COPY_EVENTS,
    SELECT_EVENTS,
    SELECT_WORKFLOW_EVENTS,
    clean_text,
    event_row,
    jsonb_text,
)
from noetl.store.pg_pool import Connection, ConnectionPool, display_url, scrub
from noetl.store.pg_queue import PostgresQueue
from noetl.store.ports import CatalogEntry, CredentialRecord, ExecutionRecord
from noetl.store.sequencing import FINAL_TYPES, executions_of, sequence
from noetl.store.sqlfiles import named_queries
from noetl.store.views_sql import EventFilter, ExecutionFilter

Q = named_queries("postgres", "store.sql")
_SETTINGS = named_queries("postgres", "settings.sql")  # the settings and re-encryption (noetl.store.crypto)
_SELECT_EVENTS = SELECT_EVENTS.split(" WHERE ")[0]
_SEQ_AT = COLUMNS.index("seq")  # the last column of an event_row
_LANE_COLUMNS = [
    views_sql.LANE_RESULT.format(result="result::text")
    if c == "result"
    else (f"{c}::text" if c in JSON_COLUMNS else c)
    for c in COLUMNS
]
_SELECT_EVENT_STATS = select_sql("noetl_event_stats")
# Folded after commit, not by the batch writer (migration 008): see event_stats.fold_sql.
_FOLD_EVENT_STATS = fold_sql(
    "noetl_events", "noetl_event_sequences", "noetl_event_stats_marks", "noetl_event_stats"
)
# One fold at a time on the whole database: two would read the same marks and count events twice.
_FOLD_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('noetl_event_stats_fold', 0))"
_SELECT_EXECUTIONS_LIGHT = (
    "SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, NULL, error "
    "FROM noetl_executions"
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class PostgresStore:
    """The same ports as SQLiteStore, plus `allocate_event_id`, `connection()` and `migrate()`."""

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 8) -> None:
        self.url = url  # kept whole for LISTEN connections; never put it in a message: use `location`
        self.location = display_url(url)
        self._pool = ConnectionPool(url, max_size=pool_size, name="noetl-store")
        # The batch writer has a connection of its own: a caller that holds pooled connections while it
        # flushes (the broker does, under its lock) must never wait for a connection the writer needs.
        self._writer_pool = ConnectionPool(url, max_size=1, name="noetl-writer")
        self._cipher: Any = None
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self._pool.close()
                self._writer_pool.close()
                raise
        self._writer = BatchWriter(self._write_batch)
        # The writer's own methods, bound on the store, as in the SQLite store (two events per item).
        self.append = self._writer.append  # type: ignore[method-assign]
        self.closed = self._writer.closed  # type: ignore[method-assign]

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled autocommit connection; wrap several statements in `with conn.transaction():`."""
        with self._pool.connection() as conn:
            yield conn

    def migrate(self) -> list[str]:
        """Apply the schema files not yet applied (see noetl.store.migrations); returns their names."""
        with self._failing_as_store_error("migrating the schema"):
            return migrate(self._pool)

    @contextmanager
    def _failing_as_store_error(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(
                f"{doing} failed in the PostgreSQL store at {self.location}: {scrub(str(exc), self.url)}"
            ) from exc

    @contextmanager
    def _conn(self, doing: str) -> Iterator[Connection]:
        with self._failing_as_store_error(doing), self._pool.connection() as conn:
            yield conn

    # ---- events ------------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        self._writer.append(events)

    def flush(self) -> None:
        self._writer.flush()

    def _write_batch(self, events: Sequence[Event]) -> set[str]:
        executions = executions_of(events)
        counts = Counter(e.execution_id for e in events)
        # Encoded before the sequence rows are locked (their seq is set once known): the lock is held
        # to commit, and a writer of another worker waits for it, so the Python work per row stays out
        # of that wait (issue 8).
        encoded = [event_row(e, 0) for e in events]
        with self._writer_pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # One round trip takes the batch's seq range of each execution and locks its sequence row
            # until commit: writers of one execution commit in seq order.
            cur.execute(
                Q["take_sequences"], {"executions": executions, "counts": [counts[x] for x in executions]}
            )
            rows = cur.fetchall()
            # A finished execution's row did not advance: numbering (of an execution_retry) starts at it.
            start = {x: int(last) - (0 if finished else counts[x]) for x, last, finished in rows}
            batch = sequence(events, start, {x for x, _, finished in rows if finished})
            if batch.reopened:
                reopened = sorted(batch.reopened)
                cur.execute(
                    Q["reopen_sequences"],
                    {"executions": reopened, "last": [batch.last_seq[x] for x in reopened]},
                )
            if batch.finished:
                cur.execute(Q["finish_sequences"], {"executions": sorted(batch.finished)})
            with cur.copy(COPY_EVENTS) as copy:
                if len(batch.kept) == len(events):  # (refused events leave gaps: match by position)
                    for row, (_, seq) in zip(encoded, batch.kept, strict=True):
                        row[_SEQ_AT] = seq
                        copy.write_row(row)
                else:
                    at = {id(e): i for i, e in enumerate(events)}
                    for e, seq in batch.kept:
                        row = encoded[at[id(e)]]
                        row[_SEQ_AT] = seq
                        copy.write_row(row)
            # In order, in the same transaction: an execution is listed finished only with its events.
            for e, _ in batch.kept:
                if e.event_type == EventType.EXECUTION_START:
                    cur.execute(
                        Q["start_execution"],
                        {
                            "execution_id": e.execution_id,
                            "parent_execution_id": e.parent_execution_id,
                            "playbook_path": (e.context or {}).get("path"),
                            "created_at": e.created_at,
                        },
                    )
                elif e.event_type == EventType.EXECUTION_RETRY:  # running again (noetl retry)
                    cur.execute(Q["reopen_execution"], {"execution_id": e.execution_id})
                elif e.event_type in FINAL_TYPES:
                    cur.execute(
                        Q["finish_execution"],
                        {
                            "execution_id": e.execution_id,
                            "status": e.status,
                            "finished_at": e.created_at,
                            "result": jsonb_text(dumps(e.result)),
                            "error": clean_text(e.error),
                        },
                    )
        return batch.refused

    def event_stats(self) -> list[StatsRow]:
        """The rollup of every stored event for /metrics (see noetl.store.event_stats): what was committed
        since the last fold is folded first, so the figures count every committed event exactly, the
        events of writers on other hosts included."""
        self.flush()  # events still in the batch writer belong in the figures
        self.fold_event_stats()
        with self._conn("reading the event statistics") as conn:
            return stats_rows(conn.execute(_SELECT_EVENT_STATS).fetchall())

    def fold_event_stats(self) -> None:
        """Add the events committed since the last fold to the rollup. Its cost is that of the new events
        (found through the (execution_id, seq) index) plus a scan of one row per execution, whatever the
        size of the log; the server runs it every few seconds, so that a scrape has little left to do."""
        with self._conn("folding the event statistics") as conn, conn.transaction():
            conn.execute(_FOLD_LOCK)
            conn.execute(_FOLD_EVENT_STATS)

    def closed(self, execution_id: str) -> bool:
        return self._writer.closed(execution_id)

    def read(self, execution_id: str, after: int = 0) -> list[Event]:
        self.flush()
        with self._conn("reading events") as conn:
            rows = conn.execute(SELECT_EVENTS, {"execution_id": execution_id, "after": after}).fetchall()
        return [row_to_event(r) for r in rows]

    def read_workflow(self, execution_id: str, after: int = 0) -> list[Event]:
        """Only the events fold() uses (state.WORKFLOW_TYPES), in commit order: no item events."""
        self._writer.flush_workflow()
        with self._conn("reading events") as conn:
            rows = conn.execute(
                SELECT_WORKFLOW_EVENTS, {"execution_id": execution_id, "after": after}
            ).fetchall()
        return [row_to_event(r) for r in rows]

    def query_events(
        self, execution_id: str, f: EventFilter, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """A page of the events matching `f`, in commit order, after `seq`."""
        sql, params = views_sql.events_page(_SELECT_EVENTS, f, execution_id, after, limit, "%s")
        self.flush()
        with self._conn("reading events") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [row_to_event(r) for r in rows]

    def last_seq(self, execution_id: str) -> int:
        """The seq of the execution's last committed event (0: none): every smaller seq is committed too."""
        self.flush()
        with self._conn("reading the last seq") as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM noetl_events WHERE execution_id = %s", (execution_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def lane_events(self, execution_id: str, after: int = 0) -> list[Event]:
        """The events of views_sql.LANE_TYPES after `seq`, step results left out, through their index."""
        sql, params = views_sql.lane_events(_LANE_COLUMNS, "noetl_events", execution_id, after, "%s")
        self.flush()
        with self._conn("reading lane events") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [row_to_event(r) for r in rows]

    def item_outcomes(self, execution_id: str, after: int = 0) -> list[tuple[Any, ...]]:
        """The items that ended, as light rows (views_sql.OUTCOME_COLUMNS), without their JSON columns."""
        sql, params = views_sql.item_outcomes(
            "noetl_events", "current_item::text", views_sql.POSTGRES_EPOCH, execution_id, after, "%s"
        )
        self.flush()
        with self._conn("reading item outcomes") as conn:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    def item_starts(self, execution_id: str, after: int, upto: int) -> dict[str, int]:
        """How many items of each step started with seq in (after, upto]."""
        sql, params = views_sql.item_starts("noetl_events", execution_id, after, upto, "%s")
        self.flush()
        with self._conn("counting started items") as conn:
            return {name: int(n) for name, n in conn.execute(sql, params).fetchall()}

    def find_executions(self, f: ExecutionFilter, limit: int = 50, offset: int = 0) -> list[ExecutionRecord]:
        """A page of executions matching `f`, newest first; `result` is left out (a list does not show it)."""
        sql, params = views_sql.executions_page(_SELECT_EXECUTIONS_LIGHT, f, limit, offset, "%s")
        self.flush()
        with self._conn("listing executions") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_record(r) for r in rows]

    def count_executions(self, f: ExecutionFilter) -> int:
        sql, params = views_sql.executions_count("noetl_executions", f, "%s")
        with self._conn("counting executions") as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0

    def execution_facts(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For each execution: how many children it has and which catalog version it runs (None: a file)."""
        facts: dict[str, dict[str, Any]] = {i: {"children": 0, "version": None} for i in ids}
        if not ids:
            return facts
        sql, params = views_sql.child_counts("noetl_executions", list(ids), "%s")
        with self._conn("reading execution facts") as conn:
            for parent, n in conn.execute(sql, params).fetchall():
                facts[parent]["children"] = int(n)
            versions = conn.execute(
                "SELECT execution_id, (context->>'version')::int FROM noetl_events "
                "WHERE execution_id = ANY(%s) AND seq = 1 AND event_type = 'execution_start'",
                [list(ids)],
            ).fetchall()
        for execution_id, version in versions:
            facts[execution_id]["version"] = version
        return facts

    def last_event_id(self, execution_id: str) -> int:
        self.flush()
        with self._conn("reading the last event id") as conn:
            row = conn.execute(Q["last_event_id"], {"execution_id": execution_id}).fetchone()
        return int(row[0]) if row else 0

    def allocate_event_id(self, execution_id: str) -> int:
        """The next event id of the execution: unique across every process on this database."""
        return self.reserve_event_ids(execution_id, 1)

    def reserve_event_ids(self, execution_id: str, n: int) -> int:
        """Reserve the next `n` event ids of the execution for this process; returns the last one."""
        # No flush: waiting for a commit for every block would undo the group commit. Ids appended but
        # not yet flushed are therefore not stepped over (see the port).
        with self._conn("reserving event ids") as conn:
            row = conn.execute(Q["reserve_event_ids"], {"execution_id": execution_id, "n": n}).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        return int(row[0])

    def failed_items(self, execution_id: str, iterator_event_id: int) -> int:
        """Items of one iterator attempt (its `iterator_started` id) that failed, on every worker."""
        with self._conn("counting failed items") as conn:
            row = conn.execute(
                Q["failed_items"], {"execution_id": execution_id, "iterator_event_id": iterator_event_id}
            ).fetchone()
        return int(row[0]) if row else 0

    def executions(self, limit: int = 50) -> list[ExecutionRecord]:
        self.flush()
        with self._conn("listing executions") as conn:
            rows = conn.execute(Q["list_executions"], {"limit": limit}).fetchall()
        return [_record(r) for r in rows]

    def execution(self, execution_id: str) -> ExecutionRecord | None:
        self.flush()
        with self._conn("reading an execution") as conn:
            row = conn.execute(Q["get_execution"], {"execution_id": execution_id}).fetchone()
        return _record(row) if row else None

    # ---- credentials -------------------------------------------------------------------------------

    def _crypto(self) -> Any:
        # No folder beside the database, and every host must decrypt: the key comes from the environment
        # (a passphrase is stretched with the salt in noetl_settings, the same for every host).
        if self._cipher is None:
            keyring = crypto.Keyring(self._setting, self._add_setting, self._tokens, self._replace_token)
            self._cipher = crypto.load_cipher(None, keyring)
        return self._cipher

    def _setting(self, name: str) -> str | None:
        with self._conn("reading the store's settings") as conn:
            row = conn.execute(_SETTINGS["get_setting"], {"name": name}).fetchone()
        return None if row is None else str(row[0])

    def _add_setting(self, name: str, value: str) -> str:
        """Store the setting unless it exists (another host may have just added it); the stored one."""
        with self._conn("storing the store's settings") as conn:
            conn.execute(_SETTINGS["add_setting"], {"name": name, "value": value})
        return self._setting(name) or value

    def _tokens(self) -> list[tuple[Any, bytes]]:
        """Every encrypted row, keyed for _replace_token: credentials, then sealed values."""
        with self._conn("reading the encrypted rows") as conn:
            credentials = conn.execute(_SETTINGS["credential_tokens"]).fetchall()
            sealed = conn.execute(_SETTINGS["sealed_tokens"]).fetchall()
        return [((name,), bytes(data)) for name, data in credentials] + [
            ((execution_id, name), bytes(data)) for execution_id, name, data in sealed
        ]

    def _replace_token(self, key: Any, old: bytes, new: bytes) -> None:
        """Re-encrypted, unless the row changed since it was read."""
        if len(key) == 1:
            query, params = "replace_credential_token", {"name": key[0]}
        else:
            query, params = "replace_sealed_token", {"execution_id": key[0], "name": key[1]}
        with self._conn("re-encrypting a row") as conn:
            conn.execute(_SETTINGS[query], {**params, "old": old, "new": new})

    def put_credential(self, name: str, type_: str, data: dict[str, Any]) -> None:
        token = crypto.encrypt(self._crypto(), data)
        with self._conn(f"storing credential {name!r}") as conn:
            conn.execute(Q["put_credential"], {"name": name, "type": type_, "data": token})

    def seal(self, execution_id: str, name: str, value: Any) -> None:
        """Keep `value` for this execution, encrypted with the credentials' key, beside the log."""
        token = crypto.encrypt(self._crypto(), {"value": value})
        with self._conn(f"sealing {name!r}") as conn:
            conn.execute(Q["put_sealed"], {"execution_id": execution_id, "name": name, "data": token})

    def unseal(self, execution_id: str, name: str) -> Any:
        """The value sealed under `name`, or None."""
        with self._conn(f"unsealing {name!r}") as conn:
            row = conn.execute(Q["get_sealed"], {"execution_id": execution_id, "name": name}).fetchone()
        return None if row is None else crypto.decrypt(self._crypto(), bytes(row[0]), name)["value"]

    def get_credential(self, name: str) -> CredentialRecord | None:
        cipher = self._crypto()
        with self._conn(f"reading credential {name!r}") as conn:
            row = conn.execute(Q["get_credential"], {"name": name}).fetchone()
        if row is None:
            return None
        return CredentialRecord(name, row[0], crypto.decrypt(cipher, bytes(row[1]), name))

    def delete_credential(self, name: str) -> bool:
        """Remove a credential; False when there was none of that name."""
        with self._conn("deleting a credential") as conn:
            return conn.execute(Q["delete_credential"], {"name": name}).rowcount > 0

    def list_credentials(self) -> list[tuple[str, str]]:
        with self._conn("listing credentials") as conn:
            return [(r[0], r[1]) for r in conn.execute(Q["list_credentials"]).fetchall()]

    # ---- the job queue -------------------------------------------------------------------------------

    def job_queue(self, lease_seconds: float = 30.0) -> PostgresQueue:
        """The queue in this database (noetl_jobs), shared by every server and worker on it."""
        return PostgresQueue(self, lease_seconds)

    # ---- catalog -----------------------------------------------------------------------------------

    def register(self, path: str, name: str, content: str) -> int:
        return self._register(path, name, content, reuse=False)[0]

    def register_if_changed(self, path: str, name: str, content: str) -> tuple[int, bool]:
        """(the latest version, True) when it holds this content, and nothing is written; otherwise
        (a new version, False), as register."""
        return self._register(path, name, content, reuse=True)

    def _register(self, path: str, name: str, content: str, *, reuse: bool) -> tuple[int, bool]:
        params = {"path": path, "name": name, "content": content, "created_at": _now()}
        with self._conn(f"registering {path}") as conn, conn.transaction():
            conn.execute(Q["lock_catalog_path"], params)
            if reuse:  # under the path's lock: a register of the same path commits before or after this
                latest = conn.execute(Q["latest_playbook"], params).fetchone()
                if latest is not None and latest[3] == content:
                    return int(latest[1]), True
            row = conn.execute(Q["register_playbook"], params).fetchone()
        assert row is not None  # INSERT ... SELECT of an aggregate always inserts one row
        return int(row[0]), False

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None:
        query = Q["latest_playbook"] if version is None else Q["playbook_version"]
        with self._conn(f"reading {path} from the catalog") as conn:
            row = conn.execute(query, {"path": path, "version": version}).fetchone()
        return CatalogEntry(*row) if row else None

    def list_playbooks(self) -> list[CatalogEntry]:
        with self._conn("listing the catalog") as conn:
            return [CatalogEntry(*r) for r in conn.execute(Q["list_playbooks"]).fetchall()]

    def close(self) -> None:
        """Flush and release every connection; a failed write is still raised, after the release."""
        try:
            self._writer.close()
        finally:
            self._pool.close()
            self._writer_pool.close()


def _record(row: Any) -> ExecutionRecord:
    return ExecutionRecord(row[0], row[1] or "", row[2], row[3], row[4], row[5], loads(row[6]), row[7])
