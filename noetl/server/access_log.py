"""The server's access log: a line per request, except reads that repeat (polling), and no secrets.

Clients that follow an execution ask the same thing again and again: `noetl execute --wait` reads the
events page five times a second, the web UI refreshes its lists every two seconds and holds a stream
per execution page, monitors call /health and /metrics. A GET that succeeds is logged once a minute per
client address and path (the query left out); writes, errors and every other request are logged each
time. A query parameter whose name says it holds a secret (token, password, key, ...) is logged as ***.
"""

from __future__ import annotations

import logging
import re
import time

ACCESS_LOGGER = "uvicorn.access"
REPEAT_SECONDS = 60.0  # a repeated successful GET of one path is logged once in this long
_REMEMBERED = 10_000  # (client, path) pairs kept; older ones are forgotten first
_SECRET_NAME = re.compile(r"token|passw|secret|key|auth|credential|session|signature", re.IGNORECASE)


class AccessLogFilter(logging.Filter):
    """For uvicorn's access logger, whose records' args are (client, method, path, http version, status)."""

    def __init__(self, repeat_seconds: float = REPEAT_SECONDS) -> None:
        super().__init__()
        self.repeat_seconds = repeat_seconds
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        client, method, full_path, version, status = args
        path, sep, query = str(full_path).partition("?")
        read = method in ("GET", "HEAD") and isinstance(status, int) and status < 400
        if read and self._seen_lately((str(client).rpartition(":")[0] or str(client), path)):
            return False
        if sep:
            record.args = (client, method, f"{path}?{masked(query)}", version, status)
        return True

    def _seen_lately(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.repeat_seconds:
            return True
        self._last.pop(key, None)
        self._last[key] = now  # newest last: the dict is in the order they were logged
        if len(self._last) > _REMEMBERED:
            del self._last[next(iter(self._last))]
        return False


def masked(query: str) -> str:
    """`a=1&token=abc` -> `a=1&token=***`."""
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}=***" if sep and value and _SECRET_NAME.search(name) else part)
    return "&".join(parts)


def quiet_access_log(verbose: bool = False) -> None:
    """Install the filter (once); `verbose` logs every request as uvicorn does, secrets still masked."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, AccessLogFilter)]:
        logger.removeFilter(old)
    logger.addFilter(AccessLogFilter(0.0 if verbose else REPEAT_SECONDS))
