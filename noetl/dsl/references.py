"""The credentials a playbook names: read from its document, for "used by" lists. Pure: text in, names out.

A playbook names a credential in an `auth:` value (a name, a spec such as `{type: postgres, credential:
pg_local}` or `{source: credential, key: ...}`, or a map of alias -> spec, on a step, a nested task, a
workbook entry or a save) and in a `type: secrets` step's `name`. A name written as `{{ workload.X }}`
is read from the playbook's workload defaults: what a run uses unless its parameters say otherwise.

Reads the YAML document rather than the validated playbook, so that a playbook registered under older
rules still answers; anything this cannot follow (other templates, odd shapes) names nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from noetl.dsl.auth import AuthProblem, canonical, is_spec
from noetl.dsl.yaml_lines import load_yaml

# Values that are inputs or results, not configuration: an `auth` key inside them is someone's data.
_DATA_KEYS = frozenset(
    {"data", "args", "with", "params", "input", "payload", "result", "code", "command", "commands"}
)
_WORKLOAD_NAME = re.compile(r"^\{\{\s*(?:workload|work)\.([A-Za-z_][\w.]*)\s*\}\}$")
_SECRET_PROVIDERS = (None, "credential", "noetl")  # the ones actions/secrets_action reads from the store
_MAX_DEPTH = 64


@lru_cache(maxsize=512)
def credential_names(text: str) -> frozenset[str]:
    """The credential names a playbook's YAML refers to; empty for a document that does not load.

    Cached by text: a catalog version never changes, and a credentials list asks about every playbook.
    """
    try:
        document = load_yaml(text)
    except Exception:  # any YAML error or limit: an unreadable playbook names no credential
        return frozenset()
    if not isinstance(document, dict):
        return frozenset()
    workload = document.get("workload")
    found: set[str] = set()
    _walk(document, workload if isinstance(workload, dict) else {}, found, 0)
    return frozenset(found)


def _walk(node: Any, workload: dict[str, Any], found: set[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            _walk(item, workload, found, depth + 1)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "secrets" and node.get("provider") in _SECRET_PROVIDERS:
        _name(node.get("name", node.get("secret_name")), workload, found)
    for key, value in node.items():
        if key == "auth":
            _auth(value, workload, found, 0)
        elif key not in _DATA_KEYS and key != "workload":
            _walk(value, workload, found, depth + 1)


def _auth(value: Any, workload: dict[str, Any], found: set[str], depth: int) -> None:
    """One `auth:` value: a name, one spec, or an alias map (each alias one spec)."""
    if depth > 4:  # a workload value naming itself, or specs nested past any real use
        return
    if isinstance(value, str):
        resolved = _resolve(value, workload)
        if resolved is not value:
            _auth(resolved, workload, found, depth + 1)
        else:
            _name(value, workload, found)
    elif is_spec(value):
        try:
            spec = canonical(value)
        except AuthProblem:
            return
        if spec.get("source", "credential") == "credential":
            _name(spec.get("key") or spec.get("name"), workload, found)
    elif isinstance(value, dict):
        for sub in value.values():
            _auth(sub, workload, found, depth + 1)


def _name(value: Any, workload: dict[str, Any], found: set[str]) -> None:
    value = _resolve(value, workload) if isinstance(value, str) else value
    if isinstance(value, str) and value.strip() and "{{" not in value and "{%" not in value:
        found.add(value.strip())


def _resolve(text: str, workload: dict[str, Any]) -> Any:
    """`{{ workload.a.b }}` -> the workload's default value there; any other text is returned as it is."""
    match = _WORKLOAD_NAME.match(text.strip())
    if not match:
        return text
    value: Any = workload
    for part in match.group(1).split("."):
        if not isinstance(value, dict) or part not in value:
            return text
        value = value[part]
    return value
