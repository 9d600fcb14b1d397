"""Timeouts: an attempt of a step (or of a nested task) that runs past its `timeout` fails with reason
`timeout`, and whoever waits for it goes on at once.

Actions run on threads, and Python cannot kill a thread. So a timed attempt runs on a thread of its own
while the caller waits at most `timeout` seconds; past that the caller fails the attempt and the thread
is left behind, abandoned:

- the attempt's event sink is closed (`Gate`): its next event raises `AttemptAbandoned`, so an
  abandoned iterator starts no more items and writes nothing more;
- the interrupts the action registered run (`Interrupts`): a postgres statement is cancelled on the
  server, a DuckDB query is interrupted, and a python step's code gets a `StepInterrupted` exception
  raised inside it at its next Python instruction.

What a timeout cannot interrupt: code blocked inside a C call that never returns (a `time.sleep`, a
socket read without its own timeout) keeps its thread until the call returns; its result is thrown
away. docs/operations.md ("Timeouts") says so.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from noetl.dsl.render import render
from noetl.errors import ActionError, ExecutionClosed


class StepTimeout(ActionError):
    """The attempt took longer than its timeout (a retry policy may try again)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type="Timeout")
        self.reason = "timeout"


class AttemptAbandoned(ExecutionClosed):
    """Raised by the event sink of an attempt that timed out: the abandoned work stops here."""


class StepInterrupted(BaseException):
    """Raised inside a python step's code whose attempt timed out (a BaseException, so that an
    `except Exception` in the code does not swallow it)."""


class Gate:
    """Open while the attempt may still write; closed once it is abandoned."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


class GatedSink:
    """The execution's sink as an abandoned attempt sees it: every write refused once the gate closes."""

    def __init__(self, sink: Any, gate: Gate, what: str) -> None:
        self._sink = sink
        self._gate = gate
        self._what = what

    def _check(self) -> None:
        if self._gate.closed:
            raise AttemptAbandoned(f"{self._what} timed out; this work for it stops here")

    def new(self, event_type: str, **fields: Any) -> Any:
        self._check()
        return self._sink.new(event_type, **fields)

    def node_event(self, *fields: Any) -> Any:
        self._check()
        return self._sink.node_event(*fields)

    def __getattr__(self, name: str) -> Any:  # store, redactor, execution_id, ...
        return getattr(self._sink, name)


class GatedServices:
    """The runtime services with the attempt's gated sink; everything else is the services' own."""

    def __init__(self, services: Any, sink: GatedSink) -> None:
        self._services = services
        self.sink = sink

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services, name)


class Interrupts:
    """Callbacks that stop what an attempt is doing right now (cancel a query, interrupt user code).
    An action adds one around a blocking call and removes it after; `fire` runs those still there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.fired = False

    def add(self, hook: Callable[[], None]) -> int:
        with self._lock:
            if self.fired:  # already past the deadline: stop at once
                hook()
            self._next += 1
            self._hooks[self._next] = hook
            return self._next

    def remove(self, key: int) -> None:
        with self._lock:
            self._hooks.pop(key, None)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            hooks = list(self._hooks.values())
            self._hooks.clear()
        for hook in hooks:
            with contextlib.suppress(Exception):  # best effort: the attempt has failed either way
                hook()


def interrupt_thread(thread_id: int) -> None:
    """Raise StepInterrupted inside the thread at its next Python instruction (best effort)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(StepInterrupted))


def attempt_timeout(task: Any, default: float | None, scope: Mapping[str, Any], where: str) -> float | None:
    """The seconds an attempt of `task` may take: its own `timeout` (rendered, when a template), else
    the playbook's, else None (no limit). An http task enforces its own `timeout` itself, as a deadline
    for the whole answer with a message that says which part was slow, so it is not timed twice."""
    own = task.timeout
    if own is None:
        return default
    if task.type == "http":
        return None
    if isinstance(own, str):
        value = render(own, scope, where=f"{where} timeout")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = 0.0
        if not 0 < seconds <= 86_400 * 30:
            raise ActionError(
                f"{where}: timeout {own!r} rendered to {value!r}; it must be a number of seconds above 0",
                non_retryable=True,
            )
        return seconds
    return float(own)


def timeout_message(what: str, seconds: float, elapsed: float) -> str:
    """Why an attempt failed at its deadline: the same words in one process and on workers."""
    return (
        f"{what} took longer than its timeout of {seconds:g} s (reason timeout); it was stopped "
        f"after {elapsed:.1f} s. Raise `timeout` if it needs longer"
    )


def run_with_timeout(call: Callable[[Any, Interrupts], Any], services: Any, seconds: float, what: str) -> Any:
    """`call(services, interrupts)` on a thread of its own, waited for at most `seconds`. Past that its
    interrupts fire, its sink closes, and StepTimeout is raised here; its own exception is re-raised."""
    gate = Gate()
    interrupts = Interrupts()
    gated = GatedServices(services, GatedSink(services.sink, gate, what))
    outcome: list[Any] = []
    context = contextvars.copy_context()

    def body() -> None:
        try:
            outcome.append((True, context.run(call, gated, interrupts)))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append((False, exc))

    thread = threading.Thread(target=body, name=f"noetl-timed-{what}"[:60], daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        gate.closed = True
        interrupts.fire()
        raise StepTimeout(timeout_message(what, seconds, time.monotonic() - started))
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
