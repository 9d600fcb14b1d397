"""FrozenDict: a dict that refuses changes, for one value that many events carry.

A batched save writes the same description into every item's `save_started` (its `context`) and the
same figures into every item's `save_completed` of one batch (its `meta`). Built once and shared, such
a value is also encoded once: the SQLite store's codec keeps its JSON text in `encoded` the first time
it writes it (store.codec.json_text), where a plain dict was encoded again for every event, about
1.5 us for six keys (issue 10: "each event is encoded once"). Being shared is why it must not change:
every change method raises, and `dict(value)` is the copy to change.
"""

from __future__ import annotations

from typing import Any, NoReturn


class FrozenDict(dict[str, Any]):
    __slots__ = ("encoded",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoded: str | None = None  # its JSON text, set by the store's codec on first use

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "this value is shared by several events and cannot change: change a copy, dict(value)"
        )

    __setitem__ = __delitem__ = setdefault = pop = popitem = clear = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle build a new one from a plain copy (not item by item: refused)
        return (FrozenDict, (dict(self),))
