"""The embedded store: one SQLite file holding events, executions, credentials and the catalog."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, cast

from noetl.engine.events import Event, EventType
from noetl.engine.state import WORKFLOW_TYPES
from noetl.errors import InputError, StoreError
from noetl.store import crypto, views_sql
from noetl.store.batching import BatchWriter
from noetl.store.codec import COLUMNS, dumps, event_to_row, loads, row_to_event
from noetl.store.event_stats import SUMMED, StatsRow, backfill_sql, rollup, select_sql, stats_rows, upsert_sql
from noetl.store.holds import execution_hold
from noetl.store.ports import CatalogEntry, CredentialRecord, ExecutionRecord
from noetl.store.sequencing import FINAL_TYPES, executions_of, sequence
from noetl.store.views_sql import EventFilter, ExecutionFilter

# sqlite3 binds None as NULL only after looking for an adapter for it: it asks its PrepareProtocol type
# for `__adapt__`, and that failed lookup formats an AttributeError message every time, about 2,000
# instructions for each None bound, of which an event row has five or more (a tenth of an iterator
# item's whole cost, callgrind). An adapter registered for None is found at once, and gives None back:
# still NULL. Process-wide, and the same NULL for any other user of sqlite3 here.
# `{}.get(None)` is None, from C: no Python frame for each None either.
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))

_SELECT_EVENTS = f"SELECT {', '.join(COLUMNS)} FROM events"
_SELECT_EXECUTIONS_LIGHT = (
    "SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, NULL, error "
    "FROM executions"
)
_LANE_COLUMNS = [views_sql.LANE_RESULT.format(result="result") if c == "result" else c for c in COLUMNS]
_LANE_INDEX = f"CREATE INDEX IF NOT EXISTS events_lanes ON events (execution_id, seq) WHERE {views_sql.LANE_WHERE_SQLITE}"
_ADD_EVENT_STATS = upsert_sql("event_stats", "?")
_INSERT_EVENT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# allocate_event_id's counter: written at once (not batched) so every process on the file sees it.
_COUNTERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS event_counters (execution_id TEXT PRIMARY KEY, last_id INTEGER NOT NULL)"
)
_RESERVE_EVENT_IDS = (
    "INSERT INTO event_counters (execution_id, last_id) "
    "VALUES (?1, COALESCE((SELECT MAX(event_id) FROM events WHERE execution_id = ?1), 0) + ?2) "
    "ON CONFLICT (execution_id) DO UPDATE SET last_id = MAX(last_id + ?2, excluded.last_id) RETURNING last_id"
)
# Where the batch's numbering starts, and whether the execution already ended (its events are refused).
_SEQ_AND_END = (
    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events WHERE execution_id = ?1), "
    "EXISTS (SELECT 1 FROM executions WHERE execution_id = ?1 AND status <> 'RUNNING')"
)


# The events that change an execution's row in `executions`.
_EXECUTION_ROW_TYPES = frozenset({EventType.EXECUTION_START, EventType.EXECUTION_RETRY, *FINAL_TYPES})

_ONE_ROW = f"({', '.join('?' * len(COLUMNS))})"


class EventInserts:
    """Event rows inserted up to 128 per statement, the rest of a batch by executemany. One statement of
    many rows costs SQLite about 1 us less per row than a row per statement (4 against 5 us here, 2026-12-02:
    no statement reset and no parameter round per row). Fewer rows per statement when the library allows
    fewer parameters (SQLite before 3.32 allowed 999)."""

    def __init__(self, conn: sqlite3.Connection, most: int = 128) -> None:
        self.rows = max(1, min(most, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)))
        self._many = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES " + ", ".join([_ONE_ROW] * self.rows)

    def __call__(self, cur: sqlite3.Cursor, values: list[Any]) -> None:
        """`values`: the rows' values one after the other, len(COLUMNS) per row (a flat list, filled by
        extend: about 0.2 us a row less than a list of rows flattened per statement)."""
        width = len(COLUMNS)
        per = self.rows * width
        whole = len(values) - len(values) % per
        for start in range(0, whole, per):
            cur.execute(self._many, values[start : start + per])
        if whole < len(values):
            cur.executemany(_INSERT_EVENT, [values[i : i + width] for i in range(whole, len(values), width)])


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _lock_timeout_from_env() -> float:
    text = os.environ.get("NOETL_STORE_LOCK_TIMEOUT", "").strip()
    if not text:
        return 60.0
    try:
        value = float(text)
    except ValueError:
        raise InputError(  # bad input (exit 2), not a store that failed
            f"NOETL_STORE_LOCK_TIMEOUT={text!r} is not a number of seconds; set it to e.g. 60"
        ) from None
    return max(value, 0.0)


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteStore:
    def __init__(self, path: str | Path, lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout if lock_timeout is not None else _lock_timeout_from_env()
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # The log holds results and inputs: readable by its owner only (SQLite gives its -wal and
                # -shm files the same mode as the database file). A process that made it first wins.
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Another process holding the write lock: each statement waits up to this long, and the
            # batch writer tries again with backoff until `lock_timeout` has passed (_write_batch).
            self._conn.execute(f"PRAGMA busy_timeout={int(min(10.0, self.lock_timeout) * 1000)}")
            schema = resources.files("noetl.store").joinpath("sql/sqlite_schema.sql").read_text()
            self._conn.executescript(schema)
            self._conn.execute(_COUNTERS_TABLE)
            _add_seq(self._conn)
            _count_earlier_events(self._conn)
            _lane_index(self._conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the store at {self.path}: {exc}; check the path and permissions"
            ) from exc
        self._lock = threading.Lock()
        self._insert_events = EventInserts(self._conn)
        self._writer = BatchWriter(self._write_batch, inline=True)
        # The writer's own methods, bound on the store: an item appends two events and asks closed()
        # twice, and the methods below only forward (about 1% of an item's instructions).
        self.append = self._writer.append  # type: ignore[method-assign]
        self.closed = self._writer.closed  # type: ignore[method-assign]
        self._cipher: Any = None

    # ---- events ------------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        self._writer.append(events)

    def flush(self) -> None:
        self._writer.flush()

    def hold(self, execution_id: str) -> contextlib.AbstractContextManager[None]:
        """Held by the process that runs the execution; a second holder is refused (noetl.store.holds)."""
        return execution_hold(self.path, execution_id)

    def _write_batch(self, events: Sequence[Event]) -> set[str]:
        """One batch in one transaction. A database locked by another process is waited for, with
        backoff, up to `lock_timeout` seconds (NOETL_STORE_LOCK_TIMEOUT, default 60); past that the
        batch fails with a StoreError that says so, and the events already committed stay."""
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.05
        while True:
            try:
                return self._write_batch_once(events)
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise StoreError(
                        f"the store at {self.path} stayed locked by another process for more than "
                        f"{self.lock_timeout:g} s ({exc}); set NOETL_STORE_LOCK_TIMEOUT to wait longer"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _write_batch_once(self, events: Sequence[Event]) -> set[str]:
        with self._lock:
            cur = self._conn.cursor()
            # IMMEDIATE: the database's write lock is taken before `seq` is read, so that another
            # process writing the same execution cannot commit in between (seq is commit order).
            cur.execute("BEGIN IMMEDIATE")
            try:
                last: dict[str, int] = {}
                ended: set[str] = set()
                for execution in executions_of(events):
                    seq, done = cur.execute(_SEQ_AND_END, (execution,)).fetchone()
                    last[execution] = int(seq)
                    if done:
                        ended.add(execution)
                batch = sequence(events, last, ended)
                values: list[Any] = []
                add_row = values.extend
                for e, seq in batch.kept:
                    add_row(event_to_row(e, seq))
                self._insert_events(cur, values)
                # (the few events that change the execution's row: a set test per event, not three)
                for e in [e for e, _ in batch.kept if e.event_type in _EXECUTION_ROW_TYPES]:
                    if e.event_type == EventType.EXECUTION_START:
                        cur.execute(
                            "INSERT OR REPLACE INTO executions (execution_id, parent_execution_id, "
                            "playbook_path, status, created_at) VALUES (?, ?, ?, 'RUNNING', ?)",
                            (
                                e.execution_id,
                                e.parent_execution_id,
                                (e.context or {}).get("path"),
                                e.created_at,
                            ),
                        )
                    elif e.event_type in FINAL_TYPES:
                        cur.execute(
                            "UPDATE executions SET status = ?, finished_at = ?, result = ?, error = ? "
                            "WHERE execution_id = ?",
                            (e.status, e.created_at, dumps(e.result), e.error, e.execution_id),
                        )
                    elif e.event_type == EventType.EXECUTION_RETRY:  # running again (noetl retry)
                        cur.execute(
                            "UPDATE executions SET status = 'RUNNING', finished_at = NULL, result = NULL, "
                            "error = NULL WHERE execution_id = ?",
                            (e.execution_id,),
                        )
                # (all of the batch, the common case, without a generator resumed per event)
                kept = events if not batch.refused else [e for e, _ in batch.kept]
                cur.executemany(_ADD_EVENT_STATS, rollup(kept))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return batch.refused

    def closed(self, execution_id: str) -> bool:
        return self._writer.closed(execution_id)

    def event_stats(self) -> list[StatsRow]:
        """The rollup of every stored event for /metrics (see noetl.store.event_stats)."""
        self.flush()  # events still in the batch writer belong in the figures
        with self._lock:
            rows = self._conn.execute(select_sql("event_stats")).fetchall()
        return stats_rows(rows)

    def fold_event_stats(self) -> None:
        """Nothing to do: SQLite's batch writer keeps the rollup in each batch's transaction (one writer at
        a time, so it costs no lock that was not already held)."""

    def read(self, execution_id: str, after: int = 0) -> list[Event]:
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq",
                (execution_id, after),
            ).fetchall()
        return [row_to_event(r) for r in rows]

    def read_workflow(self, execution_id: str, after: int = 0) -> list[Event]:
        """Only the events fold() uses (state.WORKFLOW_TYPES), in commit order: no item events."""
        types = sorted(WORKFLOW_TYPES)
        self._writer.flush_workflow()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM events WHERE execution_id = ? AND seq > ? "
                f"AND event_type IN ({', '.join('?' * len(types))}) ORDER BY seq",
                (execution_id, after, *types),
            ).fetchall()
        return [row_to_event(r) for r in rows]

    def query_events(
        self, execution_id: str, f: EventFilter, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """A page of the events matching `f`, in commit order, after `seq`."""
        sql, params = views_sql.events_page(_SELECT_EVENTS, f, execution_id, after, limit, "?")
        self.flush()
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [row_to_event(r) for r in rows]

    def last_seq(self, execution_id: str) -> int:
        """The seq of the execution's last committed event (0: none): every smaller seq is committed too."""
        self.flush()
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        return int(row[0])

    def lane_events(self, execution_id: str, after: int = 0) -> list[Event]:
        """The events of views_sql.LANE_TYPES after `seq`, step results left out, through their index."""
        sql, params = views_sql.lane_events(
            _LANE_COLUMNS, "events", execution_id, after, "?", views_sql.LANE_WHERE_SQLITE
        )
        self.flush()
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [row_to_event(r) for r in rows]

    def item_outcomes(self, execution_id: str, after: int = 0) -> list[tuple[Any, ...]]:
        """The items that ended, as light rows (views_sql.OUTCOME_COLUMNS), without their JSON columns."""
        sql, params = views_sql.item_outcomes(
            "events", "current_item", views_sql.SQLITE_EPOCH, execution_id, after, "?"
        )
        self.flush()
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def item_starts(self, execution_id: str, after: int, upto: int) -> dict[str, int]:
        """How many items of each step started with seq in (after, upto]."""
        sql, params = views_sql.item_starts("events", execution_id, after, upto, "?")
        self.flush()
        with self._lock:
            return {name: int(n) for name, n in self._conn.execute(sql, params)}

    def find_executions(self, f: ExecutionFilter, limit: int = 50, offset: int = 0) -> list[ExecutionRecord]:
        """A page of executions matching `f`, newest first; `result` is left out (a list does not show it)."""
        sql, params = views_sql.executions_page(_SELECT_EXECUTIONS_LIGHT, f, limit, offset, "?")
        self.flush()
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [self._record(r) for r in rows]

    def count_executions(self, f: ExecutionFilter) -> int:
        sql, params = views_sql.executions_count("executions", f, "?")
        with self._lock:
            return int(self._conn.execute(sql, params).fetchone()[0])

    def execution_facts(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For each execution: how many children it has and which catalog version it runs (None: a file)."""
        facts: dict[str, dict[str, Any]] = {i: {"children": 0, "version": None} for i in ids}
        if not ids:
            return facts
        marks = ", ".join("?" * len(ids))
        sql, params = views_sql.child_counts("executions", list(ids), "?")
        with self._lock:
            for parent, n in self._conn.execute(sql, params):
                facts[parent]["children"] = int(n)
            versions = self._conn.execute(
                "SELECT execution_id, json_extract(context, '$.version') FROM events "
                f"WHERE execution_id IN ({marks}) AND seq = 1 AND event_type = 'execution_start'",
                list(ids),
            ).fetchall()
        for execution_id, version in versions:
            facts[execution_id]["version"] = version
        return facts

    def last_event_id(self, execution_id: str) -> int:
        self.flush()
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(MAX(event_id), 0) FROM events WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        return int(row[0])

    def allocate_event_id(self, execution_id: str) -> int:
        """The next event id of the execution, above every id written and unique across processes."""
        return self.reserve_event_ids(execution_id, 1)

    def reserve_event_ids(self, execution_id: str, n: int) -> int:
        """Reserve the next `n` event ids of the execution; returns the last (the block ends there)."""
        # No flush: waiting for a commit for every block would undo the group commit. Ids appended but
        # not yet flushed are therefore not stepped over (see the port).
        with self._lock:
            # One statement in autocommit: SQLite's write lock serializes it against other processes.
            # fetchall, not fetchone: RETURNING commits only once the statement has run to its end.
            rows = self._conn.execute(_RESERVE_EVENT_IDS, (execution_id, n)).fetchall()
        return int(rows[0][0])

    def executions(self, limit: int = 50) -> list[ExecutionRecord]:
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                "SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, "
                "result, error FROM executions ORDER BY created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [self._record(r) for r in rows]

    def execution(self, execution_id: str) -> ExecutionRecord | None:
        self.flush()
        with self._lock:
            row = self._conn.execute(
                "SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, "
                "result, error FROM executions WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
        return self._record(row) if row else None

    @staticmethod
    def _record(row: Any) -> ExecutionRecord:
        return ExecutionRecord(row[0], row[1] or "", row[2], row[3], row[4], row[5], loads(row[6]), row[7])

    # ---- credentials -------------------------------------------------------------------------------

    def _crypto(self) -> Any:
        if self._cipher is None:
            keyring = crypto.Keyring(self._setting, self._add_setting, self._tokens, self._replace_token)
            self._cipher = crypto.load_cipher(self.path.parent / "secret.key", keyring)
        return self._cipher

    def _setting(self, name: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _add_setting(self, name: str, value: str) -> str:
        """Store the setting unless it exists (another process may have just added it); the stored one."""
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (name, value))
        return self._setting(name) or value

    def _tokens(self) -> list[tuple[Any, bytes]]:
        """Every encrypted row, keyed for _replace_token: credentials, then sealed values."""
        with self._lock:
            credentials = self._conn.execute("SELECT name, data FROM credentials").fetchall()
            sealed = self._conn.execute("SELECT execution_id, name, data FROM sealed_values").fetchall()
        return [((name,), bytes(data)) for name, data in credentials] + [
            ((execution_id, name), bytes(data)) for execution_id, name, data in sealed
        ]

    def _replace_token(self, key: Any, old: bytes, new: bytes) -> None:
        """Re-encrypted, unless the row changed since it was read."""
        if len(key) == 1:
            sql = "UPDATE credentials SET data = ? WHERE name = ? AND data = ?"
        else:
            sql = "UPDATE sealed_values SET data = ? WHERE execution_id = ? AND name = ? AND data = ?"
        with self._lock:
            self._conn.execute(sql, (new, *key, old))

    def put_credential(self, name: str, type_: str, data: dict[str, Any]) -> None:
        token = crypto.encrypt(self._crypto(), data)
        with self._lock:
            self._conn.execute(
                "INSERT INTO credentials (name, type, data, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET type = excluded.type, data = excluded.data, "
                "updated_at = excluded.updated_at",
                (name, type_, token, _now()),
            )

    def seal(self, execution_id: str, name: str, value: Any) -> None:
        """Keep `value` for this execution, encrypted with the credentials' key, beside the log."""
        token = crypto.encrypt(self._crypto(), {"value": value})
        with self._lock:
            self._conn.execute(
                "INSERT INTO sealed_values (execution_id, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT (execution_id, name) DO UPDATE SET data = excluded.data",
                (execution_id, name, token),
            )

    def unseal(self, execution_id: str, name: str) -> Any:
        """The value sealed under `name`, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM sealed_values WHERE execution_id = ? AND name = ?", (execution_id, name)
            ).fetchone()
        return None if row is None else crypto.decrypt(self._crypto(), bytes(row[0]), name)["value"]

    def get_credential(self, name: str) -> CredentialRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT type, data FROM credentials WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return CredentialRecord(name, row[0], crypto.decrypt(self._crypto(), bytes(row[1]), name))

    def delete_credential(self, name: str) -> bool:
        """Remove a credential; False when there was none of that name."""
        with self._lock:
            return self._conn.execute("DELETE FROM credentials WHERE name = ?", (name,)).rowcount > 0

    def list_credentials(self) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (r[0], r[1]) for r in self._conn.execute("SELECT name, type FROM credentials ORDER BY name")
            ]

    # ---- catalog -----------------------------------------------------------------------------------

    def register(self, path: str, name: str, content: str) -> int:
        return self._register(path, name, content, reuse=False)[0]

    def register_if_changed(self, path: str, name: str, content: str) -> tuple[int, bool]:
        """(the latest version, True) when it holds this content, and nothing is written; otherwise
        (a new version, False), as register."""
        return self._register(path, name, content, reuse=True)

    def _register(self, path: str, name: str, content: str, *, reuse: bool) -> tuple[int, bool]:
        latest = "SELECT version, {} FROM catalog WHERE path = ? ORDER BY version DESC LIMIT 1"
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute(latest.format("content" if reuse else "NULL"), (path,)).fetchone()
                if reuse and row is not None and row[1] == content:
                    cur.execute("COMMIT")
                    return int(row[0]), True
                version = (int(row[0]) if row else 0) + 1
                cur.execute(
                    "INSERT INTO catalog (path, version, name, content, created_at) VALUES (?, ?, ?, ?, ?)",
                    (path, version, name, content, _now()),
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return version, False

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None:
        query = "SELECT path, version, name, content, created_at FROM catalog WHERE path = ?"
        params: tuple[Any, ...] = (path,)
        if version is not None:
            query += " AND version = ?"
            params += (version,)
        with self._lock:
            row = self._conn.execute(query + " ORDER BY version DESC LIMIT 1", params).fetchone()
        return CatalogEntry(*row) if row else None

    def list_playbooks(self) -> list[CatalogEntry]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, MAX(version), name, '', MAX(created_at) FROM catalog GROUP BY path ORDER BY path"
            ).fetchall()
        return [CatalogEntry(*r) for r in rows]

    def close(self) -> None:
        """Flush and close the file; a failed write is still raised, after the file is closed."""
        try:
            self._writer.close()
        finally:
            with self._lock:
                self._conn.close()


def _add_seq(conn: sqlite3.Connection) -> None:
    """Files written before `seq` existed: add it, numbered like their event ids (their commit order,
    since one process wrote each execution), and index it for reading in order."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "seq" not in columns:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("ALTER TABLE events ADD COLUMN seq INTEGER")
            conn.execute("UPDATE events SET seq = event_id")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events (execution_id, seq)")


def _count_earlier_events(conn: sqlite3.Connection) -> None:
    """Files written before the rollup existed: count their events once (the batch writer counts the rest)."""
    uncounted = "SELECT NOT EXISTS (SELECT 1 FROM event_stats) AND EXISTS (SELECT 1 FROM events)"
    if not conn.execute(uncounted).fetchone()[0]:
        return
    conn.execute("BEGIN IMMEDIATE")  # checked again under the lock: another process may have counted them
    try:
        if conn.execute(uncounted).fetchone()[0]:
            columns = ", ".join(("event_type", "status", *SUMMED))
            conn.execute(f"INSERT INTO event_stats ({columns}) {backfill_sql('events')}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _lane_index(conn: sqlite3.Connection) -> None:
    """The partial index of lane events, made again when its test changed (a newer version added a type,
    or spelled it as equalities): a query whose test differs from the index's would scan the
    execution's events instead."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_lanes'"
    ).fetchone()
    if row is not None and views_sql.LANE_WHERE_SQLITE not in (row[0] or ""):
        conn.execute("DROP INDEX events_lanes")
    conn.execute(_LANE_INDEX)
