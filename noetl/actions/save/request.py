"""A save, rendered and ready for a storage writer; several items' saves written as one batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noetl.dsl.models import SaveSpec
from noetl.store.ports import CredentialRecord


@dataclass(slots=True)  # (not frozen: one per item of a per-item save, and frozen takes 3x as long to build)
class SaveRequest:
    spec: SaveSpec
    args: Any  # the row(s): column -> value, rendered; a list of such mappings writes several rows
    table: str | None
    statement: str | None
    options: dict[str, Any] = field(default_factory=dict)
    credential: CredentialRecord | None = None
    this: Any = None  # the result being saved
    # A batch (`save: {batch: N}` of an iterator's items): the items' own requests, all for one target,
    # to be written in one transaction. The fields above are then the first item's, and `args` every
    # item's rows in order, so that a writer that knows nothing of batches still sees all the rows.
    batch: tuple[SaveRequest, ...] = ()

    def rows(self) -> list[dict[str, Any]]:
        """The rows to write; a save without args writes the result itself as one row."""
        value = self.args if self.args is not None else self.this
        if isinstance(value, list):
            return [r if isinstance(r, dict) else {"value": r} for r in value]
        if isinstance(value, dict):
            return [value]
        return [{"value": value}]


def batch_of(requests: list[SaveRequest]) -> SaveRequest:
    """One request for the items' saves of a batch (all for the same target), in item order."""
    first = requests[0]
    return SaveRequest(
        spec=first.spec,
        args=[row for request in requests for row in request.rows()],
        table=first.table,
        statement=first.statement,
        options=first.options,
        credential=first.credential,
        batch=tuple(requests),
    )
