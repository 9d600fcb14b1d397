"""`noetl server start`: open the store, bring its schema up to date, serve the API with uvicorn."""

from __future__ import annotations

import logging
import os

from noetl.errors import NoetlError
from noetl.server.app import create_app
from noetl.server.schema import open_migrated, store_label

TOKEN_ENV = "NOETL_API_TOKEN"
STARTUP_FAILURE = 3
log = logging.getLogger("noetl.server")


def serve(host: str, port: int, db: str | None, *, log_level: str = "info") -> None:
    """Blocks until the server stops (Ctrl-C or SIGTERM); the store is closed on the way out."""
    import uvicorn

    store = open_migrated(db)
    token = os.environ.get(TOKEN_ENV) or None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    log.info(
        "store %s; API token %s",
        store_label(store),
        "required" if token else f"not set (set {TOKEN_ENV} to require one)",
    )
    try:
        uvicorn.run(create_app(store, token=token), host=host, port=port, log_level=log_level)
    except SystemExit as exc:
        # uvicorn exits with 3 when it cannot start (the port is taken, say) and has said why above.
        if exc.code == STARTUP_FAILURE:
            raise NoetlError(f"the server could not listen on {host}:{port}; see the message above") from None
        raise
