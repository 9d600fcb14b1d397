"""The cache of idle PostgreSQL connections: reuse, no reuse of broken ones, safe across threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from noetl.actions.pg_connections import ConnectionCache, PgConnectError


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def _pid(cache: ConnectionCache, dsn: str) -> int:
    with cache.connection(dsn) as conn, conn.transaction():
        return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]


def test_an_idle_connection_is_reused(pg_dsn: str) -> None:
    cache = ConnectionCache()
    try:
        assert _pid(cache, pg_dsn) == _pid(cache, pg_dsn)
    finally:
        cache.close_all()


def test_a_connection_that_broke_in_use_is_not_lent_again(pg_dsn: str) -> None:
    cache = ConnectionCache()
    try:
        first = _pid(cache, pg_dsn)
        _terminate(pg_dsn, first)
        with pytest.raises(psycopg.OperationalError), cache.connection(pg_dsn) as conn, conn.transaction():
            conn.execute("SELECT 1")
        assert _pid(cache, pg_dsn) != first
    finally:
        cache.close_all()


def test_a_connection_idle_for_a_while_is_checked_before_reuse(pg_dsn: str) -> None:
    cache = ConnectionCache(probe_after=0.0)
    try:
        first = _pid(cache, pg_dsn)
        _terminate(pg_dsn, first)
        assert _pid(cache, pg_dsn) != first  # the probe found it dead and a new one was opened
    finally:
        cache.close_all()


def test_a_connection_left_inside_a_transaction_is_closed_not_reused(pg_dsn: str) -> None:
    cache = ConnectionCache()
    try:
        with cache.connection(pg_dsn) as conn:
            conn.execute("CREATE TABLE half_done (id int)")  # no commit: the transaction stays open
            first = conn.info.backend_pid
        assert conn.closed
        assert _pid(cache, pg_dsn) != first
        with psycopg.connect(pg_dsn) as check:
            assert check.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    finally:
        cache.close_all()


def test_threads_share_the_cache_without_sharing_a_connection(pg_dsn: str) -> None:
    cache = ConnectionCache(max_idle=4)

    def work(n: int) -> tuple[int, Any]:
        with cache.connection(pg_dsn) as conn, conn.transaction():
            pid = conn.info.backend_pid
            value = conn.execute("SELECT %s::int * 2, pg_backend_pid()", [n]).fetchone()
        return pid, value

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(200)))
        assert [value[0] for _, value in results] == [n * 2 for n in range(200)]
        assert all(pid == value[1] for pid, value in results)
        assert len({pid for pid, _ in results}) < 200  # connections were reused, not opened per call
    finally:
        cache.close_all()


def test_a_failed_connect_names_the_server_but_not_the_password(pg_dsn: str) -> None:
    cache = ConnectionCache()
    dsn = pg_dsn.replace("postgres@", "postgres:Hidden-pw-123@").rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(PgConnectError) as caught, cache.connection(dsn):
        pass
    message = str(caught.value)
    assert "cannot connect to PostgreSQL postgres@127.0.0.1" in message and "no_such_database" in message
    assert "Hidden-pw-123" not in message
