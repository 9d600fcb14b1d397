"""The layering of ARCHITECTURE.md, enforced: dsl and engine stay pure; actions never see the store."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "noetl"
DRIVERS = {
    "httpx",
    "psycopg",
    "duckdb",
    "sqlite3",
    "fastapi",
    "uvicorn",
    "typer",
    "threading",
    "concurrent",
    "subprocess",
    "socket",
}

# layer -> the noetl subpackages it may import (besides itself)
ALLOWED = {
    "dsl": {"errors"},
    "engine": {"errors", "dsl"},
    "actions": {"errors", "dsl", "engine", "actions", "store.ports"},
    "store": {"errors", "engine", "store"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def _violations(layer: str) -> list[str]:
    problems = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module, line in _imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            if top == "noetl":
                inner = module.split(".", 1)[1] if "." in module else ""
                if not any(inner == a or inner.startswith(a + ".") for a in ALLOWED[layer] | {layer}):
                    problems.append(where)
            elif layer in ("dsl", "engine") and top in DRIVERS:
                problems.append(where)
    return problems


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    assert _violations(layer) == []


def test_the_rule_catches_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "noetl"
    (fake / "engine").mkdir(parents=True)
    (fake / "engine" / "bad.py").write_text("import sqlite3\nfrom noetl.store.sqlite import SQLiteStore\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", fake)
    assert len(_violations("engine")) == 2


DATABASE_DRIVERS = {"psycopg", "psycopg_pool", "sqlite3", "duckdb"}
# SQL as the runtime would have to write it: statements, and PostgreSQL's lock and notify functions.
SQL_TEXT = re.compile(
    r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|"
    r"pg_notify|pg_advisory|LISTEN\s+\w)"
)


def _runtime_problems(folder: Path) -> list[str]:
    """runtime/ decides; the store speaks SQL: no driver import, no SQL in any string of runtime/."""
    problems = []
    for path in sorted(folder.rglob("*.py")):
        where = path.relative_to(folder.parent.parent)
        for module, line in _imports(path):
            if module.split(".")[0] in DATABASE_DRIVERS:
                problems.append(f"{where}:{line} imports {module}")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
                problems.append(f"{where}:{node.lineno} holds SQL: {node.value[:60]!r}")
    return problems


def test_runtime_holds_no_sql_and_imports_no_database_driver() -> None:
    assert _runtime_problems(PACKAGE / "runtime") == []


def test_the_runtime_rule_catches_sql_and_a_driver(tmp_path: Path) -> None:
    runtime = tmp_path / "noetl" / "runtime"
    runtime.mkdir(parents=True)
    (runtime / "bad.py").write_text(
        "import psycopg\n"
        "Q = 'SELECT 1 FROM noetl_jobs'\n"
        "def f(conn):\n"
        "    conn.execute(\"UPDATE noetl_jobs SET status = 'queued'\")\n"
        "    conn.execute(\"SELECT pg_notify('x', 'y')\")\n"
        "# a comment saying SELECT is not SQL text\n"
        "DOC = 'the broker decides; select nothing'\n"
    )
    assert len(_runtime_problems(runtime)) == 4


@pytest.mark.parametrize("leaf", ["server", "cli"])
def test_server_and_cli_are_leaves(leaf: str) -> None:
    """Nothing below them imports the API server or the CLI: they are the outermost layers (the CLI may
    start the server, nothing else may import either)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        inside = path.relative_to(PACKAGE).parts[0]
        if inside == leaf or inside.startswith("cli"):
            continue
        for module, line in _imports(path):
            if module == f"noetl.{leaf}" or module.startswith((f"noetl.{leaf}.", f"noetl.{leaf}_")):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert problems == []
