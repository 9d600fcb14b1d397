"""The playbook language: load, validate, normalize and render. Pure: no I/O beyond reading the file."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from noetl.dsl.loader import build_playbook, load_playbook, parse_playbook
    from noetl.dsl.models import Playbook, RetryPolicy, SaveSpec, Step, Task, Transition

# Imported on first use: the engine and the store need the models only, and a command that reads the
# store (`noetl status`) should not pay for YAML and Jinja2 (docs/performance.md, "Start-up").
_WHERE = {
    "Playbook": "noetl.dsl.models",
    "RetryPolicy": "noetl.dsl.models",
    "SaveSpec": "noetl.dsl.models",
    "Step": "noetl.dsl.models",
    "Task": "noetl.dsl.models",
    "Transition": "noetl.dsl.models",
    "build_playbook": "noetl.dsl.loader",
    "load_playbook": "noetl.dsl.loader",
    "parse_playbook": "noetl.dsl.loader",
}

__all__ = [
    "Playbook",
    "RetryPolicy",
    "SaveSpec",
    "Step",
    "Task",
    "Transition",
    "build_playbook",
    "load_playbook",
    "parse_playbook",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:  # `from noetl.dsl import keys` then imports the submodule
        raise AttributeError(f"module 'noetl.dsl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
