"""One live process per execution on an embedded store: a `--resume` (or a retry) of an execution that
another process is still running would run its items twice. The process running an execution holds an
exclusive flock on a small file named after it, beside the database; the kernel drops the lock when the
process ends, however it ends, so a crashed run never leaves its execution held.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from noetl.errors import InputError

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class ExecutionHeld(InputError):
    """Another live process runs this execution."""


@contextlib.contextmanager
def execution_hold(database: Path, execution_id: str) -> Iterator[None]:
    if not _SAFE_ID.match(execution_id) or execution_id.startswith("."):
        raise InputError(f"{execution_id!r} is not an execution id; check the id (see `noetl executions`)")
    folder = database.with_name(database.name + ".holds")
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / execution_id
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ExecutionHeld(
            f"execution {execution_id} is still running in another process (pid {holder}) on "
            f"{database}; wait for it to end, or stop it (Ctrl-C in its terminal, or `kill {holder}`), "
            "then resume it"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the lock
