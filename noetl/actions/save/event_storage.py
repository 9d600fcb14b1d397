"""`storage: event`: the rows are recorded in the save_completed event itself; nothing else is written."""

from __future__ import annotations

from noetl.actions.base import ActionContext
from noetl.actions.save.request import SaveRequest


def write(request: SaveRequest, ctx: ActionContext) -> int:
    return len(request.rows())
