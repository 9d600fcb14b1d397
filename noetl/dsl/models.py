"""The normalized playbook: frozen values that every other layer reads; aliases are gone by now."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from noetl.dsl.vocabulary import ACTIONS
from noetl.errors import Problem

if TYPE_CHECKING:
    from noetl.dsl.render import Renderer

ROUTER_TYPES = frozenset({"start", "end", "route", "router"})
ACTION_TYPES = frozenset(ACTIONS)  # noetl.dsl.vocabulary: one entry per action type
STORAGES = frozenset({"event", "postgres", "duckdb", "http", "python"})
SAVE_MODES = frozenset({"insert", "upsert", "statement", "script"})  # script: a duckdb save's `commands`
# A streaming collection's file formats, by the file name's ending (`format:` names one for other names).
STREAM_FILE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = True
    retry_when: str | None = None
    stop_when: str | None = None


@dataclass(frozen=True)
class CircuitBreakerSpec:
    failure_threshold: int = 5
    reset_timeout: float = 30.0


@dataclass(frozen=True)
class SaveSpec:
    """Where and how a result is persisted. `args` is the row template (column -> value)."""

    storage: str = "event"
    mode: str = "insert"
    table: str | None = None
    key: tuple[str, ...] = ()
    args: Any = None
    auth: Any = None
    statement: str | None = None
    retry: RetryPolicy | None = None
    circuit_breaker: CircuitBreakerSpec | None = None
    options: dict[str, Any] = field(default_factory=dict)  # storage-specific: endpoint, code, database...
    line: int | None = None

    @cached_property
    def renderers(self) -> SaveRenderers:
        """The save's templates as renderers worked out on first use: an iterator's per-item save renders
        them once per item."""
        from noetl.dsl.render import compile_render

        options = {k: v for k, v in self.options.items() if k not in SAVE_OPTIONS_RENDERED_APART}
        return SaveRenderers(
            args=compile_render(self.args),
            table=compile_render(self.table),
            statement=compile_render(self.statement),
            auth=compile_render(self.auth),
            options=compile_render(options) if options else None,
        )


# Save options rendered at another moment (`code` is Python, never a template; `commands` a script
# rendered with the save's data in scope) or not at all (`batch`, a number the iterator reads).
SAVE_OPTIONS_RENDERED_APART = frozenset({"code", "commands", "batch"})


@dataclass(frozen=True)
class SaveRenderers:
    """`render(<part>, scope, where=where)` of a save's parts as `<part>(scope, where)`."""

    args: Renderer
    table: Renderer
    statement: Renderer
    auth: Renderer
    options: Renderer | None  # None: no option to render


@dataclass(frozen=True)
class Transition:
    """One way out of a step. kind: 'when' (conditional), 'always' (unconditional), 'else', or
    'failure' (from `on_failure:`: taken when the step fails for good, if its `when`, when given, holds).

    `line` is where the target is named; `when_line` where its condition is written.
    """

    step: str
    kind: str = "always"
    when: str | None = None
    data: Any = None
    line: int | None = None
    when_line: int | None = None


@dataclass(frozen=True)
class AssertSpec:
    expects: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamSource:
    """A collection read lazily, row by row: a SQL query (postgres, duckdb) or a file (jsonl, csv, parquet).

    Written as a literal mapping in the playbook (`collection: {query: ..., type: postgres, auth: ...}` or
    `collection: {file: ...}`); its templates are rendered once, when the step starts.
    """

    type: str  # postgres | duckdb | file
    query: str | None = None
    file: str | None = None
    format: str | None = None  # a file's: jsonl | csv | parquet; None: from the rendered path's suffix
    auth: Any = None  # postgres: the credential (canonical form)
    database: str | None = None  # duckdb: the database file (default: the execution's, as a duckdb step)
    fetch_size: int = 1000  # rows fetched per round trip
    line: int | None = None


@dataclass(frozen=True)
class IteratorSpec:
    collection: Any
    task: Task
    element: str = "item"
    mode: str = "sequential"
    concurrency: int = 8
    where: str | None = None
    order_by: str | None = None
    limit: int | None = None
    chunk: int | None = None
    on_error: str = "fail"
    max_failures: int | None = None
    max_failure_ratio: float | None = None
    collect: bool = True  # false: the step's result is the summary, not the list of item results
    source: StreamSource | None = None  # a streaming collection (then `collection` is its raw mapping)


@dataclass(frozen=True)
class Task:
    """An action to run: a step's own action, a workbook entry, or an iterator's nested task."""

    type: str | None
    data: Any = None
    config: dict[str, Any] = field(default_factory=dict)  # action-specific keys (code, endpoint, ...)
    auth: Any = None
    save: SaveSpec | None = None
    retry: RetryPolicy | None = None
    iterator: IteratorSpec | None = None
    assertions: AssertSpec | None = None  # on nested tasks and workbook entries (a step's is on the Step)
    line: int | None = None
    # Seconds an attempt may take (None: the playbook's, else no limit); a template is rendered per attempt.
    timeout: float | str | None = None

    @property
    def is_router(self) -> bool:
        return self.type is None or self.type in ROUTER_TYPES

    @cached_property
    def render_data(self) -> Renderer:
        """`render(self.data, scope, where=where)` as `render_data(scope, where)`, worked out on first use:
        an iterator's task renders its data once per item."""
        from noetl.dsl.render import compile_render

        return compile_render(self.data)

    @cached_property
    def config_to_render(self) -> frozenset[str]:
        """The keys of `config` that a render could change: all but texts without a template. None (the
        commonest case, a python task's code): its config is used as written, per item."""
        return frozenset(
            k for k, v in self.config.items() if not (type(v) is str and "{{" not in v and "{%" not in v)
        )

    @cached_property  # (read once per iterator item)
    def result_save(self) -> SaveSpec | None:
        """The save that runs after the action; a `type: save` task's save *is* its action."""
        return None if self.type == "save" else self.save


@dataclass(frozen=True)
class Step:
    name: str
    task: Task
    next: tuple[Transition, ...] = ()
    desc: str | None = None
    result: Any = None
    assertions: AssertSpec | None = None
    skip: bool = False  # `pass: true`: the step is recorded as SKIPPED and its `next` is followed
    max_runs: int = 1000  # how often a step in a cycle may run before the execution fails (a runaway)
    line: int | None = None

    @property
    def is_router(self) -> bool:
        return self.task.is_router


@dataclass(frozen=True)
class Playbook:
    name: str
    path: str
    steps: dict[str, Step]
    workload: dict[str, Any] = field(default_factory=dict)
    workbook: dict[str, Task] = field(default_factory=dict)
    source: str = "<playbook>"
    api_version: str = "noetl.io/v1"
    description: str | None = None
    warnings: tuple[Problem, ...] = ()  # forms that work but have a clearer spelling (`validate` shows them)
    timeout: float | None = None  # the default `timeout` of every step and nested task that has none

    def successors(self, name: str) -> tuple[str, ...]:
        return tuple(t.step for t in self.steps[name].next)
