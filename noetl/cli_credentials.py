"""`noetl credential add | list | delete`: the credentials steps use, stored encrypted in the local store."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from noetl.cli_common import DbOption, open_local_store, store_where, where_args
from noetl.cli_help import Commands
from noetl.errors import InputError

CredentialArgument = Annotated[str, typer.Argument(help="The credential's name, as a step's auth names it")]

credential_app = typer.Typer(
    cls=Commands, no_args_is_help=True, help="Manage credentials (stored encrypted)."
)


def install(app: typer.Typer) -> None:
    app.add_typer(credential_app, name="credential")


@credential_app.command("add")
def credential_add(
    name: CredentialArgument,
    type_: Annotated[
        str,
        typer.Option(
            "--type", help="Its type: postgres, snowflake, bearer, basic, header, gcs_hmac, s3, secret, ..."
        ),
    ],
    data: Annotated[str, typer.Option("--data", help="JSON object with the credential's fields")],
    db: DbOption = None,
) -> None:
    """Store a credential, encrypted at rest.

    Its values are never printed; one of the same name is replaced. The type must be one a step reads:
    postgres (postgres steps and saves, duckdb ATTACH), snowflake, bearer/token, basic, header/api_key
    (http), gcs_hmac/hmac/gcs, s3 (duckdb), secret (secrets steps)."""
    from noetl.dsl.credential_types import unknown_type_message

    refused = unknown_type_message(type_)
    if refused:
        raise InputError(refused)
    try:
        fields = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(
            f'--data is not valid JSON ({exc.msg}); pass an object such as \'{{"db_host": "localhost"}}\''
        ) from None
    if not isinstance(fields, dict):
        raise InputError("--data must be a JSON object")
    store = open_local_store(db)
    try:
        store.put_credential(name, type_, fields)
    finally:
        store.close()
    typer.echo(f"credential {name!r} ({type_}) saved with {len(fields)} field(s)")


@credential_app.command("list")
def credential_list(db: DbOption = None) -> None:
    """List credentials by name and type (never their values)."""
    store = open_local_store(db)
    try:
        rows = store.list_credentials()
    finally:
        store.close()
    for name, kind in rows:
        typer.echo(f"{name}  ({kind})")
    if not rows:
        typer.echo(f"no credentials in {store_where(store, db)}")


@credential_app.command("delete")
def credential_delete(name: CredentialArgument, db: DbOption = None) -> None:
    """Remove a credential from the store.

    Exit 2 when there is none of that name."""
    store = open_local_store(db)
    try:
        removed = store.delete_credential(name)
    finally:
        store.close()
    if not removed:
        raise InputError(
            f"no credential named {name!r} in {store_where(store, db)}; "
            f"`noetl credential list{where_args(db)}` shows the names"
        )
    typer.echo(f"credential {name} deleted")
