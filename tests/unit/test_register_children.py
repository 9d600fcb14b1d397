"""Which sub-playbook files `noetl register` adds with a playbook (runtime.subplaybooks.files_to_register)."""

from __future__ import annotations

from pathlib import Path

from noetl.runtime.subplaybooks import files_to_register

CHILD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: child, path: tests/child}
workflow:
  - step: start
    next: [{step: end}]
  - step: end
"""


def parent(path: str) -> str:
    return f"""
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: parent, path: tests/parent}}
workflow:
  - step: start
    type: playbook
    path: {path}
    next: [{{step: end}}]
  - step: end
"""


def test_a_relative_child_file_is_registered_before_its_caller(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(parent("child"))
    assert files_to_register(tmp_path / "parent.yaml") == [tmp_path / "child.yaml", tmp_path / "parent.yaml"]


def test_an_absolute_child_is_a_file_for_the_worker_not_a_catalog_entry(tmp_path: Path) -> None:
    """It used to be refused, with an empty list of catalog paths and a `metadata.path` to set that no
    lookup would try: a worker reads an absolute path from its disk, so nothing is registered for it."""
    child = tmp_path / "elsewhere" / "child.yaml"
    child.parent.mkdir()
    child.write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(parent(str(child)))
    assert files_to_register(tmp_path / "parent.yaml") == [tmp_path / "parent.yaml"]
