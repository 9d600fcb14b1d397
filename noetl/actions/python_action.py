"""The python action: run `main` from the step's code with the step's inputs."""

from __future__ import annotations

import contextvars
import datetime
import inspect
import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from functools import lru_cache, partial
from types import MappingProxyType
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.deadlines import Interrupts, interrupt_thread
from noetl.dsl.render import plain
from noetl.errors import ActionError

_WHOLE_INPUT_NAMES = frozenset({"input_data", "data", "inputs", "input", "payload", "context"})
_SCOPE: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "noetl_step_scope", default=MappingProxyType({})
)


class _StepContext(Mapping[str, Any]):
    """The global `context` of step code (NoETL 0.x): the step's template scope, read-only.

    One object shared by every compiled `main`; it reads the scope of the call running in this thread
    (a context variable), so concurrent items each see their own. Values are plain copies: changing
    one cannot change a result the engine holds.
    """

    def __getitem__(self, name: str) -> Any:
        scope = _SCOPE.get()
        if name.startswith("_") or name not in scope:
            raise KeyError(name)
        return plain(scope[name])

    def __iter__(self) -> Iterator[str]:
        return (k for k in _SCOPE.get() if not k.startswith("_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"context({', '.join(sorted(self))})"


_CONTEXT = _StepContext()
# Names NoETL 0.x step code used without importing them; `datetime` is the module, as `import datetime`.
_GLOBALS = {"context": _CONTEXT, "os": os, "json": json, "datetime": datetime, "uuid": uuid}


@lru_cache(maxsize=512)
def _compile_main(code: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "noetl_step", **_GLOBALS}
    exec(compile(code, "<step code>", "exec"), namespace)  # running the user's step is the point
    main = namespace.get("main")
    if not callable(main):
        raise ActionError("`code` defines no function `main`", non_retryable=True)
    return main


@lru_cache(maxsize=512)
def _shape(main: Any) -> tuple[str, tuple[str, ...], frozenset[str], frozenset[str]]:
    """How to call main: ('none'|'kwargs'|'named', parameter names, required names, all names as a
    set). Cached: per item."""
    params = inspect.signature(main).parameters
    if not params:
        return "none", (), frozenset(), frozenset()
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return "kwargs", (), frozenset(), frozenset()
    required = frozenset(n for n, p in params.items() if p.default is p.empty)
    return "named", tuple(params), required, frozenset(params)


def call_main(main: Any, inputs: Any, step: str) -> Any:
    """main(), main(input_data), main(**inputs) and named parameters are all accepted.

    `sys.exit()`, `raise SystemExit`, a `KeyboardInterrupt` or any other BaseException raised by the
    code fails the step with its message: user code never ends the engine's process or thread.
    """
    # One function, not a wrapper around the call: it runs once per item of an iterator.
    data = inputs if isinstance(inputs, dict) else ({} if inputs is None else {"input": inputs})
    kind, names, required, every = _shape(main)
    try:
        if kind == "none":
            return main()
        if kind == "kwargs" or data.keys() == every:  # (the inputs are exactly the parameters: per item)
            return main(**data)
        if len(names) == 1 and names[0] not in data and names[0] in _WHOLE_INPUT_NAMES:
            return main(data)
        missing = [n for n in names if n in required and n not in data]
        if missing:
            raise ActionError(
                f"step '{step}': main() needs {', '.join(missing)} but the inputs have "
                f"{', '.join(sorted(data)) or 'nothing'}; add them under `data:`",
                non_retryable=True,
            )
        return main(**{n: data[n] for n in names if n in data})
    except Exception:
        raise
    except BaseException as exc:
        what = f"{type(exc).__name__}({exc})" if str(exc) else type(exc).__name__
        raise ActionError(
            f"step '{step}': the code raised {what}, which would stop the engine; it fails this step "
            "instead (return a value, or raise an Exception, to end main)",
            non_retryable=True,
            error_type=type(exc).__name__,
        ) from None


def run(ctx: ActionContext) -> Any:
    return run_code(ctx.config, ctx.task.config, ctx.inputs, ctx.scope, ctx.step, ctx.interrupts)


def run_code(
    config: Mapping[str, Any],
    written: Mapping[str, Any],
    inputs: Any,
    scope: Mapping[str, Any],
    step: str,
    interrupts: Interrupts | None,
) -> Any:
    """What `run` does, from the parts of its context it reads: the rendered `config` (else the task's
    `written` config) for the code, the inputs, the scope its `context` global reads, the step's name
    and the attempt's interrupts. An iterator's python task calls this directly once per item
    (runtime.services), without building a context for it."""
    code = config.get("code") or written.get("code")
    main = _compile_main(str(code))
    token = _SCOPE.set(scope)
    # With a timeout, the code is interrupted where it runs when the attempt runs out (best effort).
    hook = interrupts.add(partial(interrupt_thread, threading.get_ident())) if interrupts else None
    try:
        result = call_main(main, inputs, step)
    finally:
        if hook is not None and interrupts is not None:
            interrupts.remove(hook)
        _SCOPE.reset(token)
    if isinstance(result, dict) and str(result.get("status", "")).lower() == "error":
        message = result.get("message") or result.get("error") or "main returned status error"
        raise ActionError(f"step '{step}': {message}", result=result)
    return result
