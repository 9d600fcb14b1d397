"""DuckDB extensions from installed pip packages (`duckdb-ext-*`), so nothing is downloaded at run time.

The `duckdb-ext-postgres` wheel installs no code, only files, into the `duckdb_ext` namespace package
laid out exactly as DuckDB's own extension directory:

    site-packages/duckdb_ext/extensions/v1.4.4/linux_amd64/postgres_scanner.duckdb_extension

so pointing DuckDB's `extension_directory` at `.../duckdb_ext/extensions` makes `INSTALL postgres`
a no-op and `LOAD postgres` (or `ATTACH ... (TYPE postgres)`, which autoloads it) read that file.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import duckdb

_PACKAGE = "duckdb_ext"
_EXTENSION_NAME = re.compile(r"[Ee]xtension ['\"]([a-z0-9_]+)['\"]")


@lru_cache(maxsize=1)
def extension_directory() -> Path | None:
    """The installed `duckdb_ext/extensions` folder that holds extensions for this DuckDB version, if any."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    # A namespace package may be spread over several folders (one per installed duckdb-ext-* wheel).
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "extensions"
        if (candidate / f"v{duckdb.__version__}").is_dir():
            return candidate
    return None


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Load extensions only from the installed packages; never download one behind the user's back."""
    directory = extension_directory()
    if directory is not None:
        con.execute("SET extension_directory = ?", [str(directory)])
    con.execute("SET autoinstall_known_extensions = false")


def missing_extension_hint(message: str) -> str:
    """A hint to add to a DuckDB error about an extension that is not installed; '' for other errors."""
    lowered = message.lower()
    if "extension" not in lowered or not ("not installed" in lowered or "not found" in lowered):
        return ""
    named = _EXTENSION_NAME.search(message)
    package = f"duckdb-ext-{named.group(1)}" if named else "duckdb-ext-<name>"
    return (
        f"; DuckDB extensions are not downloaded at run time: install the pip package "
        f"{package}=={duckdb.__version__}.* next to noetl"
    )
