"""A postgres credential's fields, under any of the names the format accepts, become connection settings."""

from __future__ import annotations

import pytest

from noetl.actions.duckdb_extensions import missing_extension_hint
from noetl.actions.sql_step import pg_params, preview
from noetl.errors import CredentialError
from noetl.store.ports import CredentialRecord


def test_db_prefixed_fields() -> None:
    record = CredentialRecord(
        "pg",
        "postgres",
        {"db_host": "h", "db_port": 5433, "db_user": "u", "db_password": "p", "db_name": "d"},
    )
    assert pg_params(record) == {"host": "h", "port": "5433", "user": "u", "password": "p", "dbname": "d"}


def test_plain_fields_and_database_alias() -> None:
    record = CredentialRecord("pg", "postgres", {"host": "h", "port": "5432", "user": "u", "database": "d"})
    assert pg_params(record) == {"host": "h", "port": "5432", "user": "u", "dbname": "d"}


def test_a_dsn() -> None:
    record = CredentialRecord("pg", "postgres", {"dsn": "postgresql://u:secret@h:6543/d"})
    assert pg_params(record) == {
        "host": "h",
        "port": "6543",
        "user": "u",
        "password": "secret",
        "dbname": "d",
    }


def test_a_credential_without_host_is_refused_by_name() -> None:
    with pytest.raises(CredentialError, match=r"credential 'tok' .*has no db_host") as caught:
        pg_params(CredentialRecord("tok", "bearer", {"token": "t0ps3cret"}))
    assert "t0ps3cret" not in str(caught.value)


def test_preview_is_one_short_line() -> None:
    assert preview("SELECT 1\n  FROM t") == "SELECT 1 FROM t"
    assert preview("SELECT " + "x, " * 50, limit=20) == "SELECT x, x, x, x..."


def test_missing_extension_hint_names_the_package() -> None:
    message = 'IO Error: Extension "/x/httpfs.duckdb_extension" not found. Extension "httpfs" is known.'
    assert "duckdb-ext-httpfs==" in missing_extension_hint(message)
    assert missing_extension_hint("Catalog Error: Table with name t does not exist!") == ""
