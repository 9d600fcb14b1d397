"""The snowflake action: a step's SQL statements in one Snowflake transaction, binding `:name` from its inputs.

The connector is the `[snowflake]` extra (`pip install 'noetl[snowflake]'`); without it the step fails at
once, since no retry can install a package.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.sql_results import statement_result
from noetl.actions.sql_split import bind_named
from noetl.actions.sql_step import commands, preview, resolve_auth
from noetl.errors import ActionError
from noetl.store.ports import CredentialRecord

# connect() keyword -> the credential fields that may hold it, preferred first.
_FIELDS = {
    "account": ("account", "sf_account"),
    "user": ("user", "username", "sf_user"),
    "password": ("password", "sf_password"),
    "warehouse": ("warehouse", "sf_warehouse"),
    "database": ("database", "sf_database"),
    "schema": ("schema", "sf_schema"),
    "role": ("role", "sf_role"),
    "authenticator": ("authenticator",),
}
_SECRET_WORDS = ("pass", "secret", "token", "key")


def run(ctx: ActionContext) -> dict[str, Any]:
    try:
        import snowflake.connector as connector
    except ImportError as exc:
        raise ActionError(
            f"step '{ctx.step}': a snowflake step needs the Snowflake connector, which is not installed "
            f"({exc}); install it with `pip install 'noetl[snowflake]'`",
            non_retryable=True,
            error_type="MissingExtra",
        ) from None
    statements = commands(ctx)
    record = resolve_auth(ctx, "snowflake")
    params = connect_params(record, ctx.step)
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    secrets = _secret_values(record)
    try:
        conn = connector.connect(**params, autocommit=False)
    except Exception as exc:
        raise ActionError(
            f"step '{ctx.step}': could not connect to Snowflake account {params['account']!r} as "
            f"{params['user']!r}: {_scrub(_error_text(exc), secrets)}; check the credential "
            f"{record.name!r}",
            non_retryable=not _is_transient(connector, exc),
            error_type="ConnectionError",
        ) from None
    try:
        results: dict[str, Any] = {}
        for index, statement in enumerate(statements):
            results[f"command_{index}"] = _run_one(
                connector, conn, statement, inputs, index, len(statements), ctx.step, secrets
            )
        try:
            conn.commit()
        except Exception as exc:
            raise ActionError(
                f"step '{ctx.step}': the transaction could not be committed: "
                f"{_scrub(_error_text(exc), secrets)}; the step was rolled back",
                non_retryable=not _is_transient(connector, exc),
                error_type=type(exc).__name__,
            ) from None
        return results
    except BaseException:
        _quietly(conn.rollback)
        raise
    finally:
        _quietly(conn.close)


def connect_params(record: CredentialRecord, step: str) -> dict[str, Any]:
    """connect() keywords from a snowflake credential: account and user, and a password or a private key."""
    data = record.data
    params: dict[str, Any] = {}
    for key, names in _FIELDS.items():
        value = next((data[n] for n in names if data.get(n) not in (None, "")), None)
        if value is not None:
            params[key] = str(value)
    key_text = data.get("private_key") or data.get("sf_private_key")
    if key_text:
        params["private_key"] = _private_key(key_text, data.get("private_key_passphrase"), record, step)
    missing = [name for name in ("account", "user") if name not in params]
    if missing or not ({"password", "private_key", "authenticator"} & set(params)):
        raise ActionError(
            f"step '{step}': credential {record.name!r} (type {record.type or 'unset'}) lacks "
            f"{', '.join(missing) or 'a password'}; a snowflake credential needs account, user and "
            "password (or private_key), and may set warehouse, database, schema and role",
            non_retryable=True,
            error_type="CredentialError",
        )
    return params


def _private_key(value: Any, passphrase: Any, record: CredentialRecord, step: str) -> Any:
    """A PEM private key becomes the DER bytes the connector takes; anything else goes as it is."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    if "-----BEGIN" not in text:
        return value
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(
            text.encode(), password=str(passphrase).encode() if passphrase else None
        )
    except (ValueError, TypeError) as exc:
        raise ActionError(
            f"step '{step}': the private_key of credential {record.name!r} cannot be read "
            f"({type(exc).__name__}); give a PEM key, and private_key_passphrase if it is encrypted",
            non_retryable=True,
            error_type="CredentialError",
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _run_one(
    connector: Any,
    conn: Any,
    statement: str,
    inputs: dict[str, Any],
    index: int,
    total: int,
    step: str,
    secrets: list[str],
) -> dict[str, Any]:
    bound = bind_named(statement, inputs, "pyformat")  # the connector binds pyformat on the client
    params = {name: adapt(inputs[name]) for name in bound.names} if bound.names else None
    cur = conn.cursor()
    try:
        cur.execute(bound.text, params)
        if cur.description is None:
            return statement_result([], [], cur.rowcount or 0)
        rows = cur.fetchall()
        return statement_result([_column_name(c) for c in cur.description], rows, len(rows))
    except Exception as exc:
        raise ActionError(
            f"step '{step}': command_{index} (statement {index + 1} of {total}) failed: "
            f"{_scrub(_error_text(exc), secrets)}; in `{preview(statement)}`; the step was rolled back",
            non_retryable=not _is_transient(connector, exc),
            error_type=type(exc).__name__,
            result={"statement": index, "sqlstate": getattr(exc, "sqlstate", None)},
        ) from None
    finally:
        _quietly(cur.close)


def adapt(value: Any) -> Any:
    """A bind value for the connector: dicts and lists go as JSON text (use PARSE_JSON(:name) in SQL)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _column_name(column: Any) -> str:
    name = getattr(column, "name", None)
    return str(name if name is not None else column[0])


def _is_transient(connector: Any, exc: BaseException) -> bool:
    """Network trouble and aborted transactions are worth a retry; SQL and login errors are not."""
    operational = getattr(connector, "OperationalError", None)
    interface = getattr(connector, "InterfaceError", None)
    kinds = tuple(k for k in (operational, interface) if isinstance(k, type))
    if kinds and isinstance(exc, kinds):
        return True
    return str(getattr(exc, "sqlstate", "") or "").startswith(("40", "57"))


def _error_text(exc: BaseException) -> str:
    return str(getattr(exc, "msg", None) or exc).strip() or type(exc).__name__


def _secret_values(record: CredentialRecord) -> list[str]:
    found = [
        str(value)
        for key, value in record.data.items()
        if value not in (None, "") and any(word in key.lower() for word in _SECRET_WORDS)
    ]
    return sorted(found, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _quietly(fn: Any) -> None:
    # The step's own error (or result) is what matters; a failed cleanup adds nothing to it.
    with contextlib.suppress(Exception):
        fn()
