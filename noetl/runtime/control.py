"""The control plane's entry points, shared by the server API and the CLI: start, cancel, look up.

An execution run by workers always names a catalog entry (path + version), so that every worker loads
exactly the playbook the execution was started with.
"""

from __future__ import annotations

import uuid
from typing import Any

from noetl.dsl import parse_playbook
from noetl.dsl.models import Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.retry import RetryRequest
from noetl.errors import InputError
from noetl.runtime.redact import Redactor
from noetl.runtime.workload import open_execution


def load_catalog_playbook(store: Any, path: str, version: int | None = None) -> tuple[Playbook, int]:
    entry = store.get_playbook(path, version)
    if entry is None:
        which = f"{path} version {version}" if version else path
        raise InputError(f"playbook {which} is not in the catalog; register it first (`noetl register FILE`)")
    return parse_playbook(entry.content, source=f"catalog:{entry.path}@{entry.version}"), entry.version


def start_execution(
    store: Any,
    path: str,
    parameters: dict[str, Any] | None = None,
    *,
    merge: bool = False,
    version: int | None = None,
    parent_execution_id: str | None = None,
    execution_id: str | None = None,
    parent_step: dict[str, Any] | None = None,
    called_by: dict[str, Any] | None = None,
    redactor: Redactor | None = None,
    depth: int = 0,
) -> str:
    """Append `execution_start` for a catalog playbook and enqueue its first steps; returns the id.

    A sub-playbook started by a step on a worker names that step (`parent_step`: step and run): when it
    ends, the broker queues the parent step's join. An item's or a workbook entry's child names its
    caller in `called_by` instead (step, index, job): that caller waits for it, and no join is queued.
    `redactor`: the parent's, so that the secrets it
    passes on stay masked in the child's log too; `depth`: how many parents the child has.
    """
    from noetl.runtime.broker import schedule

    playbook, version = load_catalog_playbook(store, path, version)
    execution_id = execution_id or str(uuid.uuid4())
    redactor = redactor or Redactor()
    extra: dict[str, Any] = {"path": path, "version": version, "source": playbook.source}
    if parent_step is not None:
        extra.update(parent_step=parent_step, depth=depth)
    if called_by is not None:  # an item's or a workbook entry's child: its caller waits for it itself
        extra.update(called_by=called_by, depth=depth)
    context = open_execution(
        playbook.workload,
        parameters or {},
        merge=merge,
        execution_id=execution_id,
        redactor=redactor,
        seal=lambda name, value: store.seal(execution_id, name, value),
        base=extra,
    ).context
    start = Event(
        execution_id=execution_id,
        event_type=T.EXECUTION_START,
        event_id=store.allocate_event_id(execution_id),
        created_at=_now(),
        node_name=playbook.name,
        node_id=playbook.path,
        node_type="playbook",
        parent_execution_id=parent_execution_id,
        context=context,
    )
    store.append([redactor.event(start)])
    store.flush()
    schedule(store, execution_id)
    return execution_id


def playbook_of(store: Any, events: list[Event], file: str | None = None) -> Playbook:
    """The playbook an execution ran: `file` when given, else its catalog version, else the file its
    start names. For a retry, which must run the step as it was written."""
    from pathlib import Path

    from noetl.dsl import load_playbook

    if file:
        return load_playbook(file)
    context = (events[0].context or {}) if events else {}
    if context.get("version") is not None:
        return load_catalog_playbook(store, str(context.get("path")), int(context["version"]))[0]
    source = str(context.get("source") or "")
    if source.startswith("catalog:") and "@" in source:
        path, _, version = source.removeprefix("catalog:").rpartition("@")
        return load_catalog_playbook(store, path, int(version))[0]
    if source and Path(source).is_file():
        return load_playbook(source)
    raise InputError(
        f"the playbook of execution {events[0].execution_id if events else '?'} is not at hand "
        f"(its file {source or '(none)'} is gone); pass it with --playbook FILE"
    )


def retry_execution(store: Any, execution_id: str, request: RetryRequest) -> dict[str, Any]:
    """Workers: append `execution_retry` and queue the retried step; the broker and workers do the rest.

    Only a catalog execution can run on workers (they load the playbook by path and version); the
    retried step's job keeps the items done before (engine.items) as any job of the step would.
    """
    from noetl.runtime.broker import reopen

    return reopen(store, execution_id, request)


def cancel_execution(store: Any, execution_id: str, reason: str = "cancelled by request") -> bool:
    """Fail an unfinished execution and drop its queued jobs; False when it had already finished."""
    from noetl.runtime.broker import cancel

    return cancel(store, execution_id, reason)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
