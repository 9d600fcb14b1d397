"""The PostgreSQL store's pool (psycopg_pool under noetl.store.pg_pool): what our layer promises on top."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from noetl.errors import StoreError
from noetl.store.pg_pool import ConnectionPool


def test_an_unreachable_database_fails_at_once_with_the_reason_and_no_password(pg_dsn: str) -> None:
    url = pg_dsn.replace("postgres@", "postgres:Hidden-pw-123@").rsplit("/", 1)[0] + "/no_such_database"
    pool = ConnectionPool(url, max_size=2, timeout=30)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError) as caught, pool.connection():
            pass
        assert time.monotonic() - t0 < 5  # not the pool's 30 s
        message = str(caught.value)
        assert message.startswith("cannot connect to the PostgreSQL store at postgresql://127.0.0.1:")
        assert "no_such_database" in message and "Hidden-pw-123" not in message
    finally:
        pool.close()


def test_a_connection_killed_in_use_is_replaced(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, max_size=1, timeout=5)
    try:
        with pool.connection() as conn:
            first = conn.info.backend_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
        with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
            conn.execute("SELECT 1")  # the borrower that finds it dead gets the error once
        with pool.connection() as conn:  # the next one a new connection
            assert conn.execute("SELECT 1").fetchone() == (1,) and conn.info.backend_pid != first
    finally:
        pool.close()


def test_threads_never_share_a_connection_and_wait_their_turn(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, max_size=3, timeout=30)
    lent: set[int] = set()
    lock = threading.Lock()

    def work(n: int) -> int:
        with pool.connection() as conn:
            with lock:
                assert id(conn) not in lent, "a connection lent twice at once"
                lent.add(id(conn))
            value = conn.execute("SELECT %s::int * 2", [n]).fetchone()
            with lock:
                lent.discard(id(conn))
        assert value is not None
        return int(value[0])

    try:
        with ThreadPoolExecutor(max_workers=8) as threads:
            assert list(threads.map(work, range(200))) == [n * 2 for n in range(200)]
        stats = pool.stats()
        assert stats["pool_max"] == 3 and stats["connections_num"] <= 3  # reused, never more than 3
    finally:
        pool.close()


def test_a_closed_pool_says_the_store_is_closed(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, max_size=1)
    pool.close()
    with pytest.raises(StoreError, match="the PostgreSQL store is closed"), pool.connection():
        pass
