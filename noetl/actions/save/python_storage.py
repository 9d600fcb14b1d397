"""`storage: python`: hand the rows to the save's own `code` (`def main(...)`)."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.python_action import _compile_main, call_main
from noetl.actions.save.request import SaveRequest
from noetl.errors import SaveError, SaveFailed


def write(request: SaveRequest, ctx: ActionContext) -> int:
    code = request.options.get("code")
    if not code:
        raise SaveError("a python save needs `code` defining `def main(...)`")
    main = _compile_main(str(code))
    inputs: dict[str, Any] = dict(request.args) if isinstance(request.args, dict) else {"data": request.args}
    inputs.setdefault("this", request.this)
    try:
        returned = call_main(main, inputs, ctx.step)  # a BaseException from the code arrives as ActionError
    except Exception as exc:
        raise SaveFailed(f"python save raised {type(exc).__name__}: {exc}") from None
    if isinstance(returned, int) and not isinstance(returned, bool):
        return returned
    return len(request.rows())
