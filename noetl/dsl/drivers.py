"""Which optional extra each kind of step needs: pure data and a walk over a playbook's tasks.

`noetl validate` asks whether each driver named here can be imported on this machine, and warns about the
steps whose driver is missing (the same playbook may run elsewhere, on a worker that has it); the action
registry names the extra when a step's driver fails to import at run time. Nothing here imports a driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noetl.dsl.models import Playbook, Task


@dataclass(frozen=True)
class Driver:
    module: str  # what is imported
    extra: str  # pip install 'noetl[extra]'
    label: str  # for a person


DUCKDB = Driver("duckdb", "duckdb", "DuckDB")
PSYCOPG = Driver("psycopg", "postgres", "the psycopg driver")
SNOWFLAKE = Driver("snowflake.connector", "snowflake", "the Snowflake connector")
GOOGLE_SECRETS = Driver("google.cloud.secretmanager", "gcp", "the Google Secret Manager client")

# A step's driver is its action's (noetl.dsl.vocabulary); a save's is its storage's.
SAVE_DRIVERS = {"duckdb": DUCKDB, "postgres": PSYCOPG}

# The top-level module a ModuleNotFoundError names -> the extra that installs it.
MODULE_EXTRAS = {
    "fastapi": "server",
    "uvicorn": "server",
    "starlette": "server",
    "prometheus_client": "server",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "psycopg_binary": "postgres",
    "orjson": "postgres",
    "duckdb": "duckdb",
    "snowflake": "snowflake",
    "google": "gcp",
}


def extra_of(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name), or None for a module no extra provides."""
    return MODULE_EXTRAS.get((module or "").split(".")[0])


def install_hint(extra: str) -> str:
    return f"pip install 'noetl[{extra}]'"


@dataclass(frozen=True)
class Need:
    """A step (or workbook entry) whose task needs a driver."""

    where: str  # "step 'load'" or "workbook entry 'load'"
    step: str | None
    line: int | None
    what: str  # "a duckdb step", "a save to postgres"
    driver: Driver


def needs(pb: Playbook) -> Iterator[Need]:
    """Every driver the playbook's steps and workbook entries need, in file order (nested tasks too)."""
    for step in pb.steps.values():
        yield from _task(step.task, f"step '{step.name}'", step.name, step.line)
    for name, task in pb.workbook.items():
        yield from _task(task, f"workbook entry '{name}'", None, task.line)


def _task(task: Task, where: str, step: str | None, line: int | None) -> Iterator[Need]:
    from noetl.dsl.vocabulary import ACTIONS  # here: the vocabulary names this module's drivers

    line = task.line or line
    kind = task.type or ""
    action = ACTIONS.get(kind)
    if action is not None and action.driver is not None:
        yield Need(where, step, line, f"a {kind} step", action.driver)
    if kind == "secrets" and str(task.config.get("provider") or "") == "google":
        yield Need(where, step, line, "`provider: google`", GOOGLE_SECRETS)
    if task.save is not None and task.save.storage in SAVE_DRIVERS:
        yield Need(
            where,
            step,
            task.save.line or line,
            f"a save to {task.save.storage}",
            SAVE_DRIVERS[task.save.storage],
        )
    if task.iterator is not None:
        yield from _task(task.iterator.task, where, step, line)
