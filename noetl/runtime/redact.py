"""Keeps secret values out of events: every credential value resolved in an execution is masked."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from noetl.engine.events import Event

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values (a port, "true") would mask innocent text
# A secret cut short in an error message (an excerpt of an answer cut in the middle of a token) is masked
# too: any run of its first or last _FRAGMENT characters, as far as it goes on; at most _FRAGMENT - 1
# characters of a cut secret remain. Only in error text: elsewhere a value is data (a catalog path that
# starts like a password must stay itself), and only errors quote text that was cut.
_FRAGMENT = 8


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        """Remember every string inside a credential's data as secret."""
        if isinstance(value, dict):
            for v in value.values():
                self.add(v)
        elif isinstance(value, list | tuple):
            for v in value:
                self.add(v)
        elif isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.add(value)

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
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def error_text(self, value: str) -> str:
        """An error message, with whole secrets and cut ones masked."""
        value = self.text(value)
        for secret in self._secrets:
            if len(secret) > 2 * _FRAGMENT:
                value = _mask_fragments(value, secret)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
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


def _mask_fragments(value: str, secret: str) -> str:
    """Mask what is left of `secret` where it was cut: a run of its head or of its tail."""
    head, tail = secret[:_FRAGMENT], secret[-_FRAGMENT:]
    start = value.find(head)
    while start >= 0:
        end = start + _FRAGMENT
        while end < len(value) and end - start < len(secret) and value[end] == secret[end - start]:
            end += 1
        value = value[:start] + MASK + value[end:]
        start = value.find(head, start + len(MASK))
    end = value.find(tail)
    while end >= 0:
        stop = end + _FRAGMENT
        begin = end
        offset = len(secret) - _FRAGMENT
        while begin > 0 and offset > 0 and value[begin - 1] == secret[offset - 1]:
            begin -= 1
            offset -= 1
        value = value[:begin] + MASK + value[stop:]
        end = value.find(tail, begin + len(MASK))
    return value
