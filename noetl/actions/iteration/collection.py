"""Resolve an iterator's collection: scalar -> [scalar], then `where`, `order_by`, `limit`, `chunk`.

The result is a `Work`: the elements stay one list (the rendered collection itself when nothing filters
it), and each item, or batch of `chunk` elements, is made when its turn comes, so that a loop over a
million elements holds no per-item object beyond the elements themselves (issue 10).

A streaming collection (a query or a file, `IteratorSpec.source`) is a `Stream` instead: its items are
made as its rows are read, `where`, `limit` and `chunk` applied on the way, and how many there are is
known only once it has been read to its end. `order_by` needs them all: it reads the stream into a list
first (a `Work` marked `materialized`).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration import streams
from noetl.dsl.models import IteratorSpec
from noetl.dsl.render import render, truthy
from noetl.errors import ActionError, TemplateError


@dataclass(slots=True)
class WorkItem:
    """One item to run; treat it as immutable. Not a frozen dataclass: one is made per item, and a
    frozen dataclass's __init__ sets each field through object.__setattr__ (3x the cost, 0.6 us)."""

    index: int  # position in the final collection (or the batch number with `chunk`)
    value: Any  # the element, or the list of elements of a batch
    last: bool | None = None  # a stream's item knows whether it is the last one (None: ask the count)


class Work:
    """The items of an iterator: `len()` of them, made one by one by `items()`."""

    materialized = False  # a streaming collection read into this list (for `order_by`)

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
        if self._chunk:
            for index in range(self._count):
                if index not in skip:
                    yield self.item(index)
            return
        elements = self._elements
        for index in range(self._count):  # (one item per element: made here, without a call per item)
            if index not in skip:
                yield WorkItem(index, elements[index])

    def __iter__(self) -> Iterator[WorkItem]:
        return self.items()

    def close(self) -> None:
        """Nothing to let go of: the elements are a list."""


class Stream:
    """The items of a streaming collection, made as its rows are read, in one pass.

    The reader runs one row ahead of the item it hands out, so each item knows whether it is the last.
    `total` is the number of items made so far (all of them once `exhausted`).
    """

    def __init__(self, rows: streams.Rows, spec: IteratorSpec, scope: Mapping[str, Any], step: str) -> None:
        self._rows = rows
        self._spec = spec
        self._scope = scope
        self._step = step
        self.total = 0
        self.exhausted = False

    def _values(self) -> Iterator[Any]:
        spec = self._spec
        values: Iterator[Any] = iter(self._rows)
        where = spec.where
        if where:
            values = (v for v in values if _kept(where, spec, self._scope, v, self._step))
        if spec.limit is not None:
            values = islice(values, spec.limit)
        if spec.chunk:
            values = _batches(values, spec.chunk)
        return values

    def items(self, skip: Container[int] = ()) -> Iterator[WorkItem]:
        """The items not in `skip` (done by an earlier attempt or run: by index, as for a list)."""
        values = self._values()
        end: Any = _END
        current = _next(values)
        index = 0
        while current is not end:
            failure: streams.CollectionReadError | None = None
            try:
                following = _next(values)
            except streams.CollectionReadError as exc:  # the item read before it still runs
                following, failure = _BROKEN, exc
            self.total = index + 1
            if following is end:
                self.exhausted = True
            if index not in skip:
                yield WorkItem(index, current, last=following is end)
            if failure is not None:
                raise failure
            current, index = following, index + 1
        self.exhausted = True

    def __iter__(self) -> Iterator[WorkItem]:
        return self.items()

    def close(self) -> None:
        """Let go of the reader (its cursor, connection or file) whether or not it was read to the end."""
        self._rows.close()


_END: Any = object()
_BROKEN: Any = object()  # what follows an item when reading the next row failed


def _next(values: Iterator[Any]) -> Any:
    """The next value, or _END; a failure on the way (the reader's, or a `where` that cannot be
    rendered for this row) is a CollectionReadError, which fails the iterator as a whole."""
    try:
        return next(values, _END)
    except streams.CollectionReadError:
        raise
    except ActionError as exc:
        raise streams.CollectionReadError(
            str(exc), non_retryable=exc.non_retryable, error_type=exc.error_type
        ) from None
    except TemplateError as exc:
        raise streams.CollectionReadError(str(exc), non_retryable=True, error_type="TemplateError") from None


def _batches(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(values)
    while batch := list(islice(it, size)):
        yield batch


def _kept(where: str, spec: IteratorSpec, scope: Mapping[str, Any], value: Any, step: str) -> bool:
    return truthy(render(where, _bind(scope, spec, value), where=f"step '{step}' where"))


def open_work(ctx: ActionContext, spec: IteratorSpec) -> Work | Stream:
    """The iterator's items: a `Stream` for a streaming collection (a `Work` over its rows, read in
    full, when it has an `order_by`), else the rendered collection resolved as a list."""
    if spec.source is None:
        return resolve(spec, ctx.config.get("collection"), ctx.scope, ctx.step)
    rows = streams.open_rows(ctx, spec.source)
    if not spec.order_by:
        return Stream(rows, spec, ctx.scope, ctx.step)
    try:  # filtered as it is read, so that only the kept rows are held for sorting
        elements = [v for v in rows if not spec.where or _kept(spec.where, spec, ctx.scope, v, ctx.step)]
    finally:
        rows.close()
    work = resolve(replace(spec, where=None), elements, ctx.scope, ctx.step)
    work.materialized = True
    return work


def as_list(value: Any, step: str) -> Sequence[Any]:
    """The collection as a sequence; a list is used as it is (never copied: nothing here changes it)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return value
    if isinstance(value, (str, int, float, bool, dict)):
        return [value]
    raise ActionError(
        f"step '{step}': collection must be a list, got {type(value).__name__}", non_retryable=True
    )


def resolve(spec: IteratorSpec, collection: Any, scope: Mapping[str, Any], step: str) -> Work:
    items = as_list(collection, step)
    if spec.where:
        items = [v for v in items if _kept(spec.where, spec, scope, v, step)]
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
