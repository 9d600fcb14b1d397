"""How the server runs executions: the broker and its queue on PostgreSQL, threads in-process on SQLite.

On PostgreSQL the server only appends `execution_start` and schedules jobs; workers (`noetl worker
start`) run the steps, and the broker loop reaps expired leases. A SQLite store has no queue, so the
server runs each execution itself, on a thread, with the same runner as `noetl run`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Protocol

from noetl.engine.events import Event
from noetl.engine.events import EventType as T

log = logging.getLogger("noetl.server")


class Dispatcher(Protocol):
    kind: str

    def start(self, path: str, parameters: dict[str, Any], *, merge: bool, version: int | None) -> str:
        """Start an execution of a catalog playbook and return its id."""

    def cancel(self, execution_id: str, reason: str) -> bool:
        """Fail an unfinished execution; False when it had already finished."""

    def retry(self, execution_id: str, request: Any) -> dict[str, Any]:
        """Run an iterator step of a finished execution again (engine.retry); its execution_retry meta."""

    def close(self) -> None: ...


def is_postgres(store: Any) -> bool:
    return str(getattr(store, "url", "")).startswith(("postgresql://", "postgres://"))


def dispatcher_for(store: Any) -> Dispatcher:
    return BrokerDispatcher(store) if is_postgres(store) else InProcessDispatcher(store)


class BrokerDispatcher:
    """Executions go to the PostgreSQL queue; a background thread runs the broker loop."""

    kind = "broker"

    def __init__(self, store: Any) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="noetl-broker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from noetl.runtime.broker import run_broker_loop

        try:
            run_broker_loop(self.store, self._stop)
        except Exception:  # the API keeps answering; the log says why scheduling stopped
            log.exception("the broker loop stopped; expired leases are no longer reaped")

    def start(self, path: str, parameters: dict[str, Any], *, merge: bool, version: int | None) -> str:
        from noetl.runtime.control import start_execution

        return start_execution(self.store, path, parameters, merge=merge, version=version)

    def cancel(self, execution_id: str, reason: str) -> bool:
        from noetl.runtime.control import cancel_execution

        return cancel_execution(self.store, execution_id, reason)

    def retry(self, execution_id: str, request: Any) -> dict[str, Any]:
        from noetl.runtime.control import retry_execution

        return retry_execution(self.store, execution_id, request)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class InProcessDispatcher:
    """Each execution runs on its own thread in the server process (SQLite: no queue, no workers)."""

    kind = "in-process"

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}  # for the shutdown warning

    def start(self, path: str, parameters: dict[str, Any], *, merge: bool, version: int | None) -> str:
        from noetl.runtime.control import load_catalog_playbook
        from noetl.runtime.local import LocalRunner

        playbook, _ = load_catalog_playbook(self.store, path, version)
        started: Future[str] = Future()
        finished: Future[Any] = Future()

        def capture(event: Event) -> None:
            # The runner makes the id; learn it from the first event instead of waiting for the end.
            if (
                event.event_type == T.EXECUTION_START
                and event.parent_execution_id is None
                and not started.done()
            ):
                with self._lock:
                    self._running[event.execution_id] = threading.current_thread()
                started.set_result(event.execution_id)

        def run() -> None:
            try:
                finished.set_result(
                    LocalRunner(self.store, observers=[capture]).run(playbook, parameters, merge=merge)
                )
            except BaseException as exc:
                finished.set_exception(exc)
                if started.done():
                    log.exception("execution %s stopped with an internal error", started.result())
            finally:
                if started.done():
                    with self._lock:
                        self._running.pop(started.result(), None)

        thread = threading.Thread(target=run, name="noetl-execution", daemon=True)
        thread.start()
        wait([started, finished], return_when=FIRST_COMPLETED)
        if not started.done():
            finished.result()  # the run failed before it began: raise its error to the caller
        return started.result()

    def retry(self, execution_id: str, request: Any) -> dict[str, Any]:
        from noetl.engine.retry import retry_target
        from noetl.runtime.control import playbook_of
        from noetl.runtime.local import LocalRunner

        with self._lock:
            if execution_id in self._running:
                from noetl.server.errors import ApiError

                raise ApiError(409, f"execution {execution_id} is running again already")
        events = self.store.read(execution_id)
        playbook = playbook_of(self.store, events)
        meta = retry_target(events, playbook, request).meta(request)  # refuse now, with a 4xx, not later
        reopened = threading.Event()

        def capture(event: Event) -> None:
            if event.event_type == T.EXECUTION_RETRY and event.execution_id == execution_id:
                reopened.set()

        def run() -> None:
            with self._lock:
                self._running[execution_id] = threading.current_thread()
            try:
                LocalRunner(self.store, observers=[capture]).retry(execution_id, playbook, request)
            except Exception:
                log.exception("the retry of execution %s stopped with an error", execution_id)
            finally:
                reopened.set()
                with self._lock:
                    self._running.pop(execution_id, None)

        threading.Thread(target=run, name="noetl-retry", daemon=True).start()
        reopened.wait(timeout=30)
        self.store.flush()
        return meta

    def cancel(self, execution_id: str, reason: str) -> bool:
        from noetl.server.errors import ApiError

        raise ApiError(
            409,
            "cancel needs the PostgreSQL store: on SQLite the server runs an execution in its "
            "own process to the end; start the server with --db postgresql://... and workers",
        )

    def close(self) -> None:
        with self._lock:
            running = sorted(self._running)
        if running:
            # Daemon threads stop with the process; the log keeps what was interrupted, so it can be resumed.
            log.warning(
                "stopping with %d execution(s) still running: %s; continue one with "
                "`noetl run PLAYBOOK --resume ID`",
                len(running),
                ", ".join(running),
            )
