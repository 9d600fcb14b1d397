"""The `noetl` commands that start a server or talk to one: server, db, register, catalog, execute."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from noetl.cli_common import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    VERBOSE_ENV,
    DbOption,
    ExecutionArgument,
    HostOption,
    InputOption,
    JsonOption,
    MergeOption,
    PayloadOption,
    PlaybookArgument,
    PortOption,
    TokenOption,
    announce_start,
    api_client,
    close_observers,
    item_failures,
    missing_extra,
    parse_payload,
    print_events,
    print_outcome,
    print_status,
    progress_observers,
    quiet_http_client,
    where_args,
)
from noetl.cli_help import Commands

server_app = typer.Typer(cls=Commands, no_args_is_help=True, help="Run the NoETL API server.")
db_app = typer.Typer(cls=Commands, no_args_is_help=True, help="Manage the store's schema.")
catalog_app = typer.Typer(cls=Commands, no_args_is_help=True, help="Read a server's playbook catalog.")
execute_app = typer.Typer(cls=Commands, no_args_is_help=True, help="Start executions on a server.")

POLL_SECONDS = 0.2
NO_WORKER_SECONDS = 5.0  # `execute --wait` warns when no worker has taken a job of the execution by then


@server_app.command("start")
def server_start(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface)")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on")] = DEFAULT_PORT,
    db: DbOption = None,
    allow_no_token: Annotated[
        bool,
        typer.Option(
            "--allow-no-token",
            help="Listen on a non-loopback address without NOETL_API_TOKEN (no auth at all)",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            envvar=VERBOSE_ENV,
            help="Log every request, repeated polls included, and each HTTP request the steps make",
        ),
    ] = False,
) -> None:
    """Serve the web UI and the API.

    The web UI is at /, the API at /api (OpenAPI at /docs), /health and /metrics. The store's schema is
    brought up to date first. On SQLite the server runs executions itself; on PostgreSQL it queues their
    steps for `noetl worker start` processes. NOETL_API_TOKEN, when set, is required by clients; without
    it only a loopback address is allowed, unless --allow-no-token.

    The log has a line per request, except a successful read that repeats (the same GET path from the
    same address within a minute: clients following an execution poll), and no secret in it."""
    try:
        from noetl.server.access_log import quiet_access_log
        from noetl.server.serve import serve
    except ModuleNotFoundError as exc:
        missing_extra(exc, "`noetl server start`")
    quiet_access_log(verbose)
    quiet_http_client(verbose)
    serve(host, port, db, allow_no_token=allow_no_token)


@db_app.command("init")
def db_init(db: DbOption = None) -> None:
    """Create the store's schema or bring it up to date.

    Safe to run again; `noetl server start` does the same when it starts."""
    from noetl.server.schema import open_migrated, store_label

    store = open_migrated(db)
    store.close()
    typer.echo(f"store {store_label(store)}: schema up to date")


def register(
    playbook: PlaybookArgument,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
) -> None:
    """Validate a playbook here, then add it to a server's catalog.

    It becomes a new version of its path, with the sub-playbook files it names (so that workers find
    them). An invalid playbook registers nothing (exit 2)."""
    for entry in _register(playbook, host, port, token):
        typer.echo(registered_line(entry))


def _register(
    playbook: Path, host: str | None, port: int | None, token: str | None, *, if_changed: bool = False
) -> list[dict[str, Any]]:
    """Register the playbook after the sub-playbook files it names; the playbook's entry is the last.
    `if_changed`: a file whose content is its path's latest version keeps that version (`unchanged`)."""
    from noetl.runtime.subplaybooks import files_to_register

    files = files_to_register(playbook)  # all validated here first: exit 2 with the local line numbers
    with api_client(host, port, token) as client:
        return [client.register(file.read_text(encoding="utf-8"), if_changed=if_changed) for file in files]


def registered_line(entry: dict[str, Any]) -> str:
    """`registered examples/hello_world version 4 (hello_world)`, or `... version 3 (unchanged)`."""
    if entry.get("unchanged"):
        return f"{entry['path']} version {entry['version']} (unchanged)"
    return f"registered {entry['path']} version {entry['version']} ({entry['name']})"


@catalog_app.command("list")
def catalog_list(
    host: HostOption = None, port: PortOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List the catalog's playbooks with their latest versions."""
    with api_client(host, port, token) as client:
        entries = client.catalog()
    for e in entries:
        typer.echo(
            json.dumps(e) if as_json else f"{e['path']}  v{e['version']}  {e['name']}  {e['created_at']}"
        )
    if not entries and not as_json:
        typer.echo("(the catalog is empty; add a playbook with `noetl register FILE`)")


@execute_app.command("playbook")
def execute_playbook(
    path: Annotated[
        str, typer.Argument(help="Catalog path, or a playbook file (registered first, if it changed)")
    ],
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
    payload: PayloadOption = None,
    input_file: InputOption = None,
    merge: MergeOption = False,
    version: Annotated[int | None, typer.Option(help="Catalog version (default: the latest)")] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Follow the execution to its end and exit 0/1 like run (default: return at once)"
        ),
    ] = False,
    as_json: JsonOption = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", help="No `registered` line; with --wait no progress and no result, only the last line"
        ),
    ] = False,
) -> None:
    """Start an execution of a playbook on a server.

    A playbook file is registered first, with the sub-playbook files it names; a file whose content is
    its catalog path's latest version uses that version (stderr says which: `version 3 (unchanged)` or
    `registered ... version 4`). Without --wait it prints the execution's id and returns. With --wait it
    follows the execution and exits 0 when it completes, 1 when it fails; a warning on stderr says when
    no worker has taken a job of it after a few seconds.

    Examples:

        noetl execute playbook examples/hello_world --payload '{"message": "Hi"}'
        noetl execute playbook flow.yaml --port 8083 --wait
        noetl execute playbook examples/hello_world --version 2 --wait --json
    """
    data = parse_payload(payload, input_file)
    if Path(path).exists():  # a file, or a folder holding one playbook: register it first, if it changed
        entries = _register(Path(path), host, port, token, if_changed=True)
        for entry in entries if not (quiet or as_json) else ():
            typer.echo(registered_line(entry), err=True)  # stdout stays the execution's
        path, version = entries[-1]["path"], entries[-1]["version"]
    with api_client(host, port, token) as client:
        started = client.execute(path, data, merge=merge, version=version)
        execution_id = started["execution_id"]
        if not wait:
            typer.echo(json.dumps(started) if as_json else f"execution {execution_id}: {started['status']}")
            return
        observers = [] if (quiet or as_json) else [announce_start, *progress_observers()]
        _follow_to_end(client, execution_id, observers, host, port, 0, as_json=as_json, quiet=quiet)


def remote_retry(
    execution_id: str,
    body: dict[str, Any],
    host: str | None,
    port: int | None,
    token: str | None,
    *,
    wait: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """`noetl retry --host`: the server (its workers) runs the step again; --wait follows it to its end."""
    with api_client(host, port, token) as client:
        answer = client.retry(execution_id, body)
        if not as_json:
            typer.echo(
                f"execution {execution_id}: step {answer['step']} runs {answer['items_count']} item(s) again, "
                f"{answer['kept']} kept"
            )
        if not wait:
            if as_json:
                typer.echo(json.dumps(answer))
            return
        observers = [] if (quiet or as_json) else progress_observers()
        after = int(answer["retry_seq"])
        _follow_to_end(client, execution_id, observers, host, port, after, as_json=as_json, quiet=quiet)


def _follow_to_end(
    client: Any,
    execution_id: str,
    observers: list[Any],
    host: str | None,
    port: int | None,
    after: int,
    *,
    as_json: bool,
    quiet: bool,
) -> None:
    """Follow an execution from `after` to its end, then print its last line; exit 0 or 1 like run."""
    final = _follow(client, execution_id, observers, host, port, after=after)
    failures = remote_failures(client, execution_id)
    print_outcome(
        execution_id,
        final.status or "",
        final.result,
        final.error,
        as_json,
        failures=failures,
        where=where_args(host=host, port=port),
        quiet=quiet,
    )
    raise typer.Exit(0 if final.status == "COMPLETED" else 1)


def remote_failures(client: Any, execution_id: str) -> list[dict[str, Any]]:
    """item_failures of an execution on a server, from its iterator end events alone."""
    return item_failures(client.iterator_ends(execution_id))


def _follow(
    client: Any, execution_id: str, observers: list[Any], host: str | None, port: int | None, after: int = 0
) -> Any:
    """Poll the events endpoint with after= until the execution's final event; feed each to the observers.

    `after` is the last `seq` seen: seq is commit order, so each poll returns exactly the events that
    committed since the one before (no margin, no event seen twice or missed).
    """
    from noetl.engine.events import EventType as T

    final = frozenset({T.EXECUTION_COMPLETE, T.EXECUTION_FAILED})
    last_seq = after
    lonely = _NoWorkerWarning(client, execution_id)
    try:
        while True:
            for event in client.events(execution_id, last_seq):
                last_seq = max(last_seq, event.seq or 0)
                lonely.saw(event)
                for observer in observers:
                    observer(event)
                if event.event_type in final:
                    return event
            lonely.check()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        where = f" --host {host or DEFAULT_HOST} --port {port or DEFAULT_PORT}"
        typer.echo(
            f"\nerror: stopped waiting; the execution goes on: `noetl status {execution_id}{where}`", err=True
        )
        raise typer.Exit(130) from None
    finally:
        close_observers()


class _NoWorkerWarning:
    """Say once, on stderr, when no worker has taken a job of the execution NO_WORKER_SECONDS after the
    wait began: every event a worker writes carries its `worker_id` in meta. Asks /health only then, and
    says nothing on a server that runs executions itself (SQLite: no workers)."""

    def __init__(self, client: Any, execution_id: str) -> None:
        self.client, self.execution_id = client, execution_id
        self.deadline = time.monotonic() + NO_WORKER_SECONDS
        self.done = False

    def saw(self, event: Any) -> None:
        if (event.meta or {}).get("worker_id"):
            self.done = True

    def check(self) -> None:
        if self.done or time.monotonic() < self.deadline:
            return
        self.done = True
        try:
            health = self.client.health()
        except Exception:  # the warning is a courtesy: the wait goes on whatever /health says
            return
        if health.get("runner") != "broker":
            return
        store = health.get("store") or "its PostgreSQL store"
        workers = health.get("workers") or {}
        live = workers.get("live")
        queued = (health.get("queue") or {}).get("queued")
        waiting = f"; {queued} job(s) queued" if queued else ""
        if live == 0:
            why = f"no worker is connected to the server's store {store}{waiting}"
        elif live is None:
            why = f"the server's store is {store}{waiting}"
        else:
            busy = sum((workers.get("busy") or {}).values())
            why = f"{live} worker(s) on the server's store {store}, busy with {busy} job(s){waiting}"
        lead = "\n" if sys.stderr.isatty() else ""  # below a progress line, not over it
        one = "another" if live else "one"
        typer.echo(
            f"{lead}warning: no worker has taken a job of execution {self.execution_id} in "
            f"{NO_WORKER_SECONDS:g} s: {why}; start {one} with `noetl worker start --db {_with_user(store)}`",
            err=True,
        )


def _with_user(label: str) -> str:
    """The server's store as a URL to complete: /health names it without user and password."""
    if label.startswith("postgresql://") and "@" not in label:
        return "postgresql://USER:PASSWORD@" + label.removeprefix("postgresql://")
    return label


def remote_status(
    execution_id: str,
    host: str | None,
    port: int | None,
    token: str | None,
    as_json: bool,
    show_all: bool = False,
) -> None:
    """`noetl status --host`: the same output, read from the server, with its workers and queue."""
    with api_client(host, port, token) as client:
        record = client.execution(execution_id)
        failures = remote_failures(client, execution_id)
        workers = None if as_json else client.health()
    print_status(
        record,
        as_json,
        failures=failures,
        workers=workers,
        where=where_args(host=host, port=port),
        show_all=show_all,
    )


def remote_events(
    execution_id: str, host: str | None, port: int | None, token: str | None, as_json: bool, show_all: bool
) -> None:
    """`noetl events --host`: the same timeline, read from the server."""
    with api_client(host, port, token) as client:
        print_events(client.events(execution_id), as_json, show_all)


def cancel(
    execution_id: ExecutionArgument,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel an execution running on a server.

    On a server with PostgreSQL and workers, it ends FAILED at once, its queued jobs are dropped and the
    work in hand stops at its next event (a step already running finishes, and nothing it would write is
    kept). Exit 0 when cancelled, 2 when it had already finished or is not found. (A `noetl run` in a
    terminal stops with Ctrl-C and can be resumed.)"""
    with api_client(host, port, token) as client:
        answer = client.cancel(execution_id)
    if as_json:
        typer.echo(json.dumps(answer))
        return
    if answer.get("cancelled"):
        typer.echo(f"execution {execution_id}: cancelled ({answer.get('status')})")
    else:
        typer.echo(f"execution {execution_id}: had already ended ({answer.get('status')})")


def install(app: typer.Typer) -> None:
    """Add these commands to the `noetl` app."""
    from noetl.cli_worker import worker_app

    app.add_typer(server_app, name="server")
    app.add_typer(worker_app, name="worker")
    app.add_typer(db_app, name="db")
    app.command()(register)
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(execute_app, name="execute")
    app.command()(cancel)
