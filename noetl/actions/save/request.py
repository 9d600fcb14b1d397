"""A save, rendered and ready for a storage writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noetl.dsl.models import SaveSpec
from noetl.store.ports import CredentialRecord


@dataclass(frozen=True)
class SaveRequest:
    spec: SaveSpec
    args: Any  # the row(s): column -> value, rendered; a list of such mappings writes several rows
    table: str | None
    statement: str | None
    options: dict[str, Any] = field(default_factory=dict)
    credential: CredentialRecord | None = None
    this: Any = None  # the result being saved

    def rows(self) -> list[dict[str, Any]]:
        """The rows to write; a save without args writes the result itself as one row."""
        value = self.args if self.args is not None else self.this
        if isinstance(value, list):
            return [r if isinstance(r, dict) else {"value": r} for r in value]
        if isinstance(value, dict):
            return [value]
        return [{"value": value}]
