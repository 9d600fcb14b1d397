"""Credential routes: create, list names and types; values only to a caller holding the API token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from noetl.dsl.references import credential_names
from noetl.server import schemas
from noetl.server.errors import ApiError, not_found
from noetl.server.routes import deps

router = APIRouter(prefix="/api/credentials", tags=["credentials"])
Store = Annotated[Any, Depends(deps.store)]
TokenConfigured = Annotated[bool, Depends(deps.token_configured)]


@router.post("", status_code=201, response_model=schemas.CredentialSaved)
def create(body: schemas.CredentialIn, store: Store) -> schemas.CredentialSaved:
    """Store a credential, encrypted at rest; an existing name is replaced. The answer holds no values."""
    store.put_credential(body.name, body.type, body.data)
    return schemas.CredentialSaved(name=body.name, type=body.type, fields=len(body.data))


class PlaybookRef(BaseModel):
    path: str
    version: int = Field(description="The latest version, the one that names the credential")


class CredentialListed(schemas.CredentialInfo):
    used_by: list[PlaybookRef] | None = Field(
        None, description="With ?used_by=true: the catalog playbooks whose latest version names it"
    )


@router.get("", response_model=list[CredentialListed], response_model_exclude_none=True)
def list_credentials(
    store: Store,
    used_by: Annotated[
        bool, Query(description="Also list the catalog playbooks that use each (reads every playbook)")
    ] = False,
) -> list[CredentialListed]:
    """Names and types, never values; with `?used_by=true`, the catalog playbooks that use each."""
    # Opt-in: answering it reads and parses the latest version of every catalog playbook.
    users = _users(store) if used_by else {}
    return [
        CredentialListed(name=name, type=kind, used_by=users.get(name, []) if used_by else None)
        for name, kind in store.list_credentials()
    ]


def _users(store: Any) -> dict[str, list[PlaybookRef]]:
    """credential name -> the playbooks whose latest version names it (auth specs, secrets steps)."""
    users: dict[str, list[PlaybookRef]] = {}
    for listed in store.list_playbooks():
        entry = store.get_playbook(listed.path)  # the list holds no YAML
        if entry is None:
            continue
        for name in sorted(credential_names(entry.content)):
            users.setdefault(name, []).append(PlaybookRef(path=entry.path, version=entry.version))
    return users


@router.get(
    "/{name}",
    response_model=schemas.CredentialData,
    responses={403: {"model": schemas.ErrorBody, "description": "The server has no API token"}},
)
def get_credential(name: str, store: Store, token_configured: TokenConfigured) -> schemas.CredentialData:
    """A credential with its values: only when the server has NOETL_API_TOKEN and the caller sent it."""
    # With a token configured, the auth middleware has already checked it; without one anyone could ask.
    if not token_configured:
        raise ApiError(
            403,
            "credential values are served only to an authorized caller: start the server with "
            "NOETL_API_TOKEN set and send 'Authorization: Bearer <token>'",
        )
    record = store.get_credential(name)
    if record is None:
        raise not_found(f"credential {name!r}", "GET /api/credentials lists them")
    return schemas.CredentialData(name=record.name, type=record.type, data=record.data)
