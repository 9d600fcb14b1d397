"""Who gets /health's details (store, database error, workers): the token holder, or on a server without
a token, a caller on the loopback interface. Everyone else gets only ok or degraded (issue 9 item 6)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from noetl.server.routes.health import _may_see_details


def _request(client: str, token: str | None, authorization: str | None = None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(token=token))
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "client": (client, 40000), "headers": headers, "app": app})


@pytest.mark.parametrize(
    ("client", "token", "authorization", "expected"),
    [
        ("127.0.0.1", None, None, True),  # a server without a token, asked from the same machine
        ("::1", None, None, True),
        ("192.0.2.9", None, None, False),  # ... asked from elsewhere (it runs with --allow-no-token)
        ("127.0.0.1", "s3cret-token", None, False),  # a guarded server: loopback is not enough
        ("192.0.2.9", "s3cret-token", "Bearer s3cret-token", True),
        ("192.0.2.9", "s3cret-token", "Bearer wrong", False),
    ],
)
def test_details_go_to_the_token_holder_or_to_loopback_without_a_token(
    client: str, token: str | None, authorization: str | None, expected: bool
) -> None:
    assert _may_see_details(_request(client, token, authorization)) is expected
