"""The one planner: (playbook, state) -> what to run next, or how the execution ends. Pure.

Join rule: a triggered step waits while any other active step (running, waiting to retry, or itself
triggered) can still reach it through `next`. So an `end` reached by two branches runs once, after both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.dsl.models import Playbook
from noetl.engine.state import COMPLETED, FAILED, RETRY_WAIT, RUNNING, ExecutionState


@dataclass(frozen=True)
class RunStep:
    step: str
    attempt: int = 1
    run: int = 1  # which run of the step (a step in a cycle runs more than once)
    not_before: float | None = None  # epoch seconds; set for a retry with a delay


@dataclass(frozen=True)
class Finish:
    status: str  # state.COMPLETED or state.FAILED (lower case); the runner upper-cases it for events
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Plan:
    run: tuple[RunStep, ...] = ()
    finish: Finish | None = None


class Planner:
    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self._reach = {name: self._reachable_from(name) for name in playbook.steps}

    def _reachable_from(self, name: str) -> frozenset[str]:
        seen: set[str] = set()
        todo = list(self.playbook.successors(name))
        while todo:
            nxt = todo.pop()
            if nxt not in seen and nxt in self.playbook.steps:
                seen.add(nxt)
                todo.extend(self.playbook.successors(nxt))
        return frozenset(seen)

    def plan(self, state: ExecutionState) -> Plan:
        if state.finished:
            return Plan()
        running = {n for n, s in state.steps.items() if s.status == RUNNING}
        waiting = {n: s for n, s in state.steps.items() if s.status == RETRY_WAIT}
        if state.failed_step is not None:
            if running:
                return Plan()  # let what runs finish and be recorded; start nothing new
            name, error = state.failed_step, state.error or ""
            message = error if error.startswith(f"step '{name}'") else f"step '{name}' failed: {error}"
            return Plan(finish=Finish(FAILED, error=message))
        triggered = {n for n, payloads in state.triggers.items() if payloads and n not in running}
        commands = [RunStep(n, s.attempt, s.runs, s.retry_at) for n, s in sorted(waiting.items())]
        ready = self._ready(triggered, running | set(waiting))
        runaway = self._runaway(state, ready)
        if runaway is not None:
            if running or waiting:
                return Plan(run=tuple(commands))  # let what runs finish and be recorded first
            limit = self.playbook.steps[runaway].max_runs
            return Plan(
                finish=Finish(
                    FAILED,
                    error=f"step '{runaway}' has run {limit} times, its max_runs (reason max_runs): a cycle "
                    "through it has no way out; give it a `when` that leaves the cycle, or set a higher "
                    "`max_runs` on the step",
                )
            )
        commands += [RunStep(n, 1, state.step(n).runs + 1) for n in sorted(ready)]
        if commands or running:
            return Plan(run=tuple(commands))
        return Plan(finish=Finish(COMPLETED, result=final_result(state)))

    def _runaway(self, state: ExecutionState, ready: set[str]) -> str | None:
        """A step that would start one run more than its `max_runs` allows: a cycle with no way out."""
        return next((n for n in sorted(ready) if state.step(n).runs >= self.playbook.steps[n].max_runs), None)

    def _ready(self, triggered: set[str], active: set[str]) -> set[str]:
        blockers = active | triggered
        ready = {n for n in triggered if not any(n in self._reach[b] for b in blockers if b != n)}
        if not ready and triggered and not active:
            return triggered  # a cycle of triggered steps: nothing else can unblock them, run them
        return ready


def final_result(state: ExecutionState) -> Any:
    """The `end` step's result when it has one, else the last completed step's non-empty result."""
    end = state.steps.get("end")
    if end is not None and end.status == COMPLETED and end.result is not None:
        return end.result
    for name in reversed(state.completed_order):
        if state.steps[name].result is not None:
            return state.steps[name].result
    return None
