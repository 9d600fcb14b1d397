"""The API's request and response bodies: pydantic at the edge, so OpenAPI at /docs describes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RetryRequest(BaseModel):
    """Run an iterator step of a finished execution again: its failed items, and the items named."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    step: str | None = Field(None, description="The iterator step; by default the one with failed items")
    items: list[int] | str | None = Field(
        None, description='Items to run again although they succeeded: [2, 17] or "2,17,40-45"'
    )
    proceed: bool = Field(
        True, alias="continue", description="Run the steps after it again (false: stop after the step)"
    )


class RetryResponse(BaseModel):
    execution_id: str
    step: str
    items: list[int] = Field(description="The indexes that run again (the first 1,000)")
    items_count: int
    kept: int = Field(description="Items that keep their result and do not run again")
    total: int
    status: str
    retry_seq: int = Field(description="The seq of the execution_retry: follow events with after=retry_seq")


class RunRequest(BaseModel):
    """Start an execution of a catalog playbook."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="Catalog path of the playbook (metadata.path)")
    version: int | None = Field(None, ge=1, description="Catalog version; the latest when omitted")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Merged over the playbook's workload"
    )
    merge: bool = Field(False, description="Deep-merge the parameters instead of a shallow update")


class RunResponse(BaseModel):
    execution_id: str
    status: str


class Execution(BaseModel):
    execution_id: str
    playbook_path: str
    status: str
    created_at: str
    finished_at: str | None = None
    parent_execution_id: str | None = None
    result: Any = None
    error: str | None = None


class CancelResponse(BaseModel):
    execution_id: str
    cancelled: bool
    status: str


class EventsPage(BaseModel):
    """Events with `seq` above `after`, in commit order; poll again with `after=last_seq`."""

    execution_id: str
    events: list[dict[str, Any]]
    last_seq: int = Field(
        description="The `seq` of the last event returned (or `after` when none): the next `after`"
    )
    last_event_id: int | None = Field(
        None, description="The id of the last event returned; ids are identities, not an order to poll by"
    )
    more: bool = Field(description="True when the page was cut at `limit`: ask again at once")
    status: str | None = Field(None, description="The execution's status when this page was read")


class Registered(BaseModel):
    path: str
    name: str
    version: int


class CatalogItem(BaseModel):
    path: str
    name: str
    version: int = Field(description="The latest version")
    created_at: str


class CatalogPlaybook(BaseModel):
    path: str
    name: str
    version: int
    content: str
    created_at: str


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100, description="postgres, http, duckdb, secret, ...")
    data: dict[str, Any] = Field(description="The credential's fields; stored encrypted, never listed")


class CredentialInfo(BaseModel):
    """A credential without its values."""

    name: str
    type: str


class CredentialSaved(CredentialInfo):
    fields: int = Field(description="How many fields were stored")


class CredentialData(CredentialInfo):
    data: dict[str, Any]


class Workers(BaseModel):
    """The workers of a PostgreSQL store. There is no registry of workers: `live` counts the sessions that
    `noetl worker start` holds LISTENing for jobs while it runs, `busy` the unexpired leases."""

    live: int | None = Field(
        description="Worker processes connected to the store now; null when the database role may not "
        "see other roles' sessions"
    )
    busy: dict[str, int] = Field(description="Workers holding unexpired leases, with how many jobs each")


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when the database does not answer")
    database: str = Field(description="ok, or why the database did not answer")
    store: str = Field(description="The store URL, without any password")
    runner: str = Field(description="broker (PostgreSQL queue and workers) or in-process (SQLite)")
    workers: Workers | None = Field(
        None, description="With the broker; null in-process (SQLite), where the server runs executions itself"
    )
    queue: dict[str, int] | None = Field(
        None, description="With the broker: jobs not yet ended by state (queued, held, leased)"
    )


class ErrorBody(BaseModel):
    error: str
    problems: list[dict[str, Any]] | None = None
