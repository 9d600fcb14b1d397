"""`/docs`: the Swagger UI page, served from the package's vendored copy so it works without the internet.

FastAPI's built-in page loads swagger-ui from a CDN; the app turns it off (docs_url=None) and uses this.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

VENDOR = "/ui/vendor/swagger-ui"
router = APIRouter(tags=["docs"])


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    # No OAuth flow in this API (a bearer token), so no oauth2-redirect page is needed.
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url="/ui/favicon.svg",
        oauth2_redirect_url=None,
    )
