"""Render an execution's events as a readable terminal timeline (used by `noetl events` and `run`).

A rich.table sized to the terminal: on a terminal the table fits its width (the node and the detail are
cut with an ellipsis, never the event type or the status); piped, nothing is cut and each event stays on
one line, so the output can be searched.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from noetl.engine.events import Event
from noetl.engine.events import EventType as T

_INDENT = {"iteration": 4, "save": 6}
_ITEM_TYPES = frozenset({T.ITERATION_STARTED, T.ITERATION_COMPLETED, T.ITERATION_FAILED})
_PIPED_WIDTH = 10_000  # output that is not a terminal is never cut
_RICH_ROWS = 1_000  # longer timelines are padded by hand (_padded): rich.table would take seconds
# header, right-justified, cut (gives up width to fit the terminal) or never cut
_COLUMNS = (
    ("#", True, False),
    ("time", True, False),
    ("step / node", False, True),
    ("event", False, False),
    ("status", False, False),
    ("dur", True, False),
    ("detail", False, True),
)


def _offset(event: Event, start: datetime | None) -> str:
    if start is None or not event.created_at:
        return ""
    return f"+{(datetime.fromisoformat(event.created_at) - start).total_seconds():.3f}s"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_timeline(events: Sequence[Event], *, max_items: int = 20, width: int | None = None) -> str:
    """One line per event; iterations past `max_items` per step are folded into a count line.

    `width`: the columns to fit in; by default the terminal's, and unbounded when stdout is not one.
    """
    if not events:
        return "(no events)"
    if width is None:
        width = shutil.get_terminal_size((_PIPED_WIDTH, 24)).columns
    start = datetime.fromisoformat(events[0].created_at) if events[0].created_at else None
    rows: list[tuple[str, ...]] = []
    hidden: Counter[str] = Counter()
    # A step that runs more than once (a cycle, a retry of the execution) shows each run's inputs.
    runs = Counter(e.node_name or "" for e in events if e.event_type == T.STEP_STARTED)
    rerun = frozenset(name for name, n in runs.items() if n > 1)
    for e in events:
        if e.current_index is not None and e.current_index >= max_items:
            hidden[e.node_name or ""] += 1
            continue
        indent = _INDENT.get(e.node_type or "", 0 if e.node_type == "playbook" else 2)
        if e.node_type == "save" and e.current_index is None:
            indent = 4
        if e.event_type in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED) and hidden[e.node_name or ""]:
            more = f"{hidden[e.node_name or '']} more events of items >= {max_items} (noetl events --all shows them)"
            rows.append(("", "", "    ...", "", "", "", more))
        rows.append(
            (
                str(e.event_id),
                _offset(e, start),
                " " * indent + (e.node_id or e.node_name or ""),
                e.event_type,
                e.status or "",
                f"{e.duration:.3f}s" if e.duration is not None else "",
                _detail(e, rerun),
            )
        )
    text = _table(rows, width) if len(rows) <= _RICH_ROWS else _padded(rows, width)
    return "\n".join(line.rstrip() for line in text.splitlines())


def _table(rows: list[tuple[str, ...]], width: int) -> str:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="", padding=(0, 1, 0, 0))
    for header, right, cut in _COLUMNS:
        if cut:  # gives up its width when the terminal is narrow: the cells are cut, not wrapped
            table.add_column(_cut(header))
        else:
            table.add_column(header, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(_cut(cell) if cut else cell for cell, (_, _, cut) in zip(row, _COLUMNS, strict=True)))
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False, emoji=False, markup=False).print(table)
    return buffer.getvalue()


def _cut(text: str) -> Text:
    """One line, ended with an ellipsis where the column is too narrow for it."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def _padded(rows: list[tuple[str, ...]], width: int) -> str:
    """The same columns as _table, by plain padding, for long listings (`noetl events --all`), which
    rich.table renders too slowly: about 0.7 ms a row here, 14.7 s for the 20,012 events of
    bench/iterator.py against 0.2 s. To fit `width`, the wider of the node and the detail gives up a
    column at a time, as rich does."""
    rows = [tuple(header for header, _, _ in _COLUMNS), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    over = sum(widths) + len(widths) - 1 - width
    while over > 0 and (widths[2] > 4 or widths[6] > 0):  # the wider of node and detail gives a column
        widths[6 if widths[6] >= widths[2] or widths[2] <= 4 else 2] -= 1
        over -= 1

    def cell(text: str, i: int) -> str:
        if len(text) > widths[i]:
            text = text[: widths[i] - 1] + "…" if widths[i] else ""
        return text.rjust(widths[i]) if _COLUMNS[i][1] else text.ljust(widths[i])

    return "\n".join(" ".join(cell(text, i) for i, text in enumerate(row)) for row in rows)


def _detail(e: Event, rerun: frozenset[str] = frozenset()) -> str:
    meta = e.meta or {}
    if e.event_type in (T.ITERATION_COMPLETED, T.ITERATION_FAILED) and (meta.get("attempts") or 0) > 1:
        return _attempts(e)
    if e.event_type == T.ACTION_STARTED and (e.node_name or "") in rerun:
        inputs = (e.context or {}).get("inputs")
        return "" if inputs in (None, {}) else "inputs: " + _short(inputs, 100)
    if e.event_type == T.ACTION_RETRY:  # when the next attempt runs, then why this one failed
        return f"next attempt {meta.get('next_attempt')} in {meta.get('delay')}s: " + _error(e.error)
    if e.event_type == T.STEP_FAILED and e.error:
        handled = meta.get("handled") and meta.get("next")
        if handled:  # on_failure: where the workflow went instead of failing
            return "on_failure: " + ", ".join(t["step"] for t in meta["next"]) + "; error: " + _error(e.error)
        reason = meta.get("reason")
        return "error: " + _error(e.error) + (f" (stopped: {reason})" if reason else "")
    if e.event_type == T.EXECUTION_RETRY:
        return (
            f"retry: {meta.get('items_count')} item(s) of {meta.get('step')} run again, "
            f"{meta.get('kept')} kept ({meta.get('requested_by')})"
        )
    if e.error:
        return "error: " + _error(e.error)
    if e.event_type == T.ITERATOR_STARTED:
        return f"count={meta.get('count')} mode={meta.get('mode')} concurrency={meta.get('concurrency')}"
    if e.event_type in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED):
        return (
            f"ok={meta.get('succeeded')} failed={meta.get('failed')} p50={meta.get('p50')}s "
            f"p95={meta.get('p95')}s rows={meta.get('rows_saved')} {meta.get('items_per_second')}/s"
        )
    if e.event_type == T.SAVE_COMPLETED:
        return f"rows={meta.get('rows')}"
    if e.event_type == T.STEP_COMPLETED and meta.get("next"):
        return "next: " + ", ".join(t["step"] for t in meta["next"])
    if e.current_item is not None:
        return "item: " + _short(e.current_item)
    if e.event_type in (T.EXECUTION_COMPLETE, T.ACTION_COMPLETED) and e.result is not None:
        return "result: " + _short(e.result)
    return ""


def _attempts(e: Event) -> str:
    """An item that needed more than one attempt: how many, its error if it failed, and the errors of
    the attempts before it (the same error in attempts one after the other is said once)."""
    meta = e.meta or {}
    said = [f"attempts: {meta['attempts']}"]
    if e.error:
        said.append("error: " + _error(e.error))
    retried = _runs_of([str(text or "").split("\n")[0] for text in meta.get("retried_errors") or []])
    if retried:
        said.append("retried: " + _short(" | ".join(retried), 200))
    return "; ".join(said)


def _runs_of(errors: list[str]) -> list[str]:
    """`attempt 1: x`, `attempt 2: x`, `attempt 3: y` -> `attempts 1-2: x`, `attempt 3: y`."""
    runs: list[tuple[int, int, str]] = []  # first attempt, last attempt, error
    for n, text in enumerate(errors, start=1):
        label, sep, rest = text.partition(": ")
        body = rest if sep and label == f"attempt {n}" else text
        if runs and runs[-1][2] == body:
            runs[-1] = (runs[-1][0], n, body)
        else:
            runs.append((n, n, body))
    return [f"attempt {a}: {t}" if a == b else f"attempts {a}-{b}: {t}" for a, b, t in runs]


def _error(text: str | None) -> str:
    """The first line of an error, long enough to hold its cause (the table cuts it to the terminal)."""
    return _short((text or "").splitlines()[0] if text else "", 400)
