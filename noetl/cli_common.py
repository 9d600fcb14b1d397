"""Pieces shared by the `noetl` commands: common options, payload parsing, errors, progress output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from noetl.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8083
TOKEN_ENV = "NOETL_API_TOKEN"

DbOption = Annotated[
    str | None, typer.Option("--db", help="Store URL or path (default .noetl/noetl.db, or NOETL_DB)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
HostOption = Annotated[str | None, typer.Option("--host", help=f"NoETL server host (default {DEFAULT_HOST})")]
PortOption = Annotated[int | None, typer.Option("--port", help=f"NoETL server port (default {DEFAULT_PORT})")]
TokenOption = Annotated[str | None, typer.Option("--token", help=f"API token (default: ${TOKEN_ENV})")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_payload(payload: str | None, input_file: Path | None) -> dict[str, Any]:
    """`--input` then `--payload`, each a JSON object; the later one wins key by key."""
    merged: dict[str, Any] = {}
    for label, text in (("--input", _read(input_file)), ("--payload", payload)):
        if text is None:
            continue
        try:
            value = json.loads(text)
        except RecursionError:
            raise InputError(f"{label} is nested too deeply to read; flatten the JSON") from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{label} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                'pass a JSON object such as \'{"key": "value"}\''
            ) from None
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
    except UnicodeDecodeError as exc:
        raise InputError(
            f"--input {path} is not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start}); "
            "save it as UTF-8 JSON"
        ) from None


def open_local_store(db: str | None) -> Any:
    from noetl.store import open_store

    return open_store(db)


def api_client(host: str | None, port: int | None, token: str | None) -> Any:
    """A client for the server at host:port, with the token from --token or the environment."""
    from noetl.client import ApiClient

    return ApiClient(host or DEFAULT_HOST, port or DEFAULT_PORT, token or os.environ.get(TOKEN_ENV) or None)


def announce_start(event: Any) -> None:
    """Say the execution id at once, so an interrupted run can be resumed or inspected."""
    if event.event_type == "execution_start" and event.parent_execution_id is None:
        typer.echo(f"execution {event.execution_id} started", err=True)


_ACTIVE_OBSERVERS: list[Any] = []


def progress_observers() -> list[Any]:
    """The progress line, only on a terminal: piped output stays free of carriage returns."""
    from noetl.progress import ProgressObserver

    if not sys.stderr.isatty():
        return []
    observer = ProgressObserver(sys.stderr)
    _ACTIVE_OBSERVERS.append(observer)
    return [observer]


def close_observers() -> None:
    while _ACTIVE_OBSERVERS:
        _ACTIVE_OBSERVERS.pop().close()


def print_outcome(execution_id: str, status: str, result: Any, error: str | None, as_json: bool) -> None:
    """The end of `run` and `execute --wait`: one JSON object, or status, error and result."""
    if as_json:
        typer.echo(
            json.dumps(
                {"execution_id": execution_id, "status": status, "result": result, "error": error},
                default=str,
            )
        )
        return
    typer.echo(f"execution {execution_id}: {status}")
    if error:
        typer.echo(f"error: {error}")
    typer.echo("result: " + json.dumps(result, indent=2, default=str))


def print_status(record: dict[str, Any], as_json: bool) -> None:
    """`noetl status`, for a record read from the local store or from a server."""
    if as_json:
        typer.echo(json.dumps(record, default=str))
        return
    typer.echo(
        f"execution {record['execution_id']}\n  playbook: {record['playbook_path']}\n  status:   {record['status']}\n"
        f"  started:  {record['created_at']}\n  finished: {record.get('finished_at') or '-'}"
    )
    if record.get("error"):
        typer.echo(f"  error:    {record['error']}")
    typer.echo("  result:   " + json.dumps(record.get("result"), default=str))


def print_events(found: list[Any], as_json: bool, show_all: bool) -> None:
    """`noetl events`: a timeline, or one JSON object per line."""
    if as_json:
        for event in found:
            typer.echo(json.dumps(event.to_dict(), default=str))
        return
    from noetl.timeline import format_timeline

    typer.echo(format_timeline(found, max_items=10**9 if show_all else 20))
