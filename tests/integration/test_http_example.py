"""examples/http/http_get_post.yaml runs against an httpbin-like server on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import EXAMPLES
from tests.helpers import run_file

EXAMPLE = EXAMPLES / "http" / "http_get_post.yaml"


def httpbin(request: Request) -> Response:
    """What httpbin's /get and /post answer: the query as `args`, a JSON body as `json`."""
    echoed: dict[str, Any] = {"args": request.args.to_dict(), "url": request.url}
    if request.method == "POST":
        echoed["json"] = json.loads(request.get_data() or b"null")
    return Response(json.dumps(echoed), content_type="application/json")


def test_the_example_gets_then_posts_and_builds_its_result(store: Any, server: HTTPServer) -> None:
    server.expect_request("/get", method="GET").respond_with_handler(httpbin)
    server.expect_request("/post", method="POST").respond_with_handler(httpbin)
    base_url = server.url_for("").rstrip("/")
    outcome, _ = run_file(store, EXAMPLE, {"base_url": base_url, "city": "Oslo"})
    assert outcome.status == "COMPLETED", outcome.error
    posted = {"city": "Oslo", "units": "metric", "tags": ["weather", "example"]}
    assert outcome.result == {"city": "Oslo", "posted": posted, "status_codes": [200, 200]}
    [(get, _), (post, _)] = server.log
    assert get.args.to_dict() == {"city": "Oslo", "units": "metric"}
    assert post.args.to_dict() == {"source": "noetl"}
    assert json.loads(post.get_data()) == posted
