"""FrozenDict (engine.frozen): one value shared by many events, encoded once by the store's codec."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from noetl.engine.frozen import FrozenDict
from noetl.store.codec import json_text

VALUE = {"storage": "postgres", "table": "items", "key": ["id"], "batch": 500, "x": None, "u": "é"}


def test_it_is_encoded_as_the_plain_dict_is_and_only_once() -> None:
    shared = FrozenDict(VALUE)
    assert shared == VALUE and shared.encoded is None
    first = json_text(shared)
    assert first == json_text(dict(VALUE)) == json.dumps(VALUE, default=str)
    assert shared.encoded == first
    assert json_text(shared) is first  # the kept text, not a new encoding


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.__setitem__("a", 1),
        lambda d: d.__delitem__("table"),
        lambda d: d.update(a=1),
        lambda d: d.setdefault("a", 1),
        lambda d: d.pop("table"),
        lambda d: d.popitem(),
        lambda d: d.clear(),
        lambda d: d.__ior__({"a": 1}),
    ],
)
def test_every_change_is_refused_so_the_kept_text_stays_true(change: object) -> None:
    shared = FrozenDict(VALUE)
    json_text(shared)
    with pytest.raises(TypeError, match="shared by several events"):
        change(shared)  # type: ignore[operator]
    assert shared == VALUE and json.loads(shared.encoded or "") == VALUE


def test_copies_and_pickles_are_equal_and_encoded_anew() -> None:
    shared = FrozenDict(VALUE)
    json_text(shared)
    for other in (copy.copy(shared), copy.deepcopy(shared), pickle.loads(pickle.dumps(shared))):
        assert type(other) is FrozenDict and other == VALUE and other.encoded is None
    assert copy.deepcopy(shared)["key"] is not shared["key"]
    changed = dict(shared)
    changed["table"] = "other"  # a plain copy is the one to change
    assert shared["table"] == "items"
