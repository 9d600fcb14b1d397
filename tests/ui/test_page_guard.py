"""The `page` fixture's guard itself: it sees console errors, uncaught errors and requests to the internet."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.ui.conftest import PageLog, UiServer


def test_the_guard_records_what_would_fail_a_test(
    page: Page, page_log: PageLog, ui_server: UiServer, ui_db: str
) -> None:
    server = ui_server(ui_db)
    page.goto(f"{server.url}/ui/favicon.svg")
    page.evaluate("console.error('expected by the test')")
    page.evaluate("setTimeout(() => { throw new Error('thrown on purpose') })")
    failed = page.evaluate("fetch('https://example.com/x').then(() => 'fetched', () => 'refused')")
    page.wait_for_timeout(200)  # the uncaught error is reported after the timer fires
    assert failed == "refused"
    assert page_log.outside == ["GET https://example.com/x"]
    assert any("expected by the test" in e for e in page_log.errors)
    assert any("thrown on purpose" in e for e in page_log.errors)
    page_log.allow("expected by the test")
    page.evaluate("console.error('expected by the test, again')")
    page.wait_for_timeout(100)
    assert sum("expected by the test" in e for e in page_log.errors) == 1  # the allowed one was not kept
    page_log.errors.clear()  # recorded as they should be: nothing left to fail this test at teardown
    page_log.outside.clear()
