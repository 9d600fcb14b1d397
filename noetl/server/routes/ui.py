"""The web UI: the page shell at `/`, its assets under `/ui/`, and the session that holds the token.

The assets are plain files shipped in the package (no build step, nothing fetched at run time); the page
reads everything else from the JSON API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from noetl.server.auth import SESSION_COOKIE, cookie_value, session_matches, session_value, value_matches
from noetl.server.errors import ApiError

ASSETS = Path(__file__).resolve().parent.parent / "ui"
router = APIRouter(tags=["ui"])


class SignIn(BaseModel):
    token: str


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    # no-cache: a new version of the package serves its new shell at once.
    return FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/session")
def session(request: Request) -> dict[str, bool]:
    """Whether this server needs a token, and whether this browser's session cookie holds the right one."""
    token = request.app.state.token
    signed_in = not token or session_matches(cookie_value(request.headers.get("cookie")), token)
    return {"token_required": bool(token), "signed_in": signed_in}


@router.post("/api/session", status_code=204)
def sign_in(body: SignIn, request: Request) -> Response:
    """Keep the token in an HttpOnly, SameSite=Strict cookie that the API accepts like the bearer header."""
    token = request.app.state.token
    if not token:
        return Response(status_code=204)
    if not value_matches(body.token.strip(), token):
        raise ApiError(401, "the token is not valid; use the server's NOETL_API_TOKEN")
    response = Response(status_code=204)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.delete("/api/session", status_code=204)
def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
