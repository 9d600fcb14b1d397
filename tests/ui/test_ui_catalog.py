"""The catalog, playbook, flow-graph and credentials pages in a real browser against a real server."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from noetl.dsl import load_playbook
from noetl.server.routes.ui import ASSETS
from tests.processes import ServerProcess
from tests.ui.conftest import PageLog, UiServer
from tests.ui.helpers import run_local, shot

REPO = Path(__file__).resolve().parents[2]
BRANCH = REPO / "examples" / "branching" / "weather_branch.yaml"
STEPS = list(load_playbook(BRANCH).steps)
TINY = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: tiny
  path: tests/tiny
workload:
  n: 3
workflow:
  - step: start
    next:
      - step: square
  - step: square
    type: python
    data:
      n: "{{ workload.n }}"
    code: |
      def main(n):
          return {"squared": n * n}
    next:
      - step: end
  - step: end
    result:
      squared: "{{ square.squared }}"
"""


def register(api: httpx.Client, content: str) -> int:
    answer = api.post("/api/catalog/register", json={"content": content})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["version"])


def wait_finished(api: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/api/executions/{execution_id}")
        if record.status_code == 200 and record.json()["status"] in ("COMPLETED", "FAILED"):
            return dict(record.json())
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s")


def open_page(page: Page, server: ServerProcess, hash_: str) -> None:
    page.goto(f"{server.url}/{hash_}")


def test_the_flow_graph_shows_every_step_of_the_branching_example(
    page: Page, ui_db: str, ui_server: UiServer
) -> None:
    server = ui_server(ui_db)
    with server.client() as api:
        register(api, BRANCH.read_text())
    open_page(page, server, "#/graph?path=examples/weather_branch")
    nodes = page.locator("#graph [data-step]")
    expect(nodes).to_have_count(len(STEPS))
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.step)")) == sorted(STEPS)
    # The condition is drawn on its edge; the whole text is in its tooltip.
    hot = page.locator('#graph .edge[data-from="eval_flag"][data-to="hot_path"]')
    expect(hot.locator("text")).to_have_text(re.compile(r"result\.is_hot"))
    assert "{{ result.is_hot }}" in (hot.locator("text title").text_content() or "")
    # Layers: start above eval_flag above both branches above end.
    ys = {n: (page.locator(f'#graph [data-step="{n}"]').bounding_box() or {"y": -1})["y"] for n in STEPS}
    assert ys["start"] < ys["eval_flag"] < ys["hot_path"] < ys["notify_ops"] < ys["end"]
    assert ys["hot_path"] == ys["cold_path"] and ys["notify_ops"] == ys["log_alert"]
    shot(page, "graph")


def test_an_execution_graph_colours_the_steps_it_ran(page: Page, ui_db: str, ui_server: UiServer) -> None:
    execution_id = run_local(BRANCH, ui_db)
    server = ui_server(ui_db)
    open_page(page, server, f"#/executions/{execution_id}/graph")
    expect(page.locator("#graph [data-step]")).to_have_count(len(STEPS))
    expect(page.locator('#graph [data-step="hot_path"]')).to_have_class(re.compile(r"\bstatus-completed\b"))
    expect(page.locator('#graph [data-step="cold_path"]')).to_have_class(re.compile(r"\bstatus-not-run\b"))
    expect(page.locator("#graph-source")).to_contain_text("file")
    expect(page.locator("#legend")).to_contain_text("FAILED")
    link = page.locator('#graph [data-step="notify_ops"] a').get_attribute("href")
    assert link == f"#/executions/{execution_id}?step=notify_ops"
    shot(page, "graph-execution")


def test_the_catalog_lists_a_playbook_whose_page_shows_its_yaml_and_a_diff(
    page: Page, ui_db: str, ui_server: UiServer
) -> None:
    server = ui_server(ui_db)
    second = TINY.replace("  n: 3", "  n: 4")
    with server.client() as api:
        register(api, TINY)
        register(api, second)
    open_page(page, server, "#/catalog")
    row = page.locator('#catalog tr[data-path="tests/tiny"]')
    expect(row).to_contain_text("tiny")
    expect(row).to_contain_text("v2")
    row.locator("a", has_text="tests/tiny").click()
    expect(page).to_have_url(re.compile(r"#/catalog/tests/tiny$"))
    lines = page.locator("#yaml > div")
    expect(lines).to_have_count(len(second.splitlines()))
    assert lines.nth(6).text_content() == "  n: 4"  # one div per line, numbered by the stylesheet
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    # The diff from version 1 to version 2 (the default when version 2 is shown).
    expect(page.locator("#diff-a")).to_have_value("1")
    expect(page.locator("#diff-b")).to_have_value("2")
    expect(page.locator("#diff .del")).to_have_count(1)
    expect(page.locator("#diff .del")).to_contain_text("n: 3")
    expect(page.locator("#diff .add")).to_contain_text("n: 4")
    expect(page.locator("#diff .hunk")).to_have_count(1)
    shot(page, "catalog")
    page.locator("#diff-b").select_option("1")
    expect(page.locator("#diff")).to_contain_text("are the same")
    page.locator("#graph-link").click()
    expect(page.locator("#graph [data-step]")).to_have_count(3)


def test_the_run_form_starts_an_execution(
    page: Page, page_log: PageLog, ui_db: str, ui_server: UiServer
) -> None:
    if not (ASSETS / "pages" / "execution.js").exists():
        page_log.allow("pages/execution.js")  # the execution page is another module's work
    server = ui_server(ui_db)
    with server.client() as api:
        register(api, TINY)
        open_page(page, server, "#/catalog/tests/tiny")
        payload = page.locator("#payload")
        payload.fill("[1, 2]")
        page.locator("#run").click()
        expect(page.locator("#run-message")).to_contain_text("must be a JSON object")
        payload.fill('{"n": ')
        page.locator("#run").click()
        expect(page.locator("#run-message")).to_contain_text("not valid JSON")
        payload.fill('{"n": 5}')
        page.locator("#merge").check()
        page.locator("#run").click()
        expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]{36}$"))
        execution_id = page.url.rsplit("/", 1)[1]
        record = wait_finished(api, execution_id)
        assert record["status"] == "COMPLETED" and record["result"] == {"squared": 25}


def test_the_credentials_page_shows_names_types_and_users_never_values(
    page: Page, ui_db: str, ui_server: UiServer
) -> None:
    secret = "s3cr3t-Value-That-Must-Not-Show"
    server = ui_server(ui_db)
    with server.client() as api:
        for name, kind in (("pg_local", "postgres"), ("api_token", "http")):
            created = api.post(
                "/api/credentials", json={"name": name, "type": kind, "data": {"password": secret}}
            )
            assert created.status_code == 201, created.text
        register(api, (REPO / "examples" / "postgres" / "postgres_upsert.yaml").read_text())
    open_page(page, server, "#/credentials")
    pg = page.locator('#credentials tr[data-name="pg_local"]')
    expect(pg).to_contain_text("postgres")
    expect(pg.locator("a")).to_have_text("examples/postgres_upsert v1")
    token = page.locator('#credentials tr[data-name="api_token"]')
    expect(token).to_contain_text("http")
    expect(token).to_contain_text("no catalog playbook")
    assert secret not in page.content()
    pg.locator("a").click()
    expect(page.locator("#yaml")).to_contain_text("pg_auth: pg_local")


SLOW = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: slow
  path: tests/slow
workflow:
  - step: start
    next:
      - step: nap
  - step: nap
    type: python
    code: |
      import time
      def main():
          time.sleep(3)
          return {"rested": True}
    next:
      - step: end
  - step: end
"""


def test_the_graph_of_a_running_execution_follows_it(page: Page, ui_db: str, ui_server: UiServer) -> None:
    server = ui_server(ui_db)
    with server.client() as api:
        register(api, SLOW)
        started = api.post("/api/executions/run", json={"path": "tests/slow"})
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        open_page(page, server, f"#/executions/{execution_id}/graph")
        expect(page.locator("#graph [data-step]")).to_have_count(3)
        expect(page.locator("#graph-source")).to_contain_text("catalog version 1")
        assert "COMPLETED" not in (page.locator("#graph-status").text_content() or "")
        # No reload: the page asks again every 2 s until the execution ends.
        nap = page.locator('#graph [data-step="nap"]')
        expect(nap).to_have_class(re.compile(r"\bstatus-completed\b"), timeout=15_000)
        expect(page.locator('#graph [data-step="end"]')).to_have_class(re.compile(r"\bstatus-completed\b"))
        expect(page.locator("#graph-status")).to_contain_text("COMPLETED")
        wait_finished(api, execution_id)
