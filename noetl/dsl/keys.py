"""The keys the playbook format accepts, and the aliases it folds into one meaning."""

from __future__ import annotations

from typing import Final

# Step inputs: all of these mean "data"; when several are given they merge, `data` winning.
DATA_ALIASES: Final = ("payload", "input", "params", "with", "args", "data")  # lowest priority first

STEP_COMMON_KEYS: Final = frozenset(
    {"step", "desc", "description", "type", "next", "save", "retry", "auth", "result", "assert", "loop"}
    | set(DATA_ALIASES)
)
TASK_COMMON_KEYS: Final = frozenset(
    {"type", "save", "retry", "auth", "desc", "description"} | set(DATA_ALIASES)
)

# Keys each action type reads; anything else on a step is an error (the old engine ignored typos).
ACTION_KEYS: Final[dict[str, frozenset[str]]] = {
    "python": frozenset({"code"}),
    "http": frozenset({"method", "endpoint", "url", "headers", "timeout"}),
    "postgres": frozenset({"command", "commands", "autocommit"}),
    "duckdb": frozenset({"command", "commands", "database"}),
    "iterator": frozenset(
        {
            "collection",
            "element",
            "mode",
            "concurrency",
            "where",
            "order_by",
            "limit",
            "chunk",
            "on_error",
            "max_failures",
            "max_failure_ratio",
            "task",
        }
    ),
    "playbook": frozenset({"path", "return_step"}),
    "workbook": frozenset({"name", "task"}),
    "save": frozenset(
        {
            "storage",
            "table",
            "mode",
            "key",
            "statement",
            "circuit_breaker",
            "endpoint",
            "url",
            "method",
            "headers",
            "code",
            "database",
            "timeout",
        }
    ),
    "secrets": frozenset({"name", "provider"}),
}
ROUTER_KEYS: Final[frozenset[str]] = frozenset()

SAVE_KEYS: Final = frozenset(
    {
        "storage",
        "type",
        "table",
        "mode",
        "key",
        "args",
        "data",
        "auth",
        "statement",
        "retry",
        "circuit_breaker",
        "endpoint",
        "url",
        "method",
        "headers",
        "timeout",
        "code",
        "database",
    }
)
SAVE_OPTION_KEYS: Final = frozenset({"endpoint", "url", "method", "headers", "timeout", "code", "database"})
RETRY_KEYS: Final = frozenset(
    {"max_attempts", "initial_delay", "backoff_multiplier", "max_delay", "jitter", "retry_when", "stop_when"}
)
TRANSITION_KEYS: Final = frozenset(
    {"step", "when", "then", "else", "desc", "description"} | set(DATA_ALIASES)
)
TOP_LEVEL_KEYS: Final = frozenset(
    {"apiVersion", "kind", "metadata", "workload", "workbook", "workflow", "steps"}
)

# Names every template may read, besides step names and iterator element names.
GLOBAL_NAMES: Final = frozenset(
    {
        "workload",
        "work",
        "execution_id",
        "result",
        "this",
        "_loop",
        "batch",
        "now",
        "uuid",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "true",
        "false",
        "none",
    }
)
