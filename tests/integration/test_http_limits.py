"""An http step's `timeout` is a deadline for the whole answer, and its body is bounded
(`max_response_bytes`): a real server on 127.0.0.1 that drips its body or sends too much."""

from __future__ import annotations

import contextlib
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from tests.httpd import serve

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: limits}
workload: {url: "http://127.0.0.1:1"}
workflow:
  - step: start
    next: [{step: get}]
  - step: get
    type: http
    method: GET
    endpoint: "{{ workload.url }}"
    %(extra)s
    next: [{step: end}]
  - step: end
"""


class Drip(BaseHTTPRequestHandler):
    """Headers at once, then one byte every 0.3 s: each read is quick, the whole answer is not."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "40")
        self.end_headers()
        try:
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:
        pass


class Big(BaseHTTPRequestHandler):
    """2 MB, with or without a Content-Length (chunked when `?chunked`)."""

    def do_GET(self) -> None:
        body = b"y" * (2 * 1024 * 1024)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if "chunked" in self.path:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(0, len(body), 65536):
                    piece = body[i : i + 65536]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def run(store: Any, url: str, extra: str) -> tuple[Any, list[Any]]:
    playbook = parse_playbook(PLAYBOOK % {"extra": extra})
    outcome = LocalRunner(store).run(playbook, {"url": url})
    return outcome, store.read(outcome.execution_id)


def test_a_dripping_answer_is_cut_at_the_deadline(store: Any) -> None:
    with serve(Drip) as url:
        t0 = time.monotonic()
        outcome, _events = run(store, url, "timeout: 1.5")
        took = time.monotonic() - t0
    assert outcome.status == "FAILED"
    assert took < 5, f"the step held for {took:.1f}s past its 1.5 s timeout"
    assert "did not finish its answer within the timeout of 1.5s" in (outcome.error or "")


def test_a_body_over_the_limit_fails_the_step_and_says_how_to_raise_it(store: Any) -> None:
    with serve(Big) as url:
        declared, _ = run(store, url, "max_response_bytes: 1000000")
        chunked, events = run(store, url + "/?chunked", "max_response_bytes: 1000000")
        fits, _ = run(store, url, "max_response_bytes: 3000000")
    for outcome in (declared, chunked):
        assert outcome.status == "FAILED"
        assert "larger than 1,000,000 bytes" in (outcome.error or "")
        assert "raise `max_response_bytes`" in (outcome.error or "")
    [error] = [e for e in events if e.event_type == "action_error"]
    assert error.meta["error_type"] == "ResponseTooLarge"
    assert fits.status == "COMPLETED"


def test_a_bad_limit_is_an_error_of_the_step(store: Any) -> None:
    with serve(Big) as url:
        outcome, _ = run(store, url, "max_response_bytes: lots")
    assert outcome.status == "FAILED" and "must be a whole number of bytes" in (outcome.error or "")
