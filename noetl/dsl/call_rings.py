"""Rings of sub-playbook files that always call each other (`a -> b -> a`): refused before anything runs.

A file's calls are followed to the files the runtime would load (noetl/runtime/subplaybooks.py,
`file_candidates`: the caller's folder, then the working directory, each as written and then with
`.yaml`/`.yml` added; an absolute path as it is). Only calls that every run makes are followed: a step
reached from `start` by transitions none of which can be passed over for a `when`, its iterator's task
when the collection is a literal list that is not empty, and the workbook entries it runs. A child that
is not a file here (a catalog path), that cannot be read or that is not valid is left to the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from noetl.errors import PlaybookError, Problem

if TYPE_CHECKING:
    from noetl.dsl.models import IteratorSpec, Playbook, Step, Task

K = TypeVar("K")  # how a walk names a playbook: a file, a catalog path
MAX_FILES = 100  # files loaded by one walk; past it, the rest is left to the depth limit of the run
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Call:
    """A literal `type: playbook` call that every run of its playbook makes."""

    where: str  # "step 'x'", "step 'x' (its iterator's task)", "step 'x' (workbook entry 'e')"
    path: str  # as written
    line: int | None


def always_reached(steps: list[Step]) -> list[Step]:
    """The steps every run reaches from `start`, in file order. A step with a `when` in its `next` may
    take that branch alone, so its unconditional and `else` targets are not always reached; a step with
    `pass: true` tests nothing and takes them (as noetl/engine/transitions.py chooses)."""
    by_name = {s.name: s for s in steps}
    reached: set[str] = set()
    todo = ["start"]
    while todo:
        name = todo.pop()
        if name in reached or name not in by_name:
            continue
        reached.add(name)
        step = by_name[name]
        if step.skip or not any(t.kind == "when" for t in step.next):
            todo.extend(t.step for t in step.next if t.kind in ("always", "else"))
    return [s for s in steps if s.name in reached]


def always_calls(playbook: Playbook) -> list[Call]:
    """The literal sub-playbook calls every run of `playbook` makes, in file order."""
    calls: list[Call] = []
    for step in always_reached(list(playbook.steps.values())):
        if not step.skip:
            line = step.task.line or step.line
            calls += _task_calls(step.task, f"step {step.name!r}", line, playbook.workbook, frozenset())
    return calls


def _task_calls(
    task: Task, where: str, line: int | None, workbook: dict[str, Task], seen: frozenset[str]
) -> list[Call]:
    if task.type == "playbook":
        path = task.config.get("path")
        if isinstance(path, str) and "{{" not in path and "{%" not in path:
            return [Call(where, path, line)]
    elif task.iterator is not None and _runs_items(task.iterator):
        inner = task.iterator.task
        return _task_calls(inner, f"{where} (its iterator's task)", inner.line or line, workbook, seen)
    elif task.type == "workbook":
        name = task.config.get("name") or task.config.get("task")
        if isinstance(name, str) and name in workbook and name not in seen:
            return _task_calls(
                workbook[name], f"{where} (workbook entry {name!r})", line, workbook, seen | {name}
            )
    return []


def _runs_items(spec: IteratorSpec) -> bool:
    """An iterator whose task surely runs: a literal, non-empty list, no `where`, no zero `limit`."""
    return (
        spec.source is None
        and isinstance(spec.collection, list)
        and len(spec.collection) > 0
        and spec.where is None
        and (spec.limit is None or (isinstance(spec.limit, int) and spec.limit > 0))
    )


def child_file(path: str, folder: Path) -> Path | None:
    """The file the runtime runs for `path` called from a playbook in `folder`, if there is one."""
    if Path(path).is_absolute():
        tried = [Path(path)]
    else:
        names = [path] if path.endswith(SUFFIXES) else [path, *(path + s for s in SUFFIXES)]
        tried = [where / name for where in (folder, Path.cwd()) for name in names]
    return next((f for f in tried if _is_file(f)), None)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the system, say: no file the run could read
        return False


def first_ring(
    root: K,
    root_calls: list[Call],
    child_of: Callable[[K, Call], K | None],
    calls_of: Callable[[K], list[Call] | None],
) -> tuple[list[tuple[K, Call]], K] | None:
    """The first chain of calls from `root` that comes back to a playbook on it, depth first: as
    [(caller, call), ...] and the playbook it comes back to; None when there is none. Playbooks are
    keys (a file, a catalog path): `child_of` says which one a call runs (None: none to follow), and
    `calls_of` gives a playbook's always-made calls (None: not readable, or past the walk's bound)."""
    frames: list[tuple[K, Iterator[Call]]] = [(root, iter(root_calls))]
    taken: list[Call] = []  # taken[i] leads from frames[i] to frames[i + 1]
    done: set[K] = set()
    while frames:
        key, calls = frames[-1]
        call = next(calls, None)
        if call is None:
            frames.pop()
            done.add(key)
            if taken:
                taken.pop()
            continue
        child = child_of(key, call)
        if child is None or child in done:
            continue
        if any(frame[0] == child for frame in frames):
            return [(frame[0], made) for frame, made in zip(frames, [*taken, call], strict=True)], child
        child_calls = calls_of(child)
        if child_calls is None:
            done.add(child)
            continue
        taken.append(call)
        frames.append((child, iter(child_calls)))
    return None


def ring_message(chain: Sequence[tuple[str, Call]], back_to: str, prefix: str = "") -> str:
    """`a.yaml step 'x' -> b.yaml step 'y' -> a.yaml: this ring ...`, for files and catalog paths."""
    shown = " -> ".join(f"{name} {call.where}" for name, call in chain) + f" -> {back_to}"
    if chain[0][0] == back_to:
        return (
            f"{prefix}{shown}: this ring of sub-playbooks always calls itself and never ends; "
            "put a `when` on one of these calls"
        )
    return (
        f"{prefix}{shown}: every run enters this ring of sub-playbooks (from {back_to}), which always "
        "calls itself and never ends; put a `when` on one of its calls"
    )


def find_ring(
    file: Path, playbook: Playbook, load: Callable[[Path], Playbook], limit: int = MAX_FILES
) -> tuple[list[tuple[str, Call]], str] | None:
    """The first chain of always-made calls from `file` that comes back to a file on it, as
    [(calling file, call), ...] and the file it comes back to; None when there is none."""
    root = _key(file)
    names = {root: str(file)}
    spelled = {root: file}  # the path as the caller wrote it: children are found from its folder
    opened = [1]

    def child_of(key: Path, call: Call) -> Path | None:
        child = child_file(call.path, spelled[key].parent)
        if child is None:
            return None
        child_key = _key(child)
        spelled.setdefault(child_key, child)
        return child_key

    def calls_of(key: Path) -> list[Call] | None:
        if opened[0] >= limit:
            return None
        opened[0] += 1
        try:
            loaded = load(spelled[key])
        except PlaybookError:  # not valid: the run says why when it gets there
            return None
        names.setdefault(key, os.path.normpath(spelled[key]))
        return always_calls(loaded)

    found = first_ring(root, always_calls(playbook), child_of, calls_of)
    if found is None:
        return None
    chain, back_to = found
    return [(names[key], call) for key, call in chain], names[back_to]


def check_call_rings(file: Path, playbook: Playbook, load: Callable[[Path], Playbook]) -> None:
    """Raise PlaybookError (at the line of the first call) when every run of `file` enters a ring of
    sub-playbooks that always call each other: each level would start the next, until the depth limit."""
    found = find_ring(file, playbook, load)
    if found is None:
        return
    chain, back_to = found
    raise PlaybookError([Problem(ring_message(chain, back_to), str(file), chain[0][1].line)])


def _key(file: Path) -> Path:
    """One name per file, however the calls spell it."""
    try:
        return file.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it by its spelling
        return Path(os.path.abspath(file))
