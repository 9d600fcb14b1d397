"""The timeline fits the terminal it is printed on: only the node and the detail are cut, never the id,
the time, the event type, the status or the duration; piped, nothing is cut."""

from __future__ import annotations

from typing import Any

import pytest

from noetl import timeline
from noetl.engine.events import Event
from noetl.timeline import format_timeline
from tests.helpers import run_text

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: a_playbook_with_a_rather_long_name_for_a_narrow_terminal}
workflow:
  - step: start
    next: [{step: fetch_every_city_of_the_northern_hemisphere}]
  - step: fetch_every_city_of_the_northern_hemisphere
    type: iterator
    collection: "{{ range(30) | list }}"
    element: x
    on_error: continue
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            if x == 3:
                raise ValueError("a long error message that explains at length why this item failed " * 3)
            return {"x": x, "label": "a result long enough to need cutting on a narrow terminal"}
    next: [{step: end}]
  - step: end
"""


@pytest.fixture
def events(store: Any) -> list[Event]:
    _, found = run_text(store, PLAYBOOK)
    return found


@pytest.mark.parametrize("renderer", ["rich", "padded"])
def test_a_timeline_fits_an_80_column_terminal(
    events: list[Event], renderer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if renderer == "padded":  # the renderer of long listings
        monkeypatch.setattr(timeline, "_RICH_ROWS", 0)
    wide = format_timeline(events, width=10_000).splitlines()
    narrow = format_timeline(events, width=80).splitlines()
    assert max(len(line) for line in wide) > 120  # the test means something: the wide one does not fit
    assert all(len(line) <= 80 for line in narrow), "\n".join(narrow)
    assert len(narrow) == len(wide)  # one line per event still: cut, not wrapped
    for w, n in zip(wide[1:], narrow[1:], strict=True):  # id, time, event type, status, duration: whole
        id_time, kept = w.split()[:2], [f for f in w.split() if f in {e.event_type for e in events}]
        assert n.split()[:2] == id_time or w.strip().startswith("...")
        assert all(k in n.split() for k in kept), (w, n)
    assert any("…" in line for line in narrow)  # the long node names and details were cut
    assert "ValueError: a long error message" in "\n".join(wide)  # and are whole when there is room


def test_piped_output_is_not_cut(events: list[Event]) -> None:
    text = format_timeline(events)  # pytest's stdout is not a terminal
    assert "…" not in text
    assert "fetch_every_city_of_the_northern_hemisphere" in text and "execution_complete" in text


def test_items_past_the_limit_are_folded_into_one_line(events: list[Event]) -> None:
    text = format_timeline(events, max_items=5, width=80)
    assert "    ..." in text and "50 more events" in text
    assert len(text.splitlines()) < len(events)
