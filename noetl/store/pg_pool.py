"""A small thread-safe pool of autocommit psycopg connections, and URLs made safe for error messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.pq import TransactionStatus

from noetl.errors import StoreError

Connection = psycopg.Connection[Any]


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

    At most `max_size` are open; a borrower waits up to `timeout` seconds for one. A connection comes
    back with its transaction rolled back if the borrower left one open, and a broken one is dropped,
    so one failure never poisons the next borrower.
    """

    def __init__(self, url: str, max_size: int = 8, timeout: float = 30.0) -> None:
        self.url, self.max_size, self.timeout = url, max_size, timeout
        self._idle: list[Connection] = []
        self._open = 0  # idle + lent
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def _acquire(self) -> Connection:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while not self._idle and self._open >= self.max_size and not self._closed:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise StoreError(
                        f"no free connection to {display_url(self.url)} after {self.timeout:g}s; "
                        "a caller holds connections too long, or raise the pool size"
                    )
            if self._closed:
                raise StoreError("the PostgreSQL store is closed")
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return psycopg.connect(self.url, autocommit=True)
        except BaseException as exc:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            if isinstance(exc, psycopg.Error):
                raise StoreError(
                    f"cannot connect to the PostgreSQL store at {display_url(self.url)}: "
                    f"{scrub(str(exc), self.url)}; check that the server runs and the URL"
                ) from None
            raise

    def _release(self, conn: Connection) -> None:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()
        with self._cond:
            if self._closed or conn.closed or conn.broken:
                self._open -= 1
                keep = False
            else:
                self._idle.append(conn)
                keep = True
            self._cond.notify()
        if not keep:
            conn.close()
