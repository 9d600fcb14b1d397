"""The page shell in a browser: the offline API docs, and signing in and out with the server's token."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.ui.conftest import PageLog, UiServer
from tests.ui.helpers import shot

TOKEN = "ui-test-token-1234"
STATUS = "fetch('/api/executions', {credentials: 'same-origin'}).then((r) => r.status)"


def test_docs_render_the_api_offline(page: Page, ui_server: UiServer, ui_db: str) -> None:
    server = ui_server(ui_db)
    page.goto(f"{server.url}/docs")
    # Swagger UI drew the operations from /openapi.json with its vendored script: nothing came from a CDN.
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("/api/executions", exact=True).first).to_be_visible()
    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    shot(page, "docs")


def test_sign_in_keeps_the_token_in_an_httponly_cookie(
    page: Page, page_log: PageLog, ui_server: UiServer, ui_db: str
) -> None:
    server = ui_server(ui_db, token=TOKEN)
    page_log.allow("status of 401")  # the refused token and the checks after signing out answer 401
    page.goto(f"{server.url}/")
    form = page.locator("#signin")
    expect(form).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/signin"))
    shot(page, "signin")

    page.fill("#token", "not-the-token")
    form.locator("button[type=submit]").click()
    expect(form.get_by_role("alert")).to_contain_text("not valid")
    expect(page.locator("#sign-out")).to_be_hidden()
    assert page.evaluate(STATUS) == 401

    page.fill("#token", TOKEN)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"#/executions$"))
    expect(page.locator("#sign-out")).to_be_visible()
    assert "noetl_session" not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it
    [cookie] = [c for c in page.context.cookies() if c["name"] == "noetl_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]  # a value derived from the token, never the token
    assert page.evaluate(STATUS) == 200

    page.locator("#sign-out").click()
    expect(form).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "noetl_session"]
    assert page.evaluate(STATUS) == 401
