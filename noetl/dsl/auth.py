"""`auth:` specs in one canonical form: the unified shorthands folded, unknown keys reported.

Canonical spec: `{source: credential, key: NAME}`, `{source: env, name: VAR}`, `{source: secret, name: N}`,
`{source: inline, fields: {...}}`, each with an optional `type` and, for cloud storage secrets, the
settings DuckDB reads (`scope`, `region`, `endpoint`, `url_style`, `use_ssl`). The shorthands that NoETL
0.x documented as its "unified auth syntax" mean exactly these:

    {type: postgres, credential: pg_local}   -> {type: postgres, source: credential, key: pg_local}
    {type: api_key, env: API_TOKEN}          -> {type: api_key, source: env, name: API_TOKEN}
    {type: bearer, inline: {token: ...}}     -> {type: bearer, source: inline, fields: {token: ...}}

Pure: the loader uses it at load time, the credential resolver on specs that a template produced.
"""

from __future__ import annotations

from typing import Any

from noetl.dsl.render import is_template

SOURCES = ("credential", "env", "secret", "inline")
# `credential: NAME`, `env: VAR`, `inline: {...}`: the shorthand key, and where its value goes.
SHORTHANDS = {"credential": "key", "env": "name", "inline": "fields"}
SETTING_KEYS = frozenset({"scope", "region", "endpoint", "url_style", "use_ssl"})
SPEC_KEYS = (
    frozenset({"source", "key", "name", "type", "fields", "provider"} | set(SHORTHANDS)) | SETTING_KEYS
)
# A mapping with any of these keys is one spec; any other mapping is a map of alias -> spec.
_MARKERS = frozenset({"source", "key", "type", "fields", "provider"} | set(SHORTHANDS))


class AuthProblem(ValueError):
    """An auth spec that cannot mean anything; the message says what to write instead."""


def is_spec(value: Any) -> bool:
    """True for one credential spec (a mapping with source/key/type/...), false for an alias map."""
    return isinstance(value, dict) and bool(set(value) & _MARKERS)


def canonical(spec: Any) -> Any:
    """One spec (or a credential name, or a template) in the canonical form; raises AuthProblem."""
    if spec is None or isinstance(spec, str):
        return spec
    if not isinstance(spec, dict):
        raise AuthProblem(
            f"`auth` must be a credential name, a spec such as {{type: postgres, key: pg_local}} "
            f"or a map of alias -> spec, got {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise AuthProblem(
            f"unknown auth key(s) {', '.join(map(repr, unknown))}; an auth spec takes "
            f"{', '.join(sorted(SPEC_KEYS))}"
        )
    shorthands = [k for k in SHORTHANDS if k in spec]
    if len(shorthands) > 1 or (shorthands and "source" in spec):
        given = ", ".join(["source"] * ("source" in spec) + shorthands)
        raise AuthProblem(f"auth gives its source twice ({given}); keep one, e.g. `credential: NAME`")
    out = {k: v for k, v in spec.items() if k not in SHORTHANDS}
    if shorthands:
        short = shorthands[0]
        field = SHORTHANDS[short]
        if field in spec and spec[field] != spec[short]:
            raise AuthProblem(f"auth gives both `{short}` and `{field}`; keep one")
        out["source"] = short
        out[field] = spec[short]
    source = out.get("source", "credential")
    if isinstance(source, str) and not is_template(source) and source not in SOURCES:
        raise AuthProblem(f"unknown auth source {source!r}; use {', '.join(SOURCES)}")
    if source == "inline" and "fields" in out and not isinstance(out["fields"], (dict, str)):
        raise AuthProblem("auth `inline` (or `fields`) must be a mapping of field -> value")
    return out


def canonical_auth(value: Any, *, single: bool) -> Any:
    """A whole `auth:` value: a name, one spec, or an alias map (each alias canonical).

    `single`: the action uses one credential, so a one-alias map means its one spec (NoETL 0.x used
    the first alias) and a map of several aliases is a mistake.
    """
    if value is None or isinstance(value, str) or is_spec(value):
        return canonical(value)
    if not isinstance(value, dict):
        return canonical(value)  # raises with the message about the accepted shapes
    if not value:
        raise AuthProblem("`auth` is an empty mapping; name a credential, e.g. `auth: pg_local`")
    aliases = {}
    for alias, sub in value.items():
        try:
            aliases[alias] = canonical(sub)
        except AuthProblem as exc:
            raise AuthProblem(f"auth alias {alias!r}: {exc}") from None
    if single:
        if len(aliases) > 1:
            raise AuthProblem(
                f"this action uses one credential, but `auth` maps {len(aliases)} aliases "
                f"({', '.join(map(str, aliases))}); keep one"
            )
        return next(iter(aliases.values()))
    return aliases
