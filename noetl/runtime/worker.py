"""`noetl worker start`: lease jobs, run them with the same actions and sink as a local run, report.

A worker holds at most `concurrency` jobs. It extends their leases by heartbeat; if it dies, the leases
expire and the broker's reaper hands the work on. LISTEN/NOTIFY wakes it as soon as a job is queued.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from noetl.actions.registry import default_actions, default_storages
from noetl.actions.save.breaker import Breakers
from noetl.engine.state import fold
from noetl.errors import ExecutionClosed, StoreError
from noetl.runtime import broker
from noetl.runtime.distributed import run_chunk_job, run_deadline_job, run_join_job, run_step_job
from noetl.runtime.local import LocalRunner
from noetl.runtime.workflow_log import workflow_log
from noetl.store.ports import Job, JobQueue
from noetl.store.queues import queue_for

log = logging.getLogger("noetl.worker")
# Jobs that may wait beside the slots at once (items waiting for their sub-playbooks); past this, an
# item runs its child inside its job, holding the slot, as before.
MAX_PARKED = 256


class Worker:
    def __init__(
        self,
        store: Any,
        *,
        name: str | None = None,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        poll_seconds: float = 2.0,
        grace_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.worker_id = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        # Jobs still running when the grace period after stop() ended: left to their lease, as after a
        # crash. The process must then exit without waiting for their threads (see cli_worker).
        self.abandoned: list[Job] = []
        self.queue: JobQueue[Any] = queue_for(store, lease_seconds)
        self.actions = default_actions()
        self.storages = default_storages()
        self.breakers = Breakers()
        self.child_runner = LocalRunner(store, actions=self.actions, storages=self.storages)
        self.stop_event = threading.Event()
        self.failed = False  # set when the store refused a write: the process should exit non-zero
        self._finished = threading.Event()  # set once the jobs in hand are done: heartbeats may stop
        self._inflight: dict[int, Job] = {}
        self._parked: set[int] = set()  # jobs of _inflight waiting for another execution (waiting())
        self._lock = threading.Lock()

    # ---- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Lease and run jobs until `stop()`; then finish the jobs in hand and return."""
        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="noetl-heartbeat", daemon=True)
        heartbeat.start()
        # Threads for the slots, and for the jobs parked beside them (waiting()); made as needed.
        pool = ThreadPoolExecutor(self.concurrency + MAX_PARKED, thread_name_prefix="noetl-job")
        try:
            with self.queue.listening() as listener:
                while not self.stop_event.is_set():
                    free = self.concurrency - self._count()
                    jobs = self.queue.lease(self.worker_id, free) if free > 0 else []
                    for job in jobs:
                        with self._lock:
                            self._inflight[job.job_id] = job
                        pool.submit(self._execute, job)
                    if not jobs:
                        # Sleep until a job is queued (NOTIFY) or a slot frees up; the timeout is a safety net.
                        self.queue.wait_for_work(listener, self.poll_seconds)
        finally:
            self._finish_jobs_in_hand(pool)
            self._finished.set()  # heartbeats stop: the leases of abandoned jobs run out
        log.info("worker %s stopped", self.worker_id)

    def _finish_jobs_in_hand(self, pool: ThreadPoolExecutor) -> None:
        """Wait up to `grace_seconds` for the running jobs; then leave the rest to their leases and say
        which they are. A job whose code never returns (and has no `timeout`) cannot hold the process."""
        deadline = time.monotonic() + self.grace_seconds
        while self._in_hand() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            left = list(self._inflight.values())
        if not left:
            pool.shutdown(wait=True)
            return
        self.abandoned = left
        for job in left:
            log.warning(
                "worker %s abandons job %s (execution %s, step %s, %s) still running after the %g s "
                "grace period; its lease expires in at most %g s and another worker takes it up, as "
                "after a crash",
                self.worker_id,
                job.job_id,
                job.execution_id,
                job.step,
                job.kind,
                self.grace_seconds,
                self.lease_seconds,
            )
        pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self.stop_event.set()
        try:  # wake the loop from its LISTEN wait
            self.queue.notify("stop")
        except Exception:
            log.exception("could not wake the worker loop; it stops after its poll timeout")

    def _count(self) -> int:
        """The slots in use: jobs in hand, less those parked while they wait for another execution."""
        with self._lock:
            return len(self._inflight) - len(self._parked)

    def _in_hand(self) -> int:
        with self._lock:
            return len(self._inflight)

    def can_park(self) -> bool:
        with self._lock:
            return len(self._parked) < MAX_PARKED

    @contextlib.contextmanager
    def waiting(self, job: Job) -> Iterator[None]:
        """`job` waits for another execution (an iterator item's sub-playbook, run through the queue):
        its slot is free meanwhile, so the child's own jobs can run on this worker too; the job keeps
        its thread and its lease (the heartbeat goes on)."""
        with self._lock:
            self._parked.add(job.job_id)
        self._wake_others()  # a slot is free: the loop may lease the next job now
        try:
            yield
        finally:
            with self._lock:
                self._parked.discard(job.job_id)

    def _heartbeat_loop(self) -> None:
        # Runs until the jobs in hand are finished, also after stop(): a stopping worker keeps its leases.
        while not self._finished.wait(self.lease_seconds / 3):
            with self._lock:
                ids = list(self._inflight)
            try:
                held = self.queue.heartbeat(self.worker_id, ids)
                for lost in set(ids) - held:
                    log.warning("worker %s lost the lease of job %s", self.worker_id, lost)
            except Exception:
                log.exception("heartbeat failed; retrying")

    # ---- one job -----------------------------------------------------------------------------------

    def _execute(self, job: Job) -> None:
        current = job
        try:
            while True:
                following = self.run_leased(current)
                with self._lock:
                    was_full = len(self._inflight) - len(self._parked) >= self.concurrency
                    self._inflight.pop(current.job_id, None)
                    if following is not None:  # the same slot goes on with the next step
                        self._inflight[following.job_id] = following
                if following is None:
                    break
                current = following
        except BaseException:
            with self._lock:
                self._inflight.pop(current.job_id, None)
            raise
        if was_full:
            # The loop stopped leasing while every slot was busy: wake it for the slot this job frees.
            # With a slot free it was leasing already, and any job queued since NOTIFYs.
            self._wake_others()

    def run_leased(self, job: Job) -> Job | None:
        """Run a job this worker holds, report it, and let the broker decide what comes next. Returns the
        next step of the execution when the broker leased it to this worker (its slot is this job's)."""
        ran = True
        try:
            # The workflow's events are enough for the state; a job that needs the items' events (a
            # retry, a redelivered chunk, a join) reads them itself (WorkerServices.log).
            events = workflow_log.read(self.store, job.execution_id)
            state = fold(events)
            if not state.finished:
                playbook = broker.playbook_of(self.store, state, events)
                _RUNNERS[job.kind](self, job, playbook, state, events)
        except ExecutionClosed:
            # Cancelled while this job ran: it stopped at its next event and the store refused what it
            # would have written after the end. Not a failure of the job: nothing to try again.
            log.info("job %s of ended execution %s stopped", job.job_id, job.execution_id)
        except Exception as exc:  # the store or a bug, not the playbook: the job is tried again later
            log.exception("job %s failed on worker %s", job.job_id, self.worker_id)
            self._give_back(job, exc)
            ran = False
        if job.kind == "chunk":  # a chunk's end settles its fan-out in the queue instead
            if ran:
                try:
                    self.queue.complete(job, self.worker_id)
                except Exception:  # its lease expires and the chunk is run again, skipping done items
                    log.exception("could not complete chunk job %s; its lease will expire", job.job_id)
            return None
        try:
            if not ran:
                broker.schedule(self.store, job.execution_id)
                return None
            # Completes the job and decides in one transaction; a stopping worker takes nothing new.
            return broker.schedule(
                self.store,
                job.execution_id,
                done=job,
                worker_id=self.worker_id,
                take=not self.stop_event.is_set(),
                lease=self.lease_seconds,
            )
        except Exception:  # the server's sweep schedules idle executions: nothing waits forever
            log.exception("scheduling after job %s failed", job.job_id)
            try:
                self.queue.complete(job, self.worker_id)
            except Exception:
                log.exception("could not complete job %s; its lease will expire", job.job_id)
            return None

    def _give_back(self, job: Job, exc: Exception) -> None:
        try:
            self.queue.fail(job, self.worker_id, f"{type(exc).__name__}: {exc}", delay=1.0)
        except Exception:
            log.exception("could not give job %s back; its lease will expire", job.job_id)
        if isinstance(exc, StoreError):
            # The event writer stops at its first failed write so that no event is silently lost; a
            # worker that cannot write events must not take more jobs. Exit non-zero: a supervisor
            # restarts it with a fresh connection, and the reaper hands its jobs on.
            self.failed = True
            self.stop()

    def _wake_others(self) -> None:
        try:
            self.queue.notify("slot")
        except Exception:
            log.exception("could not notify")


_RUNNERS = {"step": run_step_job, "chunk": run_chunk_job, "join": run_join_job, "deadline": run_deadline_job}
