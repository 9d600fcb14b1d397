"""Resolve an iterator's collection: scalar -> [scalar], then `where`, `order_by`, `limit`, `chunk`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.dsl.models import IteratorSpec
from noetl.dsl.render import render, truthy
from noetl.errors import ActionError


@dataclass(frozen=True)
class WorkItem:
    index: int  # position in the final collection (or the batch number with `chunk`)
    value: Any  # the element, or the list of elements of a batch


def as_list(value: Any, step: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str | int | float | bool | dict):
        return [value]
    raise ActionError(
        f"step '{step}': collection must be a list, got {type(value).__name__}", non_retryable=True
    )


def resolve(spec: IteratorSpec, collection: Any, scope: Mapping[str, Any], step: str) -> list[WorkItem]:
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
    if spec.limit is not None:
        items = items[: spec.limit]
    if spec.chunk:
        return [
            WorkItem(i, items[start : start + spec.chunk])
            for i, start in enumerate(range(0, len(items), spec.chunk))
        ]
    return [WorkItem(i, v) for i, v in enumerate(items)]


def _bind(scope: Mapping[str, Any], spec: IteratorSpec, value: Any) -> dict[str, Any]:
    return {**scope, spec.element: value}
