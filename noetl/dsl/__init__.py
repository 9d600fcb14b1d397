"""The playbook language: load, validate, normalize and render. Pure: no I/O beyond reading the file."""

from noetl.dsl.loader import build_playbook, load_playbook, parse_playbook
from noetl.dsl.models import Playbook, RetryPolicy, SaveSpec, Step, Task, Transition

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
