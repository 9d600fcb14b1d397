"""The keys the playbook format accepts, and the aliases it folds into one meaning."""

from __future__ import annotations

from typing import Final

from noetl.dsl.vocabulary import ACTIONS

# Step inputs: all of these mean "data"; when several are given they merge, `data` winning.
DATA_ALIASES: Final = ("payload", "input", "params", "with", "args", "data")  # lowest priority first

# `name` on a step is a label (NoETL 0.x: `step` wins); `pass: true` skips the step.
STEP_COMMON_KEYS: Final = frozenset(
    {
        "step",
        "name",
        "desc",
        "description",
        "type",
        "next",
        "on_failure",
        "save",
        "retry",
        "auth",
        "result",
        "assert",
        "loop",
        "pass",
        "max_runs",
        "timeout",
    }
    | set(DATA_ALIASES)
)
TASK_COMMON_KEYS: Final = frozenset(
    {"type", "name", "save", "retry", "auth", "desc", "description", "assert", "timeout"} | set(DATA_ALIASES)
)
# SQL given as base64 (NoETL 0.x): decoded at load into the plain key.
B64_KEYS: Final = {"command_b64": "command", "commands_b64": "commands"}
SQL_TYPES: Final = frozenset({"postgres", "duckdb", "snowflake"})
# Actions that use exactly one credential: a one-alias `auth` map means that alias.
SINGLE_CREDENTIAL_TYPES: Final = frozenset({"postgres", "snowflake", "http", "secrets", "python", "playbook"})
# Keys that mean something else here, and what to write instead (NoETL 0.x never read them).
MISPLACED_HINTS: Final = {
    "query": "; the SQL goes in `command` (NoETL 0.x never read `query`: every attempt failed)",
    "sql": "; the SQL goes in `command`",
    "script": "; the SQL goes in `command` (`commands` for a script)",
}

# Keys each action type reads (noetl.dsl.vocabulary); anything else on a step is an error (the old
# engine ignored typos).
ACTION_KEYS: Final[dict[str, frozenset[str]]] = {t: spec.keys for t, spec in ACTIONS.items()}
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
        "commands",
        "batch",
    }
)
# `batch` (items per transaction of an iterator's per-item save) is not rendered: the iterator reads it.
SAVE_OPTION_KEYS: Final = frozenset(
    {"endpoint", "url", "method", "headers", "timeout", "code", "database", "commands", "batch"}
)
BATCH_STORAGES: Final = frozenset({"postgres", "duckdb"})  # storages that write a batch in one transaction
RETRY_KEYS: Final = frozenset(
    {"max_attempts", "initial_delay", "backoff_multiplier", "max_delay", "jitter", "retry_when", "stop_when"}
)
TRANSITION_KEYS: Final = frozenset(
    {"step", "when", "condition", "then", "else", "desc", "description"} | set(DATA_ALIASES)
)
# `name`, `path`, `description` beside `metadata`: NoETL 0.x read them there too.
TOP_LEVEL_KEYS: Final = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "workload",
        "workbook",
        "workflow",
        "steps",
        "name",
        "path",
        "description",
        "timeout",
    }
)

# Names every template may read, besides step names and iterator element names.
GLOBAL_NAMES: Final = frozenset(
    {
        "workload",
        "work",
        "execution_id",
        "job",
        "env",
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

# Names a step's inputs may not shadow when they become top-level template names.
RESERVED_NAMES: Final = frozenset(
    {"workload", "work", "execution_id", "job", "env", "result", "this", "_loop", "batch", "now", "uuid"}
)
