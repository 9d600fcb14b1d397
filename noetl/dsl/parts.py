"""Normalize the pieces of a step: retry, save, circuit breaker, iterator and assert blocks."""

from __future__ import annotations

import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from noetl.dsl import keys
from noetl.dsl.auth import AuthProblem, canonical_auth
from noetl.dsl.checks import suggest
from noetl.dsl.models import (
    SAVE_MODES,
    STORAGES,
    STREAM_FILE_FORMATS,
    AssertSpec,
    CircuitBreakerSpec,
    IteratorSpec,
    RetryPolicy,
    SaveSpec,
    StreamSource,
    Task,
)
from noetl.dsl.render import is_template
from noetl.dsl.sql_names import is_identifier, is_table_name
from noetl.dsl.yaml_lines import line_of, located

if TYPE_CHECKING:
    from noetl.dsl.normalize import Normalizer

_RETRY_NUMBERS: tuple[tuple[str, type, float], ...] = (
    ("max_attempts", int, 1),
    ("initial_delay", float, 0),
    ("backoff_multiplier", float, 1),
    ("max_delay", float, 0),
)
_ITERATOR_MODES = {"sequential": "sequential", "async": "async", "parallel": "async"}


def _one_of(value: Any, choices: Any) -> bool:
    """`value in choices`, false (not TypeError) for a list or a mapping written by mistake."""
    return isinstance(value, Hashable) and value in choices


def retry(n: Normalizer, raw: Any, where_raw: Any, step: str) -> RetryPolicy | None:
    """`retry: true | N | {max_attempts, initial_delay, ...}` as a RetryPolicy (None: no retry)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return RetryPolicy()
    if isinstance(raw, int):
        if raw < 1:
            n.report(
                f"retry count {raw} must be 1 or more; give the number of attempts (e.g. `retry: 3`) "
                "or remove `retry`",
                where_raw,
                "retry",
                step=step,
            )
            return None
        return RetryPolicy(max_attempts=raw)
    if not isinstance(raw, dict):
        n.report(
            f"retry must be true, a number of attempts, or a mapping (max_attempts, initial_delay, ...), "
            f"got {raw!r}",
            where_raw,
            "retry",
            step=step,
        )
        return None
    for key in raw:
        if key not in keys.RETRY_KEYS:
            hint = suggest(key, keys.RETRY_KEYS) or f"; valid keys: {', '.join(sorted(keys.RETRY_KEYS))}"
            n.report(f"unknown retry key {key!r}{hint}", raw, key, step=step)
    values: dict[str, Any] = {}
    for key, kind, low in _RETRY_NUMBERS:
        if key not in raw:
            continue
        value = raw[key]
        wrong_type = isinstance(value, bool) or not isinstance(value, int if kind is int else int | float)
        if wrong_type or value < low:
            what = "a whole number" if kind is int else "a number"
            n.report(
                f"retry.{key} must be {what} >= {low:g}, got {value!r}; fix the value", raw, key, step=step
            )
            continue
        values[key] = kind(value)
    if "jitter" in raw:
        if isinstance(raw["jitter"], bool):
            values["jitter"] = raw["jitter"]
        else:
            n.report(f"retry.jitter must be true or false, got {raw['jitter']!r}", raw, "jitter", step=step)
    for key in ("retry_when", "stop_when"):
        if key in raw:
            values[key] = str(raw[key])
    return RetryPolicy(**values)


def save(n: Normalizer, raw: Any, where_raw: Any, step: str) -> SaveSpec | None:
    """A save block; `storage` may be a name or a dict (keys inside it win); `type` means storage."""
    if not isinstance(raw, dict):
        n.report(
            "save must be a mapping with `storage` (postgres, duckdb, http, python, event)",
            where_raw,
            "save",
            step=step,
        )
        return None
    merged = located({k: v for k, v in raw.items() if k != "storage"}, raw)
    storage = raw.get("storage")
    if isinstance(storage, dict):  # `storage: {type: postgres, table: ...}`: inside wins
        merged.update({k: v for k, v in storage.items() if k != "type"})
        storage = storage.get("type")
    kind = raw.get("type")
    if storage is not None and kind is not None and storage != kind:
        n.report(
            f"save has storage {storage!r} and type {kind!r}; keep one (`storage`)", raw, "type", step=step
        )
    storage = storage or kind
    for key in merged:
        if key not in keys.SAVE_KEYS:
            hint = suggest(key, keys.SAVE_KEYS) or f"; valid keys: {', '.join(sorted(keys.SAVE_KEYS))}"
            n.report(f"unknown save key {key!r}{hint}", raw, key, step=step)
    if storage is None:
        if merged.get("table") or merged.get("statement"):
            n.report(
                "save names a table but no storage, so nothing would be written to it; "
                "add `storage: postgres` (or duckdb)",
                raw,
                "table" if "table" in merged else "statement",
                step=step,
            )
        storage = "event"
    if not _one_of(storage, STORAGES):
        n.report(
            f"unknown save storage {storage!r}{suggest(str(storage), STORAGES)}; "
            f"use one of {', '.join(sorted(STORAGES))}",
            raw,
            "storage" if "storage" in raw else "type",
            step=step,
        )
    mode = merged.get("mode", _default_mode(merged))
    _check_save_mode(n, str(storage), mode, merged, raw, step)
    if "batch" in merged:
        _check_batch(n, merged, raw, str(storage), step)
    auth = merged.get("auth")
    if auth is not None:
        try:
            auth = canonical_auth(auth, single=True)
        except AuthProblem as exc:
            n.report(str(exc), raw, "auth", step=step)
    key_value = merged.get("key") or ()
    key_cols = [key_value] if isinstance(key_value, str) else key_value if isinstance(key_value, list) else []
    cb = merged.get("circuit_breaker")
    return SaveSpec(
        storage=str(storage),
        mode=str(mode),
        table=merged.get("table"),
        key=tuple(str(k) for k in key_cols),
        args=merged.get("args", merged.get("data")),
        auth=auth,
        statement=merged.get("statement"),
        retry=retry(n, merged.get("retry"), raw, step),
        circuit_breaker=_breaker(n, cb, raw, step) if cb else None,
        options={k: merged[k] for k in keys.SAVE_OPTION_KEYS if k in merged},
        line=line_of(raw),
    )


# The save blocks written on the task of an iterator being read, per normalizer: a per-item save, the
# one place where `batch` means something.
_PER_ITEM_SAVES: weakref.WeakKeyDictionary[Normalizer, set[int]] = weakref.WeakKeyDictionary()


def _item_task(n: Normalizer, task_raw: dict[str, Any], step: str) -> Task:
    """An iterator's nested task; its `save` is the per-item save."""
    save_raw = task_raw.get("save")
    marks = _PER_ITEM_SAVES.setdefault(n, set())
    if isinstance(save_raw, dict):
        marks.add(id(save_raw))
    try:
        return n.task(task_raw, step, allowed=keys.TASK_COMMON_KEYS, nested=True)
    finally:
        marks.discard(id(save_raw))


def _check_batch(n: Normalizer, merged: dict[str, Any], raw: Any, storage: str, step: str) -> None:
    """`batch: N`: a whole number, on an iterator task's save, to a storage that writes a batch at once."""
    value = merged["batch"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        n.report(
            f"save batch must be a whole number >= 1 (the items whose rows one transaction writes), "
            f"got {value!r}; fix the value or remove `batch`",
            raw,
            "batch",
            step=step,
        )
    elif id(raw) not in _PER_ITEM_SAVES.get(n, ()):
        n.report(
            "save batch is read only on the per-item save of an iterator, the `save` inside its `task`; "
            "remove `batch` here",
            raw,
            "batch",
            step=step,
        )
    elif storage not in keys.BATCH_STORAGES:
        n.report(
            f"save batch needs storage postgres or duckdb (one transaction per batch); a {storage} save "
            "writes each item on its own, so remove `batch`",
            raw,
            "batch",
            step=step,
        )


def _default_mode(merged: dict[str, Any]) -> str:
    if merged.get("table"):
        return "insert"
    if merged.get("statement"):
        return "statement"
    return "script" if merged.get("commands") else "insert"


def _check_save_mode(
    n: Normalizer, storage: str, mode: Any, merged: dict[str, Any], raw: Any, step: str
) -> None:
    if not _one_of(mode, SAVE_MODES):
        hint = suggest(str(mode), SAVE_MODES)
        n.report(
            f"unknown save mode {mode!r}{hint}; use insert, upsert (with key), statement or "
            "script (a duckdb save's `commands`)",
            raw,
            "mode",
            step=step,
        )
        return
    if (mode == "script") != bool(merged.get("commands")) or (mode == "script" and storage != "duckdb"):
        n.report(
            "the script form of a save is a duckdb save with `commands` (a SQL script run once, with "
            "the save's data in scope); for other storages use `statement` or `table`",
            raw,
            "commands" if "commands" in merged else "mode",
            step=step,
        )
        return
    if storage not in ("postgres", "duckdb") or mode == "script":
        return
    table = merged.get("table")
    if mode == "statement":
        if not merged.get("statement"):
            n.report(
                "save mode statement needs `statement: INSERT ... VALUES (:name)`", raw, "mode", step=step
            )
        return
    if not table:
        n.report(
            f"a {storage} save needs `table` (the table to write to), "
            "or `mode: statement` with a `statement`",
            raw,
            "storage" if "storage" in raw else None,
            step=step,
        )
    elif not isinstance(table, str) or (not is_template(table) and not is_table_name(table)):
        n.report(
            f"table {table!r} is not a valid name; use letters, digits and _ (optionally schema.table)",
            raw,
            "table",
            step=step,
        )
    _check_columns(n, mode, merged, raw, step)


def _check_columns(n: Normalizer, mode: str, merged: dict[str, Any], raw: Any, step: str) -> None:
    key = merged.get("key")
    if mode == "upsert" and not key:
        n.report("save mode upsert needs `key` (a column or a list of columns)", raw, "mode", step=step)
    for col in [key] if isinstance(key, str) else key if isinstance(key, list) else [key] if key else []:
        if not isinstance(col, str) or not is_identifier(col):
            n.report(
                f"key column {col!r} is not a valid name; use letters, digits and _", raw, "key", step=step
            )
    args_key = "args" if "args" in merged else "data"
    args = merged.get(args_key)
    row_list = isinstance(args, list) and all(isinstance(r, dict) or is_template(r) for r in args)
    rows: list[Any] = [args] if isinstance(args, dict) else []
    if isinstance(args, list) and row_list:
        rows = [r for r in args if isinstance(r, dict)]
    for row in rows:
        for col in row:
            if not is_identifier(str(col)):
                n.report(
                    f"column {col!r} is not a valid name; use letters, digits and _", row, col, step=step
                )
    if args is not None and not is_template(args) and not isinstance(args, dict) and not row_list:
        n.report(f"save `{args_key}` must map column names to values", raw, args_key, step=step)


def _breaker(n: Normalizer, raw: Any, where: Any, step: str) -> CircuitBreakerSpec | None:
    message = "circuit_breaker needs failure_threshold (a whole number >= 1) and reset_timeout (seconds >= 0)"
    if not isinstance(raw, dict):
        n.report(message, where, "circuit_breaker", step=step)
        return None
    threshold, reset = raw.get("failure_threshold", 5), raw.get("reset_timeout", 30.0)
    bad_threshold = isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
    bad_reset = isinstance(reset, bool) or not isinstance(reset, (int, float)) or reset < 0
    if bad_threshold or bad_reset:
        n.report(message, raw, "failure_threshold" if bad_threshold else "reset_timeout", step=step)
        return None
    return CircuitBreakerSpec(threshold, float(reset))


def iterator(n: Normalizer, raw: dict[str, Any], step: str) -> IteratorSpec | None:
    """`type: iterator` (or a legacy `loop`) as an IteratorSpec; None when the nested task is missing."""
    task_raw = raw.get("task")
    if "collection" not in raw or raw.get("collection") is None:
        n.report(
            'an iterator needs `collection`: a list or a template such as "{{ workload.items }}"',
            raw,
            step=step,
        )
    if not isinstance(task_raw, dict):
        n.report(
            "an iterator needs `task`: the nested action run for every item "
            "(e.g. `task: {type: python, ...}`)",
            raw,
            "task" if "task" in raw else None,
            step=step,
        )
        return None
    task = _item_task(n, task_raw, step)
    if task.is_router:
        n.report("the iterator's `task` needs a `type` (python, http, postgres, ...)", task_raw, step=step)
    mode = raw.get("mode", "sequential")
    if not _one_of(mode, _ITERATOR_MODES):
        hint = suggest(str(mode), _ITERATOR_MODES)
        n.report(
            f"iterator mode {mode!r} is unknown{hint}; use sequential or async (alias parallel)",
            raw,
            "mode",
            step=step,
        )
    on_error = raw.get("on_error", "fail")
    if not _one_of(on_error, ("fail", "continue")):
        hint = suggest(str(on_error), ("fail", "continue"))
        n.report(f"on_error {on_error!r} is unknown{hint}; use fail or continue", raw, "on_error", step=step)
    element = raw.get("element", "item")
    if not isinstance(element, str) or not is_identifier(element):
        n.report(
            f"element {element!r} must be a plain name such as `city` (the name each item is bound to)",
            raw,
            "element",
            step=step,
        )
    numbers = {k: _whole(n, raw, k, step) for k in ("concurrency", "limit", "chunk", "max_failures")}
    ratio = raw.get("max_failure_ratio")
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1
    ):
        n.report("max_failure_ratio must be a number between 0 and 1", raw, "max_failure_ratio", step=step)
        ratio = None
    collect = raw.get("collect", True)
    if not isinstance(collect, bool):
        n.report(
            "collect must be true (the step's result lists every item's result) or false (the result "
            "is the summary: counts, failed indexes, timings)",
            raw,
            "collect",
            step=step,
        )
        collect = True
    return IteratorSpec(
        collection=raw.get("collection"),
        source=stream_source(n, raw.get("collection"), step),
        task=task,
        element=str(element),
        mode=_ITERATOR_MODES.get(mode, "sequential") if _one_of(mode, _ITERATOR_MODES) else "sequential",
        concurrency=numbers["concurrency"] or 8,
        where=raw.get("where"),
        order_by=raw.get("order_by"),
        limit=numbers["limit"],
        chunk=numbers["chunk"],
        on_error=str(on_error),
        max_failures=numbers["max_failures"],
        max_failure_ratio=ratio,
        collect=collect,
    )


_QUERY_KEYS = ("query", "type", "auth", "database", "fetch_size")
_FILE_KEYS = ("file", "format", "fetch_size")
_QUERY_TYPES = ("postgres", "duckdb")
_ONE_MAPPING = "; to loop over this one mapping as an item, write it as a list: `collection: [{...}]`"


def stream_source(n: Normalizer, raw: Any, step: str) -> StreamSource | None:
    """A streaming collection: a mapping written in the playbook with `query` (a SQL query, read through
    a cursor) or `file` (jsonl, csv, parquet). None for any other collection, which keeps its meaning
    (a mapping without either key is still one item; a template is rendered as always)."""
    if not isinstance(raw, dict) or not ({"query", "file"} & set(raw)):
        return None
    if "query" in raw and "file" in raw:
        n.report(
            "a streaming collection reads either a `query` or a `file`, not both; keep one",
            raw,
            "file",
            step=step,
        )
        return None
    allowed = _QUERY_KEYS if "query" in raw else _FILE_KEYS
    for key in raw:
        if key not in allowed:
            hint = suggest(str(key), allowed) or f"; it takes {', '.join(allowed)}"
            n.report(
                f"unknown key {key!r} in a streaming collection{hint}{_ONE_MAPPING}", raw, key, step=step
            )
    fetch_size = _whole(n, raw, "fetch_size", step, what="collection.fetch_size") or 1000
    if "query" in raw:
        return _query_source(n, raw, step, fetch_size)
    return _file_source(n, raw, step, fetch_size)


def _text(n: Normalizer, raw: dict[str, Any], key: str, step: str, what: str) -> str | None:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        n.report(f"collection `{key}` must be {what}, got {value!r}", raw, key, step=step)
        return None
    return value


def _query_source(n: Normalizer, raw: dict[str, Any], step: str, fetch_size: int) -> StreamSource | None:
    query = _text(n, raw, "query", step, "the SQL text of one SELECT")
    kind = raw.get("type")
    if kind is None:
        n.report("a query collection needs `type`: postgres (with `auth`) or duckdb", raw, "query", step=step)
        return None
    if not _one_of(kind, _QUERY_TYPES):
        hint = suggest(str(kind), _QUERY_TYPES)
        n.report(
            f"unknown collection type {kind!r}{hint}; a query collection is postgres or duckdb "
            "(a file is `collection: {file: PATH}`)",
            raw,
            "type",
            step=step,
        )
        return None
    auth = raw.get("auth")
    if kind == "postgres":
        if auth is None:
            n.report(
                "a postgres query collection needs `auth` naming a postgres credential "
                "(for example `auth: pg_local`)",
                raw,
                "type",
                step=step,
            )
        if "database" in raw:
            n.report(
                "`database` is a duckdb file; a postgres collection's database is its credential's",
                raw,
                "database",
                step=step,
            )
    elif auth is not None:
        n.report(
            "a duckdb query collection takes no `auth`: it reads the `database` file (default: the "
            "execution's, shared with its duckdb steps); attach other databases in a duckdb step first",
            raw,
            "auth",
            step=step,
        )
    if auth is not None:
        try:
            auth = canonical_auth(auth, single=True)
        except AuthProblem as exc:
            n.report(str(exc), raw, "auth", step=step)
    database = raw.get("database")
    if database is not None and not isinstance(database, str):
        n.report(f"collection `database` must be a file name, got {database!r}", raw, "database", step=step)
        database = None
    if query is None:
        return None
    return StreamSource(
        type=str(kind), query=query, auth=auth, database=database, fetch_size=fetch_size, line=line_of(raw)
    )


def _file_source(n: Normalizer, raw: dict[str, Any], step: str, fetch_size: int) -> StreamSource | None:
    path = _text(n, raw, "file", step, "the path of a .jsonl, .csv or .parquet file")
    formats = sorted(set(STREAM_FILE_FORMATS.values()))
    fmt = raw.get("format")
    if fmt is not None and not _one_of(fmt, formats):
        hint = suggest(str(fmt), formats)
        n.report(
            f"unknown collection format {fmt!r}{hint}; use {', '.join(formats)}", raw, "format", step=step
        )
        return None
    if path is None:
        return None
    if fmt is None and not is_template(path) and file_format(path) is None:
        n.report(
            f"cannot tell the format of collection file {path!r} from its name; name it .jsonl, .csv "
            "or .parquet, or add `format: jsonl` (csv, parquet)",
            raw,
            "file",
            step=step,
        )
        return None
    return StreamSource(type="file", file=path, format=fmt, fetch_size=fetch_size, line=line_of(raw))


def file_format(path: str) -> str | None:
    """jsonl, csv or parquet from a file name's ending (`.jsonl.gz` and `.csv.gz` too), else None."""
    name = path.lower()
    for suffix, fmt in STREAM_FILE_FORMATS.items():
        if name.endswith(suffix) or (fmt != "parquet" and name.endswith(f"{suffix}.gz")):
            return fmt
    return None


def _whole(n: Normalizer, raw: dict[str, Any], key: str, step: str, what: str | None = None) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    low = 0 if key == "max_failures" else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        n.report(
            f"{what or key} must be a whole number >= {low}, got {value!r}; fix the value",
            raw,
            key,
            step=step,
        )
        return None
    return value


def assertions(n: Normalizer, raw: Any, where: Any, step: str) -> AssertSpec | None:
    """`assert: {expects: [names], returns: [paths]}`."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"expects", "returns"}:
        n.report("assert takes `expects: [names]` and `returns: [paths]`", where, "assert", step=step)
        return None

    def names(key: str) -> tuple[str, ...]:
        value = raw.get(key) or []
        found = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
        for name in found:
            if is_template(name):
                n.report(f"assert.{key} names fixed paths, not templates: {name!r}", raw, key, step=step)
        return found

    return AssertSpec(expects=names("expects"), returns=names("returns"))
