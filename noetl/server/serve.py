"""`noetl server start`: open the store, bring its schema up to date, serve the API with uvicorn."""

from __future__ import annotations

import logging
import os

from noetl.errors import InputError, NoetlError
from noetl.server.app import create_app
from noetl.server.guard import is_loopback
from noetl.server.schema import open_migrated, store_label

TOKEN_ENV = "NOETL_API_TOKEN"
STARTUP_FAILURE = 3
GRACEFUL_SECONDS = 3
log = logging.getLogger("noetl.server")


def serve(
    host: str, port: int, db: str | None, *, log_level: str = "info", allow_no_token: bool = False
) -> None:
    """Blocks until the server stops (Ctrl-C or SIGTERM); the store is closed on the way out."""
    import uvicorn

    token = os.environ.get(TOKEN_ENV) or None
    if not token and not is_loopback(host) and not allow_no_token:
        # Whoever reaches the API can run code as this user (playbooks run python): not by accident.
        raise InputError(
            f"refusing to listen on {host} without a token: anyone who can reach it could run code as "
            f"this user; set {TOKEN_ENV}, or pass --allow-no-token if the network is yours alone"
        )
    store = open_migrated(db)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    log.info(
        "store %s; API token %s",
        store_label(store),
        "required" if token else f"not set (set {TOKEN_ENV} to require one)",
    )
    try:
        log.info("web UI at http://%s:%s/", host if ":" not in host else f"[{host}]", port)
        # A page following a running execution holds a stream open: stop waiting for it after a while.
        uvicorn.run(
            create_app(store, token=token, bind_host=host),
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
    except SystemExit as exc:
        # uvicorn exits with 3 when it cannot start (the port is taken, say) and has said why above.
        if exc.code == STARTUP_FAILURE:
            raise NoetlError(f"the server could not listen on {host}:{port}; see the message above") from None
        raise
