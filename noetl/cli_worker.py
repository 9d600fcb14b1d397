"""`noetl worker start`: a worker process for the distributed runtime; stops cleanly on SIGTERM."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from noetl.cli_common import VERBOSE_ENV, quiet_http_client
from noetl.cli_help import Commands

worker_app = typer.Typer(
    cls=Commands, no_args_is_help=True, help="Run workers that lease and run jobs from PostgreSQL."
)


@worker_app.callback()
def _group() -> None:
    """Workers of the distributed runtime (a callback keeps `start` a subcommand)."""


@worker_app.command("start")
def start(
    db: Annotated[
        str | None, typer.Option("--db", help="The PostgreSQL store, postgresql://... (default: $NOETL_DB)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once")] = 4,
    name: Annotated[str | None, typer.Option(help="Worker id shown in events (default: HOST-PID)")] = None,
    lease: Annotated[float, typer.Option(min=1.0, help="Lease seconds; heartbeats extend it")] = 30.0,
    grace: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a stopping worker waits for its running jobs before it exits and leaves them "
            "to their leases (default 30)",
        ),
    ] = 30.0,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            envvar=VERBOSE_ENV,
            help="Also log each HTTP request the steps make (default: only the HTTP client's warnings)",
        ),
    ] = False,
) -> None:
    """Lease jobs from PostgreSQL, run them and write their events.

    Workers share the server's PostgreSQL store. SIGTERM or Ctrl-C finishes the jobs in hand, then
    exits; a job still running after --grace seconds is named in the log and left to its lease, and the
    worker exits with code 1. The log has the worker's own lines at INFO; the HTTP client's line per
    request (one per item of an http iterator) only with --verbose."""
    import logging
    import signal

    from noetl.cli_common import fail, missing_extra
    from noetl.store import resolve_url

    url = resolve_url(db)
    if not url.startswith(("postgresql://", "postgres://")):
        fail("workers share a PostgreSQL store: pass --db postgresql://... (or set NOETL_DB)")
    try:
        from noetl.runtime.worker import Worker
        from noetl.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        missing_extra(exc, "`noetl worker start`")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_client(verbose)
    # A pool large enough for every job slot, the broker calls each makes, the heartbeat and the writer.
    store: Any = PostgresStore(url, pool_size=concurrency * 3 + 4)
    worker = Worker(store, name=name, concurrency=concurrency, lease_seconds=lease, grace_seconds=grace)

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("noetl.worker").info("signal %d: finishing the jobs in hand", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        worker.run()
    finally:
        try:
            store.close()
        except Exception:  # the store may be the reason we stop; the exit code says so below
            logging.getLogger("noetl.worker").exception("closing the store failed")
    if worker.abandoned:
        import os
        import sys

        # Their threads may never return: exit without joining them (the events are flushed above).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    if worker.failed:
        raise typer.Exit(1)


if __name__ == "__main__":  # `python -m noetl.cli_worker start ...`, the same as `noetl worker start`
    worker_app()
