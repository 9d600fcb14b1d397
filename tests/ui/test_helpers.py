"""The helpers the browser tests share, without a browser."""

from __future__ import annotations

from noetl.store import open_store
from tests.conftest import EXAMPLES
from tests.ui.helpers import run_local


def test_run_local_returns_the_id_of_the_stored_execution(ui_db: str) -> None:
    execution_id = run_local(EXAMPLES / "hello" / "hello_world.yaml", ui_db, {"message": "Hi"})
    store = open_store(ui_db)
    try:
        record = store.execution(execution_id)
        assert record is not None and record.status == "COMPLETED"
    finally:
        store.close()
