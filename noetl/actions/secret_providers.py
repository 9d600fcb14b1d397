"""Secret managers outside NoETL's own store, each behind its optional extra and imported only when used."""

from __future__ import annotations

import os
from typing import Any

from noetl.actions.base import ActionContext
from noetl.errors import ActionError

GOOGLE = frozenset({"google", "gcp", "google_secret_manager"})

# Google API errors that a retry cannot fix (by class name: google.api_core need not be importable).
_GOOGLE_PERMANENT = frozenset(
    {"NotFound", "PermissionDenied", "InvalidArgument", "Unauthenticated", "FailedPrecondition", "Forbidden"}
)


def google_secret(ctx: ActionContext, name: str) -> str:
    """The payload of a Google Secret Manager secret version, as text."""
    where = f"step '{ctx.step}'"
    try:
        from google.cloud import secretmanager
    except ImportError as exc:
        raise ActionError(
            f"{where}: `provider: google` needs the Google Secret Manager client, which is not installed "
            f"({exc}); install it with `pip install 'noetl[gcp]'`",
            non_retryable=True,
            error_type="MissingExtra",
        ) from None
    project = str(ctx.config.get("project_id") or os.environ.get("GOOGLE_CLOUD_PROJECT") or "")
    if not project:
        raise ActionError(
            f"{where}: the Google secret {name!r} needs a project: set `project_id` on the step "
            "or the GOOGLE_CLOUD_PROJECT environment variable",
            non_retryable=True,
        )
    version = str(ctx.config.get("version") or "latest")
    path = f"projects/{project}/secrets/{name}/versions/{version}"
    try:
        client = secretmanager.SecretManagerServiceClient()
        response = client.access_secret_version(name=path)
        payload: Any = response.payload.data
    except Exception as exc:
        kind = type(exc).__name__
        raise ActionError(
            f"{where}: reading {path} from Google Secret Manager failed: {kind}: {exc}",
            non_retryable=kind in _GOOGLE_PERMANENT or kind == "DefaultCredentialsError",
            error_type=kind,
        ) from None
    if isinstance(payload, (bytes, bytearray)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise ActionError(
                f"{where}: the Google secret {path} is not UTF-8 text", non_retryable=True
            ) from None
    return str(payload)
