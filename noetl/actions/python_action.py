"""The python action: run `main` from the step's code with the step's inputs."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

from noetl.actions.base import ActionContext
from noetl.errors import ActionError

_WHOLE_INPUT_NAMES = frozenset({"input_data", "data", "inputs", "input", "payload", "context"})


@lru_cache(maxsize=512)
def _compile_main(code: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "noetl_step"}
    exec(compile(code, "<step code>", "exec"), namespace)  # running the user's step is the point
    main = namespace.get("main")
    if not callable(main):
        raise ActionError("`code` defines no function `main`", non_retryable=True)
    return main


@lru_cache(maxsize=512)
def _shape(main: Any) -> tuple[str, tuple[str, ...], frozenset[str]]:
    """How to call main: ('none'|'kwargs'|'named', parameter names, required names). Cached: per item."""
    params = inspect.signature(main).parameters
    if not params:
        return "none", (), frozenset()
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return "kwargs", (), frozenset()
    required = frozenset(n for n, p in params.items() if p.default is p.empty)
    return "named", tuple(params), required


def call_main(main: Any, inputs: Any, step: str) -> Any:
    """main(), main(input_data), main(**inputs) and named parameters are all accepted."""
    data = inputs if isinstance(inputs, dict) else ({} if inputs is None else {"input": inputs})
    kind, names, required = _shape(main)
    if kind == "none":
        return main()
    if kind == "kwargs":
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


def run(ctx: ActionContext) -> Any:
    code = ctx.config.get("code") or ctx.task.config.get("code")
    main = _compile_main(str(code))
    result = call_main(main, ctx.inputs, ctx.step)
    if isinstance(result, dict) and str(result.get("status", "")).lower() == "error":
        message = result.get("message") or result.get("error") or "main returned status error"
        raise ActionError(f"step '{ctx.step}': {message}", result=result)
    return result
