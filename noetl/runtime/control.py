"""The control plane's entry points, shared by the server API and the CLI: start, cancel, look up.

An execution run by workers names a catalog entry (path + version), so that every worker loads exactly
the playbook the execution was started with. The one exception is a sub-playbook that a step on a worker
found as a file (an absolute `path`): only that host can read the file, so its text is sealed beside the
child's log (`execution_start.context.playbook_sealed`) and every worker reads it from there.
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
from noetl.runtime.sink import control_sink
from noetl.runtime.workload import open_execution


def load_catalog_playbook(store: Any, path: str, version: int | None = None) -> tuple[Playbook, int]:
    entry = store.get_playbook(path, version)
    if entry is None:
        which = f"{path} version {version}" if version else path
        raise InputError(f"playbook {which} is not in the catalog; register it first (`noetl register FILE`)")
    return parse_playbook(entry.content, source=f"catalog:{entry.path}@{entry.version}"), entry.version


PLAYBOOK_SEALED = "playbook"  # the name of the sealed value that holds a file child's text


def queue_drives(context: dict[str, Any]) -> bool:
    """Whether the queue drives the execution that an `execution_start` context opens: a catalog
    playbook, or a file child whose text is sealed beside its log. Otherwise (`noetl run`, a child run
    inside a worker's job) the process that started it drives it."""
    return context.get("version") is not None or bool(context.get("playbook_sealed"))


def sealed_playbook(store: Any, execution_id: str, context: dict[str, Any]) -> Playbook:
    """The playbook of a file child, from the text sealed when it started."""
    text = store.unseal(execution_id, PLAYBOOK_SEALED)
    if not isinstance(text, str):
        raise InputError(f"execution {execution_id} names a sealed playbook, but none is kept beside its log")
    return parse_playbook(text, source=str(context.get("source") or "<playbook>"))


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
    file: tuple[str, str] | None = None,
) -> str:
    """Append `execution_start` for a catalog playbook and enqueue its first steps; returns the id.

    `file`: (file name, text) of a child that a step found as a file: its text is sealed beside the
    child's log instead of read from the catalog (CredentialError when the store has no key to seal with).

    A sub-playbook started by a step on a worker names that step (`parent_step`: step and run): when it
    ends, the broker queues the parent step's join. An item's or a workbook entry's child names its
    caller in `called_by` instead (step, index, job): that caller waits for it, and no join is queued.
    `redactor`: the parent's, so that the secrets it
    passes on stay masked in the child's log too; `depth`: how many parents the child has.
    """
    from noetl.runtime.broker import schedule

    execution_id = execution_id or str(uuid.uuid4())
    extra: dict[str, Any]
    if file is not None:
        playbook = parse_playbook(file[1], source=file[0])
        store.seal(execution_id, PLAYBOOK_SEALED, file[1])  # before the start: a worker may read it at once
        extra = {"path": path, "version": None, "source": file[0], "playbook_sealed": True}
    else:
        playbook, version = load_catalog_playbook(store, path, version)
        extra = {"path": path, "version": version, "source": playbook.source}
    redactor = redactor or Redactor()
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
    control_sink(store, execution_id, parent_execution_id, redactor=redactor).new(
        T.EXECUTION_START,
        node_name=playbook.name,
        node_id=playbook.path,
        node_type="playbook",
        context=context,
    )
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
    if context.get("playbook_sealed"):
        return sealed_playbook(store, events[0].execution_id, context)
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
