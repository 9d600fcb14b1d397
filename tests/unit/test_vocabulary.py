"""Issue 8 item 7: the action vocabulary lives in one place (noetl/dsl/vocabulary.py); the DSL's keys,
its required-key check, the validator's drivers and the registry are all read from it."""

from __future__ import annotations

import importlib

import pytest

from noetl.actions.registry import default_actions
from noetl.dsl import parse_playbook
from noetl.dsl.drivers import needs
from noetl.dsl.keys import ACTION_KEYS
from noetl.dsl.models import ACTION_TYPES
from noetl.dsl.vocabulary import ACTIONS
from noetl.errors import PlaybookError


def test_the_types_keys_and_registry_are_the_vocabularys() -> None:
    assert set(ACTION_TYPES) == set(ACTIONS)
    assert {t: a.keys for t, a in ACTIONS.items()} == ACTION_KEYS
    assert set(default_actions().names()) == set(ACTIONS)


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_every_action_type_has_its_module_with_run(kind: str) -> None:
    module = importlib.import_module(ACTIONS[kind].module)
    assert callable(module.run)


@pytest.mark.parametrize("kind", sorted(k for k, a in ACTIONS.items() if a.needs))
def test_a_step_without_the_key_its_action_needs_is_refused_with_the_vocabularys_words(kind: str) -> None:
    needs_text = ACTIONS[kind].needs[1]  # type: ignore[index]
    text = (
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: v}\n"
        f"workflow:\n  - step: start\n    type: {kind}\n"
    )
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text)
    assert any(needs_text in p.message for p in caught.value.problems), caught.value.problems


def test_the_validator_names_the_drivers_the_vocabulary_gives() -> None:
    text = "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: v}\nworkflow:\n" + "".join(
        f"  - step: {'start' if i == 0 else kind}\n    type: {kind}\n    command: SELECT 1\n"
        + (f"    next: [{{step: {kinds[i + 1]}}}]\n" if i + 1 < len(kinds) else "")
        for kinds in [[k for k, a in ACTIONS.items() if a.driver is not None]]
        for i, kind in enumerate(kinds)
    )
    playbook = parse_playbook(text.replace("type: postgres\n", "type: postgres\n    auth: pg\n"))
    found = {need.driver.module for need in needs(playbook)}
    assert found == {a.driver.module for a in ACTIONS.values() if a.driver is not None}
