"""The credential types the actions read (`noetl credential add --type`): a type no action reads would be
stored, then refused by the step that uses it. Kept equal to the actions' own lists by a unit test."""

from __future__ import annotations

# type -> which steps read it, and the fields they look for (lower-case: the actions compare it so).
CREDENTIAL_TYPES: dict[str, str] = {
    "postgres": "postgres steps and saves, ATTACH in duckdb steps (db_host, db_port, db_user, db_password, "
    "db_name, or dsn)",
    "postgresql": "the same as postgres",
    "snowflake": "snowflake steps (account, user, password or private_key, warehouse, database, ...)",
    "bearer": "http steps and saves: Authorization: Bearer (token)",
    "token": "the same as bearer",
    "basic": "http steps and saves: basic authentication (username, password)",
    "header": "http steps and saves: one header (name, value)",
    "api_key": "the same as header",
    "gcs_hmac": "duckdb steps: a Google Cloud Storage HMAC key (key_id, secret_key)",
    "hmac": "the same as gcs_hmac",
    "gcs": "the same as gcs_hmac",
    "s3": "duckdb steps: an S3 key (key_id, secret_key, region, endpoint, ...)",
    "secret": "secrets steps and anything that reads the fields as they are",
}


def unknown_type_message(kind: str) -> str | None:
    """Why `kind` cannot be a credential's type, or None when an action reads it."""
    if kind.lower() in CREDENTIAL_TYPES:
        return None
    import difflib

    close = difflib.get_close_matches(kind.lower(), sorted(CREDENTIAL_TYPES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    http = " (an http step's credential is bearer, basic or header)" if kind.lower() == "http" else ""
    return (
        f"--type {kind!r} is not a credential type any step reads{hint or http}; "
        f"use one of {', '.join(CREDENTIAL_TYPES)}"
    )
