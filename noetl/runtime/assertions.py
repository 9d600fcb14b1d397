"""`assert: {expects, returns}`: inputs that must be present before an action runs, result paths after.

Enforced the same way on steps, workbook entries and iterator tasks (NoETL 0.x documented these and
enforced none). A miss fails that step or item, is not retried (the same inputs give the same miss), and
says which path missed and what is there instead.
"""

from __future__ import annotations

from typing import Any

from noetl.dsl.models import AssertSpec
from noetl.errors import ActionError


def check_expects(spec: AssertSpec | None, inputs: Any, where: str) -> None:
    if spec is None or not spec.expects:
        return
    present = inputs if isinstance(inputs, dict) else {}
    missing = [name for name in spec.expects if name not in present]
    if missing:
        have = ", ".join(sorted(map(str, present))) or "nothing"
        raise ActionError(
            f"{where}: assert.expects: input(s) {', '.join(missing)} missing (the inputs have {have}); "
            "pass them in `data`",
            non_retryable=True,
        )


def check_returns(spec: AssertSpec | None, result: Any, where: str) -> None:
    if spec is None:
        return
    for path in spec.returns:
        value, walked = result, list[str]()
        for part in path.split("."):
            found, value_next = _step_into(value, part)
            if not found:
                at = f"`{'.'.join(walked)}`" if walked else "the result"
                raise ActionError(
                    f"{where}: assert.returns: the result has no {path!r}: {at} has no {part!r} "
                    f"({_describe(value)})",
                    result=result,
                    non_retryable=True,
                )
            value = value_next
            walked.append(part)


def _step_into(value: Any, part: str) -> tuple[bool, Any]:
    if isinstance(value, dict) and part in value:
        return True, value[part]
    if isinstance(value, list) and part.isdigit() and int(part) < len(value):
        return True, value[int(part)]
    return False, None


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:20])
        return f"its fields are {keys}" if keys else "it is an empty mapping"
    if isinstance(value, list):
        return f"it is a list of {len(value)} item(s)"
    text = repr(value)
    return f"it is {text[:60] + '...' if len(text) > 60 else text}"
