"""NoETL: run noetl.io/v1 playbooks with an explicit, durable lifecycle event log."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from noetl.dsl import Playbook, load_playbook, parse_playbook
    from noetl.engine.events import Event, EventType, Status
    from noetl.errors import NoetlError, PlaybookError
    from noetl.runtime.local import LocalRunner, Outcome
    from noetl.store import open_store

__version__ = "0.1.0"

# The public API, imported on first use: `noetl --help` and `noetl validate` import the package too, and
# must not pay for the runtime and the store (docs/performance.md, "Start-up").
_WHERE = {
    "Event": "noetl.engine.events",
    "EventType": "noetl.engine.events",
    "LocalRunner": "noetl.runtime.local",
    "NoetlError": "noetl.errors",
    "Outcome": "noetl.runtime.local",
    "Playbook": "noetl.dsl",
    "PlaybookError": "noetl.errors",
    "Status": "noetl.engine.events",
    "load_playbook": "noetl.dsl",
    "open_store": "noetl.store",
    "parse_playbook": "noetl.dsl",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'noetl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
