"""The engine: events, state folded from them, the planner and the retry policy. Pure: no I/O, no clock."""

from noetl.engine.events import Event, EventType, Status
from noetl.engine.planner import Finish, Plan, Planner, RunStep
from noetl.engine.state import ExecutionState, fold

__all__ = ["Event", "EventType", "ExecutionState", "Finish", "Plan", "Planner", "RunStep", "Status", "fold"]
