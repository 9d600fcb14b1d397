"""A task's inputs become names in its templates (with_inputs), except the engine's own names."""

from __future__ import annotations

from noetl.dsl.render import WATCH
from noetl.runtime.scope import with_inputs

SCOPE = {"workload": {"n": 1}, "execution_id": "e1", "fetch": {"x": 1}}


def test_inputs_are_names_and_win_over_a_step_of_the_same_name() -> None:
    for _ in range(2):  # the second call takes the remembered shape of the keys
        scope = with_inputs(SCOPE, {"x": 5, "fetch": "mine"})
        assert scope == {**SCOPE, "x": 5, "fetch": "mine"}
    assert SCOPE == {"workload": {"n": 1}, "execution_id": "e1", "fetch": {"x": 1}}  # a new dict


def test_reserved_names_the_watch_and_keys_that_are_not_text_are_never_names() -> None:
    inputs = {"workload": "hidden?", "execution_id": "no", WATCH: "no", 3: "three", "y": 2}
    for _ in range(2):  # the same shape again, as per item: still filtered key by key
        scope = with_inputs(SCOPE, inputs)
        assert scope == {**SCOPE, "y": 2}
        assert with_inputs(SCOPE, {"workload": 1}) is SCOPE  # nothing to add


def test_other_shapes_of_the_same_keys_are_judged_on_their_own() -> None:
    assert with_inputs(SCOPE, {"a": 1, "b": 2}) == {**SCOPE, "a": 1, "b": 2}
    assert with_inputs(SCOPE, {"b": 2, "workload": 0}) == {**SCOPE, "b": 2}
    assert with_inputs(SCOPE, [1, 2]) is SCOPE  # inputs that are not a mapping add no name
    assert with_inputs(SCOPE, {}) is SCOPE
