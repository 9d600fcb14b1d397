"""Load a playbook file: parse YAML, normalize aliases, validate everything before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from noetl.dsl import call_rings, checks, keys
from noetl.dsl.models import Playbook, Step, Task
from noetl.dsl.normalize import Normalizer
from noetl.dsl.render import is_template
from noetl.dsl.yaml_lines import (
    YamlLimit,
    describe_yaml_error,
    first_content_line,
    line_of,
    load_yaml,
    located,
)
from noetl.errors import PlaybookError, Problem

API_VERSION = "noetl.io/v1"


def playbook_file(path: str | Path) -> Path:
    """The playbook file a path names: the file itself, or the one YAML file of a folder."""
    file = Path(path)
    if file.is_dir():
        candidates = sorted(file.glob("*.yaml")) + sorted(file.glob("*.yml"))
        if len(candidates) != 1:
            raise PlaybookError(
                [Problem(f"folder holds {len(candidates)} YAML files; name the playbook file", str(file))]
            )
        file = candidates[0]
    return file


def load_playbook(path: str | Path) -> Playbook:
    """Read and validate a playbook file (or a folder's one YAML file); raises PlaybookError listing
    every problem found. A file is also refused when every run of it enters a ring of sub-playbook
    files that always call each other (noetl/dsl/call_rings.py)."""
    file = playbook_file(path)
    playbook = _read_playbook(file)
    call_rings.check_call_rings(file, playbook, _read_playbook)
    return playbook


def _read_playbook(file: Path) -> Playbook:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError([Problem("no such file; check the path", str(file))]) from None
    except OSError as exc:
        raise PlaybookError([Problem(f"cannot read the file: {exc.strerror}", str(file))]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise PlaybookError(
            [
                Problem(
                    f"the file is not UTF-8 text (byte {exc.object[exc.start]:#x}); save it as UTF-8",
                    str(file),
                    line,
                )
            ]
        ) from None
    return parse_playbook(text, source=str(file))


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    """Parse and validate playbook text; `source` names the file in every problem."""
    try:
        document = load_yaml(text)
    except YamlLimit as exc:
        raise PlaybookError([Problem(str(exc), source)]) from None
    except yaml.MarkedYAMLError as exc:
        message, line = describe_yaml_error(exc, text)
        raise PlaybookError([Problem(message, source, line)]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"the file holds a control character YAML does not allow (U+{code:04X}); remove it"
        raise PlaybookError([Problem(message, source, line)]) from None
    except yaml.YAMLError as exc:
        raise PlaybookError([Problem(f"YAML syntax error: {exc}", source)]) from None
    if document is None:
        raise PlaybookError(
            [
                Problem(
                    "the file is empty; a playbook needs apiVersion, kind, metadata and workflow", source, 1
                )
            ]
        )
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"the single value {str(document)[:40]!r}"
        raise PlaybookError(
            [
                Problem(
                    "the playbook must be a YAML mapping (apiVersion, kind, metadata, workflow), "
                    f"not {kind}; put the steps under `workflow:`",
                    source,
                    first_content_line(text),
                )
            ]
        )
    return build_playbook(document, source)


def build_playbook(document: Any, source: str) -> Playbook:
    """Validate a parsed YAML document and build the frozen Playbook; raises PlaybookError."""
    problems: list[Problem] = []
    if not isinstance(document, dict):
        raise PlaybookError(
            [Problem("a playbook is a YAML mapping with apiVersion, kind, metadata and workflow", source, 1)]
        )
    normalizer = Normalizer(source, problems)
    _check_header(document, normalizer)
    identity = _identity(document, normalizer, source)
    workload = document.get("workload") or {}
    if not isinstance(workload, dict):
        normalizer.report("workload must be a mapping of default parameters", document, "workload")
        workload = {}
    checks.check_templates(normalizer, workload, None)  # rendered once when an execution starts
    playbook_timeout = normalizer.timeout(document, None)
    workbook = _workbook(document.get("workbook"), normalizer, document)
    steps = _steps(document, normalizer)
    if steps:
        checks.check_graph(steps, workbook, normalizer, _workflow_line(document))
        checks.check_self_calls(steps, identity[1], source, normalizer)
    checks.warn_job_names(normalizer, document)
    if problems:
        raise PlaybookError(_ordered(problems))
    return Playbook(
        name=identity[0],
        path=identity[1],
        steps={s.name: s for s in steps},
        workload=_plain(workload),
        workbook=workbook,
        source=source,
        api_version=str(document.get("apiVersion", API_VERSION)),
        description=identity[2],
        warnings=tuple(_ordered(normalizer.warnings)),
        timeout=None if isinstance(playbook_timeout, str) else playbook_timeout,  # no template there
    )


def _identity(document: dict[str, Any], n: Normalizer, source: str) -> tuple[str, str, str | None]:
    """(name, catalog path, description). NoETL 0.x read `name`/`path` beside `metadata` too: the path
    is metadata.path, else top-level path, else metadata.name, else top-level name."""
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict):
        n.report("metadata must be a mapping with name (and optionally path)", document, "metadata")
        metadata = {}
    for key in ("name", "path", "description"):
        if key not in document:
            continue
        if key in metadata and metadata[key] != document[key]:
            n.report(
                f"`{key}` is given twice, as {document[key]!r} at the top and {metadata[key]!r} under "
                "`metadata`; keep the one under `metadata`",
                document,
                key,
            )
        else:
            n.warn(f"top-level `{key}`: prefer `metadata: {{{key}: ...}}`", document, key)
    for where in (metadata, document):
        for key in ("name", "path", "description"):
            value = where.get(key)
            if key == "description" and not is_template(value):
                continue  # any text, just never a template (it is never rendered)
            if value is not None and (not isinstance(value, str) or is_template(value)):
                why = (
                    "it is never rendered" if key == "description" else "it names the playbook in the catalog"
                )
                n.report(f"`{key}` must be fixed text ({why}), got {value!r}", where, key)
    name = str(metadata.get("name") or document.get("name") or Path(source).stem)
    path = str(metadata.get("path") or document.get("path") or metadata.get("name") or name)
    description = metadata.get("description", document.get("description"))
    return name, path, None if description is None else str(description)


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Problems without repeats, in file order (problems without a line last)."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


def _workflow_line(document: dict[str, Any]) -> int | None:
    key = "workflow" if "workflow" in document else "steps"
    return line_of(document, key)


def _check_header(document: dict[str, Any], n: Normalizer) -> None:
    unknown = sorted(set(document) - keys.TOP_LEVEL_KEYS)
    for key in unknown:
        hint = checks.suggest(key, keys.TOP_LEVEL_KEYS) or f"; use {', '.join(sorted(keys.TOP_LEVEL_KEYS))}"
        n.report(f"unknown top-level key {key!r}{hint}", document, key)
    api = document.get("apiVersion")
    if api is not None and api != API_VERSION:
        n.report(f"apiVersion {api!r} is not supported; use {API_VERSION!r}", document, "apiVersion")
    kind = document.get("kind")
    if kind is not None and kind != "Playbook":
        n.report(f"kind {kind!r} is not supported; use 'Playbook'", document, "kind")
    if "workflow" in document and "steps" in document:
        n.report(
            "the steps are given under both `workflow` and `steps` (an alias); "
            "keep one list, under `workflow`",
            document,
            "steps",
        )


def _workbook(raw: Any, n: Normalizer, document: dict[str, Any]) -> dict[str, Task]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        n.report(
            "workbook must be a list of named actions (`- name: ...` with a `type`)", document, "workbook"
        )
        return {}
    n.workbook_names = {e["name"] for e in raw if isinstance(e, dict) and isinstance(e.get("name"), str)}
    entries: dict[str, Task] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            where = entry if isinstance(entry, dict) else document
            n.report("each workbook entry needs a `name` and a `type`", where, None if entry else "workbook")
            continue
        label = f"workbook:{entry['name']}"
        if entry["name"] in entries:
            n.report(f"workbook entry {entry['name']!r} is defined twice; rename one", entry, "name")
        if entry.get("type") is None:
            n.report(
                "a workbook entry needs a `type` (python, http, postgres, ...)", entry, "name", step=label
            )
        body = located({k: v for k, v in entry.items() if k != "name"}, entry)
        entries[entry["name"]] = n.task(body, label, allowed=keys.TASK_COMMON_KEYS, nested=True)
        checks.check_templates(n, body, label)
    return entries


def _steps(document: dict[str, Any], n: Normalizer) -> list[Step]:
    key = "workflow" if "workflow" in document else "steps"
    raw = document.get(key)
    if key not in document:
        n.report("the playbook has no `workflow`; add a list of steps starting with `step: start`", document)
        return []
    if raw is None or raw == []:
        n.report(f"`{key}` is empty; add a list of steps starting with `- step: start`", document, key)
        return []
    if not isinstance(raw, list):
        n.report(f"`{key}` must be a list of steps (`- step: start` ...)", document, key)
        return []
    steps: list[Step] = []
    seen: dict[str, int | None] = {}
    for entry in raw:
        step = n.step(entry, document, key)
        if step is None:
            continue
        if step.name in seen:
            n.report(
                f"step name {step.name!r} is used twice (first at line {seen[step.name]}); "
                "step names must be unique: rename one",
                entry,
                "step",
                step=step.name,
            )
            continue
        seen[step.name] = line_of(entry, "step")
        steps.append(step)
    return steps


def _plain(value: Any) -> Any:
    """LineDicts become plain dicts once validated: values handed to the engine carry no YAML state."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
