"""The secrets action: the value of a credential or secret. The sink masks it in every event."""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.secret_providers import GOOGLE, google_secret


def run(ctx: ActionContext) -> Any:
    name = str(ctx.config["name"])
    provider = ctx.config.get("provider")
    data: dict[str, Any]
    if isinstance(provider, str) and provider in GOOGLE:
        data = {"value": google_secret(ctx, name)}
    else:
        spec: Any = name if provider in (None, "credential", "noetl") else {"source": provider, "name": name}
        data = ctx.services.credentials.resolve(spec, f"step '{ctx.step}'").data
    ctx.services.sink.redactor.add(data)  # type: ignore[attr-defined]
    # Masked in every event; the step runner seals the real value beside the log for the steps after it.
    return data["value"] if set(data) == {"value"} else data
