"""Where a `type: playbook` step's `path` is looked for, and what to register so that workers find it.

A parent read from a file looks for a file first: in its own folder, then in the working directory, each
time as written and then with `.yaml` and `.yml` added. After that (and first and only for a parent read
from the catalog, as on a worker), it looks in the catalog. The catalog lookup treats catalog paths like
file paths without a suffix. It tries the path relative to the folder of the parent's catalog path, then
the path as written, each with and without its `.yaml`/`.yml` suffix. An absolute path is a file, used as
it is.

A worker has no files, so `noetl register FILE` and `noetl execute playbook FILE` also register the
files that a playbook's literal relative `type: playbook` paths name, as `noetl run` would find them.
Before anything is registered, they check that each child's catalog path is one the parent's lookup
tries. An absolute path stays a file: the worker that runs the step reads it, and its text goes with the
child's execution (runtime.control.start_execution), so it is not registered.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noetl.dsl import load_playbook
from noetl.dsl.loader import playbook_file
from noetl.dsl.models import Playbook, Task
from noetl.engine.state import fold
from noetl.errors import ActionError, InputError

SUFFIXES = (".yaml", ".yml")


def catalog_path_of(source: str) -> str | None:
    """The catalog path of a playbook read from the catalog (source `catalog:<path>@<version>`)."""
    if not source.startswith("catalog:"):
        return None
    path, _, _ = source.removeprefix("catalog:").rpartition("@")
    return path or None


def file_candidates(path: str, folders: Sequence[Path]) -> list[Path]:
    """The files tried for `path`, in order: in each folder as written, then with a suffix added."""
    if Path(path).is_absolute():
        return [Path(path)]
    names = [path] if path.endswith(SUFFIXES) else [path, *(path + s for s in SUFFIXES)]
    return list(dict.fromkeys(folder / name for folder in folders for name in names))


def catalog_candidates(parent_catalog_path: str, path: str) -> list[str]:
    """The catalog paths tried for `path`: next to the parent's catalog path, then as written."""
    if Path(path).is_absolute():
        return []
    relative = posixpath.normpath(posixpath.join(posixpath.dirname(parent_catalog_path), path))
    written = posixpath.normpath(path)
    return list(dict.fromkeys([relative, _stem(relative), written, _stem(written)]))


def named_children(playbook: Playbook) -> list[tuple[str, str]]:
    """(where, path) of every `type: playbook` task whose path is literal (not a template)."""
    found: list[tuple[str, str]] = []

    def visit(task: Task, where: str) -> None:
        path = task.config.get("path")
        if task.type == "playbook" and isinstance(path, str) and "{{" not in path and "{%" not in path:
            found.append((where, path))
        if task.iterator is not None:
            visit(task.iterator.task, where)

    for name, step in playbook.steps.items():
        visit(step.task, f"step {name!r}")
    for name, task in playbook.workbook.items():
        visit(task, f"workbook entry {name!r}")
    return found


def files_to_register(path: str | Path) -> list[Path]:
    """The playbook file `path` names, after the sub-playbook files it calls (recursively), each child
    before its caller. A child that is not a file here is left to the catalog, as at run time.
    Raises InputError when a child's catalog path is not one its caller's lookup tries."""
    order: list[Path] = []
    loaded: dict[Path, Playbook] = {}
    active: set[Path] = set()

    def load(file: Path) -> Playbook:
        key = file.resolve()
        if key not in loaded:
            loaded[key] = load_playbook(file)  # a bad playbook is exit 2, with the file's line numbers
        return loaded[key]

    def visit(file: Path) -> None:
        key = file.resolve()
        if key in active or any(f.resolve() == key for f in order):
            return  # registered already, or a cycle: each file once
        active.add(key)
        playbook = load(file)
        for where, child_path in named_children(playbook):
            if Path(child_path).is_absolute():
                continue  # a file on the host that runs the step, read there (not a catalog entry)
            tried = file_candidates(child_path, [file.parent, Path.cwd()])
            child = next((f for f in tried if f.is_file()), None)
            if child is None:
                continue  # not a file here: a catalog entry, looked up when the step runs
            _check_catalog_path(file, playbook, where, child_path, child, load(child))
            visit(child)
        active.discard(key)
        order.append(file)

    visit(playbook_file(path))
    return order


def _check_catalog_path(
    file: Path, parent: Playbook, where: str, path: str, child_file: Path, child: Playbook
) -> None:
    wanted = catalog_candidates(parent.path, path)
    if child.path in wanted:
        return
    folder = posixpath.dirname(parent.path)
    beside = _stem(posixpath.normpath(posixpath.join(folder, path)))
    fixes = [f"set `metadata.path: {beside}` in {child_file}"]
    if "/" not in _stem(path) and posixpath.basename(child.path) == _stem(path):
        moved = posixpath.join(posixpath.dirname(child.path), posixpath.basename(parent.path))
        fixes.append(f"`metadata.path: {moved}` in {file}")
    raise InputError(
        f"{file}: {where} calls {path!r}, which is {child_file}, registered as {child.path!r}; "
        f"on a server the step looks for the catalog paths {', '.join(wanted)} (next to the parent's "
        f"catalog path {parent.path!r}), so it would not find it: {', or '.join(fixes)}"
    )


def _stem(path: str) -> str:
    for suffix in SUFFIXES:
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return path


def child_result(
    store: Any,
    path: str,
    execution_id: str,
    status: str,
    error: str | None,
    result: Any,
    return_step: str | None,
) -> Any:
    """What a `type: playbook` step returns once its child ended, in both modes: the child's result, or
    its `return_step`'s; a failed child fails the step."""
    if status != "COMPLETED":
        raise ActionError(f"sub-playbook {path!r} (execution {execution_id}) failed: {error}")
    if not return_step:
        return result
    state = fold(store.read_workflow(execution_id))
    if return_step not in state.steps:
        raise ActionError(
            f"sub-playbook {path!r} has no finished step {return_step!r} to return", non_retryable=True
        )
    return state.steps[return_step].result
