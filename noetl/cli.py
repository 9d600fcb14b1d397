"""The `noetl` command. Exit codes: 0 completed, 1 failed, 2 bad input. Tracebacks are for bugs only."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from noetl import cli_credentials, cli_server, cli_validate
from noetl.cli_common import (
    RESULT_LINES,
    DbOption,
    ExecutionArgument,
    HostOption,
    InputOption,
    JsonOption,
    MergeOption,
    PayloadOption,
    PlaybookArgument,
    PortOption,
    QuietOption,
    TokenOption,
    announce_start,
    api_client,
    close_observers,
    fail,
    local_failures,
    local_workers,
    open_local_store,
    parse_payload,
    print_events,
    print_outcome,
    print_status,
    progress_observers,
    store_where,
    where_args,
)
from noetl.cli_help import Commands, click_command, hide_flag_types, import_help_renderer
from noetl.errors import InputError, NoetlError

app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=True,
    help="""NoETL: run noetl.io/v1 playbooks.

    `noetl COMMAND --help` shows a command's options; flags (options without a value) are off unless
    given. Exit codes: 0 completed, 1 failed, 2 bad input, 130 interrupted.""",
)
cli_credentials.install(app)


@app.command()
def run(
    playbook: PlaybookArgument,
    payload: PayloadOption = None,
    input_file: InputOption = None,
    merge: MergeOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Print the execution's event timeline before the result")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", help="Continue the interrupted execution of this id (default: start a new one)"
        ),
    ] = None,
) -> None:
    """Run a playbook in this process on the embedded store.

    The playbook is validated first: an invalid one runs nothing. Exit 0 when the execution completes, 1
    when it fails, 2 on bad input, 130 when interrupted (continue it with --resume).

    Examples:

        noetl run flow.yaml --payload '{"city": "Paris"}'
        noetl run flow.yaml --input workload.json --merge --db /tmp/noetl.db
        noetl run flow.yaml --json | jq -r .execution_id
        noetl run flow.yaml --resume EXECUTION_ID
    """
    from noetl.dsl import load_playbook
    from noetl.runtime.local import LocalRunner

    pb = load_playbook(playbook)
    data = parse_payload(payload, input_file)
    if resume and (data or merge):
        # A resumed execution keeps the workload it started with; a new payload would silently not apply.
        raise InputError(
            "--resume continues an execution with its original workload; drop --payload, "
            "--input and --merge, or start a new run"
        )
    store = open_local_store(db)
    try:
        if resume and store.execution(resume) is None:
            raise InputError(
                f"execution {resume} not found in {store_where(store, db)}, so there is nothing to resume; "
                f"list executions with `noetl executions{where_args(db)}`"
            )
        observers = [] if (quiet or as_json) else [announce_start, *progress_observers()]
        runner = LocalRunner(store, observers=observers)
        # With --json, stdout is one JSON object: what steps print goes to stderr instead.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            outcome = runner.resume(resume, pb) if resume else runner.run(pb, data, merge=merge)
        events = store.read(outcome.execution_id) if timeline else []
        failures = local_failures(store, outcome.execution_id)
    except KeyboardInterrupt:
        store.flush()
        where = f" --db {db}" if db else ""
        fail(
            f"interrupted; continue with `noetl run {playbook}{where} --resume <execution id>` "
            "(the id is printed above and listed by `noetl executions`)",
            130,
        )
    finally:
        close_observers()
        store.close()
    if timeline and not as_json:
        from noetl.timeline import format_timeline

        typer.echo(format_timeline(events))
        typer.echo("")
    print_outcome(
        outcome.execution_id,
        outcome.status,
        outcome.result,
        outcome.error,
        as_json,
        failures=failures,
        where=where_args(db),
        quiet=quiet,
    )
    raise typer.Exit(0 if outcome.status == "COMPLETED" else 1)


@app.command()
def validate(
    playbook: PlaybookArgument,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Treat warnings (clearer spellings, drivers not installed) as errors: exit 2"
        ),
    ] = False,
) -> None:
    """Check a playbook without running it, and list every problem.

    Exit 0 when it is valid, 2 with every problem listed as file:line: message. No store is opened.
    Warnings name forms that work but have a clearer spelling, and steps whose driver is not installed
    here (the extra to install; the playbook may still run where it is, on workers); they do not change
    the exit code unless --strict is given.
    """
    cli_validate.validate(playbook, strict)  # (also run without typer: noetl.cli_entry)


@app.command()
def retry(
    execution_id: ExecutionArgument,
    step: Annotated[
        str | None, typer.Option(help="The iterator step (default: the one with failed items)")
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(
            help="Items to run again although they succeeded, e.g. 2,17,40-45 (default: only the failed ones)"
        ),
    ] = None,
    no_continue: Annotated[
        bool, typer.Option("--no-continue", help="Stop after the step; do not run the steps after it again")
    ] = False,
    playbook: Annotated[
        Path | None,
        typer.Option(help="The playbook file, when the one the execution names is gone (default: that one)"),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", help="With --host or --port: follow it to its end, or return at once"
        ),
    ] = True,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
) -> None:
    """Run an iterator step's failed items again, in its execution.

    The execution must have finished. Items that succeeded keep their results and are not run (nor
    saved) again; then the steps after it run again with the new result, unless --no-continue. With
    --host or --port the server's workers run them. Exit 0 when it completes, 1 when it fails.

    Examples:

        noetl retry EXECUTION_ID
        noetl retry EXECUTION_ID --step loop --items 2,17,40-45 --no-continue
        noetl retry EXECUTION_ID --port 8083 --no-wait
    """
    from noetl.engine.retry import RetryRequest, parse_items

    named = parse_items(items)
    if _remote(host, port):
        body = {"step": step, "items": list(named), "continue": not no_continue}
        cli_server.remote_retry(
            execution_id, body, host, port, token, wait=wait, as_json=as_json, quiet=quiet
        )
        return
    from noetl.runtime.control import playbook_of
    from noetl.runtime.local import LocalRunner

    store = open_local_store(db)
    try:
        events = store.read(execution_id)
        if not events:
            raise InputError(
                f"execution {execution_id} not found in {store_where(store, db)}, so there is nothing to "
                f"retry; list executions with `noetl executions{where_args(db)}`"
            )
        pb = playbook_of(store, events, str(playbook) if playbook else None)
        observers = [] if (quiet or as_json) else progress_observers()
        runner = LocalRunner(store, observers=observers)
        request = RetryRequest(step, named, not no_continue, "cli")
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            outcome = runner.retry(execution_id, pb, request)
        failures = local_failures(store, execution_id)
    finally:
        close_observers()
        store.close()
    print_outcome(
        outcome.execution_id,
        outcome.status,
        outcome.result,
        outcome.error,
        as_json,
        failures=failures,
        where=where_args(db),
        quiet=quiet,
    )
    raise typer.Exit(0 if outcome.status == "COMPLETED" else 1)


def _remote(host: str | None, port: int | None) -> bool:
    """A server is asked when --host or --port is given; otherwise the local store is read, as always."""
    return host is not None or port is not None


@app.command()
def events(
    execution_id: ExecutionArgument,
    db: DbOption = None,
    as_json: JsonOption = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every item's events (default: items from index 20 on are folded)")
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Steps and iterators summed up (each run), not every event")
    ] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Only what failed (and items not run)")] = False,
    step: Annotated[
        str | None, typer.Option("--step", help="Only the events of this step (default: every step)")
    ] = None,
    item: Annotated[
        int | None, typer.Option("--item", help="Only the events of the item of this index (default: all)")
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type; repeat for several (default: every type)"),
    ] = None,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
) -> None:
    """Show an execution's events as a timeline, or as JSON lines.

    --failed, --step, --item and --type narrow it to the events that matter (never folded); --summary
    sums it up instead. With --host or --port the events are read from the server.

    Examples:

        noetl events EXECUTION_ID --failed
        noetl events EXECUTION_ID --step loop --item 7
        noetl events EXECUTION_ID --json | jq -r .event_type
    """
    from noetl.engine.events import ALL_TYPES
    from noetl.store.views_sql import EventFilter

    unknown = sorted(set(event_type or ()) - ALL_TYPES)
    if unknown:
        raise InputError(f"--type {unknown[0]!r} is not an event type; they are listed in docs/events.md")
    narrowed = failed or step is not None or item is not None or bool(event_type)
    f = EventFilter(types=tuple(event_type or ()), node_name=step, index=item)
    if _remote(host, port):
        with api_client(host, port, token) as client:
            if summary:
                runs = EventFilter(types=_RUN_TYPES)
                figures = {} if as_json else run_figures(client.events(execution_id, filters=runs))
                print_summary(client.summary(execution_id), as_json, figures)
                return
            found = client.events(execution_id, filters=f) if narrowed else client.events(execution_id)
    else:
        store = open_local_store(db)
        try:
            found = (
                store.query_events(execution_id, f, limit=10_000_000)
                if narrowed
                else store.read(execution_id)
            )
            known = bool(found) or store.execution(execution_id) is not None
        finally:
            store.close()
        if not known:
            fail(
                f"no events for execution {execution_id} in {store_where(store, db)}; "
                f"list executions with `noetl executions{where_args(db)}`"
            )
        if summary:
            from noetl.server.summary import summarize

            print_summary(summarize(found), as_json, run_figures(found))
            return
    if failed:
        found = [e for e in found if e.status in ("FAILED", "SKIPPED")]
    if narrowed and not found and not as_json:
        typer.echo("no events match", err=True)
        return
    print_events(found, as_json, show_all or narrowed)


FAILED_SHOWN = 20  # failed item indexes on a --summary run line; --json has them all
_RUN_TYPES = ("iterator_started", "iterator_completed", "iterator_failed")


def run_figures(events: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each iterator run's p50, p95, failed indexes and skipped count (from its iterator_completed or
    _failed), per step, in the order of the summary's `runs`: a run that has not ended has none."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        name = e.node_name or ""
        if e.event_type == _RUN_TYPES[0]:
            runs.setdefault(name, []).append({})
        elif e.event_type in _RUN_TYPES and runs.get(name):
            meta = e.meta or {}
            runs[name][-1] = {k: meta.get(k) for k in ("p50", "p95", "failed_indexes", "skipped")}
    return runs


def _figures(f: dict[str, Any]) -> str:
    """`, p50 0.002s, p95 0.010s; failed: 1, 5, 9` on a run line."""
    text = ""
    if f.get("p50") is not None and f.get("p95") is not None:
        text += f", p50 {float(f['p50']):.3f}s, p95 {float(f['p95']):.3f}s"
    failed = list(f.get("failed_indexes") or [])
    if failed:
        text += "; failed: " + ", ".join(str(i) for i in failed[:FAILED_SHOWN])
        text += f" … and {len(failed) - FAILED_SHOWN:,} more" if len(failed) > FAILED_SHOWN else ""
    if f.get("skipped"):
        text += f" ({f['skipped']:,} skipped)"
    return text


def print_summary(
    s: dict[str, Any], as_json: bool, figures: dict[str, list[dict[str, Any]]] | None = None
) -> None:
    """`noetl events --summary`: a line per step, and each iterator's runs with their counts, item
    durations (p50, p95) and failed indexes (`figures`: run_figures)."""
    if as_json:
        typer.echo(json.dumps(s, default=str))
        return
    ex = s["execution"]
    duration = f"{ex['duration']:.3f}s" if ex.get("duration") is not None else "-"
    typer.echo(f"execution {s['execution_id']}  {ex['status']}  {duration}  {s['events']} events")
    if ex.get("error"):
        typer.echo(f"error: {ex['error']}")
    typer.echo(f"{'step':<24} {'status':<10} {'runs':>4} {'attempts':>8} {'duration':>10}")
    for name, step in s["steps"].items():
        took = f"{step['duration']:.3f}s" if step.get("duration") is not None else "-"
        typer.echo(f"{name:<24} {step['status']:<10} {step['runs']:>4} {step['attempts']:>8} {took:>10}")
    for name, it in s["iterators"].items():
        ended = (figures or {}).get(name, [])
        for n, run in enumerate(it.get("runs", [it]), start=1):
            kept = f" ({run['kept']} kept from before)" if run.get("kept") else ""
            typer.echo(
                f"iterator {name} run {n}: {run['count']} items{kept}, {run['completed']} completed, "
                f"{run['failed']} failed ({run['status']})"
                + _figures(ended[n - 1] if n <= len(ended) else {})
            )


@app.command()
def status(
    execution_id: ExecutionArgument,
    db: DbOption = None,
    as_json: JsonOption = False,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help=f"The whole result (default: its first {RESULT_LINES} lines)")
    ] = False,
) -> None:
    """Show an execution's status, error and result.

    The last line says how many items failed and where. With --host or --port it is read from the
    server, which also says its live workers and queue depth.

    Examples:

        noetl status EXECUTION_ID --all
        noetl status EXECUTION_ID --json | jq .result
        noetl status EXECUTION_ID --port 8083
    """
    if _remote(host, port):
        cli_server.remote_status(execution_id, host, port, token, as_json, show_all)
        return
    store = open_local_store(db)
    try:
        record = store.execution(execution_id)
        failures = local_failures(store, execution_id) if record is not None else []
        workers = local_workers(store) if record is not None and not as_json else None
    finally:
        store.close()
    if record is None:
        fail(
            f"execution {execution_id} not found in {store_where(store, db)}; "
            f"list executions with `noetl executions{where_args(db)}`"
        )
    print_status(
        record.__dict__,
        as_json,
        failures=failures,
        workers=workers,
        where=where_args(db),
        show_all=show_all,
    )


@app.command()
def executions(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many top-level executions to list")] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only RUNNING, COMPLETED or FAILED ones (default: all)")
    ] = None,
    playbook: Annotated[
        str | None, typer.Option(help="Only playbooks whose path contains this (default: all)")
    ] = None,
    parent: Annotated[
        str | None, typer.Option(help="The children of this execution (default: the top level)")
    ] = None,
    as_json: JsonOption = False,
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
) -> None:
    """List recent executions, newest first, with their durations.

    The executions of sub-playbooks are drawn below the one that started them. --json: one object per
    line (result included). With --host or --port they are read from the server."""
    from noetl.cli_common import LocalExecutions, RemoteExecutions, list_executions

    options: dict[str, Any] = {
        "limit": limit,
        "status": status,
        "playbook": playbook,
        "parent": parent,
        "as_json": as_json,
    }
    if _remote(host, port):
        with api_client(host, port, token) as client:
            list_executions(RemoteExecutions(client), where=where_args(host=host, port=port), **options)
        return
    store = open_local_store(db)
    try:
        list_executions(
            LocalExecutions(store, f"in {store_where(store, db)}"), where=where_args(db), **options
        )
    finally:
        store.close()


cli_server.install(app)


def main() -> None:
    command = click_command(app, sys.argv[1:])
    if len(sys.argv) < 2 or "--help" in sys.argv[1:]:  # the help is all this run prints
        import_help_renderer()
        hide_flag_types(command)
    try:
        # Without standalone mode click returns the code of typer.Exit instead of raising it.
        code = command(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except (NoetlError, ModuleNotFoundError) as exc:  # what the command says of them: cli_validate
        code = cli_validate.exit_code_for(exc)
        if code is None:
            raise
        sys.exit(code)
    except typer.TyperException as exc:
        # Usage mistakes (unknown option, missing argument): click's own message, exit 2, no traceback.
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(2)


if __name__ == "__main__":
    main()
