"""Credential routes: create, list names and types; values only to a caller holding the API token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

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


@router.get("", response_model=list[schemas.CredentialInfo])
def list_credentials(store: Store) -> list[schemas.CredentialInfo]:
    """Names and types, never values."""
    return [schemas.CredentialInfo(name=name, type=kind) for name, kind in store.list_credentials()]


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
