"""Resolve `auth:` specs into credential records, from the store, the environment or inline fields."""

from __future__ import annotations

import os
from typing import Any

from noetl.dsl.auth import AuthProblem, canonical, is_spec
from noetl.errors import CredentialError
from noetl.runtime.redact import Redactor
from noetl.store.ports import CredentialRecord, Credentials


class CredentialResolver:
    def __init__(self, store: Credentials, redactor: Redactor) -> None:
        self.store = store
        self.redactor = redactor

    def resolve(self, spec: Any, where: str) -> CredentialRecord:
        record = self._resolve(spec, where)
        self.redactor.add_sensitive(record.data)
        return record

    def resolve_map(self, spec: Any, where: str) -> dict[str, CredentialRecord]:
        """`auth` as a map alias -> spec (DuckDB turns each alias into a secret); one spec is one alias."""
        if isinstance(spec, dict) and not is_spec(spec):
            return {alias: self.resolve(sub, f"{where} alias '{alias}'") for alias, sub in spec.items()}
        record = self.resolve(spec, where)
        return {record.name: record}

    def _resolve(self, spec: Any, where: str) -> CredentialRecord:
        if isinstance(spec, str):
            return self._from_store(spec, where)
        if not isinstance(spec, dict):
            raise CredentialError(
                f"{where}: `auth` must be a credential name or a mapping, got {type(spec).__name__}"
            )
        try:  # a template may have produced a shorthand spec: the same forms as at load time
            spec = canonical(spec)
        except AuthProblem as exc:
            raise CredentialError(f"{where}: {exc}") from None
        source = spec.get("source", "credential")
        kind = str(spec.get("type", ""))
        if source == "credential":
            key = spec.get("key") or spec.get("name")
            if not key:
                raise CredentialError(f"{where}: auth with source credential needs `key`")
            record = self._from_store(str(key), where)
            return CredentialRecord(record.name, kind or record.type, record.data)
        if source == "env":
            return self._from_env(str(spec.get("name") or spec.get("key") or ""), kind, where, prefix="")
        if source == "secret":
            return self._from_env(
                str(spec.get("name") or spec.get("key") or ""), kind, where, prefix="NOETL_SECRET_"
            )
        if source == "inline":
            fields = spec.get("fields")
            if not isinstance(fields, dict):
                raise CredentialError(f"{where}: auth with source inline needs `fields` (a mapping)")
            return CredentialRecord(str(spec.get("name", "inline")), kind, dict(fields))
        raise CredentialError(
            f"{where}: unknown auth source {source!r}; use credential, env, secret or inline"
        )

    def _from_store(self, name: str, where: str) -> CredentialRecord:
        record = self.store.get_credential(name)
        if record is None:
            raise CredentialError(
                f"{where}: credential {name!r} does not exist; add it with "
                f"`noetl credential add {name} --type TYPE --data JSON`"
            )
        return record

    def _from_env(self, name: str, kind: str, where: str, prefix: str) -> CredentialRecord:
        variable = prefix + name.upper() if prefix else name
        if not name or variable not in os.environ:
            raise CredentialError(f"{where}: environment variable {variable or '(no name)'} is not set")
        return CredentialRecord(name, kind or "secret", {"value": os.environ[variable]})
