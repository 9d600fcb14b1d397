"""Event rows as PostgreSQL accepts them: codec rows minus what jsonb and text refuse (NaN, NUL)."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from noetl.engine.events import Event
from noetl.engine.state import WORKFLOW_TYPES
from noetl.store.codec import COLUMNS, JSON_COLUMNS, event_to_row, json_text

_TEXT_AT = tuple(i for i, c in enumerate(COLUMNS) if c not in JSON_COLUMNS)
_NUL = "\x00"
_REPLACEMENT = "\ufffd"

# Read back as text so that codec.loads parses every JSON column the same way on both stores (psycopg
# would hand back a JSON string value already decoded, which loads() would then try to parse again).
SELECT_EVENTS = (
    f"SELECT {', '.join(f'{c}::text' if c in JSON_COLUMNS else c for c in COLUMNS)} FROM noetl_events "
    "WHERE execution_id = %(execution_id)s AND seq > %(after)s ORDER BY seq"
)
# Literals, not a parameter, so that the planner can match the partial index noetl_events_workflow
# (004, made again in 005), whose predicate lists the same types; derived from the engine's set so the two cannot disagree
# on what is read (a type added there is still read, only without the index until a migration adds it).
_WORKFLOW_TYPES = ", ".join(f"'{t}'" for t in sorted(WORKFLOW_TYPES))
SELECT_WORKFLOW_EVENTS = SELECT_EVENTS.replace(
    " ORDER BY seq", f" AND event_type IN ({_WORKFLOW_TYPES}) ORDER BY seq"
)
COPY_EVENTS = f"COPY noetl_events ({', '.join(COLUMNS)}) FROM STDIN"


# orjson hands datetimes and dataclasses to `default` (str), as json does, instead of writing its own ISO
# text or object for them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def fast_json_text(value: Any) -> str:
    """JSON text that jsonb reads as the same value as codec.json_text's (not the same bytes: orjson writes
    no spaces, and UTF-8 instead of \\u escapes; jsonb keeps neither).

    orjson is several times faster, but it writes NaN and infinities as null, where json writes NaN and
    Infinity (which jsonb_text turns into strings), and it refuses integers beyond 64 bits, keys that are
    not text, lone surrogates and nesting deeper than 254 levels. Those values, and any whose text holds
    a null, are written by json instead.
    """
    try:
        text = orjson.dumps(value, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json_text(value)
    return json_text(value) if b"null" in text else text.decode()


def event_row(event: Event, seq: int) -> list[Any]:
    """codec.event_to_row, made acceptable to PostgreSQL; a refused value would fail its whole batch.

    One test for NUL over all the text columns instead of one per column, and a plain int's JSON is
    its digits: this runs for every event a worker writes (2.6-3.0 us an event before, 1.2-2.0 now)."""
    e = event
    row = list(event_to_row(e, seq, _jsonb))
    texts = f"{e.execution_id}{e.parent_execution_id}{e.event_type}{e.node_name}{e.node_id}{e.node_type}"
    if _NUL in texts or _NUL in f"{e.status}{e.created_at}{e.error}":
        for i in _TEXT_AT:
            if isinstance(row[i], str):
                row[i] = clean_text(row[i])
    return row


def _jsonb(value: Any) -> str:
    """fast_json_text, then jsonb_text; a plain int (the commonest item and result) is its digits."""
    if type(value) is int:
        return int.__repr__(value)
    return _acceptable(fast_json_text(value))


def clean_text(text: str | None) -> str | None:
    """Text a PostgreSQL text column accepts: NUL becomes U+FFFD."""
    return text.replace(_NUL, _REPLACEMENT) if text and _NUL in text else text


def jsonb_text(text: str | None) -> str | None:
    """JSON text jsonb accepts: Python's json writes NaN, Infinity and \\u0000, which jsonb refuses.

    Non-finite numbers become the strings "NaN", "Infinity", "-Infinity"; NUL becomes U+FFFD. The
    common case (none of them present) costs three substring searches.
    """
    return None if text is None else _acceptable(text)


def _acceptable(text: str) -> str:
    if "NaN" not in text and "Infinity" not in text and "\\u0000" not in text:
        return text
    return json.dumps(_safe(json.loads(text)), allow_nan=False)


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.replace(_NUL, _REPLACEMENT)
    if isinstance(value, list):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    return value
