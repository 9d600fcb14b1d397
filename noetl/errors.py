"""One exception tree for NoETL; every message says what is wrong, where, and what to do.

NoetlError
+-- PlaybookError        the playbook is malformed (CLI exit code 2); carries a list of Problems
+-- InputError           bad input other than the playbook: payload JSON, URL, unknown execution (exit 2)
+-- TemplateError        a template failed to render at run time (names the template and the variable)
+-- ActionError          an action failed; carries status_code / retry hints for the retry policy
|   +-- SaveError        a save could not be carried out as written  -> save_error
|   +-- SaveFailed       the save target refused the data            -> save_failed
+-- CredentialError      a credential is missing or unreadable
+-- StoreError           the event store could not be written or read
+-- ExecutionClosed      the execution ended (cancelled) while this work for it ran: stop, write nothing
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NoetlError(Exception):
    """Something went wrong in NoETL."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a playbook, located as precisely as we can."""

    message: str
    file: str = "<playbook>"
    line: int | None = None
    step: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        step = f" step '{self.step}':" if self.step else ""
        return f"{where}:{step} {self.message}"


class PlaybookError(NoetlError):
    """The playbook is not valid; fix the problems listed and run again."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(NoetlError):
    """The input is not valid."""


class TemplateError(NoetlError):
    """A template could not be rendered."""


class CredentialError(NoetlError):
    """A credential is missing or cannot be read; add it with `noetl credential add`."""


class StoreError(NoetlError):
    """The event store could not be read or written."""


class ExecutionClosed(NoetlError):
    """The execution has ended (it was cancelled) while work for it was still running; that work stops
    at its next event, and the store keeps nothing it would have written after the end."""


class ActionError(NoetlError):
    """An action failed.

    `status_code` is visible to `retry_when`/`stop_when`; `non_retryable` stops the retry policy at once
    (the hint travels on the error, as in Temporal's SDK).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        result: Any = None,
        non_retryable: bool = False,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.result = result
        self.non_retryable = non_retryable
        self.error_type = error_type or type(self).__name__


class SaveError(ActionError):
    """A save could not be carried out as written (template, credential, unknown storage, bug)."""


class SaveFailed(ActionError):
    """The save target refused the data (database error, non-2xx answer, open circuit breaker)."""

    def __init__(self, message: str, *, reason: str = "target_error", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason
