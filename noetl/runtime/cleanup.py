"""What an execution leaves on this host that goes when it ends: its DuckDB file.

Called where an execution's end (execution_complete or execution_failed) is written: by the local
runner, and on workers by the broker. An interrupted execution writes no end, so a resume finds its
file as it was. An execution whose iterator's last run has failed or skipped items keeps its file too:
`noetl retry` runs those items again in the same execution, and they may read what the steps before
them wrote; the file goes when a run ends without such items.
"""

from __future__ import annotations

import logging
from typing import Any

from noetl.actions import duckdb_files
from noetl.engine.events import EventType as T
from noetl.store.views_sql import EventFilter

log = logging.getLogger("noetl.cleanup")
_ITERATOR_ENDS = (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED)


def after_end(store: Any, execution_id: str) -> None:
    """Remove the ended execution's DuckDB file, unless items are left to retry; never raises (the
    execution has ended whatever happens to its files)."""
    try:
        if duckdb_files.has_database(execution_id) and not _items_to_retry(store, execution_id):
            duckdb_files.remove_database(execution_id)
    except Exception:
        log.warning("removing the DuckDB file of execution %s failed", execution_id, exc_info=True)


def _items_to_retry(store: Any, execution_id: str) -> bool:
    latest: dict[str, Any] = {}  # each iterator step's last run
    for e in store.query_events(execution_id, EventFilter(types=_ITERATOR_ENDS), limit=1_000_000):
        latest[e.node_name or ""] = e
    return any((e.meta or {}).get("failed") or (e.meta or {}).get("skipped") for e in latest.values())
