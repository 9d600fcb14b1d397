"""The `noetl` command. Exit codes: 0 completed, 1 failed, 2 bad input. Tracebacks are for bugs only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from noetl.errors import CredentialError, InputError, NoetlError, PlaybookError, StoreError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="NoETL: run noetl.io/v1 playbooks.")
credential_app = typer.Typer(no_args_is_help=True, help="Manage credentials (stored encrypted).")
app.add_typer(credential_app, name="credential")

DbOption = Annotated[str | None, typer.Option("--db", help="Store URL or path (default .noetl/noetl.db, or NOETL_DB)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_payload(payload: str | None, input_file: Path | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for label, text in (("--input", _read(input_file)), ("--payload", payload)):
        if text is None:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{label} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                             "pass a JSON object such as '{\"key\": \"value\"}'") from None
        if not isinstance(value, dict):
            raise InputError(f"{label} must be a JSON object, got {type(value).__name__}")
        merged.update(value)
    return merged


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--input {path}: {exc.strerror}") from None


def _store(db: str | None) -> Any:
    from noetl.store import open_store

    return open_store(db)


@app.command()
def run(
    playbook: Annotated[Path, typer.Argument(help="Playbook YAML file")],
    payload: Annotated[str | None, typer.Option(help="JSON object merged over the workload")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="JSON file merged over the workload")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Deep-merge the payload instead of a shallow update")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output")] = False,
    timeline: Annotated[bool, typer.Option("--timeline", help="Print the event timeline at the end")] = False,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue an interrupted execution")] = None,
) -> None:
    """Run a playbook in this process on the embedded store."""
    from noetl.dsl import load_playbook
    from noetl.runtime.local import LocalRunner

    pb = load_playbook(playbook)
    data = _parse_payload(payload, input_file)
    store = _store(db)
    try:
        observers = [] if (quiet or as_json) else [_announce_start, *_progress_observers()]
        runner = LocalRunner(store, observers=observers)
        outcome = runner.resume(resume, pb) if resume else runner.run(pb, data, merge=merge)
        events = store.read(outcome.execution_id) if timeline else []
    except KeyboardInterrupt:
        store.flush()
        _fail(f"interrupted; continue with `noetl run {playbook} --resume <execution id>` "
              "(the id is printed above and listed by `noetl executions`)", 130)
    finally:
        _close_observers()
        store.close()
    if as_json:
        typer.echo(json.dumps({"execution_id": outcome.execution_id, "status": outcome.status,
                               "result": outcome.result, "error": outcome.error}, default=str))
    else:
        if timeline:
            from noetl.timeline import format_timeline

            typer.echo(format_timeline(events))
            typer.echo("")
        typer.echo(f"execution {outcome.execution_id}: {outcome.status}")
        if outcome.error:
            typer.echo(f"error: {outcome.error}")
        typer.echo("result: " + json.dumps(outcome.result, indent=2, default=str))
    raise typer.Exit(0 if outcome.status == "COMPLETED" else 1)


_ACTIVE_OBSERVERS: list[Any] = []


def _announce_start(event: Any) -> None:
    """Say the execution id at once, so an interrupted run can be resumed or inspected."""
    if event.event_type == "execution_start" and event.parent_execution_id is None:
        typer.echo(f"execution {event.execution_id} started", err=True)


def _progress_observers() -> list[Any]:
    from noetl.progress import ProgressObserver

    if not sys.stderr.isatty():
        return []
    observer = ProgressObserver(sys.stderr)
    _ACTIVE_OBSERVERS.append(observer)
    return [observer]


def _close_observers() -> None:
    while _ACTIVE_OBSERVERS:
        _ACTIVE_OBSERVERS.pop().close()


@app.command()
def validate(playbook: Annotated[Path, typer.Argument(help="Playbook YAML file")]) -> None:
    """Check a playbook without running it: exit 0, or 2 with every problem listed."""
    from noetl.dsl import load_playbook

    pb = load_playbook(playbook)
    typer.echo(f"{playbook}: valid ({len(pb.steps)} steps)")


@app.command()
def events(
    execution_id: str,
    db: DbOption = None,
    as_json: JsonOption = False,
    show_all: Annotated[bool, typer.Option("--all", help="Show every iteration, not the first 20")] = False,
) -> None:
    """Show an execution's events as a timeline (or one JSON object per line)."""
    store = _store(db)
    try:
        found = store.read(execution_id)
    finally:
        store.close()
    if not found:
        _fail(f"no events for execution {execution_id}; list executions with `noetl executions`")
    if as_json:
        for event in found:
            typer.echo(json.dumps(event.to_dict(), default=str))
        return
    from noetl.timeline import format_timeline

    typer.echo(format_timeline(found, max_items=10**9 if show_all else 20))


@app.command()
def status(execution_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show an execution's status, result and error."""
    store = _store(db)
    try:
        record = store.execution(execution_id)
    finally:
        store.close()
    if record is None:
        _fail(f"execution {execution_id} not found; list executions with `noetl executions`")
    if as_json:
        typer.echo(json.dumps(record.__dict__, default=str))
        return
    typer.echo(f"execution {record.execution_id}\n  playbook: {record.playbook_path}\n  status:   {record.status}\n"
               f"  started:  {record.created_at}\n  finished: {record.finished_at or '-'}")
    if record.error:
        typer.echo(f"  error:    {record.error}")
    typer.echo("  result:   " + json.dumps(record.result, default=str))


@app.command()
def executions(db: DbOption = None, limit: int = 20, as_json: JsonOption = False) -> None:
    """List recent executions."""
    store = _store(db)
    try:
        records = store.executions(limit)
    finally:
        store.close()
    for r in records:
        if as_json:
            typer.echo(json.dumps(r.__dict__, default=str))
        else:
            typer.echo(f"{r.execution_id}  {r.status:<10} {r.created_at}  {r.playbook_path}")
    if not records and not as_json:
        typer.echo("(no executions yet)")


@credential_app.command("add")
def credential_add(
    name: str,
    type_: Annotated[str, typer.Option("--type", help="postgres, http, duckdb, secret, ...")],
    data: Annotated[str, typer.Option("--data", help="JSON object with the credential's fields")],
    db: DbOption = None,
) -> None:
    """Store a credential, encrypted at rest. Its values are never printed."""
    try:
        fields = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"--data is not valid JSON ({exc.msg}); pass an object such as "
                         "'{\"db_host\": \"localhost\"}'") from None
    if not isinstance(fields, dict):
        raise InputError("--data must be a JSON object")
    store = _store(db)
    try:
        store.put_credential(name, type_, fields)
    finally:
        store.close()
    typer.echo(f"credential {name!r} ({type_}) saved with {len(fields)} field(s)")


@credential_app.command("list")
def credential_list(db: DbOption = None) -> None:
    """List credentials by name and type (never their values)."""
    store = _store(db)
    try:
        rows = store.list_credentials()
    finally:
        store.close()
    for name, kind in rows:
        typer.echo(f"{name}  ({kind})")
    if not rows:
        typer.echo("(no credentials)")


def main() -> None:
    try:
        # Without standalone mode click returns the code of typer.Exit instead of raising it.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except PlaybookError as exc:
        typer.echo(f"error: the playbook is not valid ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        sys.exit(2)
    except (InputError, CredentialError) as exc:
        _exit(str(exc), 2)
    except StoreError as exc:
        _exit(str(exc), 1)
    except NoetlError as exc:
        _exit(str(exc), 1)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
