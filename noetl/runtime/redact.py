"""Keeps secret values out of events: every credential value resolved in an execution is masked, and so
is what is left of one where a text was cut (an excerpt ends in the middle of a token)."""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import replace
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from noetl.dsl.render import StepView, render, root_names, unwrap
from noetl.engine.events import Event

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values (a port, "true") would mask innocent text
# What is left of a secret where a text was cut is masked from FRAGMENT characters on: at most
# FRAGMENT - 1 characters of a cut secret remain.
FRAGMENT = 5
# In error text, any run of FRAGMENT characters of a secret this long is masked, wherever it is: errors
# quote excerpts, cut at both ends or cut and then wrapped in more text. Shorter secrets (and connection
# strings, whose scheme and host are not secret) only where a text visibly ends: at its start or end,
# or at an ellipsis. Elsewhere a value is data (a catalog path that starts like a password must stay
# itself), so only long values, the ones that get cut, are checked, and only at their ends.
_FRAGMENTED = 12
_CUT_VALUE = 64
_ELLIPSES = ("...", "\u2026")
_KEYWORD_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        # The same set, for hot paths to test (`if redactor.secrets:`) before a call: a sink writes
        # two to four events per item and most executions hold no secret. Read it, never change it.
        self.secrets: Set[str] = self._secrets
        self._lock = threading.Lock()
        self._index = _Index()

    def add(self, value: Any) -> None:
        """Remember every string inside a credential's data as secret."""
        if isinstance(value, dict):
            for v in value.values():
                self.add(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.add(v)
        elif isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH and value not in self._secrets:
            # The password alone, too: it is what a connection error or a cut URL would show.
            found = [value, *(p for p in passwords_in(value) if len(p) >= _MIN_SECRET_LENGTH)]
            with self._lock:
                for secret in found:
                    if secret not in self._secrets:
                        self._secrets.add(secret)
                        self._index.add(secret)

    @property
    def active(self) -> bool:
        """Whether anything is masked at all (most executions hold no secret)."""
        return bool(self._secrets)

    def add_all(self, values: list[str]) -> None:
        for value in values:
            self.add(value)

    def add_sensitive(self, data: dict[str, Any]) -> None:
        """Credentials mix secrets with plain settings; only the sensitive-looking fields are masked."""
        for key, value in data.items():
            lowered = key.lower()
            if any(word in lowered for word in ("pass", "secret", "token", "key", "dsn", "auth", "value")):
                self.add(value)

    def text(self, value: str) -> str:
        """A value with its secrets masked (and, in a long one, a secret cut at either end)."""
        if not self._secrets:
            return value
        index = self._index
        value = index.whole(value)
        if len(value) >= _CUT_VALUE:
            value = _apply(value, index.cut_ends(value, marks=False))
        return value

    def error_text(self, value: str) -> str:
        """An error message, with whole secrets and every piece of a cut one masked."""
        if not self._secrets:
            return value
        index = self._index
        value = index.whole(value)
        return _apply(value, index.cut_ends(value, marks=True) + index.runs(value))

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def event(self, event: Event) -> Event:
        if not self._secrets:
            return event
        return replace(
            event,
            context=self.value(event.context),
            result=self.value(event.result),
            error=None if event.error is None else self.error_text(event.error),
            current_item=self.value(event.current_item),
            meta=self.value(event.meta),
        )


def passwords_in(value: str) -> list[str]:
    """The password of a connection string: `scheme://user:PASSWORD@host` or `... password=PASSWORD`."""
    found: list[str] = []
    if "://" in value and "@" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    for match in _KEYWORD_PASSWORD.finditer(value):
        found.append(match.group(1).strip("'"))
    return found


def _connection_string(secret: str) -> bool:
    return "://" in secret or bool(_KEYWORD_PASSWORD.search(secret))


class _Index:
    """The secrets of a redactor, arranged for masking: longest first, and their runs of FRAGMENT.

    Grown one secret at a time (an iterator may learn one per item), never rebuilt: a reader holds the
    lists it started with, and the sets only grow."""

    def __init__(self) -> None:
        self.ordered: list[str] = []  # a longer secret first: no piece of it is left by a shorter one
        self.cuttable: list[str] = []  # longer than FRAGMENT: a cut can leave a piece of them
        self.grams: set[str] = set()  # every run of FRAGMENT characters of those
        self.fragmented: set[str] = set()  # the same, of the secrets masked piece by piece in errors

    def add(self, secret: str) -> None:
        self.ordered = _inserted(self.ordered, secret)
        if len(secret) <= FRAGMENT:
            return
        self.cuttable = _inserted(self.cuttable, secret)
        grams = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
        self.grams.update(grams)
        if len(secret) >= _FRAGMENTED and not _connection_string(secret):
            self.fragmented.update(grams)

    def whole(self, value: str) -> str:
        for secret in self.ordered:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def cut_ends(self, value: str, marks: bool) -> list[tuple[int, int]]:
        """Spans of `value` that are the head of a secret ending where the text ends (or at an ellipsis),
        or its tail starting where the text starts (or after an ellipsis)."""
        ends, starts = [len(value)], [0]
        if marks:
            for mark in _ELLIPSES:
                at = value.find(mark)
                while at >= 0:
                    ends.append(at)
                    starts.append(at + len(mark))
                    at = value.find(mark, at + 1)
        spans = []
        for end in ends:
            if end >= FRAGMENT and value[end - FRAGMENT : end] in self.grams:
                length = max((_head_before(value, end, s) for s in self.cuttable), default=0)
                if length:
                    spans.append((end - length, end))
        for start in starts:
            if value[start : start + FRAGMENT] in self.grams:
                length = max((_tail_after(value, start, s) for s in self.cuttable), default=0)
                if length:
                    spans.append((start, start + length))
        return spans

    def runs(self, value: str) -> list[tuple[int, int]]:
        """Spans of `value` made of runs of FRAGMENT characters of a long secret."""
        if not self.fragmented:
            return []
        grams = self.fragmented
        return [
            (i, i + FRAGMENT) for i in range(len(value) - FRAGMENT + 1) if value[i : i + FRAGMENT] in grams
        ]


def _inserted(secrets: list[str], secret: str) -> list[str]:
    """A new list with `secret` in its place, longest first (readers keep iterating the old one)."""
    copy = list(secrets)
    bisect.insort(copy, secret, key=lambda s: -len(s))
    return copy


def _head_before(value: str, end: int, secret: str) -> int:
    """The length of the longest head of `secret` (FRAGMENT characters or more, not all of it) that
    `value` has just before `end`; 0 if none."""
    for length in range(min(len(secret) - 1, end), FRAGMENT - 1, -1):
        if value.startswith(secret[:length], end - length):
            return length
    return 0


def _tail_after(value: str, start: int, secret: str) -> int:
    for length in range(min(len(secret) - 1, len(value) - start), FRAGMENT - 1, -1):
        if value.startswith(secret[-length:], start):
            return length
    return 0


def _apply(value: str, spans: list[tuple[int, int]]) -> str:
    """`value` with each span (merged where they touch or overlap) replaced by MASK."""
    if not spans:
        return value
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, last = [], 0
    for start, end in merged:
        parts += [value[last:start], MASK]
        last = end
    parts.append(value[last:])
    return "".join(parts)


# ---- values derived from a secret in a template ------------------------------------------------------

# Every letter and digit moved on by one: a secret's twin has the same length and the same kinds of
# characters (a slice, `upper`, `int` work on it alike), and differs from it at every such character.
_TWIN = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "bcdefghijklmnopqrstuvwxyzaBCDEFGHIJKLMNOPQRSTUVWXYZA1234567890",
)
_NOT_SECRET_WORDS = frozenset({"true", "false", "none", "null", "yes", "no"})  # a comparison's outcome
_FAILED: Any = object()
_names = lru_cache(maxsize=4096)(root_names)


class DerivedSecrets:
    """Sits in a step's scope (dsl.render.WATCH) and learns the values its templates derive from a
    secret: `{{ token[4:] }}`, `{{ token | upper }}`, `{{ 'Bearer ' ~ token }}`, whatever the template
    does. A template that reads a value holding a secret is rendered a second time with each secret
    replaced by its twin (every letter and digit moved on by one); the parts of the output that differ
    were computed from the secret, and `learn` is told of each, so that events mask them like the
    secret itself. The step still gets the real output. Templates that read no secret are rendered once.
    """

    def __init__(self, secrets: Iterable[str], learn: Callable[[str], None]) -> None:
        self._secrets: tuple[str, ...] = ()
        self._learn = learn
        self._lock = threading.Lock()
        self._holding: dict[int, tuple[Any, bool]] = {}  # id -> (value, holds a secret): per step, small
        self._add([s for s in secrets if isinstance(s, str)])

    def __repr__(self) -> str:
        return "DerivedSecrets()"  # never the secrets

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def _add(self, found: list[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            new = [s for s in found if len(s) >= _MIN_SECRET_LENGTH and s not in known]
            if new:
                self._secrets = tuple(sorted(known.union(new), key=len, reverse=True))
                self._holding = {}  # a value may hold one of the new ones

    def rendered(self, source: str, context: Mapping[str, Any], value: Any) -> None:
        """Called by render() after each template; learns what `value` derived from a secret."""
        if not self._secrets:
            return
        try:
            names = _names(source)
        except Exception:  # not a template Jinja can parse again: it rendered, so this cannot happen
            return
        if not any(n in context and self._holds(context[n]) for n in names):
            return
        # Every name the template reads is copied, not only those holding a secret: a template that
        # changes a list (`xs.append(...)`) changes the copy the second time, not the step's data.
        twin = {**context, **{n: self._twin(context[n]) for n in names if n in context}}
        try:
            other = render(source, twin)
        except Exception:  # the twin broke the template (a lookup by the secret): all of it is derived
            other = _FAILED
        derived = [p for p in _differing(value, other) if _worth_masking(p)]
        if derived:
            self._add(derived)
            for part in derived:
                self._learn(part)

    def _holds(self, value: Any) -> bool:
        key = id(value)
        cached = self._holding.get(key)
        if cached is not None and cached[0] is value:
            return cached[1]
        holds = _holds(value, self._secrets)
        if len(self._holding) > 256:  # item values come and go: keep the cache small
            self._holding = {}
        self._holding[key] = (value, holds)
        return holds

    def _twin(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, secret.translate(_TWIN))
            return value
        if isinstance(value, StepView):
            return StepView(self._twin(unwrap(value)))
        if isinstance(value, dict):
            return {k: self._twin(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._twin(v) for v in value]
        return value


def _holds(value: Any, secrets: tuple[str, ...]) -> bool:
    if isinstance(value, str):
        return any(secret in value for secret in secrets)
    if isinstance(value, StepView):
        return _holds(unwrap(value), secrets)
    if isinstance(value, dict):
        return any(_holds(v, secrets) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, secrets) for v in value)
    return False


def _differing(real: Any, twin: Any) -> list[str]:
    """The parts of `real`'s strings that differ from `twin`'s: what was computed from a secret."""
    if isinstance(real, str):
        if not isinstance(twin, str):
            return [real]
        if real == twin:
            return []
        head = 0
        while head < min(len(real), len(twin)) and real[head] == twin[head]:
            head += 1
        tail = 0
        while tail < min(len(real), len(twin)) - head and real[-1 - tail] == twin[-1 - tail]:
            tail += 1
        return [real[head : len(real) - tail]]
    if isinstance(real, dict):
        if isinstance(twin, dict) and twin.keys() == real.keys():
            return [p for k, v in real.items() for p in _differing(v, twin[k])]
        return [p for v in real.values() for p in _differing(v, _FAILED)]
    if isinstance(real, (list, tuple)):
        if isinstance(twin, (list, tuple)) and len(twin) == len(real):
            return [p for v, t in zip(real, twin, strict=True) for p in _differing(v, t)]
        return [p for v in real for p in _differing(v, _FAILED)]
    return []  # a number or a flag: not text the log could mask


def _worth_masking(part: str) -> bool:
    return (
        len(part) >= _MIN_SECRET_LENGTH
        and part.strip().lower() not in _NOT_SECRET_WORDS
        and any(c.isalnum() for c in part)
    )
