"""The layering of ARCHITECTURE.md, enforced: dsl and engine stay pure; actions never see the store."""

from __future__ import annotations

import ast
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
