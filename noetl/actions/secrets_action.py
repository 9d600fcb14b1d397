"""The secrets action: the value of a credential or secret. The sink masks it in every event."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext


def run(ctx: ActionContext) -> Any:
    name = str(ctx.config["name"])
    provider = ctx.config.get("provider")
    spec: Any = name if provider in (None, "credential", "noetl") else {"source": provider, "name": name}
    record = ctx.services.credentials.resolve(spec, f"step '{ctx.step}'")
    ctx.services.sink.redactor.add(record.data)  # type: ignore[attr-defined]
    data = record.data
    value = data["value"] if set(data) == {"value"} else data
    ctx.services.secret_results[ctx.step] = value  # type: ignore[attr-defined]
    return value
