"""Keeps secret values out of events: every credential value resolved in an execution is masked."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from noetl.engine.events import Event

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values (a port, "true") would mask innocent text


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
            error=self.value(event.error),
            current_item=self.value(event.current_item),
            meta=self.value(event.meta),
        )
