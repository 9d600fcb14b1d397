"""Rings of catalog playbooks that always call each other (`a -> b -> a`), refused when one is registered.

The file check (noetl.dsl.call_rings) follows calls to files; on a server the children are catalog
entries, found the way a worker finds them (noetl.runtime.subplaybooks.catalog_candidates: next to the
caller's catalog path, then as written, each with and without `.yaml`). The playbook being registered
stands for its own path, so registering the entry that closes a ring is what is refused. Only calls
every run makes count (call_rings.always_calls); an entry that is missing or not valid is left to the run.
"""

from __future__ import annotations

from typing import Any

from noetl.dsl import parse_playbook
from noetl.dsl.call_rings import Call, always_calls, first_ring, ring_message
from noetl.dsl.models import Playbook
from noetl.errors import PlaybookError, Problem
from noetl.runtime.subplaybooks import catalog_candidates

MAX_ENTRIES = 100  # entries read by one walk; past it, the rest is left to the depth limit of the run


def check_catalog_rings(store: Any, playbook: Playbook, source: str = "<request>") -> None:
    """Raise PlaybookError when every run of `playbook` (about to be registered) enters a ring."""
    root = playbook.path
    loaded: dict[str, Playbook | None] = {root: playbook}

    def child_of(caller: str, call: Call) -> str | None:
        for name in catalog_candidates(caller, call.path):
            if name in loaded:
                return name
            found = store.get_playbook(name)
            if found is None:
                continue
            if len(loaded) >= MAX_ENTRIES:
                return None
            try:
                loaded[name] = parse_playbook(found.content, source=f"catalog:{name}@{found.version}")
            except PlaybookError:  # not valid: the run says why when it gets there
                loaded[name] = None
            return name
        return None

    def calls_of(name: str) -> list[Call] | None:
        child = loaded.get(name)
        return None if child is None else always_calls(child)

    found = first_ring(root, always_calls(playbook), child_of, calls_of)
    if found is not None:
        chain, back_to = found
        message = ring_message(chain, back_to, prefix="catalog ")
        raise PlaybookError([Problem(message, source, chain[0][1].line)])
