"""The explicit registry of action types and save storages: a dict, no import-time magic."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from noetl.actions.base import Action, ActionContext
from noetl.dsl.drivers import extra_of, install_hint
from noetl.dsl.vocabulary import ACTIONS
from noetl.errors import ActionError


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        if name in self._entries:
            raise ValueError(f"{name!r} is registered twice")
        self._entries[name] = fn

    def register_lazy(self, name: str, module: str, attr: str, what: str) -> None:
        """`module.attr`, imported on its first call (see _lazy); from then on the function itself."""

        def imported(fn: Callable[..., Any]) -> None:
            self._entries[name] = fn

        self.register(name, _lazy(module, attr, what, on_load=imported))

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"nothing registered as {name!r}; known: {', '.join(sorted(self._entries))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)


def _lazy(
    module: str,
    attr: str = "run",
    what: str = "this step",
    on_load: Callable[[Callable[..., Any]], None] | None = None,
) -> Callable[..., Any]:
    """Import the module on first use, so that `noetl run` of a python-only playbook needs no driver.
    `on_load` is given the function once imported: the registry then hands out the function itself,
    without this wrapper around each call (one per item).

    A driver that is not installed fails the step at once (no retry can help), naming the extra."""
    loaded: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not loaded:
            try:
                loaded.append(getattr(importlib.import_module(module), attr))
            except ModuleNotFoundError as exc:
                raise _missing(exc, what, args) from None
            if on_load is not None:
                on_load(loaded[0])
        return loaded[0](*args, **kwargs)

    call.__name__ = f"{module}.{attr}"
    return call


def _missing(exc: ModuleNotFoundError, what: str, args: tuple[Any, ...]) -> Exception:
    extra = extra_of(exc.name)
    if extra is None:  # not a driver of an extra: a bug or a broken install, shown as it is
        return exc
    step = next((a.step for a in args if isinstance(getattr(a, "step", None), str)), None)
    where = f"step '{step}': " if step else ""
    return ActionError(
        f"{where}{what} needs the {exc.name} module, which is not installed here; "
        f"install it with `{install_hint(extra)}`",
        non_retryable=True,
        error_type="MissingExtra",
    )


def default_actions() -> Registry:
    registry = Registry()
    for name, spec in sorted(ACTIONS.items()):  # noetl.dsl.vocabulary: the one list of action types
        registry.register_lazy(name, spec.module, "run", f"a {name} step")
    return registry


def default_storages() -> Registry:
    """Save writers: write(request: SaveRequest, ctx) -> rows written."""
    registry = Registry()
    for name in ("event", "postgres", "duckdb", "http", "python"):
        registry.register_lazy(name, f"noetl.actions.save.{name}_storage", "write", f"a save to {name}")
    return registry


def run_action(registry: Registry, ctx: ActionContext) -> Any:
    kind = ctx.task.type or ""
    action: Action = registry.get(kind)
    return action(ctx)
