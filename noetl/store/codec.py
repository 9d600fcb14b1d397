"""Event <-> row conversion shared by the SQL stores; JSON columns hold the structured fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from noetl.engine.events import Event
from noetl.engine.frozen import FrozenDict

COLUMNS = (
    "execution_id",
    "event_id",
    "parent_execution_id",
    "parent_event_id",
    "event_type",
    "node_name",
    "node_id",
    "node_type",
    "status",
    "created_at",
    "duration",
    "current_index",
    "current_item",
    "attempt",
    "context",
    "result",
    "error",
    "meta",
    "seq",
)
JSON_COLUMNS = frozenset({"current_item", "context", "result", "meta"})


# What the stored text is: json.dumps(value, default=str), byte for byte (SQLite keeps the text as written
# and its readers slice it, see views_sql). One encoder, built once: json.dumps(default=str) builds a new
# JSONEncoder at every call. PostgreSQL's writer encodes with orjson instead (pg_codec), since jsonb keeps
# no formatting.
_encode = json.JSONEncoder(default=str).encode
# json's C encoder, made once with the settings of JSONEncoder(default=str): encode() makes a new one
# for every value (1.5 us for a small dict, against 0.6 us). Without the circular-reference check
# (markers=None), which encode() has: the values stored were checked for cycles as they were recorded
# (engine.values), and a cycle would still end in a RecursionError, not a crash, and no bad text.
_c_encoder = (
    c_make_encoder(None, str, encode_basestring_ascii, None, ": ", ", ", False, False, True)
    if c_make_encoder is not None
    else None
)


def json_text(value: Any) -> str:
    # An int (the commonest item and result) skips the encoder's setup: json writes it as int.__repr__ too.
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is FrozenDict:  # one value many events carry: encoded once (engine.frozen)
        text = value.encoded
        if text is None:
            text = value.encoded = _encode(value) if _c_encoder is None else "".join(_c_encoder(value, 0))
        return text
    if _c_encoder is None or type(value) is str:  # (a text: encode() takes its own short path)
        return _encode(value)
    return "".join(_c_encoder(value, 0))


def dumps(value: Any) -> str | None:
    return None if value is None else json_text(value)


_decode = json.JSONDecoder().decode  # what json.loads(text) calls, without its checks per call


def loads(value: Any) -> Any:
    if type(value) is str:
        # A plain non-negative int (the commonest item and result) is its digits: int() reads them
        # exactly as json would, without the decoder's two whitespace matches (3.6 us a call here).
        return int(value) if value.isdigit() and value.isascii() else _decode(value)
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value


def event_to_row(
    event: Event, seq: int | None = None, encode: Callable[[Any], str] = json_text
) -> tuple[Any, ...]:
    """The row of an event; `seq` is the one the store gives it as it commits (see sequencing), `encode`
    writes the JSON columns."""
    # Spelled out, not a loop over COLUMNS: this runs for every event and is on the benchmark's hot path.
    e = event
    return (
        e.execution_id,
        e.event_id,
        e.parent_execution_id,
        e.parent_event_id,
        e.event_type,
        e.node_name,
        e.node_id,
        e.node_type,
        e.status,
        e.created_at,
        e.duration,
        e.current_index,
        None if e.current_item is None else encode(e.current_item),
        e.attempt,
        None if e.context is None else encode(e.context),
        None if e.result is None else encode(e.result),
        e.error,
        encode(e.meta) if e.meta else None,
        seq,
    )


def row_to_event(row: Any) -> Event:
    # Spelled out like event_to_row: a job that reads an iterator's item ends reads one row per item.
    (
        execution_id,
        event_id,
        parent_execution_id,
        parent_event_id,
        event_type,
        node_name,
        node_id,
        node_type,
        status,
        created_at,
        duration,
        current_index,
        current_item,
        attempt,
        context,
        result,
        error,
        meta,
        seq,
    ) = row
    # Positional, in events.FIELD_ORDER: three times cheaper than keywords, once per row read.
    return Event(
        execution_id,
        event_type,
        node_name,
        node_id,
        node_type,
        status,
        event_id,
        parent_execution_id,
        parent_event_id,
        created_at,
        duration,
        current_index,
        None if current_item is None else loads(current_item),
        attempt,
        None if context is None else loads(context),
        None if result is None else loads(result),
        error,
        _meta(meta),
        seq,
    )


# Most events of an execution carry one of a few metas ({"worker_id": "w1"} on every item event a worker
# writes): each text is decoded once and copied, not decoded per row. Only metas of plain values are
# kept, so that a copy shares nothing mutable with another event.
_METAS: dict[str, dict[str, Any]] = {}
_MAX_METAS = 1024
_PLAIN = (str, int, float, bool, type(None))


def _meta(text: Any) -> dict[str, Any]:
    if text is None:
        return {}
    if type(text) is str:
        seen = _METAS.get(text)
        if seen is not None:
            return dict(seen)
    value = loads(text)
    if not value:
        return {}
    if (
        type(text) is str
        and type(value) is dict
        and len(text) <= 256
        and all(type(v) in _PLAIN for v in value.values())
    ):
        if len(_METAS) >= _MAX_METAS:
            _METAS.clear()
        _METAS[text] = value
        return dict(value)
    return value
