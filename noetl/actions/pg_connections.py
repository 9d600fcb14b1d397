"""PostgreSQL connections for actions and saves: credential -> conninfo, and a cache of idle connections."""

from __future__ import annotations

import atexit
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from noetl.actions.sql_step import pg_params
from noetl.store.ports import CredentialRecord

CONNECT_TIMEOUT = 5  # seconds: a wrong host should fail the step quickly, not hang it
# SQLSTATE classes that mean the connection, not the SQL, is at fault: 08 connection, 57 operator action.
_CONNECTION_CLASSES = ("08", "57P")


class PgConnectError(Exception):
    """A connection could not be opened; the message names the server, never the password."""


def conninfo_for(record: CredentialRecord) -> str:
    """The libpq connection string for a postgres credential (it holds the password: never show it).

    Built once per credential content, not per call: a per-item save asks for it for every item, and
    parsing and quoting it cost more than the save's own round trip on a local server. The cache is
    keyed by everything the string is made of (name, type and every field), so two credentials never
    share an entry, and it lives in this process's memory only.
    """
    same = _BY_RECORD.get(id(record))
    if same is not None and same[0] is record:  # the very record (a save's credential is resolved once)
        return same[1]
    key = _content_key(record)
    if key is None:  # a field that cannot be a key (a list, a mapping): nothing to reuse
        return make_conninfo(**pg_params(record))
    found = _CONNINFOS.get(key)
    if found is None:
        found = make_conninfo(**pg_params(record))  # a CredentialError is raised, never cached
    with _CONNINFOS_LOCK:
        if len(_CONNINFOS) >= _MAX_CONNINFOS:
            _CONNINFOS.pop(next(iter(_CONNINFOS)))  # the oldest: a process rarely has this many
        _CONNINFOS[key] = found
        if len(_BY_RECORD) >= _MAX_CONNINFOS:
            _BY_RECORD.pop(next(iter(_BY_RECORD)))
        # The record is held here, so its id cannot be reused by another record while the entry lives.
        _BY_RECORD[id(record)] = (record, found)
    return found


def _content_key(record: CredentialRecord) -> tuple[Hashable, ...] | None:
    items = tuple(sorted(record.data.items(), key=lambda kv: str(kv[0])))
    try:
        hash(items)
    except TypeError:
        return None
    return (record.name, record.type, items)


_MAX_CONNINFOS = 64
_CONNINFOS: dict[tuple[Hashable, ...], str] = {}
_BY_RECORD: dict[int, tuple[CredentialRecord, str]] = {}
_CONNINFOS_LOCK = threading.Lock()


def describe_target(conninfo: str) -> str:
    """user@host:port/dbname, for messages; the password is left out on purpose."""
    p = conninfo_to_dict(conninfo)
    return f"{p.get('user', '')}@{p.get('host', '')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def scrub(text: str, conninfo: str) -> str:
    """The text with the connection's password masked, in case a driver ever echoes it."""
    password = str(conninfo_to_dict(conninfo).get("password") or "")
    return text.replace(password, "***") if password else text


def is_connection_error(exc: BaseException) -> bool:
    """True when the connection failed (not the SQL): worth retrying, and the connection is not reused."""
    if isinstance(exc, PgConnectError):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    return (isinstance(exc, psycopg.OperationalError) and not state) or state.startswith(_CONNECTION_CLASSES)


def sql_error_text(exc: psycopg.Error) -> str:
    """SQLSTATE, condition and the server's message and detail, on one line."""
    diag = exc.diag
    message = diag.message_primary or str(exc).splitlines()[0]
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return f"SQLSTATE {exc.sqlstate or 'none'} {type(exc).__name__}: {message}{detail}"


class ConnectionCache:
    """Idle connections per conninfo, so that many saves per second do not each open a connection.

    A connection is lent to one caller at a time; it comes back only if it is healthy and idle (no
    transaction open), so a broken connection is closed, never lent again.
    """

    def __init__(
        self, max_idle: int = 4, max_targets: int = 32, probe_after: float = 10.0, max_idle_age: float = 300.0
    ) -> None:
        self.max_idle = max_idle  # per conninfo
        self.max_targets = max_targets  # conninfos with idle connections; the least recently used go first
        # A connection idle this long may have been dropped by the server: check it with SELECT 1 first.
        self.probe_after = probe_after
        self.max_idle_age = max_idle_age  # idle longer than this: closed rather than reused
        self._idle: OrderedDict[str, list[tuple[psycopg.Connection[Any], float]]] = OrderedDict()
        self._unprepared: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def connection(
        self, conninfo: str, *, autocommit: bool = False, prepare: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection lent for the block. `prepare`: the statements run in the block are prepared on
        the server the first time and reused after (psycopg keeps them by text, per connection); only
        for statements whose result has no columns, such as the saves' INSERTs, since a cached plan of
        a query returning rows fails once another session changes the table (see `_connect`)."""
        conn = self._take(conninfo)
        try:
            if conn.autocommit != autocommit:  # setting it costs a round of psycopg's machinery
                conn.autocommit = autocommit
            conn.prepare_threshold = 0 if prepare and conninfo not in self._unprepared else None
            yield conn
        finally:
            self._give_back(conninfo, conn)

    def never_prepare(self, conninfo: str) -> None:
        """The server behind this conninfo loses prepared statements (a pooler such as pgbouncer in
        transaction mode hands each transaction another server connection): do not prepare for it."""
        with self._lock:
            self._unprepared.add(conninfo)

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, OrderedDict()
        for entries in idle.values():
            for conn, _ in entries:
                conn.close()

    def _take(self, conninfo: str) -> psycopg.Connection[Any]:
        while (entry := self._pop(conninfo)) is not None:
            conn, since = entry
            if time.monotonic() - since < self.probe_after or _alive(conn):
                return conn
            conn.close()
        return _connect(conninfo)

    def _pop(self, conninfo: str) -> tuple[psycopg.Connection[Any], float] | None:
        """The most recently returned idle connection that is not too old; older ones are closed."""
        stale: list[psycopg.Connection[Any]] = []
        found = None
        with self._lock:
            entries = self._idle.get(conninfo) or []
            while entries and found is None:
                conn, since = entries.pop()
                if time.monotonic() - since < self.max_idle_age:
                    found = (conn, since)
                else:
                    stale.append(conn)
        for conn in stale:
            conn.close()
        return found

    def _give_back(self, conninfo: str, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            entries = self._idle.setdefault(conninfo, [])
            self._idle.move_to_end(conninfo)
            kept = len(entries) < self.max_idle
            if kept:
                entries.append((conn, time.monotonic()))
            unwanted = self._evict()
        for old in unwanted if kept else [*unwanted, conn]:
            old.close()

    def _evict(self) -> list[psycopg.Connection[Any]]:
        """Drop the least recently used targets beyond `max_targets` (called with the lock held)."""
        evicted: list[psycopg.Connection[Any]] = []
        while len(self._idle) > self.max_targets:
            _, entries = self._idle.popitem(last=False)
            evicted.extend(conn for conn, _ in entries)
        return evicted


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    try:
        # prepare_threshold=None: a cached connection outlives DDL, and a stale prepared plan would fail.
        return psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT, prepare_threshold=None)
    except psycopg.Error as exc:
        reason = scrub(" ".join(str(exc).split()), conninfo)
        raise PgConnectError(f"cannot connect to PostgreSQL {describe_target(conninfo)}: {reason}") from None


def _alive(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
        conn.rollback()
    except psycopg.Error:
        return False
    return True


_CACHE = ConnectionCache()
atexit.register(_CACHE.close_all)  # say goodbye to the servers rather than drop the sockets


def connection(
    conninfo: str, *, autocommit: bool = False, prepare: bool = False
) -> AbstractContextManager[psycopg.Connection[Any]]:
    """A connection from the process-wide cache, as a context manager; it goes back when the block ends."""
    return _CACHE.connection(conninfo, autocommit=autocommit, prepare=prepare)


def never_prepare(conninfo: str) -> None:
    """See ConnectionCache.never_prepare: the process-wide cache stops preparing for this target."""
    _CACHE.never_prepare(conninfo)


# What a server says when a prepared statement psycopg knows of is not there, or one it makes already
# is: another server connection answered (a transaction-mode pooler), or someone ran DEALLOCATE.
LOST_PREPARED = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement)
