"""YAML loading that remembers where each mapping and key came from, so errors can name the line."""

from __future__ import annotations

import re
from typing import Any

import yaml


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and the line of each key (1-based).

    `value_lines` holds the line where a value's text begins: for a block scalar (`code: |`) that is
    the line after the key, so a line inside the value can be mapped back to a line of the file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: int | None = None
        self.key_lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


def located(items: dict[str, Any], like: Any) -> LineDict:
    """A LineDict holding `items` that reports the same lines as `like` (a LineDict or anything)."""
    out = LineDict(items)
    if isinstance(like, LineDict):
        out.line, out.key_lines, out.value_lines = like.line, like.key_lines, like.value_lines
    return out


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            )
        skey = key if isinstance(key, str) else str(key) if key is not None else "null"
        if skey in mapping:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {skey!r} (first at line {mapping.key_lines[skey]}); a key may appear only "
                "once in a mapping: remove one or merge them",
                key_node.start_mark,
            )
        mapping[skey] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[skey] = key_node.start_mark.line + 1
        block = isinstance(value_node, yaml.ScalarNode) and value_node.style in ("|", ">")
        mapping.value_lines[skey] = value_node.start_mark.line + (2 if block else 1)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# Bounds on what one playbook may be, so that a small hostile file cannot exhaust the machine: aliases
# that expand to millions of nodes ("billion laughs"), nesting that overflows the parser, huge files.
MAX_DOCUMENT_CHARS = 10_000_000
MAX_EXPANDED_NODES = 1_000_000
MAX_DEPTH = 100


class YamlLimit(ValueError):
    """The document is past one of the bounds above; the message says which and what to do."""


def load_yaml(text: str) -> Any:
    """Parse YAML text; raises yaml.YAMLError (with a mark) on bad syntax, YamlLimit past a bound."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise YamlLimit(
            f"the file has {len(text):,} characters, more than the {MAX_DOCUMENT_CHARS:,} a playbook may "
            "have; keep data in files or tables the steps read, not in the playbook"
        )
    loader = _LineLoader(text)  # a SafeLoader subclass: no arbitrary objects
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlLimit(
                f"the document is nested too deeply to read; a playbook may nest at most {MAX_DEPTH} levels"
            ) from None
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Count the nodes the document expands to (an alias counts as all of its target) and its depth."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlLimit(
                f"the document nests more than {MAX_DEPTH} levels deep (line {node.start_mark.line + 1}); "
                "flatten it"
            )
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_EXPANDED_NODES:
            raise YamlLimit(
                f"the document expands to more than {MAX_EXPANDED_NODES:,} values (aliases of aliases "
                f"near line {node.start_mark.line + 1}); write the values out or use fewer aliases"
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


def line_of(value: Any, key: str | None = None) -> int | None:
    if isinstance(value, LineDict):
        return value.line_of(key) if key else value.line
    return None


def first_content_line(text: str) -> int:
    """The first line that is not blank, a comment or a document marker (1-based; 1 if none)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith(("#", "---", "%")):
            return number
    return 1


_UNQUOTED_TEMPLATE = re.compile(r"(:|-)\s+\{\{")


def describe_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[str, int | None]:
    """A YAML parse error as (message with a fix, 1-based line of the cause)."""
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context or ""
    start = exc.context_mark.line + 1 if exc.context_mark else None
    line = exc.problem_mark.line + 1 if exc.problem_mark else start
    lines = text.splitlines()
    at = lines[line - 1] if line and 0 < line <= len(lines) else ""
    if "quoted scalar" in context and start is not None:
        return (
            f"YAML syntax error: a quoted string opened at line {start} is not closed; add the closing quote",
            start,
        )
    if "\\t" in problem or "\t" in at[: len(at) - len(at.lstrip())]:
        return "YAML syntax error: a tab character is used for indentation; YAML needs spaces there", line
    if _UNQUOTED_TEMPLATE.search(at) or (problem.startswith("unhashable key") and "{{" in at):
        return (
            'YAML syntax error: a value starting with {{ must be quoted, e.g. key: "{{ workload.x }}"',
            line,
        )
    if problem.startswith("duplicate key"):
        return f"YAML error: {problem}", line
    if "flow sequence" in context or "flow mapping" in context:
        bracket = "[" if "sequence" in context else "{"
        closing = "]" if bracket == "[" else "}"
        return (
            f"YAML syntax error: the {bracket} opened at line {start} is not closed ({problem}); "
            f"add the missing {closing!r} or ','",
            line,
        )
    if "block end" in problem or "block mapping" in context or "block collection" in context:
        return (
            f"YAML syntax error: the indentation does not line up ({problem}); keys of one mapping and "
            "items of one list must start in the same column",
            line,
        )
    if "mapping values are not allowed" in problem:
        return (
            "YAML syntax error: unexpected ':' (mapping values are not allowed here); check the indentation, "
            "or quote a value that contains ': '",
            line,
        )
    if "single document" in context:
        return "YAML syntax error: the file holds several documents (---); keep one playbook per file", line
    return f"YAML syntax error: {problem}; fix the indentation or quoting there", line
