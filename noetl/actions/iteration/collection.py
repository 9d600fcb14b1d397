"""Resolve an iterator's collection: scalar -> [scalar], then `where`, `order_by`, `limit`, `chunk`.

The result is a `Work`: the elements stay one list (the rendered collection itself when nothing filters
it), and each item, or batch of `chunk` elements, is made when its turn comes, so that a loop over a
million elements holds no per-item object beyond the elements themselves (issue 10).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from noetl.dsl.models import IteratorSpec
from noetl.dsl.render import render, truthy
from noetl.errors import ActionError


@dataclass(frozen=True)
class WorkItem:
    index: int  # position in the final collection (or the batch number with `chunk`)
    value: Any  # the element, or the list of elements of a batch


class Work:
    """The items of an iterator: `len()` of them, made one by one by `items()`."""

    def __init__(self, elements: Sequence[Any], chunk: int | None = None) -> None:
        self._elements = elements
        self._chunk = chunk
        self._count = -(-len(elements) // chunk) if chunk else len(elements)

    def __len__(self) -> int:
        return self._count

    def item(self, index: int) -> WorkItem:
        if self._chunk:
            start = index * self._chunk
            return WorkItem(index, list(self._elements[start : start + self._chunk]))
        return WorkItem(index, self._elements[index])

    def items(self, skip: Container[int] = ()) -> Iterator[WorkItem]:
        """The items not in `skip` (those an earlier attempt or run finished), in order, made lazily."""
        for index in range(self._count):
            if index not in skip:
                yield self.item(index)

    def __iter__(self) -> Iterator[WorkItem]:
        return self.items()


def as_list(value: Any, step: str) -> Sequence[Any]:
    """The collection as a sequence; a list is used as it is (never copied: nothing here changes it)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, str | int | float | bool | dict):
        return [value]
    raise ActionError(
        f"step '{step}': collection must be a list, got {type(value).__name__}", non_retryable=True
    )


def resolve(spec: IteratorSpec, collection: Any, scope: Mapping[str, Any], step: str) -> Work:
    items = as_list(collection, step)
    if spec.where:
        items = [
            v
            for v in items
            if truthy(render(spec.where, _bind(scope, spec, v), where=f"step '{step}' where"))
        ]
    if spec.order_by:
        keyed = [
            (render(spec.order_by, _bind(scope, spec, v), where=f"step '{step}' order_by"), v) for v in items
        ]
        try:
            keyed.sort(key=lambda pair: pair[0])  # stable: equal keys keep collection order
        except TypeError as exc:
            raise ActionError(
                f"step '{step}': order_by gives values that cannot be compared ({exc})", non_retryable=True
            ) from None
        items = [v for _, v in keyed]
    if spec.limit is not None and spec.limit < len(items):
        items = items[: spec.limit]
    return Work(items, spec.chunk)


def _bind(scope: Mapping[str, Any], spec: IteratorSpec, value: Any) -> dict[str, Any]:
    return {**scope, spec.element: value}
