"""Load a playbook file: parse YAML, normalize aliases, validate everything before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from noetl.dsl import checks, keys
from noetl.dsl.models import Playbook, Step, Task
from noetl.dsl.normalize import Normalizer
from noetl.dsl.yaml_lines import LineDict, load_yaml
from noetl.errors import PlaybookError, Problem

API_VERSION = "noetl.io/v1"


def load_playbook(path: str | Path) -> Playbook:
    """Read and validate a playbook file; raises PlaybookError listing every problem found."""
    file = Path(path)
    if file.is_dir():
        candidates = sorted(file.glob("*.yaml")) + sorted(file.glob("*.yml"))
        if len(candidates) != 1:
            raise PlaybookError(
                [Problem(f"folder holds {len(candidates)} YAML files; name the playbook file", str(file))]
            )
        file = candidates[0]
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError([Problem("no such file; check the path", str(file))]) from None
    except OSError as exc:
        raise PlaybookError([Problem(f"cannot read the file: {exc.strerror}", str(file))]) from None
    return parse_playbook(text, source=str(file))


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    try:
        document = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise PlaybookError(
            [Problem(f"YAML syntax error: {what}; fix the indentation or quoting there", source, line)]
        ) from None
    except yaml.YAMLError as exc:
        raise PlaybookError([Problem(f"YAML syntax error: {exc}", source)]) from None
    return build_playbook(document, source)


def build_playbook(document: Any, source: str) -> Playbook:
    problems: list[Problem] = []
    if not isinstance(document, dict):
        raise PlaybookError(
            [Problem("a playbook is a YAML mapping with apiVersion, kind, metadata and workflow", source, 1)]
        )
    normalizer = Normalizer(source, problems)
    _check_header(document, normalizer)
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict):
        normalizer.report("metadata must be a mapping with name (and optionally path)", document, "metadata")
        metadata = {}
    name = str(metadata.get("name") or Path(source).stem)
    workload = document.get("workload") or {}
    if not isinstance(workload, dict):
        normalizer.report("workload must be a mapping of default parameters", document, "workload")
        workload = {}
    workbook = _workbook(document.get("workbook"), normalizer, document)
    steps = _steps(document, normalizer)
    checks.check_graph(steps, workbook, normalizer)
    if problems:
        raise PlaybookError(problems)
    return Playbook(
        name=name,
        path=str(metadata.get("path") or name),
        steps={s.name: s for s in steps},
        workload=_plain(workload),
        workbook=workbook,
        source=source,
        api_version=str(document.get("apiVersion", API_VERSION)),
    )


def _check_header(document: dict[str, Any], n: Normalizer) -> None:
    unknown = sorted(set(document) - keys.TOP_LEVEL_KEYS)
    for key in unknown:
        n.report(f"unknown top-level key {key!r}{checks.suggest(key, keys.TOP_LEVEL_KEYS)}", document, key)
    api = document.get("apiVersion")
    if api is not None and api != API_VERSION:
        n.report(f"apiVersion {api!r} is not supported; use {API_VERSION!r}", document, "apiVersion")
    kind = document.get("kind")
    if kind is not None and kind != "Playbook":
        n.report(f"kind {kind!r} is not supported; use 'Playbook'", document, "kind")
    if "workflow" in document and "steps" in document:
        n.report("give the steps under `workflow` or `steps`, not both", document, "steps")


def _workbook(raw: Any, n: Normalizer, document: dict[str, Any]) -> dict[str, Task]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        n.report("workbook must be a list of named actions", document, "workbook")
        return {}
    entries: dict[str, Task] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            n.report("each workbook entry needs a `name` and a `type`", entry if entry else document, "name")
            continue
        body = LineDict({k: v for k, v in entry.items() if k != "name"})
        body.line, body.key_lines = getattr(entry, "line", None), getattr(entry, "key_lines", {})
        if entry["name"] in entries:
            n.report(f"workbook entry {entry['name']!r} is defined twice; rename one", entry, "name")
        entries[entry["name"]] = n.task(body, f"workbook:{entry['name']}", allowed=keys.TASK_COMMON_KEYS)
    return entries


def _steps(document: dict[str, Any], n: Normalizer) -> list[Step]:
    raw = document.get("workflow", document.get("steps"))
    if raw is None:
        n.report("the playbook has no `workflow`; add a list of steps starting with `step: start`", document)
        return []
    if not isinstance(raw, list) or not raw:
        n.report("`workflow` must be a non-empty list of steps", document, "workflow")
        return []
    steps: list[Step] = []
    seen: dict[str, int | None] = {}
    for entry in raw:
        step = n.step(entry, document)
        if step is None:
            continue
        if step.name in seen:
            n.report(
                f"step name {step.name!r} is used twice (first at line {seen[step.name]}); names must be unique",
                entry,
                "step",
                step=step.name,
            )
            continue
        seen[step.name] = step.line
        steps.append(step)
    return steps


def _plain(value: Any) -> Any:
    """LineDicts become plain dicts once validated: values handed to the engine carry no YAML state."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
