"""Fixtures for integration tests: a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from noetl.actions import http_client


@pytest.fixture(scope="module")
def loopback() -> Iterator[HTTPServer]:
    """One real HTTP server on 127.0.0.1 per module (pytest-httpserver's own listens on localhost)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    http_client.close()  # pooled connections to this server would outlive it
    server.stop()


@pytest.fixture
def server(loopback: HTTPServer) -> Iterator[HTTPServer]:
    """The loopback server, its handlers and request log cleared after each test."""
    yield loopback
    loopback.clear()
