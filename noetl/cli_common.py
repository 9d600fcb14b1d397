"""Pieces shared by the `noetl` commands: common options, payload parsing, errors, progress output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core

from noetl.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8083
TOKEN_ENV = "NOETL_API_TOKEN"

# The options and arguments several commands share, with the same words everywhere (docs/cli.md).
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL or path (default: $NOETL_DB, else .noetl/noetl.db)"),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of text (one object per line for lists)")
]
HostOption = Annotated[
    str | None, typer.Option("--host", help=f"NoETL server host (default: {DEFAULT_HOST})")
]
PortOption = Annotated[
    int | None, typer.Option("--port", help=f"NoETL server port (default: {DEFAULT_PORT})")
]
TokenOption = Annotated[str | None, typer.Option("--token", help=f"API token (default: ${TOKEN_ENV})")]
ExecutionArgument = Annotated[str, typer.Argument(help="Execution id (`noetl executions` lists them)")]
PlaybookArgument = Annotated[Path, typer.Argument(help="Playbook YAML file, or a folder that holds one")]
PayloadOption = Annotated[
    str | None, typer.Option(help="JSON object merged over the workload (default: the workload as written)")
]
InputOption = Annotated[
    Path | None,
    typer.Option("--input", help="JSON file merged over the workload before --payload (default: none)"),
]
MergeOption = Annotated[
    bool, typer.Option("--merge", help="Deep-merge --payload and --input instead of a shallow update")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", help="No progress and no result: only the last line (status, failed items)")
]


VERBOSE_ENV = "NOETL_VERBOSE"  # `server start` and `worker start`: what --verbose does, for services
# httpx logs `HTTP Request: GET ... "HTTP/1.1 200 OK"` at INFO for each request an http step makes.
HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")


def quiet_http_client(verbose: bool) -> None:
    """The HTTP client's loggers at WARNING in a process that logs at INFO (a worker, the server), so a
    loop of http items does not log a line per item; `verbose` leaves them at the level of the rest."""
    import logging

    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def missing_extra(exc: ModuleNotFoundError, what: str) -> NoReturn:
    """One line naming the extra that installs the module a command needs (exit 2); a module that no
    extra provides is a broken install or a bug, and its error is raised as it is."""
    from noetl.dsl.drivers import extra_of, install_hint

    extra = extra_of(exc.name)
    if extra is None:
        raise exc
    fail(
        f"{what} needs the {exc.name} module, which is not installed here; install it with: {install_hint(extra)}"
    )


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


def store_where(store: Any, db: str | None) -> str:
    """The store a command looked in, for a message that depends on it: the SQLite file's absolute path
    (the default one is relative to the working directory) or the PostgreSQL URL without user and
    password, and how it was chosen when --db did not name it."""
    from noetl.store import DB_ENV

    path = getattr(store, "path", None)
    place = getattr(store, "location", None) or (str(Path(path).absolute()) if path else str(store.url))
    if db:
        return place
    if os.environ.get(DB_ENV):
        return f"{place} (${DB_ENV})"
    return f"{place} (the default store: neither --db nor ${DB_ENV} is set)"


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
    """The progress line, only on a terminal: piped output stays free of carriage returns (and a run
    that draws nothing does not import rich)."""
    if not sys.stderr.isatty():
        return []
    from noetl.progress import ProgressObserver

    observer = ProgressObserver(sys.stderr)
    _ACTIVE_OBSERVERS.append(observer)
    return [observer]


def close_observers() -> None:
    while _ACTIVE_OBSERVERS:
        _ACTIVE_OBSERVERS.pop().close()


RESULT_LINES = 40  # a screenful: a longer result is cut, with the command that prints all of it
INDEXES_SHOWN = 10  # failed item indexes named on the last line (--json has them all)
_ITERATOR_ENDS = ("iterator_completed", "iterator_failed")


def item_failures(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The iterator steps with failed or skipped items, from the latest iterator_completed/_failed of each
    step (a step run again, by a retry or in a cycle, counts as its last run): step, failed, skipped,
    count (items run), total (items of the step) and the failed indexes."""
    latest: dict[str, Any] = {}
    for e in events:
        if e.event_type in _ITERATOR_ENDS:
            latest[e.node_name or ""] = e
    found = []
    for step, e in latest.items():
        meta = e.meta or {}
        failed, skipped = int(meta.get("failed") or 0), int(meta.get("skipped") or 0)
        if failed or skipped:
            count = int(meta.get("count") or 0)
            found.append(
                {
                    "step": step,
                    "failed": failed,
                    "skipped": skipped,
                    "count": count,
                    "total": int(meta.get("total") or count),
                    "failed_indexes": [int(i) for i in meta.get("failed_indexes") or []],
                }
            )
    return found


def local_failures(store: Any, execution_id: str) -> list[dict[str, Any]]:
    """item_failures of an execution in a local store, from its iterator end events alone."""
    from noetl.store.views_sql import EventFilter

    ends = store.query_events(execution_id, EventFilter(types=_ITERATOR_ENDS), limit=100_000)
    return item_failures(ends)


def local_workers(store: Any) -> dict[str, Any] | None:
    """For a local PostgreSQL store, /health's figures of its workers and queue; None for SQLite (a
    local run has no workers: `noetl run` runs the execution itself)."""
    if not str(getattr(store, "url", "")).startswith(("postgresql://", "postgres://")):
        return None
    from noetl.store.queues import queue_for

    queue = queue_for(store)
    try:
        workers = {"live": queue.live_workers(), "busy": queue.busy_workers()}
        return {"runner": "broker", "workers": workers, "queue": queue.open_depth()}
    except Exception:  # the status is the answer; a queue that does not answer says "unknown"
        return {"runner": "broker", "workers": None, "queue": None}


def final_line(execution_id: str, status: str, failures: list[dict[str, Any]]) -> str:
    """`execution ID: COMPLETED, 6 of 3,000 items failed in loop: 499, 999, ...`: what a person reads last."""
    parts = []
    for f in failures:
        if f["failed"]:
            shown = f["failed_indexes"][:INDEXES_SHOWN]
            text = f"{f['failed']:,} of {f['total']:,} items failed in {f['step']}"
            if shown:
                text += ": " + ", ".join(str(i) for i in shown)
                text += ", ..." if len(f["failed_indexes"]) > len(shown) else ""
            if f["skipped"]:
                text += f" ({f['skipped']:,} skipped)"
        else:
            text = f"{f['skipped']:,} of {f['total']:,} items skipped in {f['step']}"
        parts.append(text)
    line = f"execution {execution_id}: {status}"
    return line + ", " + "; ".join(parts) if parts else line


def result_lines(result: Any, show_all_command: str | None) -> list[str]:
    """`result: ...` indented, cut after a screenful with the command that shows all of it."""
    lines = ("result: " + json.dumps(result, indent=2, default=str)).splitlines()
    if show_all_command is None or len(lines) <= RESULT_LINES:
        return lines
    kept = lines[: RESULT_LINES - 1]
    return [*kept, f"... {len(lines) - len(kept):,} more lines: {show_all_command}"]


def where_args(db: str | None = None, host: str | None = None, port: int | None = None) -> str:
    """The options that point a later command at the same store or server, as the user gave them."""
    from shlex import quote

    args = [f" --db {quote(db)}" if db else "", f" --host {quote(host)}" if host else ""]
    return "".join(args) + (f" --port {port}" if port else "")


def print_outcome(
    execution_id: str,
    status: str,
    result: Any,
    error: str | None,
    as_json: bool,
    *,
    failures: list[dict[str, Any]] | None = None,
    where: str = "",
    quiet: bool = False,
) -> None:
    """The end of `run` and `execute --wait`: one JSON object, or the result (cut after a screenful), the
    error, and a last line with the status and the items that failed. `quiet`: only the last line (and
    the error, on stderr). `where`: the options that find the execution again (where_args)."""
    failures = failures or []
    if as_json:
        body = {"execution_id": execution_id, "status": status, "result": result, "error": error}
        typer.echo(json.dumps({**body, "failed_items": failures}, default=str))
        return
    if quiet:
        if error:
            typer.echo(f"error: {error}", err=True)
    else:
        for line in result_lines(result, f"noetl status {execution_id}{where} --all"):
            typer.echo(line)
        if error:
            typer.echo(f"error: {error}")
    typer.echo(final_line(execution_id, status, failures))


def print_status(
    record: dict[str, Any],
    as_json: bool,
    *,
    failures: list[dict[str, Any]] | None = None,
    workers: dict[str, Any] | None = None,
    where: str = "",
    show_all: bool = False,
) -> None:
    """`noetl status`, for a record read from the local store or from a server: a header, the result
    formatted as `run` prints it (cut after a screenful unless `show_all`), and run's last line.
    `workers`: the server's /health answer (or the same figures of a local PostgreSQL store)."""
    failures = failures or []
    if as_json:
        typer.echo(json.dumps({**record, "failed_items": failures}, default=str))
        return
    typer.echo(
        f"execution {record['execution_id']}\n  playbook: {record['playbook_path']}\n  status:   {record['status']}\n"
        f"  started:  {record['created_at']}\n  finished: {record.get('finished_at') or '-'}"
    )
    if record.get("error"):
        typer.echo(f"  error:    {record['error']}")
    if workers is not None:
        typer.echo(f"  workers:  {workers_line(workers)}")
    execution_id = record["execution_id"]
    more = None if show_all else f"noetl status {execution_id}{where} --all"
    for line in result_lines(record.get("result"), more):
        typer.echo(line)
    typer.echo(final_line(execution_id, record["status"], failures))


def workers_line(health: dict[str, Any]) -> str:
    """Live workers and queue depth from a /health answer, in a line."""
    if health.get("runner") == "in-process":
        return "none: the server runs executions itself (SQLite store, no queue)"
    workers, queue = health.get("workers"), health.get("queue")
    if not workers:
        return "unknown (the queue did not answer, or the server's API token is not set here)"
    live = workers.get("live")
    busy = workers.get("busy") or {}
    said = "? live (the database role cannot see the workers' sessions)" if live is None else f"{live} live"
    if busy:
        said += ", busy: " + ", ".join(f"{name} ({n} job{'s' if n != 1 else ''})" for name, n in busy.items())
    if queue:
        said += f"; queue: {queue.get('queued', 0)} queued, {queue.get('held', 0)} held, {queue.get('leased', 0)} leased"
    return said


def print_events(found: list[Any], as_json: bool, show_all: bool) -> None:
    """`noetl events`: a timeline, or one JSON object per line."""
    if as_json:
        for event in found:
            typer.echo(json.dumps(event.to_dict(), default=str))
        return
    from noetl.timeline import format_timeline

    typer.echo(format_timeline(found, max_items=10**9 if show_all else 20))


# ---- noetl executions ------------------------------------------------------------------------------

CHILDREN_SHOWN = 5  # children listed below a parent; `--parent ID` lists them all
TREE_DEPTH = 3  # levels of children drawn below a top-level execution
_ROW_KEYS = ("execution_id", "playbook_path", "status", "created_at", "finished_at", "parent_execution_id")


class LocalExecutions:
    """Pages of executions from the local store, as the API's /api/views/executions gives them."""

    def __init__(self, store: Any, label: str) -> None:
        self.store, self.label = store, label  # where they are, when there are none: "in /path/noetl.db"

    def page(self, *, limit: int, **given: Any) -> tuple[list[dict[str, Any]], int]:
        from noetl.store.views_sql import ExecutionFilter

        f = ExecutionFilter(**given)
        records = self.store.find_executions(f, limit=limit)
        facts = self.store.execution_facts([r.execution_id for r in records])
        rows = [{**r.__dict__, **facts.get(r.execution_id, {})} for r in records]
        return rows, self.store.count_executions(f)

    def result(self, execution_id: str) -> Any:
        record = self.store.execution(execution_id)
        return record.result if record else None


class RemoteExecutions:
    """The same pages from a server (GET /api/views/executions)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.label = f"on the server at {client.address}"

    def page(self, *, limit: int, **given: Any) -> tuple[list[dict[str, Any]], int]:
        answer = self.client.executions_page(limit=limit, **{k: v for k, v in given.items() if v})
        return list(answer["executions"]), int(answer.get("total", len(answer["executions"])))

    def result(self, execution_id: str) -> Any:
        return self.client.execution(execution_id).get("result")


def list_executions(
    source: Any,
    *,
    limit: int,
    status: str | None,
    playbook: str | None,
    parent: str | None,
    as_json: bool,
    where: str,
) -> None:
    """`noetl executions`: newest first, top-level executions with their children drawn below them (or
    the children of `parent`); a header, each one's duration; --json one object per line."""
    wanted = status.upper() if status else None
    if wanted and wanted not in ("RUNNING", "COMPLETED", "FAILED"):
        raise InputError(f"--status {status!r} is not one of RUNNING, COMPLETED, FAILED")
    roots, total = source.page(
        limit=limit, status=wanted, playbook=playbook or None, parent=parent, roots=parent is None
    )
    listed: list[tuple[int, dict[str, Any]]] = []  # (depth, row), in the order they are shown
    notes: dict[int, list[str]] = {}  # after the listed row at this position: "... N more: ..."

    def below(row: dict[str, Any], depth: int) -> None:
        listed.append((depth, row))
        if depth >= TREE_DEPTH or not row.get("children"):
            return
        kids, count = source.page(limit=CHILDREN_SHOWN, parent=row["execution_id"])
        for kid in reversed(kids):  # oldest first below the parent: the order they ran in
            below(kid, depth + 1)
        if count > len(kids):
            notes.setdefault(len(listed) - 1, []).append(
                f"{'  ' * depth}└ ... {count - len(kids):,} more: "
                f"noetl executions --parent {row['execution_id']}{where}"
            )

    for row in roots:
        below(row, 0)
    if as_json:
        for depth, row in listed:
            record = {k: row.get(k) for k in _ROW_KEYS}
            record.update(result=source.result(row["execution_id"]), error=row.get("error"))
            record.update(children=row.get("children", 0), duration=_seconds(row), depth=depth)
            typer.echo(json.dumps(record, default=str))
        return
    if not listed:
        said = "match" if (wanted or playbook or parent) else "yet"
        typer.echo(f"no executions {said} {source.label}")
        return
    typer.echo(f"{'EXECUTION':<36}  {'STATUS':<10} {'STARTED':<19}  {'DURATION':>9}  PLAYBOOK")
    for n, (depth, row) in enumerate(listed):
        tree = f"{'  ' * (depth - 1)}└ " if depth else ""
        took = _seconds(row)
        running = "+" if row["status"] == "RUNNING" else ""
        duration = "-" if took is None else format_duration(took) + running
        line = (
            f"{row['execution_id']:<36}  {row['status']:<10} {_started(row['created_at']):<19}  "
            f"{duration:>9}  {tree}{row['playbook_path']}"
        )
        kids = row.get("children") or 0
        if kids and depth >= TREE_DEPTH:
            line += f" ({kids} children: noetl executions --parent {row['execution_id']}{where})"
        typer.echo(line)
        for note in reversed(notes.get(n, [])):  # the deepest parent's first
            typer.echo(f"{'':<36}  {'':<10} {'':<19}  {'':>9}  {note}")
    if total > len(roots):
        typer.echo(f"({len(roots)} of {total:,} shown, newest first; --limit N for more)")


def _when(text: str | None) -> Any:
    from datetime import datetime

    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _seconds(row: dict[str, Any]) -> float | None:
    """How long it ran: to its end, or until now while it runs."""
    from datetime import UTC, datetime

    start = _when(row.get("created_at"))
    if start is None:
        return None
    end = _when(row.get("finished_at"))
    if end is None:
        if row.get("status") != "RUNNING":
            return None
        end = datetime.now(start.tzinfo or UTC)
    return max(0.0, (end - start).total_seconds())


def _started(text: str) -> str:
    moment = _when(text)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else str(text)[:19]


def format_duration(seconds: float) -> str:
    """0.42s, 12.3s, 4m05s, 2h03m."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
