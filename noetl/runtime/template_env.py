"""`env` and `job` as templates see them: the process environment (optionally narrowed) and the execution.

NoETL 0.x exposed the worker's whole environment to templates. We do too, because playbooks rely on it
(`{{ env.PGHOST | default("localhost") }}`), with two guards: values of variables whose names look secret
are masked in events, logs and errors like credential values, and `NOETL_TEMPLATE_ENV` (a comma list of
glob patterns such as `PG*,APP_*`) restricts which variables templates may read at all.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

FILTER_VARIABLE = "NOETL_TEMPLATE_ENV"
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")


# The engine's own keys are never template names: a playbook must not be able to send the store's
# encryption key or the API token anywhere. `NOETL_SECRET_<NAME>` values are read through
# `auth: {source: secret, ...}`, which masks them.
HIDDEN = ("NOETL_SECRET_KEY", "NOETL_API_TOKEN", "NOETL_SECRET_*")


_HIDDEN = re.compile("|".join(fnmatch.translate(h) for h in HIDDEN))


@lru_cache(maxsize=32)
def _allowed(patterns: str) -> re.Pattern[str] | None:
    """NOETL_TEMPLATE_ENV as one compiled pattern (None: every variable); built once per value."""
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    return re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None


def template_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables templates may read as `env.NAME` (built for every step: kept cheap)."""
    environ = os.environ if environ is None else environ
    allowed = _allowed(environ.get(FILTER_VARIABLE, ""))
    return {
        k: v for k, v in environ.items() if not _HIDDEN.match(k) and (allowed is None or allowed.match(k))
    }


# Workload keys are names a person chose for data, where `KEY` alone is too common (`primary_key`,
# `cache_key_prefix`): there, only these words mark a secret.
SECRET_KEY_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "API_KEY", "APIKEY", "PRIVATE_KEY")


def looks_secret(name: str) -> bool:
    """An environment variable whose value is masked (COMPAT.md: *PASSWORD*, *SECRET*, *TOKEN*, ...)."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def looks_secret_key(name: str) -> bool:
    """A workload key whose value is masked."""
    upper = name.upper()
    return any(word in upper for word in SECRET_KEY_WORDS)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values to mask wherever they would be shown: those of variables named like secrets."""
    return [v for k, v in env.items() if looks_secret(k) and v]


def job_view(execution_id: str) -> dict[str, Any]:
    """`job.uuid` and `job.id`: in NoETL 0.x the queue job's id, which playbooks used as an execution id.
    Here one id for the whole execution, the same in every step and on every worker."""
    return {"uuid": execution_id, "id": execution_id, "execution_id": execution_id}
