"""The action vocabulary, in one place: every action type, the keys it reads, the keys it needs, the driver
it imports and the module that runs it.

The DSL (which keys a step may have, what it must have), the validator (which drivers a playbook needs)
and the action registry (which module runs a type) all read this table, so adding an action type is one
module under noetl/actions and one entry here. Pure data: nothing here imports an action or a driver.
"""

from __future__ import annotations

from dataclasses import dataclass

from noetl.dsl.drivers import DUCKDB, PSYCOPG, SNOWFLAKE, Driver

_SQL = frozenset({"command", "commands"})
_SQL_NEEDS = (("command", "commands"), "`command`: one or more SQL statements")


@dataclass(frozen=True)
class ActionSpec:
    type: str
    keys: frozenset[str]  # the action's own keys, beside the keys every step has
    needs: tuple[tuple[str, ...], str] | None = None  # (one of these keys, how to say it) or None
    driver: Driver | None = None  # the optional module the action imports (an extra installs it)

    @property
    def module(self) -> str:
        """The module whose `run(ctx)` carries the action out."""
        return f"noetl.actions.{self.type}_action"


ACTIONS: dict[str, ActionSpec] = {
    spec.type: spec
    for spec in (
        ActionSpec("python", frozenset({"code"}), (("code",), "`code` defining `def main(...)`")),
        ActionSpec(
            "http",
            frozenset({"method", "endpoint", "url", "headers", "timeout", "max_response_bytes"}),
            (("endpoint", "url"), "`endpoint` (or `url`): the URL to call"),
        ),
        ActionSpec("postgres", _SQL | {"autocommit"}, _SQL_NEEDS, PSYCOPG),
        ActionSpec("duckdb", _SQL | {"database"}, _SQL_NEEDS, DUCKDB),
        ActionSpec("snowflake", _SQL, _SQL_NEEDS, SNOWFLAKE),
        ActionSpec(
            "iterator",
            frozenset(
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
                    "collect",
                    "task",
                }
            ),
        ),
        # `task` on a playbook step: a label for the child's parent_step
        ActionSpec(
            "playbook",
            frozenset({"path", "return_step", "task"}),
            (("path",), "`path` of a registered playbook or a file"),
        ),
        ActionSpec(
            "workbook", frozenset({"name", "task"}), (("name", "task"), "`name` of a `workbook` entry")
        ),
        ActionSpec(
            "save",
            frozenset(
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
                    "commands",
                    "batch",  # accepted only to say where it belongs: an iterator task's per-item save
                }
            ),
        ),
        # `secret_name` is folded into `name` at load; `project_id` and `version` are Google Secret Manager's.
        ActionSpec(
            "secrets",
            frozenset({"name", "provider", "project_id", "version"}),
            (("name",), "`name` of the credential or secret"),
        ),
    )
}
