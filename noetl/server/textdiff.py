"""A unified diff as structured lines, so a page can colour them and show both sides' line numbers."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any


def diff_lines(a: str, b: str, context: int = 3) -> list[dict[str, Any]]:
    """[{op: hunk|ctx|del|add, text, a_line, b_line}] from `a` to `b`; [] when they are equal.

    The hunks are difflib's unified diff (SequenceMatcher.get_grouped_opcodes, as unified_diff uses), read
    from the opcodes rather than parsed back out of the text. Line numbers are 1-based; a hunk line carries
    the first line of each side, a deleted line only its `a_line`, an added one only its `b_line`.
    """
    left, right = a.splitlines(), b.splitlines()
    out: list[dict[str, Any]] = []
    for group in SequenceMatcher(None, left, right).get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        header = f"@@ -{_range(i1, i2)} +{_range(j1, j2)} @@"
        out.append({"op": "hunk", "text": header, "a_line": i1 + 1, "b_line": j1 + 1})
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [_line("ctx", left[i], i + 1, b1 + i - a1 + 1) for i in range(a1, a2)]
                continue
            out += [_line("del", left[i], i + 1, None) for i in range(a1, a2)]  # replace: old, then new
            out += [_line("add", right[j], None, j + 1) for j in range(b1, b2)]
    return out


def _line(op: str, text: str, a_line: int | None, b_line: int | None) -> dict[str, Any]:
    return {"op": op, "text": text, "a_line": a_line, "b_line": b_line}


def _range(start: int, stop: int) -> str:
    """unified_diff's hunk range: `first,count`, with the line before an empty range."""
    count = stop - start
    if count == 1:
        return str(start + 1)
    return f"{start + 1 if count else start},{count}"
