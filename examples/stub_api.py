"""A stand-in HTTP API for the examples, on 127.0.0.1, with nothing but the Python standard library.

    python3 examples/stub_api.py --port 8000        # Ctrl-C stops it

It answers what the examples call:

- `GET /get` and `POST /post` as httpbin does: `{"args": <the query>, "url": ..., "headers": ...}`, and for
  a POST also `"json"` (the body parsed as JSON) and `"data"` (the body as text). A query parameter given
  once is a string, one given several times a list. (`examples/http/http_get_post.yaml`)
- `GET /forecast?latitude=..&longitude=..` as a forecast API: `{"latitude", "longitude", "current":
  {"temperature_2m": <latitude / 2>}}`, so results can be checked by hand.
  (`examples/http_duckdb_postgres/`, `examples/weather_pipeline/`)
- `GET /status/<code>`: an empty answer with that status (try a retry against `/status/503`).

Anything else is a 404 with a JSON error. It logs nothing unless `--log` is given (a line per request,
on stderr), so it can run in the background of the shell you try the examples in.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _args(query: str) -> dict[str, Any]:
    """The query as httpbin shows it: a value given once is a string, several times a list."""
    parsed = parse_qs(query, keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def forecast(args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    try:
        lat, lon = float(args["latitude"]), float(args.get("longitude", 0))
    except (KeyError, TypeError, ValueError):
        return 400, {
            "error": "give latitude (and longitude) as numbers: /forecast?latitude=51.5&longitude=-0.1"
        }
    return 200, {"latitude": lat, "longitude": lon, "current": {"temperature_2m": round(lat / 2, 2)}}


class StubServer(ThreadingHTTPServer):
    log_requests = False


class StubAPI(BaseHTTPRequestHandler):
    server_version = "noetl-stub-api/1"

    def _send(self, status: int, body: Any | None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _echo(self, body: bytes | None) -> dict[str, Any]:
        url = urlsplit(self.path)
        echoed: dict[str, Any] = {
            "args": _args(url.query),
            "headers": dict(self.headers.items()),
            "url": f"http://{self.headers.get('Host', 'localhost')}{self.path}",
        }
        if body is not None:
            text = body.decode("utf-8", errors="replace")
            echoed["data"] = text
            try:
                echoed["json"] = json.loads(text) if text else None
            except ValueError:
                echoed["json"] = None
        return echoed

    def _route(self, body: bytes | None) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/status/") and url.path[8:].isdigit():
            self._send(int(url.path[8:]), None)
        elif url.path == "/get" and self.command == "GET":
            self._send(200, self._echo(None))
        elif url.path == "/post" and self.command == "POST":
            self._send(200, self._echo(body))
        elif url.path == "/forecast" and self.command == "GET":
            self._send(*forecast(_args(url.query)))
        else:
            self._send(
                404, {"error": f"no {self.command} {url.path} here: try GET /get, POST /post, GET /forecast"}
            )

    def do_GET(self) -> None:
        self._route(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        if isinstance(self.server, StubServer) and self.server.log_requests:
            sys.stderr.write(f"stub API: {format % args}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in HTTP API for the NoETL examples.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", action="store_true", help="log a line per request on stderr")
    options = parser.parse_args(argv)
    try:
        server = StubServer((options.host, options.port), StubAPI)
    except OSError as exc:
        sys.exit(
            f"error: cannot listen on {options.host}:{options.port}: {exc.strerror}; choose another --port"
        )
    server.log_requests = options.log
    print(
        f"stub API on http://{options.host}:{options.port} (GET /get, POST /post, GET /forecast)", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
