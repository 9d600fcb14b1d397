"""An attempt that no process will finish: one rule for both modes.

A worker whose lease expired, and a `noetl run` that was killed, leave a step's attempt with
`action_started` and no end. Whoever goes on (the broker that reaps the lease, `noetl run --resume`)
records the attempt as abandoned with the same events: `action_error` saying why, then `action_retry`
to the next attempt of the same run, which skips the items the run already finished
(engine.items). Past `give_up_after` abandoned attempts the step fails instead, so a step that kills
every process that runs it cannot go on killing them. Pure: it says what to write, the caller writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from noetl.engine.events import Event
from noetl.engine.events import EventType as T


@dataclass(frozen=True)
class PlannedEvent:
    """An event to append: its type and the fields of engine.events.Event to set."""

    event_type: str
    fields: dict[str, Any] = field(default_factory=dict)


def abandoned_attempt(
    step: str,
    node_type: str | None,
    attempt: int,
    message: str,
    meta: dict[str, Any],
    give_up_after: int | None = None,
) -> list[PlannedEvent]:
    """The events that close attempt `attempt` of `step`, abandoned for `message` (`meta.reason` says
    which kind), and open the next one, or fail the step once `give_up_after` attempts were abandoned."""
    base = {"node_name": step, "node_id": step, "node_type": node_type, "attempt": attempt}
    events = [PlannedEvent(T.ACTION_ERROR, {**base, "error": message, "meta": dict(meta), "duration": 0.0})]
    if give_up_after is not None and attempt >= give_up_after:
        failed = f"{message}; {attempt} attempts were abandoned, so the step fails"
        events.append(
            PlannedEvent(T.STEP_FAILED, {**base, "error": failed, "meta": dict(meta), "duration": 0.0})
        )
    else:
        retry = {**meta, "delay": 0.0, "next_attempt": attempt + 1, "retry_at": None}
        events.append(PlannedEvent(T.ACTION_RETRY, {**base, "error": message, "meta": retry}))
    return events


def started_node_type(events: Iterable[Event], step: str) -> str | None:
    """The node type `step_started` gave the step (the abandoned attempt's events repeat it)."""
    return next((e.node_type for e in events if e.node_name == step and e.event_type == T.STEP_STARTED), None)
