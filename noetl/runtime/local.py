"""`noetl run`: the planner, the step runner and the store wired together in one process."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.registry import Registry, default_actions, default_storages
from noetl.actions.save.breaker import Breakers
from noetl.dsl import load_playbook, parse_playbook
from noetl.dsl.models import Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import items_kept_by_retry
from noetl.engine.planner import Planner, RunStep
from noetl.engine.recovery import PlannedEvent, started_node_type
from noetl.engine.retry import RetryRequest, retry_target
from noetl.engine.state import PENDING, RUNNING, ExecutionState, fold
from noetl.errors import ActionError, ExecutionClosed, InputError, NoetlError, StoreError
from noetl.runtime import orchestrator
from noetl.runtime.broker import close_abandoned_children
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.redact import Redactor
from noetl.runtime.services import RunServices
from noetl.runtime.sink import EventSink
from noetl.runtime.step_runner import StepRunner, StepSnapshot, take_snapshot
from noetl.runtime.subplaybooks import catalog_candidates, catalog_path_of, child_result, file_candidates
from noetl.runtime.workload import Opening, open_execution, protect, real_workload
from noetl.store.ports import Store

# Why a resumed or retried execution's children that were still RUNNING are closed: only the process
# that ran the parent drove them (a local run's children run inside it).
_STOPPED = "the noetl run process running it stopped (interrupted or killed); its parent runs the work again"
MAX_PLAYBOOK_DEPTH = 20  # sub-playbooks nested deeper than this are a runaway, not a design


@dataclass(frozen=True)
class Outcome:
    execution_id: str
    status: str
    result: Any = None
    error: str | None = None


ObserverFactory = Callable[[str], Iterable[Callable[[Event], None]]]


class LocalRunner:
    """Runs playbooks in this process; steps of parallel branches run on a thread pool."""

    def __init__(
        self,
        store: Store,
        *,
        observers: Iterable[Callable[[Event], None]] = (),
        max_workers: int = 8,
        actions: Registry | None = None,
        storages: Registry | None = None,
    ) -> None:
        self.store = store
        self.observers = list(observers)
        self.max_workers = max_workers
        self.actions = actions or default_actions()
        self.storages = storages or default_storages()
        self.breakers = Breakers()

    def run(
        self,
        playbook: Playbook,
        payload: dict[str, Any] | None = None,
        *,
        merge: bool = False,
        parent_execution_id: str | None = None,
        redactor: Redactor | None = None,
        depth: int = 0,
        called_by: dict[str, Any] | None = None,
        started: Callable[[_Execution], None] | None = None,
    ) -> Outcome:
        """`depth`: how many parents this execution has (a sub-playbook's is its parent's plus one);
        `called_by`: for a sub-playbook, the parent's step, item and job that run it inside this process
        (`execution_start.context.called_by`; see broker.close_abandoned_children); `started`: told of
        the execution once its `execution_start` is written (a caller that may have to cancel it)."""
        execution_id = str(uuid.uuid4())
        redactor = redactor or Redactor()
        run = _Execution(self, playbook, execution_id, parent_execution_id, redactor, 0)
        opening = open_execution(
            playbook.workload,
            payload or {},
            merge=merge,
            execution_id=execution_id,
            redactor=redactor,
            seal=run.services.seal,
            base={
                "path": playbook.path,
                "source": playbook.source,
                **({"called_by": called_by} if called_by is not None else {}),
            },
        )
        run.workload = opening.workload
        run.services.depth = depth
        if parent_execution_id is not None:  # a child runs inside its parent's hold
            return self._start(run, playbook, opening, started)
        with self._hold(execution_id), self._resumable(execution_id, playbook):
            return self._start(run, playbook, opening, started)

    def _start(
        self,
        run: _Execution,
        playbook: Playbook,
        opening: Opening,
        started: Callable[[_Execution], None] | None,
    ) -> Outcome:
        run.sink.new(
            T.EXECUTION_START,
            node_name=playbook.name,
            node_id=playbook.path,
            node_type="playbook",
            context=opening.context,
        )
        if started is not None:  # after execution_start: a cancel it leads to comes after it in the log
            started(run)
        return run.drive()

    def _hold(self, execution_id: str) -> contextlib.AbstractContextManager[None]:
        """One live process per execution on a store that needs it (the embedded one; workers on
        PostgreSQL hold jobs by lease instead)."""
        hold = getattr(self.store, "hold", None)
        return hold(execution_id) if hold is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def _resumable(self, execution_id: str, playbook: Playbook) -> Iterator[None]:
        """A store that fails mid-run (locked past its timeout, disk full) stops the execution where
        its last committed event left it: say so, and how to go on."""
        try:
            yield
        except StoreError as exc:
            where = getattr(self.store, "location", None) or getattr(self.store, "path", None)
            db = f" --db {where}" if where else ""
            # Only a playbook file can be named in the command (not a catalog entry or a text).
            file = playbook.source if Path(playbook.source).is_file() else "PLAYBOOK_FILE"
            raise StoreError(
                f"{exc}. Execution {execution_id} stopped after its last committed event; continue it "
                f"with `noetl run {file}{db} --resume {execution_id}`"
            ) from exc

    def resume(self, execution_id: str, playbook: Playbook) -> Outcome:
        """Continue an interrupted execution from its log: finished steps are not run again."""
        with self._hold(execution_id), self._resumable(execution_id, playbook):
            return self._resume(execution_id, playbook)

    def _resume(self, execution_id: str, playbook: Playbook) -> Outcome:
        events = self.store.read(execution_id)
        if not events:
            raise InputError(
                f"execution {execution_id} has no events in {getattr(self.store, 'location', self.store.url)}; check the id and --db"
            )
        state = fold(events)
        if state.finished:
            raise InputError(
                f"execution {execution_id} already finished ({state.status.upper()}); "
                "only an interrupted execution can be resumed; run the playbook again instead"
            )
        close_abandoned_children(self.store, execution_id, _STOPPED)
        run = self._going_on(playbook, execution_id, state, {}, events)
        run.recover(events)
        return run.drive()

    def retry(self, execution_id: str, playbook: Playbook, request: RetryRequest) -> Outcome:
        """Run an iterator step of a finished execution again, in it: its failed items (and the items
        named) run, the others keep their results; then the workflow goes on (engine.retry)."""
        with self._hold(execution_id), self._resumable(execution_id, playbook):
            return self._retry(execution_id, playbook, request)

    def _retry(self, execution_id: str, playbook: Playbook, request: RetryRequest) -> Outcome:
        events = self.store.read(execution_id)
        target = retry_target(events, playbook, request)
        close_abandoned_children(self.store, execution_id, _STOPPED)
        kept = {target.step: items_kept_by_retry(events, target.step, request.items)}
        run = self._going_on(playbook, execution_id, fold(events), kept, events)
        run.restart_running()
        run.sink.new(
            T.EXECUTION_RETRY,
            node_name=target.step,
            node_id=target.step,
            node_type="iterator",
            meta=target.meta(request),
        )
        return run.drive()

    def _going_on(
        self,
        playbook: Playbook,
        execution_id: str,
        state: ExecutionState,
        kept: dict[str, dict[int, Any]],
        events: list[Event],
    ) -> _Execution:
        """An execution that goes on from its log (a resume, a retry): its real workload, its state,
        and the items of each step that need not run again (`kept`)."""
        redactor = Redactor()
        workload = real_workload(state, self.store)
        protect(redactor, workload, shown=state.workload)
        run = _Execution(
            self, playbook, execution_id, state.parent_execution_id, redactor, state.last_event_id, kept
        )
        run.workload = workload
        run.adopt(state, events)
        return run

    def run_child(
        self, path: str, data: Any, return_step: str | None, services: RunServices, ctx: ActionContext
    ) -> Any:
        depth = services.depth + 1
        self.check_depth(path, depth)
        child = self.find_playbook(path, services)
        payload = data if isinstance(data, dict) else {}
        # A timed attempt that runs past its timeout fires its interrupts: the child it is running is
        # cancelled then, as the deadline job cancels a worker's child (distributed.run_deadline_job).
        interrupts = ctx.interrupts
        reason = f"its parent step '{ctx.step}' timed out"
        runs: list[_Execution] = []

        def started(run: _Execution) -> None:
            runs.append(run)
            if interrupts is not None and interrupts.fired:
                run.cancel(reason)

        def cancel_children() -> None:
            for run in runs:
                run.cancel(reason)

        hook = interrupts.add(cancel_children) if interrupts is not None else None
        try:
            outcome = self.run(
                child,
                payload,
                merge=True,
                parent_execution_id=ctx.execution_id,
                redactor=services.sink.redactor,
                depth=depth,
                called_by=services.called_by(ctx),
                started=started,
            )
        finally:
            if interrupts is not None and hook is not None:
                interrupts.remove(hook)
        return child_result(
            self.store, path, outcome.execution_id, outcome.status, outcome.error, outcome.result, return_step
        )

    def check_depth(self, path: str, depth: int) -> None:
        if depth > MAX_PLAYBOOK_DEPTH:
            # A playbook that calls itself (or a ring of them) with no way out would nest forever.
            raise ActionError(
                f"sub-playbook {path!r} would be nested {depth} deep, past the limit of "
                f"{MAX_PLAYBOOK_DEPTH} (reason max_depth): a playbook that calls itself needs a `when` "
                "that stops calling it",
                non_retryable=True,
                error_type="MaxDepth",
            )

    def find_playbook(self, path: str, services: RunServices) -> Playbook:
        """The child a `type: playbook` path names; the order is in noetl.runtime.subplaybooks."""
        parent = services.playbook
        parent_in_catalog = catalog_path_of(parent.source)
        # A parent from the catalog (on a worker) has no folder: only the catalog, or an absolute file.
        folders = [] if parent_in_catalog else [services.workdir, Path.cwd()]
        files = file_candidates(path, folders)
        for candidate in files:
            if candidate.is_file():
                return load_playbook(candidate)
        names = catalog_candidates(parent_in_catalog or parent.path, path)
        for name in names:
            entry = self.store.get_playbook(name)
            if entry is not None:
                return parse_playbook(entry.content, source=f"catalog:{entry.path}@{entry.version}")
        tried = [f"the files {', '.join(map(str, files))}"] if files else []
        if names:
            tried.append(f"the catalog paths {', '.join(names)}")
        if not names:
            todo = "fix `path`"
        elif parent_in_catalog:
            todo = (
                "register it under one of those catalog paths (`noetl execute playbook FILE` and "
                "`noetl register FILE` also register the files a playbook names) or fix `path`"
            )
        else:
            todo = "put the file next to the calling playbook, fix `path`, or register it in the catalog"
        raise ActionError(
            f"sub-playbook {path!r} of {parent_in_catalog or parent.source} not found; tried "
            f"{' and '.join(tried)}; {todo}",
            non_retryable=True,
        )


class _Execution:
    """One execution's loop: plan, dispatch, wait for a step to end, repeat."""

    def __init__(
        self,
        runner: LocalRunner,
        playbook: Playbook,
        execution_id: str,
        parent_execution_id: str | None,
        redactor: Redactor,
        start_id: int,
        resumed_items: dict[str, dict[int, Any]] | None = None,
    ) -> None:
        self.runner = runner
        self.playbook = playbook
        self.state = ExecutionState()
        self.lock = threading.Lock()
        self.step_events: dict[str, tuple[str, int]] = {}  # step -> (step_started created_at, event id)
        self.sink = EventSink(
            runner.store,
            execution_id,
            parent_execution_id=parent_execution_id,
            start_id=start_id,
            redactor=redactor,
            on_event=self._apply,
            observers=runner.observers,
        )
        self.services = RunServices(
            runner,
            playbook,
            self.sink,
            CredentialResolver(runner.store, redactor),
            runner.actions,
            runner.storages,
            runner.breakers,
            resumed_items,
        )
        self.steps = StepRunner(playbook, self.services, runner.actions)
        self.planner = Planner(playbook)
        self.workload: dict[str, Any] | None = None  # the real workload (the logged one may be masked)

    def _apply(self, event: Event) -> None:
        # Called in event order under the sink's lock, for workflow events only (EventSink's on_event):
        # an item's or a save's events move nothing, so the sink does not hand them over. The workflow
        # events that follow them carry the larger ids, so last_event_id still ends right.
        # The planner reads the state under self.lock.
        with self.lock:
            self.state.apply(event)
            if event.event_type == T.STEP_STARTED and event.node_name:
                self.step_events[event.node_name] = (event.created_at, event.event_id)

    def adopt(self, state: ExecutionState, events: list[Event]) -> None:
        """Go on from the log's state; a later attempt of a step needs its run's `step_started`."""
        self.state = state
        for e in events:
            if e.event_type == T.STEP_STARTED and e.node_name:
                self.step_events[e.node_name] = (e.created_at, e.event_id)

    def recover(self, events: list[Event]) -> None:
        """`--resume`: each attempt the stopped process left running is abandoned, as a dead worker's
        is (engine.recovery): `action_error` (`meta.reason: interrupted`), then `action_retry`, and the
        next attempt of the same run skips the items that run finished. No limit here: a resume is the
        user's own decision each time."""
        with self.lock:
            running = [(s.name, s.attempt) for s in self.state.steps.values() if s.status == RUNNING]
        for name, attempt in running:
            message = (
                f"the process running step '{name}' stopped (noetl run was interrupted or killed) during "
                f"attempt {attempt}; the attempt was abandoned and --resume goes on with the next one"
            )
            orchestrator.abandon(
                self.runner.store,
                _Threads(self, None),
                name,
                started_node_type(events, name),
                attempt,
                message,
                {"reason": "interrupted"},
            )

    def restart_running(self) -> None:
        """`noetl retry`: a step a finished execution left running (a branch cut off when it failed)
        runs again from its first attempt, in a new run."""
        for name, step in self.state.steps.items():
            if step.status == RUNNING:
                self.state.triggers.setdefault(name, []).extend(step.edge_data or [None])
                step.status = PENDING

    def drive(self) -> Outcome:
        """Advance the execution (runtime.orchestrator) each time one of its steps ends, until it ends."""
        with ThreadPoolExecutor(self.runner.max_workers, thread_name_prefix="noetl-step") as pool:
            threads = _Threads(self, pool)
            while True:
                finish = orchestrator.advance(
                    self.runner.store, self.sink.execution_id, self.planner, self.state, threads, self.lock
                )
                if finish is not None:
                    return Outcome(self.sink.execution_id, finish.status.upper(), finish.result, finish.error)
                if self.state.finished and not threads.open_work():  # cancelled through this sink (cancel())
                    return Outcome(self.sink.execution_id, self.state.status.upper(), None, self.state.error)
                threads.wait()

    def cancel(self, reason: str) -> None:
        """End this execution now, as broker.cancel ends one on workers (the same event), but through
        its own sink, so that its ids stay its own; its running steps stop at their next event."""
        with self.lock:
            if self.state.finished:
                return
            started = self.state.started_at
        with contextlib.suppress(ExecutionClosed):
            orchestrator.cancel(
                self.runner.store,
                _Threads(self, None),
                self.playbook.name,
                self.playbook.path,
                started,
                reason,
            )

    def write(self, planned: PlannedEvent) -> None:
        self.sink.new(planned.event_type, **planned.fields)

    def _snapshot(self, cmd: RunStep) -> StepSnapshot:
        with self.lock:  # the steps running now fold their events into this state
            started = self.step_events.get(cmd.step, ("", None))
            return take_snapshot(self.state, cmd, started, self.services, self.workload)

    def _run_step(self, cmd: RunStep, snap: StepSnapshot) -> None:
        try:
            self.steps.run(cmd, snap)
        except NoetlError:
            raise
        except Exception as exc:  # a bug in the runner itself: still recorded, never silent
            self.sink.new(
                T.STEP_FAILED,
                node_name=cmd.step,
                node_id=cmd.step,
                node_type="step",
                error=f"internal error: {type(exc).__name__}: {exc}",
            )


class _Threads:
    """The local dispatcher: each command on a thread of the pool, once; a command waiting for its
    retry's delay waits here, not on a thread, and does not count as open work."""

    def __init__(self, run: _Execution, pool: ThreadPoolExecutor | None) -> None:
        self.run = run
        self.pool = pool
        self.inflight: dict[tuple[str, int, int], Future[None]] = {}
        self.delayed: list[RunStep] = []

    def open_work(self) -> bool:
        return bool(self.inflight)

    def dispatch(self, cmd: RunStep) -> None:
        if (cmd.step, cmd.run, cmd.attempt) in self.inflight or cmd in self.delayed:
            return
        if cmd.not_before and cmd.not_before > time.time():
            self.delayed.append(cmd)
        else:
            self._submit(cmd)

    def write(self, planned: PlannedEvent) -> None:
        self.run.write(planned)

    def ended(self) -> None:
        """Nobody to tell: a local child's parent waits for its Outcome (LocalRunner.run_child)."""

    def wait(self) -> None:
        """Until a step ends or a delayed command is due (then started)."""
        timeout = None
        if self.delayed:
            now = time.time()
            ready = [c for c in self.delayed if (c.not_before or 0) <= now]
            for cmd in ready:
                self.delayed.remove(cmd)
                self._submit(cmd)
            if ready:
                return
            timeout = max(0.0, min(c.not_before or 0 for c in self.delayed) - now)
        if not self.inflight:
            if timeout is not None:
                time.sleep(timeout)
            return
        done, _ = wait(list(self.inflight.values()), timeout=timeout, return_when=FIRST_COMPLETED)
        for key in [k for k, f in self.inflight.items() if f in done]:
            self.inflight.pop(key).result()

    def _submit(self, cmd: RunStep) -> None:
        assert self.pool is not None  # a dispatcher built only to write (cancel) never dispatches
        self.inflight[(cmd.step, cmd.run, cmd.attempt)] = self.pool.submit(
            self.run._run_step, cmd, self.run._snapshot(cmd)
        )
