"""Autocommit psycopg connections lent by psycopg_pool, and URLs made safe for error messages.

psycopg_pool does the pooling (waiting with a deadline, connections made and replaced in the background,
max lifetime and idle time, statistics). This layer adds what the store promised before it: a borrower
gets a connection rolled back to idle whatever the last one left, errors are StoreErrors that name the
server but never the password, and a database that cannot be reached is reported at once with its
reason, not after the pool's whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus

from noetl.errors import StoreError

Connection = psycopg.Connection[Any]

# A borrower waits in slices of this many seconds, so that it notices between two slices that the pool
# failed to connect (psycopg_pool retries in the background and would keep it waiting for `timeout`).
_WAIT_SLICE = 0.1


def display_url(url: str) -> str:
    """`postgresql://host:port/db`: what a message may show of a URL (never the user or the password)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "<default host>", parts.port or 5432
    except ValueError:
        return "postgresql://<unreadable URL>"
    return f"postgresql://{host}:{port}/{parts.path.lstrip('/') or '<default db>'}"


def scrub(message: str, url: str) -> str:
    """The message with the URL's password masked, in case a driver ever echoes it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return message
    for secret in {password, unquote(password or "")} - {None, ""}:
        message = message.replace(str(secret), "***")
    return message


class ConnectionPool:
    """Lends autocommit connections (use `with conn.transaction():` for several statements).

    At most `max_size` are open, none before the first borrower; a borrower waits up to `timeout`
    seconds for one. A connection comes back with its transaction rolled back if the borrower left one
    open, and a broken one is replaced, so one failure never poisons the next borrower.
    """

    def __init__(self, url: str, max_size: int = 8, timeout: float = 30.0, name: str = "noetl") -> None:
        self.url, self.max_size, self.timeout = url, max_size, timeout
        self._pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            url,
            kwargs={"autocommit": True},
            min_size=0,  # opened on demand, as many as borrowers need, kept up to max_idle (10 min)
            max_size=max_size,
            timeout=timeout,
            name=name,
            num_workers=1,  # its threads only open connections: one is enough, connections open one by one
            # No reconnection loop with backoff (it would keep borrowers waiting for minutes after an
            # outage): a failed connect is given up at once, and the next borrower asks for a new one.
            reconnect_timeout=0,
            open=True,
        )

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def stats(self) -> dict[str, int]:
        """psycopg_pool's figures: pool_size, pool_available, requests_waiting, connections_errors..."""
        return self._pool.get_stats()

    def close(self) -> None:
        self._pool.close()

    def _acquire(self) -> Connection:
        deadline = time.monotonic() + self.timeout
        failures = self._failures()
        while True:
            slice_ = min(_WAIT_SLICE, max(deadline - time.monotonic(), 0.001))
            try:
                return self._pool.getconn(timeout=slice_)
            except psycopg_pool.PoolClosed:
                raise StoreError("the PostgreSQL store is closed") from None
            except psycopg_pool.PoolTimeout:
                pass
            if self._failures() > failures:
                self._raise_if_unreachable()  # else a passing failure: wait on
                failures = self._failures()
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"no free connection to {display_url(self.url)} after {self.timeout:g}s; "
                    "a caller holds connections too long, or raise the pool size"
                )

    def _failures(self) -> int:
        return self._pool.get_stats().get("connections_errors", 0)

    def _raise_if_unreachable(self) -> None:
        """The pool could not connect: connect once here, to fail with the reason or to wait on."""
        try:
            psycopg.connect(self.url, autocommit=True, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store at {display_url(self.url)}: "
                f"{scrub(str(exc), self.url)}; check that the server runs and the URL"
            ) from None

    def _release(self, conn: Connection) -> None:
        # Rolled back here rather than by psycopg_pool, which logs a warning for each such connection.
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
        self._pool.putconn(conn)  # a closed or broken connection is dropped and replaced
