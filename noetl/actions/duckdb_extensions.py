"""DuckDB extensions from installed pip packages (`duckdb-ext-*`), so nothing is downloaded at run time.

The `duckdb-ext-postgres` wheel installs no code, only files, into the `duckdb_ext` namespace package
laid out exactly as DuckDB's own extension directory:

    site-packages/duckdb_ext/extensions/v1.4.4/linux_amd64/postgres_scanner.duckdb_extension

so pointing DuckDB's `extension_directory` at `.../duckdb_ext/extensions` makes `INSTALL postgres`
a no-op and `LOAD postgres` (or `ATTACH ... (TYPE postgres)`, which autoloads it) read that file.
When the wheels landed in several folders, a private folder of links to all their files stands in.

A plain `INSTALL name` of an extension that is not there would still download it from DuckDB's
repository (autoinstall_known_extensions only covers autoloading), so the repository is set to a local
folder that does not exist: INSTALL never reaches the network, and fails at once naming the pip package.
"""

from __future__ import annotations

import atexit
import importlib.util
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import duckdb

_PACKAGE = "duckdb_ext"
_EXTENSION_NAME = re.compile(r"[Ee]xtension ['\"]([a-z0-9_]+)['\"]")
# DuckDB's own name for an extension -> the name its pip package (duckdb-ext-NAME) uses.
_PACKAGE_NAMES = {"postgres_scanner": "postgres", "sqlite_scanner": "sqlite", "mysql_scanner": "mysql"}
_OFFLINE_REPOSITORY = "offline-no-downloads"  # under the extension directory, never created


@lru_cache(maxsize=1)
def extension_directory() -> Path | None:
    """The installed `duckdb_ext/extensions` folder that holds extensions for this DuckDB version, if any."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    # A namespace package may be spread over several folders (one per installed duckdb-ext-* wheel).
    return merged_directory([Path(location) / "extensions" for location in spec.submodule_search_locations])


def merged_directory(candidates: list[Path]) -> Path | None:
    """The one folder of `candidates` holding this DuckDB version's extensions, or a merge of several."""
    version = f"v{duckdb.__version__}"
    holding = list(dict.fromkeys(c for c in candidates if (c / version).is_dir()))
    if len(holding) <= 1:
        return holding[0] if holding else None
    # DuckDB reads one extension_directory: link every file into a private folder, the first one found
    # of each name winning (as the first folder on the path would for an import).
    merged = Path(tempfile.mkdtemp(prefix="noetl-duckdb-extensions-"))
    atexit.register(shutil.rmtree, merged, True)
    for folder in holding:
        for file in sorted(folder.glob(f"{version}/*/*.duckdb_extension")):
            link = merged / file.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(file.resolve())
    return merged


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Load extensions only from the installed packages; never download one behind the user's back."""
    directory = extension_directory()
    if directory is not None:
        con.execute("SET extension_directory = ?", [str(directory)])
        con.execute("SET custom_extension_repository = ?", [str(directory / _OFFLINE_REPOSITORY)])
    else:  # no duckdb-ext-* package at all: still no downloads
        con.execute(
            "SET custom_extension_repository = ?", [str(Path(duckdb.__file__).parent / _OFFLINE_REPOSITORY)]
        )
    con.execute("SET autoinstall_known_extensions = false")


def missing_extension_hint(message: str) -> str:
    """A hint to add to a DuckDB error about an extension that is not installed; '' for other errors."""
    lowered = message.lower()
    missing = (
        "not installed",
        "not found",
        "failed to download extension",
        "failed to install local extension",
    )
    if "extension" not in lowered or not any(text in lowered for text in missing):
        return ""
    named = _EXTENSION_NAME.search(message)
    name = _PACKAGE_NAMES.get(named.group(1), named.group(1)) if named else "<name>"
    if named and "failed to" in lowered and _installed(named.group(1)):  # FORCE INSTALL of one that is there
        return (
            f"; extension {name!r} is installed from the pip package duckdb-ext-{name} and DuckDB "
            f"extensions are not downloaded at run time: use INSTALL/LOAD (not FORCE INSTALL), and upgrade "
            f"the pip package to change it"
        )
    return (
        f"; DuckDB extensions are not downloaded at run time: install the pip package "
        f"duckdb-ext-{name}=={duckdb.__version__}.* next to noetl"
    )


def _installed(name: str) -> bool:
    directory = extension_directory()
    if directory is None:
        return False
    canonical = {v: k for k, v in _PACKAGE_NAMES.items()}.get(name, name)
    return any(directory.glob(f"v{duckdb.__version__}/*/{canonical}.duckdb_extension"))
