"""NoETL: run noetl.io/v1 playbooks with an explicit, durable lifecycle event log."""

from noetl.dsl import Playbook, load_playbook, parse_playbook
from noetl.engine.events import Event, EventType, Status
from noetl.errors import NoetlError, PlaybookError
from noetl.runtime.local import LocalRunner, Outcome
from noetl.store import open_store

__version__ = "0.1.0"

__all__ = [
    "Event",
    "EventType",
    "LocalRunner",
    "NoetlError",
    "Outcome",
    "Playbook",
    "PlaybookError",
    "Status",
    "__version__",
    "load_playbook",
    "open_store",
    "parse_playbook",
]
