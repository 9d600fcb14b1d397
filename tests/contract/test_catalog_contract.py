"""The catalog's register_if_changed, on every store: an unchanged playbook keeps its latest version.

`noetl execute playbook FILE` registers the file through `POST /api/catalog/register?if_changed=true`,
so running the same file again does not pile up identical versions.
"""

from __future__ import annotations

from typing import Any

from tests.contract.backends import Backend
from tests.contract.threads import in_threads


def test_the_same_content_keeps_the_latest_version_and_a_change_adds_one(store: Any) -> None:
    assert store.register_if_changed("a/flow", "flow", "content 1") == (1, False)
    assert store.register_if_changed("a/flow", "flow", "content 1") == (1, True)  # nothing written
    assert store.register("a/flow", "flow", "content 1") == 2  # plain register always adds a version
    assert store.register_if_changed("a/flow", "flow", "content 2") == (3, False)
    assert store.register_if_changed("a/flow", "flow", "content 2") == (3, True)
    # Only the latest version counts: going back to an older content is a new version.
    assert store.register_if_changed("a/flow", "flow", "content 1") == (4, False)
    assert store.register_if_changed("b/other", "other", "content 1") == (1, False)  # per path
    latest = store.get_playbook("a/flow")
    assert (latest.version, latest.content) == (4, "content 1")
    assert [(e.path, e.version) for e in store.list_playbooks()] == [("a/flow", 4), ("b/other", 1)]


def test_concurrent_unchanged_registers_add_one_version(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    answers = in_threads(8, lambda i: stores[i % 2].register_if_changed("race/path", "race", "same"))
    assert sorted(answers) == [(1, False)] + [(1, True)] * 7
    assert stores[0].get_playbook("race/path").version == 1
