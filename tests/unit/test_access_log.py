"""The server's access log filter: successful reads that repeat are logged once in a while, writes and
errors every time, and secrets in query strings never."""

from __future__ import annotations

import logging

from noetl.server.access_log import AccessLogFilter, masked


def _record(client: str, method: str, path: str, status: int) -> logging.LogRecord:
    args = (client, method, path, "1.1", status)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_a_repeated_successful_read_is_logged_once_per_client_and_path() -> None:
    f = AccessLogFilter()
    polls = [
        f.filter(_record(f"127.0.0.1:{port}", "GET", f"/api/executions/x/events?after={n}", 200))
        for n, port in enumerate(range(5000, 5010))
    ]
    assert polls == [True] + [False] * 9  # a new connection (port) each time: still the same client
    assert f.filter(_record("10.0.0.2:1", "GET", "/api/executions/x/events?after=0", 200))  # another client
    assert f.filter(_record("127.0.0.1:1", "GET", "/api/executions/y/events?after=0", 200))  # another path
    assert all(f.filter(_record("127.0.0.1:1", "POST", "/api/executions/run", 202)) for _ in range(3))
    assert all(f.filter(_record("127.0.0.1:1", "GET", "/api/executions/nope", 404)) for _ in range(3))
    everything = AccessLogFilter(0.0)  # --verbose
    assert all(everything.filter(_record("127.0.0.1:1", "GET", "/health", 200)) for _ in range(3))


def test_secret_query_values_are_masked() -> None:
    assert masked("after=3&token=abc&api_key=k&password=p&step=load") == (
        "after=3&token=***&api_key=***&password=***&step=load"
    )
    f = AccessLogFilter()
    record = _record("127.0.0.1:1", "POST", "/api/executions/run?access_token=s3cret", 202)
    assert f.filter(record) and "s3cret" not in record.getMessage()
