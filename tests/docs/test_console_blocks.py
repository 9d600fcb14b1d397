"""Every ```console block of README.md and docs/*.md still runs and still prints what the page shows.

How a block is read:

- A line that starts with `$ ` is a command; a command whose line ends with `\\`, or leaves a quote
  open, goes on on the next line (as the shell reads it). The lines after it, up to the next `$ `, are
  what it prints: stdout and stderr together, as a terminal shows them. Lines before the first `$ ` are
  not compared.

How it runs (tests/docs/console.py):

- The blocks of one page run in page order, as one shell session (pages run side by side, four at a
  time, each with its own folder, ports and databases), in a fresh folder that holds links to
  this checkout's `examples/` and `.venv/` (so `noetl run examples/...` and `source .venv/bin/activate`
  work), with `.venv/bin` first on PATH, no NOETL_* variables, and HOME and TMPDIR in that folder.
  Variables (`export X=...`, `ID=$(...)`), the working directory and the last exit code (`echo $?`)
  carry over from one command to the next, and from one block to the next.
- `/tmp/` in a command is that folder, so `--db /tmp/docs.db` is a fresh store on every run. The ports
  8000 (the stub API), 8083 (the server) and 9000 (an S3-compatible server) are free ports. What a
  command prints is mapped back (the folder to `/tmp/`, the ports to the page's) before it is compared.
- A command that ends with `&` (a comment may follow) runs in the background until the page is done,
  in a process group of its own, which then gets SIGTERM (SIGKILL after 15 s).
  The lines shown under it are waited for (30 s at most), so a later command finds the service ready.
- A command must exit with code 0, unless what the page shows under it has an `error` or `FAILED`,
  or the next command is `echo $?`.

How output is compared:

- Both sides are normalized: runs of spaces become one space, blank lines at the start and end are
  dropped, and what differs from run to run becomes a placeholder: UUIDs, ISO 8601 times, durations
  (`0.015s`, `+0.003s`, `1.5 ms`) and rates (`288.97/s`, `21.9 items/s`). So a page shows real output.
- A line that is only `...` stands for any number of lines (none too); `...` inside a line stands for
  any text (`-rw------- ... secret.key`). Every other line must be there, in that order.

Markers, each an HTML comment on the line just above a block's fence (invisible on the page):

- `<!-- file: NAME -->` above any block: its text is written to NAME in the page's folder before the
  console blocks after it run, so `noetl run divide.yaml` runs the `divide.yaml` the page shows.
- `<!-- needs: postgres -->` above a console block: it needs a PostgreSQL server. It runs against the
  test session's server (`pg_server`): each database name its commands use, in a `postgresql://` URL
  or a credential's `"db_name"`, is a fresh database there, and the URLs and the credentials' `db_*`
  fields are rewritten to reach it (and the store URL the commands print is shown as the page's). Only
  when the session has no PostgreSQL is the block skipped, with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs.console import REPO, Outcome, blocks, matches, normalize, report, run_page

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
WITH_CONSOLE = [p for p in PAGES if any(b.lang == "console" for b in blocks(p.read_text(), p.name))]
PARALLEL = 4  # pages run at once: each is its own shell session, folder, ports and databases


def _needs_postgres(page: Path) -> bool:
    return any(b.marker("needs") == "postgres" for b in blocks(page.read_text(), page.name))


@pytest.fixture(scope="session")
def page_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Path, Future[list[Outcome]]]]:
    """The selected pages, run side by side in the background from the first test that asks."""
    selected = [
        page
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_the_console_blocks_print_what_the_page_shows"
        and isinstance(page := item.callspec.params.get("page"), Path)
    ]
    server: str | None = None
    if any(_needs_postgres(page) for page in selected):
        try:
            server = str(request.getfixturevalue("pg_server"))
        except Exception:  # no PostgreSQL here: the blocks that need one are skipped, saying so
            server = None
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="docs") as pool:
        runs = {
            page: pool.submit(
                run_page,
                page.read_text(encoding="utf-8"),
                str(page.relative_to(REPO)),
                tmp_path_factory.mktemp(page.stem) / "page",
                lambda: server,
            )
            for page in selected
        }
        yield runs


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", WITH_CONSOLE, ids=[str(p.relative_to(REPO)) for p in WITH_CONSOLE])
def test_the_console_blocks_print_what_the_page_shows(
    page: Path, page_runs: dict[Path, Future[list[Outcome]]]
) -> None:
    outcomes = page_runs[page].result()
    assert outcomes, f"{page.name}: no command in its console blocks"
    problems = report(outcomes)
    assert not problems, "the page and what its commands print differ:\n\n" + problems
    # The test command always starts a PostgreSQL: a block that could not run is a failure, not a skip.
    skipped = sorted({o.skipped for o in outcomes if o.skipped})
    assert not skipped, f"{page.name}: commands not run: " + "; ".join(skipped)


def test_readme_and_the_docs_have_console_blocks() -> None:
    names = {p.name for p in WITH_CONSOLE}
    assert {"README.md", "cli.md", "operations.md", "troubleshooting.md"} <= names, sorted(names)


STALE = """\
Text.

<!-- file: hello.txt -->
```text
hello from the page
```

```console
$ cat hello.txt
hello from the page
$ echo "run 1df88415-f48c-4d6c-b20f-c10fb5943c36 took 0.015s at 2026-11-28T12:12:15.754670+00:00"
run 8b1e7d8e-764d-4d6e-b4aa-c906786d0f74 took 1.250s at 2026-12-01T00:00:00+00:00
$ ID=42; printf 'a\\nb\\nc\\nd\\n'
a
...
d
$ echo "id $ID" && echo /tmp/x
id 42
/tmp/x
$ false
$ sh -c 'exit 3'
$ echo $?
3
$ echo printed
not what it printed
$ sh -c 'echo error: it failed; exit 1'
error: ...
$ echo -e 'ready\\nmore' && sleep 30 &
ready
$ sleep 30 &       # a comment after the `&`
$ echo '{"a": 1,
    "b": 2}'
{"a": 1,
"b": 2}
$ echo "-rw------- 1 root root 44 Nov 28 12:14 secret.key"
-rw------- ... secret.key
```
"""


def test_the_check_passes_what_matches_and_fails_what_does_not(tmp_path: Path) -> None:
    outcomes = run_page(STALE, "stale.md", tmp_path / "stale")
    problems = {o.command.text: o.problem for o in outcomes}
    assert [text for text, problem in problems.items() if problem] == ["false", "echo printed"], problems
    assert "exited with code 1" in str(problems["false"])
    assert "-not what it printed" in str(problems["echo printed"])
    assert "+printed" in str(problems["echo printed"])
    assert len(outcomes) == 13  # the quoted text over two lines is one command
    started = [o for o in outcomes if o.command.background]
    assert len(started) == 2 and all(o.problem is None for o in started)


def test_normalized_placeholders_and_wildcards() -> None:
    assert normalize(" 6 +0.003s   flaky  action_error  FAILED    0.002s error") == (
        "6 <s> flaky action_error FAILED <s> error"
    )
    assert (
        normalize("ok=3 p50=0.000172s rows=3 288.97/s, 21.9 items/s")
        == "ok=3 p50=<s> rows=3 <n>/s, <n> items/s"
    )
    assert normalize("took 1.5 ms, at 2026-12-02 04:01:25,214") == "took <s>, at <time>"
    assert matches(["a", "...", "z"], ["a", "z"]) and matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not matches(["a", "z"], ["a", "b", "z"]) and not matches(["a", "...", "z"], ["a", "b"])
    assert matches(["result: {...}"], ["result: {1}"]) and not matches(["x"], ["x", "y"])
