"""Browser fixtures: Debian's chromium through Playwright, a server per test, a page that must stay clean.

The `page` fixture fails its test when the page logged a console error or threw, or tried to reach any
host but this machine: the UI ships every asset it needs and must work offline. A test that expects an
error (a refused token answers 401) says so with `page_log.allow("...")`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    Route,
    WebSocket,
    expect,
    sync_playwright,
)

from tests.processes import ServerProcess
from tests.ui.helpers import run_local, shot

__all__ = ["PageLog", "run_local", "shot"]

# Root has no sandbox; a container's /dev/shm may be 64 MB, too small for chromium's renderers; the rest
# keeps chromium from calling Google's services (refused here, and noise).
expect.set_options(timeout=15_000)  # see `page`: the same patience for expect(...) checks

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class UiServer(Protocol):
    """The type of the `ui_server` fixture."""

    def __call__(self, db: str, token: str | None = None) -> ServerProcess: ...


def chromium_path() -> str:
    """NOETL_TEST_CHROMIUM, else /usr/bin/chromium, else `chromium` on PATH; fails (never skips) without one."""
    given = os.environ.get("NOETL_TEST_CHROMIUM")
    candidates = [given] if given else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"no chromium at {given or '/usr/bin/chromium or on PATH'}: the UI tests need it. "
        "Run scripts/test (its scripts/browser step installs Debian's chromium), or scripts/browser alone.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def _playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(_playwright: Playwright) -> Iterator[Browser]:
    """One chromium for the whole session; each test gets its own context (cookies, storage) from `page`."""
    launched = _playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def ui_db(tmp_path: Path) -> str:
    """The path of a fresh SQLite store for one test (created by the first process that opens it)."""
    return str(tmp_path / "noetl.db")


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[UiServer]:
    """A factory `ui_server(db, token=None)`: `noetl server start` on `db` (NOETL_API_TOKEN=token when
    given), stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(db: str, token: str | None = None) -> ServerProcess:
        env = {"NOETL_API_TOKEN": token} if token else None
        server = ServerProcess(db, tmp_path, env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@dataclass
class PageLog:
    """What a page did wrong: console errors, uncaught errors, requests that tried to leave this machine."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def allow(self, *fragments: str) -> None:
        """Expect console errors containing any of `fragments` (in the text or the URL it names)."""
        self.allowed.extend(fragments)

    def watch(self, page: Page) -> None:
        page.on("console", self.console)
        page.on("pageerror", self.page_error)
        page.on("websocket", self.websocket)

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        text = f"console: {message.text}" + (f" ({url})" if url else "")
        if not any(fragment in text for fragment in self.allowed):
            self.errors.append(text)

    def page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.name}: {error.message}")

    def route(self, route: Route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.outside.append(f"{route.request.method} {url}")
            route.abort("blockedbyclient")

    def websocket(self, socket: WebSocket) -> None:
        # Routes do not see WebSockets; a socket to elsewhere is recorded (it cannot be aborted here).
        if not is_local(socket.url):
            self.outside.append(f"WEBSOCKET {socket.url}")

    def problems(self) -> list[str]:
        return self.errors + [f"request left this machine: {entry}" for entry in self.outside]


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True  # data:, blob:, about: never reach the network
    return (parts.hostname or "") in LOOPBACK


@pytest.fixture
def page_log() -> PageLog:
    """The log the `page` fixture fills; call `page_log.allow("status of 401")` to expect such errors."""
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A page in a fresh context (1400x900); the test fails if it logged errors or reached outside."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # A loaded CI machine (one test suite beside others, 2 cores) can take longer than Playwright's 5 s
    # default for a page to settle; the waits stay waits for a condition, only their patience grows.
    context.set_default_timeout(20_000)
    context.route("**/*", page_log.route)  # on the context, so pop-ups (the "API" link) are covered too
    context.on("page", page_log.watch)  # fires for new_page() as well as for pop-ups
    yield context.new_page()
    context.close()  # delivers the events still in flight before they are checked
    problems = page_log.problems()
    if problems:
        pytest.fail("the page was not clean:\n  " + "\n  ".join(problems), pytrace=False)
