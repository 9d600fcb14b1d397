"""The registry of action types: modules imported on first use, then their function handed out as is."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from noetl.actions.registry import Registry, default_actions
from noetl.errors import ActionError


def test_an_action_is_imported_on_its_first_call_and_then_handed_out_itself() -> None:
    registry = Registry()
    registry.register_lazy("json_dumps", "json", "dumps", "a json step")
    wrapper = registry.get("json_dumps")
    assert wrapper({"a": 1}) == '{"a": 1}'  # the first call imports and calls
    import json

    assert registry.get("json_dumps") is json.dumps  # no wrapper per call from now on
    assert wrapper([1]) == "[1]"  # who kept the wrapper still gets the function


def test_a_missing_driver_fails_the_step_naming_what_to_install_and_is_not_remembered() -> None:
    registry = Registry()
    registry.register_lazy("ghost", "noetl_no_such_driver_module", "run", "a ghost step")

    class Ctx:
        step = "load"

    with pytest.raises(ModuleNotFoundError):  # not a driver of an extra: shown as it is
        registry.get("ghost")(Ctx())
    assert registry.get("ghost").__name__ == "noetl_no_such_driver_module.run"  # still the importer


def test_the_default_python_action_is_the_module_function_after_a_run() -> None:
    registry = default_actions()
    before = registry.get("python")
    ctx: Any = type("Ctx", (), {})()
    with pytest.raises((AttributeError, ActionError)):
        before(ctx)  # imports the module (the call itself fails on this bare context)
    assert registry.get("python") is sys.modules["noetl.actions.python_action"].run
