"""Tracebacks of the user's code, not of the engine: what `meta.traceback` keeps.

A python step's exception passes through a dozen engine frames (step runner, registry, action) before
the user's own; a traceback cut at N frames from the top showed those and lost the failing line. The
frames kept here are the user's (`<step code>` and any module outside the noetl package), innermost
last, with the exception; a failure inside the engine itself (a bug) keeps its innermost frames.
"""

from __future__ import annotations

import traceback
from pathlib import Path

_ENGINE = str(Path(__file__).resolve().parent.parent)  # the noetl package folder
USER_FRAMES = 12  # at most, the innermost
ENGINE_FRAMES = 6  # when no frame is the user's


def user_traceback(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not f.filename.startswith(_ENGINE)]
    shown = mine[-USER_FRAMES:] if mine else frames[-ENGINE_FRAMES:]
    head = (
        "Traceback (most recent call last, your code only):\n"
        if mine
        else "Traceback (most recent call last):\n"
    )
    return (
        head
        + "".join(traceback.format_list(shown))
        + "".join(traceback.format_exception_only(type(exc), exc))
    )
