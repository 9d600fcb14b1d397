"""The executions list, an execution page and an item's drill-down, in a browser, against a real server
reading the SQLite store that `noetl run` wrote (as a user who ran locally would point a server at it)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.processes import REPO, SECRET_KEY
from tests.ui.conftest import UiServer
from tests.ui.helpers import run_local, shot

PLAYBOOKS = Path(__file__).parent / "playbooks"
WEATHER_STEPS = ["start", "create", "to_table", "report", "end"]


def _events(server_url: str, execution_id: str, **params: Any) -> list[dict[str, Any]]:
    page = httpx.get(f"{server_url}/api/executions/{execution_id}/events", params={**params, "limit": 100000})
    page.raise_for_status()
    return list(page.json()["events"])


def _weather(tmp_path: Path, db: str) -> str:
    return run_local(PLAYBOOKS / "weather_saves.yaml", db, {"duck_db": str(tmp_path / "weather.duckdb")})


def test_the_executions_list_shows_a_local_run(
    page: Page, ui_server: UiServer, ui_db: str, tmp_path: Path
) -> None:
    execution_id = _weather(tmp_path, ui_db)
    server = ui_server(ui_db)
    page.goto(f"{server.url}/")
    row = page.locator(f"tr[data-execution='{execution_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("ui/weather_saves")
    expect(row).to_contain_text("COMPLETED")
    expect(page.locator("#executions-total")).to_have_text("1 execution")
    shot(page, "executions")
    row.get_by_role("link", name="ui/weather_saves").click()
    expect(page.locator("#execution-name")).to_have_text("weather_saves")


def test_an_execution_page_shows_its_steps_in_order_and_the_iterator_counts_of_its_events(
    page: Page, ui_server: UiServer, ui_db: str, tmp_path: Path
) -> None:
    execution_id = _weather(tmp_path, ui_db)
    server = ui_server(ui_db)
    page.goto(f"{server.url}/#/executions/{execution_id}")
    expect(page.locator("#execution-status")).to_have_text("COMPLETED")
    lanes = page.locator("#timeline .lane")
    expect(lanes).to_have_count(len(WEATHER_STEPS))
    assert [lanes.nth(i).get_attribute("data-step") for i in range(len(WEATHER_STEPS))] == WEATHER_STEPS

    completed = _events(server.url, execution_id, type="iteration_completed")
    failed = _events(server.url, execution_id, type="iteration_failed")
    assert (len(completed), len(failed)) == (38, 2)  # the playbook's two cities without a temperature
    panel = page.locator(".iterator[data-step='to_table']")
    expect(panel.locator("[data-count=done] .n")).to_have_text(str(len(completed)))
    expect(panel.locator("[data-count=failed] .n")).to_have_text(str(len(failed)))
    expect(panel.locator("[data-count=total] .n")).to_have_text("40")
    expect(panel.locator("[data-count=running] .n")).to_have_text("0")
    # COMPLETED, and the page says on top that items failed
    expect(page.locator("#headline")).to_contain_text("2 items failed")
    # the failed items are listed by index, never hidden
    failures = panel.locator(".failures a")
    expect(failures).to_have_count(2)
    assert [failures.nth(i).inner_text().split(":")[0] for i in range(2)] == ["#7", "#23"]
    expect(panel.locator("#histogram svg rect").first).to_be_attached()
    shot(page, "execution")

    # the event table pages and filters on the server
    table = page.locator("#events")
    expect(table.locator("tr.event")).to_have_count(100)
    table.locator("select[name=type]").select_option("iteration_failed")
    expect(table.locator("tr.event")).to_have_count(2)
    table.locator("input[name=index]").fill("23")
    table.locator("input[name=index]").dispatch_event("change")
    expect(table.locator("tr.event")).to_have_count(1)
    expect(table.locator("tr.event")).to_contain_text("23")


def test_a_failed_items_drill_down_shows_its_save_failed_error(
    page: Page, ui_server: UiServer, ui_db: str, tmp_path: Path
) -> None:
    execution_id = _weather(tmp_path, ui_db)
    server = ui_server(ui_db)
    page.goto(f"{server.url}/#/executions/{execution_id}")
    page.locator(".iterator[data-step='to_table'] .failures a").first.click()
    expect(page.locator("#item-title")).to_have_text("to_table · item #7")
    expect(page.locator("#item-status")).to_have_text("FAILED")
    [stored] = [e for e in _events(server.url, execution_id, type="save_failed") if e["current_index"] == 7]
    saves = page.locator("#item-saves tr.save")
    expect(saves.filter(has_text="save_failed")).to_have_count(1)
    expect(saves.filter(has_text="save_failed")).to_contain_text(stored["error"][:60])
    assert "NOT NULL" in stored["error"]
    expect(page.locator("#item-error")).to_contain_text("save failed")
    expect(
        page.get_by_text('"city": "city-7"').first
    ).to_be_visible()  # the item's result, as the save saw it
    shot(page, "item_failed")


def test_a_running_executions_counts_grow_without_a_reload(
    page: Page, ui_server: UiServer, ui_db: str
) -> None:
    server = ui_server(ui_db)
    # A slow loop run by `noetl run` in another process, into the store the server reads.
    args = [
        sys.executable,
        "-m",
        "noetl.cli",
        "run",
        str(PLAYBOOKS / "slow_loop.yaml"),
        "--db",
        ui_db,
        "--quiet",
    ]
    payload = '{"items": 80, "delay": 0.15}'
    env = {"NOETL_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    run = subprocess.Popen([*args, "--payload", payload], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    try:
        execution_id = _first_execution(server.url)
        page.goto(f"{server.url}/#/executions/{execution_id}")
        page.evaluate("window.__same_page = true")
        panel = page.locator(".iterator[data-step='work']")
        expect(panel).to_be_visible()
        done = panel.locator("[data-count=done] .n")
        first = int(done.inner_text().replace(",", ""))
        expect(page.locator("#execution-status")).to_have_text("RUNNING")
        deadline = time.monotonic() + 20
        seen = first
        while seen <= first + 8 and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = int(done.inner_text().replace(",", ""))
        assert seen > first + 8, f"the done count stayed at {seen} (from {first})"
        shot(page, "execution_running")
        expect(panel.locator("[data-count=running] .n")).not_to_have_text("0")
        expect(page.locator("#execution-status")).to_have_text("COMPLETED", timeout=30_000)
        expect(done).to_have_text("80")
        assert page.evaluate("window.__same_page") is True  # no reload happened
    finally:
        run.wait(timeout=60)


def _first_execution(url: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(f"{url}/api/views/executions").json()["executions"]
        if found:
            return str(found[0]["execution_id"])
        time.sleep(0.1)
    raise AssertionError("the local run did not start")


def test_children_are_listed_under_their_parent(page: Page, ui_server: UiServer, ui_db: str) -> None:
    parent = run_local(REPO / "examples" / "subplaybook" / "parent.yaml", ui_db)
    server = ui_server(ui_db)
    [child] = httpx.get(f"{server.url}/api/views/executions", params={"parent": parent}).json()["executions"]
    page.goto(f"{server.url}/")
    expect(page.locator("#executions-body tr")).to_have_count(1)  # roots only: the child is under its parent
    page.locator(f"tr[data-execution='{parent}'] button").click()
    row = page.locator(f"tr.child[data-execution='{child['execution_id']}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("examples/subplaybook/child")
    row.get_by_role("link", name="examples/subplaybook/child").click()
    expect(page.locator("#execution-header")).to_contain_text("parent execution")
