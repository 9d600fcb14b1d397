"""POST/GET/DELETE /api/session over real HTTP: the cookie the web UI signs in with, and its limits."""

from __future__ import annotations

from pathlib import Path

from tests.processes import running_server

TOKEN = "session-test-token-5678"


def test_the_session_cookie_stands_in_for_the_token(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with running_server(db, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as server, server.client() as api:
        assert api.get("/api/session").json() == {"token_required": True, "signed_in": False}
        assert api.post("/api/session", json={"token": "wrong"}).status_code == 401
        assert api.get("/api/executions").status_code == 401

        signed = api.post("/api/session", json={"token": TOKEN})
        assert signed.status_code == 204, signed.text
        set_cookie = signed.headers["set-cookie"]
        assert set_cookie.startswith("noetl_session=")
        assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower()
        value = signed.cookies["noetl_session"]
        assert value and TOKEN not in value  # derived from the token, never the token itself

        # The cookie alone (sent by hand, as a browser would) authorizes the API.
        cookie = {"Cookie": f"noetl_session={value}"}
        with server.client() as fresh:
            assert fresh.get("/api/executions", headers=cookie).status_code == 200
            assert fresh.get("/api/session", headers=cookie).json()["signed_in"] is True
            # A wrong bearer header is refused even next to a valid cookie: a header that is sent decides.
            wrong = {**cookie, "Authorization": "Bearer wrong"}
            assert fresh.get("/api/executions", headers=wrong).status_code == 401
            assert fresh.get("/api/executions", headers={"Cookie": "noetl_session=forged"}).status_code == 401

        out = api.delete("/api/session")
        assert out.status_code == 204
        assert "Max-Age=0" in out.headers["set-cookie"]  # the browser drops the cookie at once
        assert "noetl_session" not in api.cookies
        # And on a new connection too.
        with server.client() as after:
            assert after.get("/api/executions").status_code == 401
            assert after.get("/api/session").json()["signed_in"] is False


def test_signing_out_keeps_the_connection(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with running_server(db, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as server, server.client() as api:
        assert api.post("/api/session", json={"token": TOKEN}).status_code == 204
        out = api.delete("/api/session")
        assert out.status_code == 204 and out.content == b""
        assert api.get("/api/executions").status_code == 401  # on the same keep-alive connection
        assert "Traceback" not in server.output()


def test_a_server_without_a_token_needs_no_session(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    with running_server(db, tmp_path) as server, server.client() as api:
        assert api.get("/api/session").json() == {"token_required": False, "signed_in": True}
        assert api.post("/api/session", json={"token": "anything"}).status_code == 204
        assert api.get("/api/executions").status_code == 200
