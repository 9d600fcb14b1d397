"""The execution page's retry button: the failed items run again in the same execution, live."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.ui.conftest import UiServer
from tests.ui.helpers import run_local, shot

PLAYBOOKS = Path(__file__).parent / "playbooks"


def test_the_retry_button_runs_the_failed_items_again(
    page: Page, ui_server: UiServer, ui_db: str, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    execution_id = run_local(PLAYBOOKS / "flaky_items.yaml", ui_db, {"flag": str(flag)})
    server = ui_server(ui_db)
    page.goto(f"{server.url}/#/executions/{execution_id}")
    panel = page.locator(".iterator[data-step='work']")
    expect(panel.locator("[data-count=failed] .n")).to_have_text("2")
    expect(page.locator("#headline")).to_contain_text("2 items failed")
    flag.unlink()  # the cause is fixed
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#retry-work").click()
    # The page draws the new run (it keeps 6 of the 8 items), then follows it to its end.
    expect(panel.locator("[data-count=kept]")).to_contain_text("6 of 8 kept", timeout=30_000)
    expect(page.locator("#execution-status")).to_have_text("COMPLETED", timeout=30_000)
    expect(panel.locator("[data-count=done] .n")).to_have_text("2")  # this run ran the two failed items
    expect(panel.locator("[data-count=failed] .n")).to_have_text("0")
    expect(page.locator("#headline")).to_have_count(0)
    expect(page.locator("#retry-work")).to_have_count(0)
    lane = page.locator("#timeline .lane[data-step='work'] rect.bar")
    expect(lane).to_have_count(2)  # the first run and the retried one
    shot(page, "execution_retried")
    events = httpx.get(
        f"{server.url}/api/executions/{execution_id}/events", params={"type": "execution_retry"}
    ).json()
    [retry] = events["events"]
    assert retry["meta"]["items"] == [2, 5] and retry["meta"]["requested_by"].startswith("api")
