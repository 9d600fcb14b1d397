"""The rendering guarantee, checked where values leave the engine: no template text written in a playbook
ever reaches an action (a database, an HTTP server, a file), a save, or an event's result.

`LeakGuard` wraps the action and storage registries of a real LocalRunner: every action call and every
save is inspected just before the real action runs (nothing is mocked; the action still runs), and the
values it is handed are searched for any template string of the playbook being run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

from noetl.actions.registry import Registry, default_actions, default_storages
from noetl.dsl.models import Playbook
from noetl.dsl.render import is_template

# Config keys that are not templates or are rendered by the action itself, per item: `code` is Python,
# `task` the iterator's nested task (checked when it runs), `where`/`order_by` the iterator's filters.
_NOT_SENT = frozenset({"code", "task", "where", "order_by"})


def playbook_templates(playbook: Playbook) -> set[str]:
    """Every template string written in the playbook (workload, steps, workbook), except Python code."""
    found: set[str] = set()

    def walk(value: Any, key: str | None = None) -> None:
        if key in _NOT_SENT and key != "task":
            return
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f.name)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif is_template(value):
            found.add(value)

    walk(playbook.workload)
    walk(list(playbook.steps.values()))
    walk(list(playbook.workbook.values()))
    return found


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


class LeakGuard:
    """Records every playbook template string found in a value handed to an action or a save."""

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.checked = 0

    def _templates(self, ctx: Any) -> set[str]:
        playbook = getattr(ctx.services, "playbook", None)
        return playbook_templates(playbook) if isinstance(playbook, Playbook) else set()

    def check(self, where: str, value: Any, templates: set[str]) -> None:
        self.checked += 1
        for text in strings(value):
            for template in templates:
                if template in text:
                    self.leaks.append(f"{where}: {template!r} reached it unrendered in {text[:200]!r}")

    def _action(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(ctx: Any) -> Any:
            templates = self._templates(ctx)
            sent = {k: v for k, v in ctx.config.items() if k not in _NOT_SENT}
            self.check(f"action {name} of step {ctx.step!r}", [ctx.inputs, sent], templates)
            return real(ctx)

        return guarded

    def _storage(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(request: Any, ctx: Any) -> Any:
            templates = self._templates(ctx)
            options = {k: v for k, v in request.options.items() if k != "code"}
            sent = [request.args, request.table, request.statement, options]
            self.check(f"{name} save of step {ctx.step!r}", sent, templates)
            return real(request, ctx)

        return guarded

    def actions(self) -> Registry:
        base, out = default_actions(), Registry()
        for name in base.names():
            out.register(name, self._action(name, base.get(name)))
        return out

    def storages(self) -> Registry:
        base, out = default_storages(), Registry()
        for name in base.names():
            out.register(name, self._storage(name, base.get(name)))
        return out


def event_leaks(events: list[Any], templates: set[str]) -> list[str]:
    """Template strings of the playbook inside what events say was used or produced (not in errors,
    which may quote the template that failed)."""
    found = []
    for e in events:
        shown = json.dumps([e.result, e.context, e.current_item], default=str)
        for template in templates:
            if json.dumps(template)[1:-1] in shown:
                found.append(f"event {e.event_id} {e.event_type} of {e.node_name}: {template!r}")
    return found
