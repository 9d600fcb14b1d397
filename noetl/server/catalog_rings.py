"""Rings of catalog playbooks that always call each other (`a -> b -> a`), refused when one is registered.

The file check (noetl.dsl.call_rings) follows calls to files; on a server the children are catalog
entries, found the way a worker finds them (noetl.runtime.subplaybooks.catalog_candidates: next to the
caller's catalog path, then as written, each with and without `.yaml`). The playbook being registered
stands for its own path, so registering the entry that closes a ring is what is refused. Only calls
every run makes count (call_rings.always_calls); an entry that is missing or not valid is left to the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from noetl.dsl import parse_playbook
from noetl.dsl.call_rings import Call, always_calls
from noetl.dsl.models import Playbook
from noetl.errors import PlaybookError, Problem
from noetl.runtime.subplaybooks import catalog_candidates

MAX_ENTRIES = 100  # entries read by one walk; past it, the rest is left to the depth limit of the run


def check_catalog_rings(store: Any, playbook: Playbook, source: str = "<request>") -> None:
    """Raise PlaybookError when every run of `playbook` (about to be registered) enters a ring."""
    root = playbook.path
    loaded: dict[str, Playbook | None] = {root: playbook}

    def entry(path: str, caller: str) -> str | None:
        for name in catalog_candidates(caller, path):
            if name in loaded:
                return name if loaded[name] is not None else None
            found = store.get_playbook(name)
            if found is None:
                continue
            if len(loaded) >= MAX_ENTRIES:
                return None
            try:
                loaded[name] = parse_playbook(found.content, source=f"catalog:{name}@{found.version}")
            except PlaybookError:  # not valid: the run says why when it gets there
                loaded[name] = None
                return None
            return name
        return None

    frames: list[tuple[str, Iterator[Call]]] = [(root, iter(always_calls(playbook)))]
    taken: list[Call] = []  # taken[i] leads from frames[i] to frames[i + 1]
    done: set[str] = set()
    while frames:
        name, calls = frames[-1]
        call = next(calls, None)
        if call is None:
            frames.pop()
            done.add(name)
            if taken:
                taken.pop()
            continue
        child = entry(call.path, name)
        if child is None or child in done:
            continue
        if any(frame[0] == child for frame in frames):
            chain = [(frame[0], made) for frame, made in zip(frames, [*taken, call], strict=True)]
            shown = " -> ".join(f"{caller} {made.where}" for caller, made in chain) + f" -> {child}"
            if chain[0][0] == child:
                message = (
                    f"catalog {shown}: this ring of sub-playbooks always calls itself and never ends; "
                    "put a `when` on one of these calls"
                )
            else:
                message = (
                    f"catalog {shown}: every run enters this ring of sub-playbooks (from {child}), which "
                    "always calls itself and never ends; put a `when` on one of its calls"
                )
            raise PlaybookError([Problem(message, source, chain[0][1].line)])
        child_playbook = loaded[child]
        if child_playbook is None:
            continue
        taken.append(call)
        frames.append((child, iter(always_calls(child_playbook))))
